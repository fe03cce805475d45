"""The stage DAG, read from DVC itself (`dvc.yaml` stays the one copy of it)."""
from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import networkx as nx


class UnknownStage(ValueError):
    """A stage name that dvc.yaml does not define."""


@dataclass(frozen=True)
class Stage:
    name: str                   # DVC address, e.g. "segment@scenes"
    upstream: tuple[str, ...]   # stages whose outputs it reads
    outs: tuple[str, ...]       # its outputs, relative to the workspace
    metrics: tuple[str, ...] = ()   # those of its outputs that dvc.yaml lists under `metrics:` (headline numbers)


def read_dag(workspace: Path) -> dict[str, Stage]:
    """Every stage of the workspace's dvc.yaml, upstream before downstream (ties in dvc.yaml order)."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        with Repo(str(workspace)) as repo:
            graph = repo.index.graph  # edges point from a stage to the stages it depends on
            position = {s: i for i, s in enumerate(graph.nodes)}
            order = nx.lexicographical_topological_sort(graph.reverse(copy=False), key=position.__getitem__)
            name = {s: _address(s.path, s.name, workspace) for s in graph.nodes}
            return {name[s]: Stage(name[s], tuple(sorted(name[d] for d in graph.successors(s))),
                                   tuple(str(o) for o in s.outs), tuple(str(o) for o in s.outs if o.metric))
                    for s in order}
    except DvcException as e:
        raise ValueError(f"cannot read the DVC pipeline of {workspace}: {e}") from e


def _address(dvcfile: str, name: str, workspace: Path) -> str:
    """The name `dvc repro` takes in the workspace: `name`, or `sub/dvc.yaml:name` for a nested dvc.yaml."""
    rel = os.path.relpath(dvcfile, workspace)
    return name if rel == "dvc.yaml" else f"{rel}:{name}"


def check_known(dag: dict[str, Stage], names: Iterable[str]) -> None:
    unknown = [n for n in names if n not in dag]
    if unknown:
        raise UnknownStage(f"unknown stage{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
                           f"known stages: {', '.join(dag)}")


def select(dag: dict[str, Stage], targets: Iterable[str] | None) -> list[Stage]:
    """The targets and everything upstream of them, in DAG order; all stages when there are none."""
    targets = list(targets or [])
    if not targets:
        return list(dag.values())
    check_known(dag, targets)
    keep, todo = set(), list(targets)
    while todo:
        name = todo.pop()
        if name not in keep:
            keep.add(name)
            todo += dag[name].upstream
    return [s for s in dag.values() if s.name in keep]
