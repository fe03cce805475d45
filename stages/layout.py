"""Where each stage's artifacts live under data/ (DESIGN.md section 4)."""
from __future__ import annotations

from pathlib import Path

DATA = Path("data")


def prepared(dataset: str) -> Path:
    return DATA / "prepared" / dataset


def masks(dataset: str) -> Path:
    return DATA / "masks" / dataset


def features(dataset: str) -> Path:
    return DATA / "features" / dataset
