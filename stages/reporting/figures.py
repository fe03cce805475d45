"""Figures of the report stage, each returned as PNG bytes (matplotlib, Agg backend)."""
from __future__ import annotations

import csv
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from skimage.segmentation import find_boundaries  # noqa: E402


def _png(fig: plt.Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def read_tsv(path: Path) -> dict[str, list[float]]:
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    return {k: [float(r[k]) for r in rows if r.get(k) not in (None, "")] for k in (rows[0] if rows else {})}


def loss_curves(runs: dict[str, Path], keys: tuple[str, ...] = ("loss",)) -> bytes:
    """One panel per run: `keys` of its plots/losses.tsv against the optimizer step."""
    fig, axes = plt.subplots(1, len(runs), figsize=(4 * len(runs), 3), squeeze=False)
    for ax, (name, path) in zip(axes[0], runs.items()):
        cols = read_tsv(path)
        for k in keys:
            if k in cols and len(cols[k]) == len(cols["step"]):
                ax.plot(cols["step"], cols[k], label=k)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("step")
        ax.legend(fontsize=7)
    return _png(fig)


def overlays(images: list[np.ndarray], segment_ids: list[np.ndarray], titles: list[str]) -> bytes:
    """Images with their segment boundaries drawn in yellow."""
    fig, axes = plt.subplots(1, len(images), figsize=(2.2 * len(images), 2.4), squeeze=False)
    for ax, img, ids, title in zip(axes[0], images, segment_ids, titles):
        shown = img.copy()
        shown[find_boundaries(ids, mode="inner")] = (255, 220, 0)
        ax.imshow(shown)
        ax.set_title(title, fontsize=7)
        ax.axis("off")
    return _png(fig)


def firing_histograms(rates: dict[str, np.ndarray]) -> bytes:
    """Histogram of per-neuron firing rates, one panel per SNN layer."""
    fig, axes = plt.subplots(1, len(rates), figsize=(3.5 * len(rates), 2.8), squeeze=False)
    for ax, (name, r) in zip(axes[0], rates.items()):
        ax.hist(r, bins=30, color="tab:orange")
        ax.set_title(f"{name}: mean {r.mean():.3f}", fontsize=9)
        ax.set_xlabel("firing rate (spikes / step)")
        ax.set_ylabel("neurons")
    return _png(fig)


def raster(spikes: np.ndarray, title: str) -> bytes:
    """Spike raster of (steps, neurons) binary spikes."""
    fig, ax = plt.subplots(figsize=(7, 2.8))
    t, n = np.nonzero(spikes)
    ax.scatter(t, n, s=2, marker="|", color="black")
    ax.set_xlim(-0.5, spikes.shape[0] - 0.5)
    ax.set_ylim(-0.5, spikes.shape[1] - 0.5)
    ax.set_xlabel("step (node-major: each node's T steps in turn)")
    ax.set_ylabel("selector neuron")
    ax.set_title(title, fontsize=9)
    return _png(fig)


def thumbnails(images: list[np.ndarray], titles: list[str], marks: list[bool] | None = None) -> bytes:
    """A row of small images; marks (if given) frame each green (correct) or red."""
    fig, axes = plt.subplots(1, len(images), figsize=(1.6 * len(images), 1.9), squeeze=False)
    for i, (ax, img, title) in enumerate(zip(axes[0], images, titles)):
        ax.imshow(img)
        ax.set_title(title, fontsize=6)
        ax.set_xticks([]), ax.set_yticks([])
        if marks is not None:
            for side in ax.spines.values():
                side.set_color("green" if marks[i] else "red")
                side.set_linewidth(3)
    return _png(fig)
