"""Benchmark: start-up time of every stage entry point (issue 15, item 3).

Goal: <= 3 s from a stage's start to its first step of work on an idle machine. What this measures:

* for each stage module, the wall time of `python -c "import stages.<name>"` in a fresh process
  (the interpreter start and every module-level import; the stage's own work starts after it);
* the same for `python -c pass` (the interpreter alone) and `import torch, torchvision` (the floor
  every stage that touches a model pays);
* the median of `--runs` rounds; rounds visit the modules in turn, so a burst of load on the
  machine falls on all of them rather than on one; `--warmup` untimed rounds first (bytecode and
  page caches);
* `python -X importtime -c "import stages.<slowest>"`: its top-level imports by cumulative time,
  and the self time summed per root package (what a package costs however deep it is imported:
  the saving if nothing imported it at start-up).

    python bench/startup.py [--runs 5] [--warmup 1] [--modules prepare segment ...] [--out bench/results/startup.json]

Prints a table and writes every figure as JSON to --out.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from storage.atomic import write_json  # noqa: E402

STAGES = ("prepare", "segment", "backbone", "features", "pretrain", "reorder", "finetune", "evaluate", "report")
GOAL_S = 3.0
PROJECT = ("stages", "models", "storage", "flows")     # the repository's own top-level packages
BASELINES = {"python": "pass", "torch+torchvision": "import torch, torchvision"}


class StartupError(RuntimeError):
    """A measured command failed: its import is broken, so no time means anything."""


def wall_time(code: str, env: dict[str, str]) -> float:
    """Seconds of `python -c code` in a fresh process, from spawn to exit."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise StartupError(f"python -c {code!r} exited with {proc.returncode}: {last}")
    return seconds


def measure(commands: dict[str, str], runs: int, warmup: int, env: dict[str, str]) -> dict[str, list[float]]:
    """Each command's wall times over `runs` interleaved rounds, after `warmup` untimed rounds."""
    times: dict[str, list[float]] = {name: [] for name in commands}
    for round_ in range(warmup + runs):
        for name, code in commands.items():
            seconds = wall_time(code, env)
            if round_ >= warmup:
                times[name].append(seconds)
        print(f"  round {round_ + 1}/{warmup + runs}{' (warm-up)' if round_ < warmup else ''} done", flush=True)
    return times


@dataclass
class Row:
    """One `-X importtime` line: a module's own and cumulative import seconds, and who imported it."""

    depth: int
    name: str
    self_s: float
    cumulative_s: float
    parent: int | None = None       # index of the importing row (the output is post-order: it comes later)


def parse_importtime(stderr: str) -> list[Row]:
    """`-X importtime` output -> rows in the order printed, each linked to the row that imported it."""
    rows: list[Row] = []
    waiting: dict[int, list[int]] = defaultdict(list)     # depth -> rows printed before their parent
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "imported package" in line:
            continue
        self_us, cum_us, name = line[len("import time:"):].split("|", 2)
        depth = (len(name) - len(name.lstrip(" ")) - 1) // 2      # one space, then two per level
        rows.append(Row(depth, name.strip(), int(self_us) / 1e6, int(cum_us) / 1e6))
        for child in waiting.pop(depth + 1, []):
            rows[child].parent = len(rows) - 1
        waiting[depth].append(len(rows) - 1)
    return rows


def chain(rows: list[Row], i: int) -> str:
    """'top > ... > importer' of row i."""
    names = []
    while (i := rows[i].parent) is not None:
        names.append(rows[i].name)
    return " > ".join(reversed(names))


