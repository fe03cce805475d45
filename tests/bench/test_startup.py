"""bench/startup.py: fresh-process import times of stage modules, and the -X importtime tree it reads."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import startup
from tests.conftest import REPO

# Post-order, as `python -X importtime` prints it: children before the module that imported them.
IMPORTTIME = """\
import time: self [us] | cumulative | imported package
import time:       100 |        100 |   encodings
import time:       200 |        300 | site
import time:      1000 |       1000 |       torch._C
import time:      3000 |       4000 |     torch
import time:       500 |       4500 |   models.backbone
import time:       700 |        700 |   stages.common.params
import time:       300 |       5500 | stages.prepare
"""


def test_importtime_rows_are_linked_to_their_importer() -> None:
    rows = startup.parse_importtime(IMPORTTIME)
    assert [(r.depth, r.name) for r in rows] == [(1, "encodings"), (0, "site"), (3, "torch._C"), (2, "torch"),
                                                 (1, "models.backbone"), (1, "stages.common.params"),
                                                 (0, "stages.prepare")]
    assert [r.parent for r in rows] == [1, None, 3, 4, 6, 6, None]
    assert startup.chain(rows, 2) == "stages.prepare > models.backbone > torch"
    assert rows[3].self_s == pytest.approx(0.003) and rows[6].cumulative_s == pytest.approx(0.0055)
    assert startup.short_chain(startup.chain(rows, 2)) == "stages.prepare > models.backbone > torch"
    assert startup.short_chain("stages.x > models.y > torch > torch.nn > torch.fx") == \
        "stages.x > models.y > torch > ..."


def test_a_failing_import_is_an_error_not_a_time() -> None:
    with pytest.raises(startup.StartupError, match="No module named 'no_such_module_here'"):
        startup.wall_time("import no_such_module_here", {})


def test_two_stage_modules_once(tmp_path: Path) -> None:
    out = tmp_path / "startup.json"
    proc = subprocess.run([sys.executable, "bench/startup.py", "--runs", "1", "--warmup", "0", "--modules", "prepare",
                           "segment", "--out", str(out)], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(out.read_text())
    assert set(r["commands"]) == {"python", "torch+torchvision", "stages.prepare", "stages.segment"}
    floor = r["commands"]["torch+torchvision"]["median_s"]
    for row in r["commands"].values():
        assert len(row["all_s"]) == 1 and row["median_s"] > 0
        assert row["over_floor_s"] == pytest.approx(row["median_s"] - floor)
        assert row["goal_met"] == (row["median_s"] <= 3.0)
    assert r["slowest"] == max(("stages.prepare", "stages.segment"), key=lambda m: r["commands"][m]["median_s"])
    it = r["importtime"]
    assert it["module"] == r["slowest"] and it["modules_imported"] > 100
    assert it["direct_imports"] and all(d["cumulative_s"] >= d["self_s"] >= 0 for d in it["direct_imports"])
    assert 0 < sum(p["share"] for p in it["by_package"]) <= 1 + 1e-9
    # a package brought in by the stage has a chain from it; a few come at interpreter start-up (site's imports)
    # and reach the top of the list when a busy machine shifts the small self times
    assert all(p["via"].split(" > ")[0] in (r["slowest"], "site") for p in it["by_package"] if p["via"])
    assert "its direct imports" in proc.stdout
