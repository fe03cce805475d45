"""The nesting guard ahead of ijson: exact depths read by read (strings, escapes), and a clear error when deep."""
import json
import random
from typing import Any

import pytest

from stages import prepare
from storage.adapters.base import DatasetError
from storage.adapters.nesting import DepthGuard, TooDeep
from tests.storage.official_layout import image


def _reference_depth(text: str) -> int:
    depth = deepest = 0
    inside = escaped = False
    for ch in text:
        if inside:
            escaped, inside = (False, inside) if escaped else (ch == "\\", ch != '"')
        elif ch == '"':
            inside = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def _value(rng: random.Random, depth: int = 0) -> Any:
    if depth > 6 or rng.random() < 0.3:   # text full of quotes, backslash runs and brackets
        return rng.choice(['a"b', "x\\", '\\\\"', "[[{", "]", 1, None, '\\"[', '"\\', "\\" * rng.randint(0, 5) + '"['])
    if rng.random() < 0.5:
        return [_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {rng.choice(["k", "[", 'a"', "\\"]) + str(i): _value(rng, depth + 1) for i in range(rng.randint(0, 3))}


def _feed(data: bytes, limit: int, chunk: int) -> None:
    guard = DepthGuard(limit)
    for i in range(0, len(data), chunk):
        guard.feed(data[i:i + chunk])


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 1 << 20])
def test_depth_matches_a_byte_by_byte_reference(chunk):
    rng = random.Random(chunk)
    for _ in range(150):
        text = json.dumps(_value(rng))
        depth = _reference_depth(text)
        _feed(text.encode(), depth, chunk)                  # exactly at the limit: fine
        if depth:
            with pytest.raises(TooDeep):
                _feed(text.encode(), depth - 1, chunk)


def test_deep_release_file_is_a_clear_error(workspace, tmp_path):
    ann, imgs = tmp_path / "vg", tmp_path / "vg-images"
    ann.mkdir()
    (ann / "region_descriptions.json").write_text("[" * 5000 + "]" * 5000)
    image(imgs / "VG_100K" / "1.jpg")
    workspace({"datasets": ["vg"], "prepare": {"vg": {"annotations": str(ann), "images": str(imgs)}}})
    with pytest.raises(DatasetError, match=r"region_descriptions\.json: not a release file: JSON nested deeper "
                                           r"than 64 levels"):
        prepare.run("vg")
