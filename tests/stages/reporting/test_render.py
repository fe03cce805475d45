"""Blocks -> a self-contained HTML page and markdown with figure files."""
import pytest

from stages.reporting.render import render, table_text


def test_html_is_self_contained_and_markdown_links_files(tmp_path):
    blocks = [("h1", "T <1>"), ("p", "a & b"), ("table", ["k", "v"], [["x|y", "1"]]),
              ("details", "params", ["section", "values"], [["model", "preset=gshn"]]),
              ("img", "fig", b"\x89PNGdata", "a figure")]
    page, md = render(blocks, tmp_path, "title")
    assert "<h1>T &lt;1&gt;</h1>" in page and "a &amp; b" in page
    assert "<details><summary>params</summary>" in page and "data:image/png;base64," in page
    assert (tmp_path / "figures" / "fig.png").read_bytes() == b"\x89PNGdata"
    assert "![a figure](figures/fig.png)" in md and "| x\\|y | 1 |" in md and "**params**" in md
    with pytest.raises(ValueError, match="unknown report block"):
        render([("video", "x")], tmp_path, "t")


def test_table_text_aligns_columns():
    assert table_text(["a", "bb"], [["xxx", "y"]]).splitlines() == ["a    bb", "---  --", "xxx  y"]
