"""The segments marked as graph nodes are exactly the ones the features stage kept, read from its shards."""
import numpy as np
import pytest

from models import graph
from stages.common import paths
from stages.common.cli import StageError
from stages.reporting.nodes import graph_nodes, kept_segments
from storage.maskcodec import encode_png, encode_segments, segments_from_ids
from storage.shards import npy_bytes, sample_key, write_index, write_shard


def _mask():
    """Seven segments: areas 64 (id 1), 48 (id 2), 32 (ids 3 to 6, equal boxes' sizes), 16 (id 7)."""
    ids = np.zeros((16, 16), np.int32)
    ids[:8, :8] = 1
    ids[8:14, :8] = 2
    ids[:4, 8:16] = 3
    ids[4:8, 8:16] = 4
    ids[8:12, 8:16] = 5
    ids[12:16, 8:16] = 6
    ids[14:, :8] = 7
    segs = segments_from_ids(ids)
    return ids, {"seg.png": encode_png(ids), "segments.json": encode_segments(segs)}, segs


def _nodes(segs, keep):
    """A features sample holding nodes for the segment ids `keep`, in that (slot) order."""
    recs = [next(s for s in segs if s["id"] == i) for i in keep]
    geom = graph.geometry(np.array([r["bbox"] for r in recs], np.float32), np.array([r["area"] for r in recs],
                          np.float32), np.ones(len(recs), np.float32), (16, 16))
    return {"nodes.npy": npy_bytes(np.zeros((len(recs), 4), np.float16)), "geom.npy": npy_bytes(geom)}


def test_the_marked_segments_are_the_nodes_in_the_shard():
    _, mask, segs = _mask()
    assert kept_segments(mask, _nodes(segs, [1, 2, 3]), "img", "toy") == [1, 2, 3]
    # ids 3..6 share area 32, and 3..6 boxes differ: the shard decides, not a rule of the report's own
    assert kept_segments(mask, _nodes(segs, [1, 2, 5, 3]), "img", "toy") == [1, 2, 5, 3]
    assert kept_segments(mask, None, "img", "toy") == []


def test_agrees_with_the_features_stage_rule():
    from stages.features import node_layout
    _, mask, segs = _mask()
    for k in (1, 4, 7, 36):
        _, records = node_layout(mask["seg.png"], mask["segments.json"], k)
        chosen = [r["id"] for r in records]
        assert kept_segments(mask, _nodes(segs, chosen), "img", "toy") == chosen == [1, 2, 3, 4, 5, 6, 7][:k]


def test_a_node_no_segment_matches_is_refused():
    _, mask, segs = _mask()
    other = [dict(s, bbox=[0, 0, 3, 3]) if s["id"] == 2 else s for s in segs]
    with pytest.raises(StageError, match="node 1 of img matches no segment.*dvc repro features@toy"):
        kept_segments(mask, _nodes(other, [1, 2]), "img", "toy")


def test_graph_nodes_reads_masks_and_features_shards(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _, mask, segs = _mask()
    for folder, samples in ((paths.masks("toy"), [("a", mask), ("b", mask)]),
                            (paths.features("toy"), [("a", _nodes(segs, [1, 2, 3, 4]))])):   # b: rejected
        rows = write_shard(folder / "s-000000.tar", [(i, sample_key(k), s) for k, (i, s) in enumerate(samples)])
        write_index(folder, rows)
    assert graph_nodes("toy", ["a", "b"]) == {"a": [1, 2, 3, 4], "b": []}
