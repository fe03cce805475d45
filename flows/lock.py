"""One `dvc repro` per workspace: flows take an exclusive lock file first, queue for it, then refuse.

The lock is an flock(2) on `.dvc/tmp/gshn-flows.lock`: the kernel drops it when its holder dies,
so a killed flow never leaves a stale lock. The file names its current holder for the message.
"""
from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

LOCK_FILE = Path(".dvc/tmp/gshn-flows.lock")


class WorkspaceBusy(RuntimeError):
    """Another flow is running `dvc repro` on this workspace."""


@contextmanager
def workspace_lock(workspace: Path, holder: str, wait_s: float,
                   notify: Callable[[str], None] = lambda msg: None) -> Iterator[None]:
    """Hold the workspace's lock for the block; wait up to wait_s seconds for it, then raise WorkspaceBusy."""
    path = workspace / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait_s
        waiting = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                other = path.read_text().strip() or "another flow"
                left = deadline - time.monotonic()
                if left <= 0:
                    raise WorkspaceBusy(f"workspace {workspace} is busy: {other} is running `dvc repro` there. "
                                        f"Not started after waiting {wait_s:g} s; run it again when that one has "
                                        f"finished, or raise flows.lock_wait_s.") from None
                if not waiting:
                    notify(f"waiting up to {wait_s:g} s for {other} to finish with {workspace}")
                    waiting = True
                time.sleep(min(0.5, left))
        since = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{holder} (pid {os.getpid()}, since {since})\n".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