def importtime(module: str, env: dict[str, str], top: int) -> dict[str, Any]:
    """The module's direct imports by cumulative time, and the self time of each root package with the import
    chain that brought it in (its costliest entry)."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"], cwd=REPO, env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise StartupError(f"python -X importtime -c 'import {module}' exited with {proc.returncode}")
    rows = parse_importtime(proc.stderr)
    me = next(i for i, r in enumerate(rows) if r.depth == 0 and r.name == module)
    direct = sorted((r for r in rows if r.parent == me), key=lambda r: -r.cumulative_s)[:top]
    per_package: dict[str, float] = defaultdict(float)
    for r in rows:
        per_package[r.name.split(".")[0]] += r.self_s
    total = sum(per_package.values())
    packages = []
    for package, self_s in sorted(per_package.items(), key=lambda kv: -kv[1])[:top]:
        entries = [i for i, r in enumerate(rows) if r.name.split(".")[0] == package
                   and (r.parent is None or rows[r.parent].name.split(".")[0] != package)]
        entry = max(entries, key=lambda i: rows[i].cumulative_s)
        packages.append({"package": package, "self_s": self_s, "share": self_s / total, "entry": rows[entry].name,
                         "entry_cumulative_s": rows[entry].cumulative_s, "via": chain(rows, entry)})
    return {"module": module, "total_self_s": total, "modules_imported": len(rows),
            "direct_imports": [{"name": r.name, "cumulative_s": r.cumulative_s, "self_s": r.self_s} for r in direct],
            "by_package": packages}


def summarise(times: dict[str, list[float]]) -> dict[str, Any]:
    floor = statistics.median(times["torch+torchvision"])
    out = {}
    for name, ts in times.items():
        med = statistics.median(ts)
        out[name] = {"median_s": med, "all_s": ts, "over_floor_s": med - floor, "goal_met": med <= GOAL_S}
    return out


def short_chain(via: str) -> str:
    """The project's own links of an import chain, then the first foreign one (the JSON keeps it whole)."""
    names = via.split(" > ") if via else []
    own = next((i for i, n in enumerate(names) if n.split(".")[0] not in PROJECT), len(names))
    return " > ".join(names[: own + 1]) + (" > ..." if own + 1 < len(names) else "")


def print_report(r: dict[str, Any], out: Path) -> None:
    m = r["machine"]
    print(f"\nstart-up: median of {r['runs']} runs; {m['cpu_count']} CPUs, load average {m['loadavg_1min_start']:.2f} "
          f"at start, {m['loadavg_1min_end']:.2f} at the end (timings on a busy machine are not the idle figure)")
    print(f"{'command':28s} {'median s':>9s} {'over floor':>11s} {'<= 3 s':>7s}")
    for name, row in r["commands"].items():
        print(f"{name:28s} {row['median_s']:9.2f} {row['over_floor_s']:11.2f} {'yes' if row['goal_met'] else 'no':>7s}")
    it = r["importtime"]
    print(f"\n-X importtime of {it['module']} (self times sum to {it['total_self_s']:.2f} s, "
          f"{it['modules_imported']} modules)")
    print(f"{'its direct imports':40s} {'cumulative s':>12s}")
    for row in it["direct_imports"]:
        print(f"{row['name']:40s} {row['cumulative_s']:12.3f}")
    print(f"{'root package':20s} {'self s':>7s} {'share':>6s}  first imported via (entry: cumulative s)")
    for row in it["by_package"]:
        print(f"{row['package']:20s} {row['self_s']:7.3f} {100 * row['share']:5.1f}%  "
              f"{short_chain(row['via']) or '-'} ({row['entry']}: {row['entry_cumulative_s']:.2f})")
    print(f"results: {out}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5, help="timed rounds (median)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    ap.add_argument("--modules", nargs="+", choices=STAGES, default=list(STAGES), metavar="STAGE",
                    help=f"stage modules to time (default: all of {', '.join(STAGES)})")
    ap.add_argument("--top", type=int, default=12, help="rows of the importtime tables")
    ap.add_argument("--out", type=Path, default=REPO / "bench/results/startup.json")
    args = ap.parse_args(argv)
    if args.runs < 1 or args.warmup < 0 or args.top < 1:
        ap.exit(2, "startup.py: --runs and --top must be >= 1, --warmup >= 0\n")
    env = os.environ | {"PROGRESS": "0"}
    commands = BASELINES | {f"stages.{m}": f"import stages.{m}" for m in args.modules}
    load_start = os.getloadavg()[0]
    try:
        times = measure(commands, args.runs, args.warmup, env)
        rows = summarise(times)
        slowest = max((n for n in rows if n.startswith("stages.")), key=lambda n: rows[n]["median_s"])
        result = {"runs": args.runs, "warmup": args.warmup, "goal_s": GOAL_S, "commands": rows, "slowest": slowest,
                  "importtime": importtime(slowest, env, args.top)}
    except StartupError as e:
        ap.exit(2, f"startup.py: {e}\n")
    result["machine"] = {"cpu_count": os.cpu_count(), "loadavg_1min_start": load_start,
                         "loadavg_1min_end": os.getloadavg()[0], "python": platform.python_version(),
                         "platform": platform.platform()}
    write_json(args.out, result)
    print_report(result, args.out)


if __name__ == "__main__":
    main()
