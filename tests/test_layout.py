"""The house rules that code review would otherwise have to remember: imports point downward
(flows -> stages -> models, storage), no stage entry point imports another, stages/ holds only
entry points at its top level, and no function runs over 80 lines."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("flows", "stages", "models", "storage")
ALLOWED = {"flows": {"flows", "stages", "models", "storage"}, "stages": {"stages", "models", "storage"},
           "models": {"models"}, "storage": {"storage"}}
ENTRY_POINTS = {"inputs", "prepare", "segment", "backbone", "features", "pretrain", "reorder", "finetune", "evaluate",
                "report", "overlay", "study", "vqa_eval", "compare", "digest", "select"}
MAX_LINES = 80


def _sources(package: str) -> list[Path]:
    return sorted((REPO / package).rglob("*.py"))


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return out


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_point_downward(package):
    bad = [f"{p.relative_to(REPO)} imports {m}" for p in _sources(package) for m in _imports(p)
           if m.split(".")[0] in PACKAGES and m.split(".")[0] not in ALLOWED[package]]
    assert not bad, bad


def test_no_stage_entry_point_imports_another():
    stages = {p.stem for p in (REPO / "stages").glob("*.py") if p.stem != "__init__"}
    bad = [f"{p.name} imports {m}" for p in (REPO / "stages").glob("*.py") for m in _imports(p)
           if m.startswith("stages.") and m.split(".")[1] in stages]
    assert not bad, bad


def test_stages_top_level_holds_entry_points_only():
    top = {p.stem for p in (REPO / "stages").glob("*.py")} - {"__init__"}
    assert top <= ENTRY_POINTS, f"library code at the top of stages/: {sorted(top - ENTRY_POINTS)}"


def test_no_function_over_80_lines():
    long = []
    for package in PACKAGES:
        for p in _sources(package):
            for node in ast.walk(ast.parse(p.read_text())):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    n = node.end_lineno - node.lineno + 1
                    if n > MAX_LINES:
                        long.append(f"{p.relative_to(REPO)}:{node.lineno} {node.name} ({n} lines)")
    assert not long, long
