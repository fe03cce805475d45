"""A table's result -> report blocks (markdown, and the HTML of the study page and the report's section)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from stages.reporting.render import Block

MISSING = "–"
OUT = Path("data/study")        # beside data/report, not in it: that folder is the report stage's DVC output
TITLE = "Reproducing the papers' ablations"


def _num(v: float | None, digits: int = 3) -> str:
    return MISSING if v is None else f"{v:.{digits}f}"


def cell(v: dict[str, Any]) -> str:
    """"mean ± sd [lo, hi] (n)" of one row and column, or – without runs."""
    if "mean" not in v:
        return MISSING
    text = f"{v['mean']:.3f} ± {v['sd']:.3f} [{v['lo']:.3f}, {v['hi']:.3f}] ({v['n']})"
    if v.get("ratio_to_first") is not None:
        text += f" x{v['ratio_to_first']:.2f}"
    return text


def _values_table(res: dict[str, Any]) -> Block:
    labels = [c["label"] for c in res["columns"]]
    header = ["row", "-S overrides", *(h for label in labels for h in (label, "paper"))]
    rows = [[r["name"], " ".join(r["overrides"]) or "(none)",
             *(x for label in labels for x in (cell(r["values"][label]), _num(r["values"][label]["paper"], 2)))]
            for r in res["rows"]]
    return ("table", header, rows)


def _comparisons_table(res: dict[str, Any]) -> Block:
    header = ["row", "column", f"ours: row - {res['reference']} (paired by seed)", "paper", "direction"]
    rows = []
    for c in res["comparisons"]:
        o = c["ours"]
        ours = MISSING if o is None else f"{o['mean']:+.3f} ± {o['sd']:.3f} [{o['lo']:+.3f}, {o['hi']:+.3f}] ({o['n']})"
        rows.append([c["row"], c["column"], ours, MISSING if c["paper"] is None else f"{c['paper']:+.2f}",
                     c["verdict"]])
    return ("table", header, rows)


def table_blocks(res: dict[str, Any], level: str = "h2") -> list[Block]:
    runs = [r for row in res["rows"] for r in row["runs"]]
    commits = sorted({r["commit"] for r in runs})
    blocks: list[Block] = [(level, f"{res['table']}: {res['title']}")]
    if res["note"]:
        blocks.append(("p", res["note"]))
    blocks += [("p", f"budget {res['budget']}; {len(runs)} run(s) on commit(s) {', '.join(commits) or MISSING}; "
                     f"collected {res['collected']}. Cells: mean ± sd [95% bootstrap interval of the mean] (seeds); "
                     "the paper's numbers are on the real datasets, ours on the embedded stand-ins: compare "
                     "directions, not values."),
               _values_table(res), _comparisons_table(res)]
    failed = [f"{r['experiment']} (seed {r['seed']}): {r['error']}" for r in runs if r["error"]]
    if res["missing"] or failed:
        blocks.append(("list", [*(f"not run yet: {m}" for m in res["missing"]), *(f"failed: {f}" for f in failed)]))
    return blocks


def report_section(folder: Path = OUT) -> list[Block]:
    """The report's section: every table collected in `folder`, as collected (the study is no DVC stage, so the
    report shows the tables as they were when it ran: each says when it was collected)."""
    blocks: list[Block] = [("h2", TITLE)]
    results = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []
    if not results:
        return [*blocks, ("p", "No study collected yet: `python -m stages.study --tables gshn-table5,control` "
                               "(README, 'Reproducing the papers' ablations'), then `dvc repro -f -s report`.")]
    for res in results:
        blocks += table_blocks(res, "h3")
    return blocks
