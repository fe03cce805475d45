"""Shared fixtures: an isolated workspace (own params.yaml, data/, TMPDIR) and bad-image files."""
from __future__ import annotations

import copy
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from PIL import Image

REPO = Path(__file__).resolve().parents[1]

# Small sizes so real stages run in seconds.
TINY_PARAMS: dict[str, Any] = {
    "datasets": ["scenes"],
    "prepare": {"scenes": {"image_size": 64, "splits": {"train": 24, "val": 4, "test": 8},
                           "questions_per_image": 2, "ve_per_image": 1}},
    "segment": {"image_size": 64, "work_size": 32, "shard_size": 8, "workers": 1},
    "features": {"max_nodes": 12, "batch_size": 8, "shard_size": 8, "workers": 1},
    "backbone": {"epochs": 1, "batch_size": 8, "max_images": 16},
    "finetune": {t: {"datasets": ["scenes"], "epochs": 1, "blind_epochs": 1, "batch_size": 8}
                 for t in ("vqa", "ve", "nlvr2", "itr")} | {"workers": 1},
    "reorder": {"retrieve_number": 4, "candidates": 8},
    "evaluate": {"batch_size": 16, "itr_candidates": 10, "examples": 2},
    "report": {"overlays": 2, "retrieval_examples": 1},
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Slow tests first, the whole-project `dvc` runs (tests/test_*.py, minutes) first of all: under
    `pytest -n 2` the longest start at once and the short ones fill in around them."""
    def rank(item: pytest.Item) -> int:
        if item.get_closest_marker("slow") is None:
            return 2
        return 0 if item.path.parent == REPO / "tests" else 1

    items.sort(key=rank)


# Test modules that share a session fixture: one xdist worker runs them all and builds it once
# (tests/flows/conftest.py's `built` project and Prefect server: ~2 minutes a build on two cores).
SHARED_SCOPES = {"tests/flows/test_ui_browser.py": "tests/flows/test_flows.py"}


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`--dist loadscope` (the Makefile's) with SHARED_SCOPES' modules as one work unit."""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class SharedScopes(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            scope = super()._split_scope(nodeid)
            return SHARED_SCOPES.get(scope, scope)

    return SharedScopes(config, log)


# What a scratch project for real `dvc` / flow runs needs from the repository.
PROJECT_CODE = ("stages", "models", "storage", "flows", "dvc.yaml", ".dvc/config", ".dvcignore", ".gitignore")


def copy_code(dst: Path) -> None:
    """Copy the project's code and DVC config into `dst` (created if missing)."""
    dst.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_CODE:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dst / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.is_file():
            (dst / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, dst / name)


def tiny_params(overrides: dict | None = None) -> dict:
    """The repository's params.yaml with TINY_PARAMS and `overrides` merged in (DVC needs every key)."""
    base = yaml.safe_load((REPO / "params.yaml").read_text())
    return deep_merge(deep_merge(base, TINY_PARAMS), overrides or {})


def deep_merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


@pytest.fixture(autouse=True)
def _isolated_tmp(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """torch and its libraries write generated files to TMPDIR; keep them per test session; no tqdm bars."""
    monkeypatch.setenv("TMPDIR", str(tmp_path_factory.getbasetemp()))
    monkeypatch.setenv("PROGRESS", "0")


@pytest.fixture
def one_thread():
    """Tiny tensors: intra-op thread hand-offs cost more than the math (~10x on a busy 2-core machine)."""
    import torch
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """chdir into an empty folder; returns a function that writes params.yaml (TINY_PARAMS + overrides).
    The features trunk is the seeded random init unless overrides name weights (no `backbone` stage run)."""
    monkeypatch.chdir(tmp_path)

    def write(overrides: dict | None = None) -> dict:
        params = tiny_params(deep_merge({"features": {"weights": None}}, overrides or {}))
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
        return params

    write()
    return write


def save(path: Path, img: Image.Image, **kw: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, **kw)
    return path


def rgb(w: int, h: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


@pytest.fixture
def bad_images(tmp_path: Path) -> dict[str, tuple[Path, bool]]:
    """name -> (path, usable): every awkward image kind the loaders must handle."""
    d = tmp_path / "imgs"
    d.mkdir()
    png = save(d / "ok.png", rgb(40, 30))
    jpg = save(d / "ok.jpg", rgb(40, 30, 1), quality=90)
    out: dict[str, tuple[Path, bool]] = {"ok_png": (png, True), "ok_jpg": (jpg, True)}
    (d / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(200))
    out["corrupt"] = (d / "corrupt.png", False)
    (d / "zero.jpg").write_bytes(b"")
    out["zero_byte"] = (d / "zero.jpg", False)
    (d / "trunc.png").write_bytes(png.read_bytes()[: len(png.read_bytes()) // 2])
    out["truncated_png"] = (d / "trunc.png", False)
    (d / "trunc.jpg").write_bytes(jpg.read_bytes()[: len(jpg.read_bytes()) // 2])
    out["truncated_jpg"] = (d / "trunc.jpg", False)
    (d / "text.png").write_text("not an image")
    out["text_as_png"] = (d / "text.png", False)
    out["grayscale"] = (save(d / "gray.png", rgb(32, 32).convert("L")), True)
    out["gray_alpha"] = (save(d / "la.png", rgb(32, 32).convert("LA")), True)
    out["rgba"] = (save(d / "rgba.png", rgb(32, 32).convert("RGBA")), True)
    out["palette"] = (save(d / "pal.png", rgb(32, 32).convert("P")), True)
    out["cmyk"] = (save(d / "cmyk.jpg", rgb(32, 32).convert("CMYK")), True)
    sixteen = np.random.default_rng(2).integers(0, 65535, (32, 32), dtype=np.uint16)
    out["16bit"] = (save(d / "sixteen.png", Image.fromarray(sixteen)), True)
    out["1x1"] = (save(d / "one.png", rgb(1, 1)), False)       # below prepare.min_side
    out["8x8"] = (save(d / "eight.png", rgb(8, 8)), True)
    out["4000x3000"] = (save(d / "big.jpg", Image.new("RGB", (4000, 3000), (10, 200, 30)), quality=80), True)
    out["flat"] = (save(d / "flat.png", Image.new("RGB", (48, 48), (120, 60, 200))), True)
    out["missing"] = (d / "does-not-exist.png", False)
    return out
