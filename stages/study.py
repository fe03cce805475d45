"""`python -m stages.study`: the papers' ablation tables as DVC experiments, collected with seeds and noise.

    python -m stages.study --list [--tables IDS]              one line per table and row, with its -S overrides
    python -m stages.study --tables gshn-table5,control --seeds 3 [--budget cpu] [--jobs 2] [--workspace]
    python -m stages.study --tables ... --seeds 3 --collect   only gather what has run (--from FILE: saved JSON)

Running queues one `dvc exp run` per distinct row and seed (rows shared by tables run once; those already
run, found by their params, are skipped: an interrupted study resumes) and starts the queue's workers;
--workspace runs them one after another in this workspace instead. Collecting reads `dvc exp show --json`
and writes data/study/<table>.md and .json and data/study/index.html: per row and metric the mean, sd and
95% bootstrap interval over seeds beside the paper's number, and per comparison with the reference row
whether the direction agrees with the paper's. Not a DVC stage: it reads git's experiment refs.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stages.common import paths
from stages.common.cli import StageError, setup_logging
from stages.reporting.experiments import ExpShowError
from stages.reporting.render import Block, render
from stages.studies import runner
from stages.studies.catalog import TABLES, table
from stages.studies.collect import match
from stages.studies.plan import BUDGETS, Budget, Experiment, experiments, parse_override
from stages.studies.render import OUT, TITLE, table_blocks
from stages.studies.results import table_result
from stages.studies.tables import Table
from storage.atomic import write_bytes, write_json

log = logging.getLogger("stages.study")
PARAMS = Path("params.yaml")
FILE_KEYS = ("features.weights",)      # overrides naming a file the user supplies


def list_lines(tables: list[Table]) -> list[str]:
    lines = []
    for t in tables:
        lines.append(f"{t.id}: {t.title}{' (speed)' if t.speed else ''}")
        ref = t.reference or t.rows[0].name
        lines += [f"  {r.name}{' (reference)' if r.name == ref else ''}: "
                  f"{' '.join(f'-S {o}' for o in r.overrides) or '(params.yaml as it is)'}" for r in t.rows]
    return lines


def _exp_show(source: Path | None) -> Any:
    try:
        text = source.read_text() if source else runner.dvc("exp", "show", "--json", "--all-commits")
        return json.loads(text)
    except OSError as e:
        raise StageError(f"--from {source}: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise StageError(f"not JSON ({e}): expected what `dvc exp show --json` prints") from None


def collect(tables: list[Table], planned: list[Experiment], budget: Budget, doc: Any, out: Path) -> list[dict]:
    try:
        runs, missing = match(doc, planned)
    except (ExpShowError, ValueError) as e:
        raise StageError(f"cannot read the experiments: {e}") from None
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    results: list[dict] = []
    blocks: list[Block] = [("h1", TITLE)]
    for t in tables:
        res = table_result(t, runs) | {"budget": budget.name, "collected": now,
                                       "missing": [e.name for e in missing if t.id in e.tables]}
        _, md = render(table_blocks(res, "h1"), out, t.id)
        write_json(out / f"{t.id}.json", res)
        write_bytes(out / f"{t.id}.md", md.encode())
        results.append(res)
        blocks += table_blocks(res)
    page, md = render(blocks, out, TITLE)
    write_bytes(out / "index.html", page.encode())
    write_bytes(out / "index.md", md.encode())
    log.info("%d of %d experiment(s) found; wrote %s", len(runs), len(planned), out / "index.html")
    return results


def missing_files(exp: Experiment) -> list[str]:
    """Files a row's overrides name that are not here (a user's weights; what the pipeline writes under data/
    the experiment makes itself): such a row is not run."""
    named = [(k, Path(str(v))) for k, v in map(parse_override, exp.overrides) if k in FILE_KEYS and v is not None]
    return [str(p) for _, p in named if paths.DATA not in p.parents and not p.is_file()]


def _runnable(todo: list[Experiment]) -> list[Experiment]:
    ready = []
    for exp in todo:
        if need := missing_files(exp):
            log.error("%s not run: it needs %s (supply the file, then run the study again)", exp.name,
                      ", ".join(need))
        else:
            ready.append(exp)
    return ready


def _tables(ids: str | None) -> list[Table]:
    if not ids:
        return list(TABLES)
    try:
        return [table(i.strip()) for i in ids.split(",") if i.strip()]
    except KeyError as e:
        raise StageError(str(e.args[0])) from None


def run(args: argparse.Namespace) -> None:
    tables = _tables(args.tables)
    if args.list:
        print("\n".join(list_lines(tables)))
        return
    budget = BUDGETS[args.budget]
    planned = experiments(tables, args.seeds, budget)
    if not args.collect:
        _, todo = match(_exp_show(None), planned)
        log.info("%d experiment(s) planned, %d already run, %d to run (budget %s: %s)", len(planned),
                 len(planned) - len(todo), len(todo), budget.name, budget.about)
        todo = _runnable(todo)
        if todo and args.workspace:
            runner.run_in_workspace(todo, PARAMS)
        elif todo:
            runner.run_queued(todo, args.jobs)
    collect(tables, planned, budget, _exp_show(args.source), args.out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m stages.study", description=__doc__.split("\n\n")[0],
                                     epilog="tables: " + ", ".join(t.id for t in TABLES))
    parser.add_argument("--list", action="store_true", help="print the tables' rows and their overrides, run nothing")
    parser.add_argument("--tables", help="comma-separated table ids (default: all)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per row: pretrain.seed = finetune.seed = 0..N-1")
    parser.add_argument("--budget", choices=sorted(BUDGETS), default="cpu",
                        help="; ".join(f"{b.name}: {b.about}" for b in BUDGETS.values()))
    parser.add_argument("--jobs", type=int, default=2, help="queue workers (`dvc queue start -j`)")
    parser.add_argument("--workspace", action="store_true", help="run in this workspace, one after another")
    parser.add_argument("--collect", action="store_true", help="run nothing: collect what has run")
    parser.add_argument("--from", dest="source", type=Path, help="with --collect: saved `dvc exp show --json`")
    parser.add_argument("--out", type=Path, default=OUT, help=f"output folder (default {OUT})")
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.jobs < 1:
        parser.error("--seeds and --jobs must be at least 1")
    if args.source and not args.collect:
        parser.error("--from needs --collect (it reads saved results; it cannot run experiments)")
    setup_logging()
    try:
        run(args)
    except StageError as e:
        log.error("study failed: %s", e)
        sys.exit(2)


if __name__ == "__main__":
    main()
