"""Dataset adapters: each turns one dataset's own format into canonical rows (storage.adapters.base.Prepared)."""
