"""Segment overlays: a colour per segment, hatching on exactly the segments that are not graph nodes."""
import numpy as np

from stages.reporting import segments


def _ids():
    ids = np.zeros((24, 24), np.int32)
    ids[:12, :12], ids[:12, 12:], ids[12:, :12], ids[12:, 12:] = 1, 2, 3, 4
    ids[20:, 20:] = 0                                      # void pixels stay as they are
    return ids


def test_palette_colours_are_distinct():
    p = segments.palette(300)
    assert len({tuple(c) for c in p}) == 300


def test_non_nodes_are_hatched_and_nodes_are_not():
    ids, image = _ids(), np.full((24, 24, 3), 200, np.uint8)
    out = segments.overlay(image, ids, nodes=[2, 4])
    hatched = np.all(out == segments.HATCH, axis=-1)
    for sid, is_node in ((1, False), (2, True), (3, False), (4, True)):
        assert hatched[ids == sid].any() != is_node, sid
    assert not hatched[ids == 0].any() and np.array_equal(out[ids == 0], image[ids == 0])
    inner = {sid: tuple(out[(ids == sid) & ~hatched][0]) for sid in (1, 2, 3, 4)}   # a tinted pixel of each
    assert len(set(inner.values())) == 4                                           # each its own colour


def test_node_labels_sit_inside_their_segment():
    ids = np.zeros((20, 20), np.int32)
    ids[:, :4], ids[:4, :] = 1, 1                          # an L: its centre of mass lies outside it
    ids[ids == 0] = 2
    for (x, y), sid in zip(segments.node_centres(ids, [1, 2]), (1, 2)):
        assert ids[int(y), int(x)] == sid
