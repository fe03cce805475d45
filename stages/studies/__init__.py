"""The papers' ablation studies: their tables as data (tables, catalog)."""
