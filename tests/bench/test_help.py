"""Every benchmark script still starts: its imports resolve and `--help` exits 0 (a moved module
would otherwise break a benchmark silently, as nothing else imports them)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(p.name for p in (REPO / "bench").glob("*.py"))

# One interpreter runs every script's `--help` in turn: the scripts share their heavy imports (torch,
# transformers), which a process each paid again (~70 s of the suite on two cores).
_RUNNER = """
import contextlib, io, json, runpy, sys
out = {}
for script in sys.argv[1:]:
    sys.argv = [script, "--help"]
    buf, code = io.StringIO(), None
    with contextlib.redirect_stdout(buf):
        try:
            runpy.run_path(script, run_name="__main__")
        except SystemExit as e:
            code = e.code
    out[script] = [code, buf.getvalue()]
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def helps() -> dict[str, list]:
    run = subprocess.run([sys.executable, "-c", _RUNNER, *(f"bench/{s}" for s in SCRIPTS)], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS)
def test_benchmark_help(script, helps):
    code, text = helps[f"bench/{script}"]
    assert code in (0, None), f"bench/{script} --help exited {code}"
    assert "usage" in text.lower()
