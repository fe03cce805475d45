"""Environment defaults for Prefect, applied before Prefect is imported (an explicit setting wins).

- analytics off: the server's telemetry needs a DNS lookup that fails offline;
- a long ephemeral start timeout: the server's first start is slow on a small machine;
- PREFECT_HOME (database, logs) outside the repository, so DVC and git never see it.
"""
from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def default_home() -> Path:
    state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return state / "gshn" / "prefect"


def apply_defaults() -> None:
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    os.environ.setdefault("PREFECT_HOME", str(default_home()))
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    home = Path(os.environ["PREFECT_HOME"]).expanduser().resolve()
    if home.is_relative_to(REPO):
        raise RuntimeError(f"PREFECT_HOME={home} is inside the repository {REPO}: point it elsewhere "
                           f"(default {default_home()})")
    home.mkdir(parents=True, exist_ok=True)
