"""A local Prefect server (API + UI) as a child process, bound to the loopback interface."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HOST = "127.0.0.1"


class ServerError(RuntimeError):
    """The Prefect server could not be started."""


def _check_free(port: int) -> None:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds: TIME_WAIT is no conflict
        try:
            s.bind((HOST, port))
        except OSError:
            raise ServerError(f"port {port} on {HOST} is in use (another Prefect server?): "
                              f"pick another with --port") from None


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


@contextmanager
def prefect_server(port: int, home: Path, startup_timeout: float = 90.0) -> Iterator[str]:
    """Run `prefect server start` with its database under `home`; yield its API URL; stop it afterwards.

    The server's own output goes to `home`/server.log.
    """
    _check_free(port)
    home.mkdir(parents=True, exist_ok=True)
    api = f"http://{HOST}:{port}/api"
    env = os.environ | {"PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                        "PREFECT_UI_API_URL": api}
    cmd = [sys.executable, "-m", "prefect", "server", "start", "--host", HOST, "--port", str(port), "--analytics-off"]
    with open(home / "server.log", "ab") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + startup_timeout
        while not _healthy(api):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = (home / "server.log").read_text(errors="replace")[-3000:]
                raise ServerError(f"prefect server did not start on {api} within {startup_timeout:g} s:\n{tail}")
            time.sleep(0.5)
        yield api
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
