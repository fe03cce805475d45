"""Headline metrics hold numbers only, so `dvc exp show` can tabulate and diff them."""
import json
import math

import pytest

from stages.common.headline import numbers_only, write_headline


def test_numbers_pass_and_non_finite_become_null(tmp_path):
    out = write_headline(tmp_path / "m.json", {"scenes": {"acc": 0.5, "n": 3, "bad": math.nan}, "loss": math.inf})
    assert out == {"scenes": {"acc": 0.5, "n": 3, "bad": None}, "loss": None}
    assert json.loads((tmp_path / "m.json").read_text()) == out


@pytest.mark.parametrize("value", ["gshn", True, None, [0.1]])
def test_anything_else_is_refused_naming_the_key(value):
    with pytest.raises(TypeError, match=r"'scenes\.x' is"):
        numbers_only({"scenes": {"x": value}})
