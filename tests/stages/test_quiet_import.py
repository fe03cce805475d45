"""A stage prints nothing on import: no library deprecation noise before its own log lines.

The noise is torch's FutureWarning "`torch.jit.script` is deprecated", raised when spikingjelly is imported;
models/snn.py silences it around that one import.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STAGES = ("inputs", "prepare", "segment", "backbone", "features", "pretrain", "reorder", "finetune", "evaluate",
          "report")


def _python(*args: str) -> subprocess.CompletedProcess[str]:
    # -W default: show every warning once, as a user's shell with PYTHONWARNINGS set would
    return subprocess.run([sys.executable, "-W", "default", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=600)


def test_importing_every_stage_prints_no_warning_but_others_still_show():
    imports = "; ".join(f"import stages.{name}" for name in STAGES)
    other = "import warnings; warnings.warn('x() is deprecated', FutureWarning)"
    run = _python("-c", f"{imports}; {other}")
    assert run.returncode == 0, run.stderr[-2000:]
    assert "torch.jit" not in run.stderr and "Warning" in run.stderr, run.stderr[-2000:]
    [line] = [x for x in run.stderr.splitlines() if "Warning" in x]      # the filter is narrow: ours still shows
    assert "FutureWarning: x() is deprecated" in line


def test_a_stage_command_prints_only_its_help():
    run = _python("-m", "stages.pretrain", "--phase", "main", "--help")
    assert run.returncode == 0 and run.stderr == "", run.stderr[-2000:]
    assert "DVC stage pretrain (dvc.yaml)" in run.stdout
