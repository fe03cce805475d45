"""Storage layer: tables, shards, mask codec, atomic writes, image decoding, dataset adapters."""
