"""`python -m stages.compare [--from FILE] [--all-commits] [--out DIR]`: runs compared side by side.

Reads `dvc exp show --json` (runs it, or reads its saved output with --from) and writes compare.html
and compare.md to DIR (default data/compare/): one row per commit and `dvc exp` experiment, with the
params that differ between rows and every headline metric (metrics/*.json). Not a DVC stage: it reads
git history, which no stage may depend on. Bad input (no dvc, unusable JSON): one line, exit 2.
"""
from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stages.common import paths
from stages.common.cli import StageError, setup_logging
from stages.reporting.experiments import ExpShowError, parse, table
from stages.reporting.render import Block, render
from storage.atomic import write_bytes

log = logging.getLogger("stages.compare")
# Not under data/report: that folder is the `report` stage's DVC output, which DVC would restore (deleting a
# page written into it) and report as modified.
OUT = paths.DATA / "compare"


def exp_show(all_commits: bool) -> Any:
    """`dvc exp show --json` of this repository, parsed."""
    cmd = [sys.executable, "-m", "dvc", "exp", "show", "--json", *(["--all-commits"] if all_commits else [])]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True)
    except OSError as e:
        raise StageError(f"cannot run dvc ({e}); save `dvc exp show --json` to a file and pass --from FILE") from None
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
        raise StageError(f"`dvc exp show --json` failed: {why}")
    return _json(done.stdout, "the output of `dvc exp show --json`")


def _json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise StageError(f"{what} is not JSON ({e}); it should be what `dvc exp show --json` prints") from None


def compare_blocks(doc: Any, source: str, now: datetime) -> list[Block]:
    try:
        header, rows, same = table(parse(doc, f"{paths.HEADLINES.as_posix()}/"))
    except ExpShowError as e:
        raise StageError(f"{source} is not `dvc exp show --json` output: {e}") from None
    return [("h1", "Runs compared"),
            ("p", f"source: {source}; generated {now.strftime('%Y-%m-%d %H:%M:%S UTC')}"),
            ("p", f"One row per commit and experiment: the params that differ between rows (not shown: {same} "
                  f"equal in every row), then the headline metrics ({paths.HEADLINES}/*.json). '–': not in that run."),
            ("table", header, rows)]


def run(source: Path | None, all_commits: bool, out: Path) -> Path:
    if source is not None:
        if not source.is_file():
            raise StageError(f"--from {source}: no such file")
        doc = _json(source.read_text(), str(source))
    else:
        doc = exp_show(all_commits)
    blocks = compare_blocks(doc, str(source) if source else "`dvc exp show --json`", datetime.now(UTC))
    page, md = render(blocks, out, "GSHN runs compared")
    write_bytes(out / "compare.html", page.encode())
    write_bytes(out / "compare.md", md.encode())
    log.info("wrote %s (%d rows)", out / "compare.html", len(blocks[-1][2]))
    return out / "compare.html"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m stages.compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("--from", dest="source", type=Path, help="saved `dvc exp show --json` output")
    parser.add_argument("--all-commits", action="store_true", help="every commit, not only HEAD's experiments")
    parser.add_argument("--out", type=Path, default=OUT, help=f"output folder (default {OUT})")
    args = parser.parse_args(argv)
    setup_logging()
    try:
        run(args.source, args.all_commits, args.out)
    except StageError as e:
        log.error("compare failed: %s", e)
        sys.exit(2)


if __name__ == "__main__":
    main()
