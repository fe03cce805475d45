import numpy as np
import pytest
import webdataset as wds

from storage.shards import ShardError, ShardReader, npy_bytes, npy_load, sample_key, write_index, write_shard


def _samples(n, offset=0):
    rng = np.random.default_rng(offset)
    return [(f"img.{offset + i}/x", sample_key(offset + i),
             {"nodes.npy": npy_bytes(rng.standard_normal((i + 1, 4)).astype(np.float16)),
              "edges.npy": npy_bytes(np.array([[0], [0]], np.int32))}) for i in range(n)]


def test_random_access_by_id_and_byte_identical(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        rows = write_shard(d / "nodes-000000.tar", _samples(5)) + write_shard(d / "nodes-000001.tar", _samples(3, 5))
        write_index(d, rows)
    assert (a / "nodes-000000.tar").read_bytes() == (b / "nodes-000000.tar").read_bytes()
    with ShardReader(a) as r:
        assert len(r) == 8 and "img.6/x" in r
        got = npy_load(r.get("img.6/x")["nodes.npy"])  # 2nd sample of shard 1, ids with dots are fine
        want = npy_load(_samples(3, 5)[1][2]["nodes.npy"])
        assert np.array_equal(got, want)
        with pytest.raises(ShardError, match="not in"):
            r.get("nope")


def test_shards_stream_with_webdataset(tmp_path):
    rows = write_shard(tmp_path / "nodes-000000.tar", _samples(4))
    write_index(tmp_path, rows)
    ds = wds.WebDataset(str(tmp_path / "nodes-000000.tar"), shardshuffle=False)
    seen = [(s["__key__"], s["id.txt"].decode()) for s in ds]
    assert seen == [(sample_key(i), f"img.{i}/x") for i in range(4)]


def test_keys_with_dots_refused_and_missing_index(tmp_path):
    with pytest.raises(ShardError, match="dots"):
        write_shard(tmp_path / "x.tar", [("a", "k.1", {"a.npy": b""})])
    assert not (tmp_path / "x.tar").exists()
    with pytest.raises(ShardError, match="no shard index"):
        ShardReader(tmp_path)
