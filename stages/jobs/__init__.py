"""Running per-shard jobs in local processes or on a Dask cluster, with fingerprints and manifests."""
