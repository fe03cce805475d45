"""A stage prints nothing on import: no library deprecation noise before its own log lines."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_importing_a_stage_prints_no_warning():
    run = subprocess.run([sys.executable, "-W", "default", "-c", "import stages.pretrain"], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and "Warning" not in run.stderr, run.stderr[-2000:]
