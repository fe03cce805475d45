"""Figures of the report stage, each returned as PNG bytes (matplotlib, Agg backend)."""
from __future__ import annotations

import csv
import io
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from stages.reporting import segments  # noqa: E402


def _png(fig: plt.Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def read_tsv(path: Path) -> dict[str, list[float]]:
    """A losses.tsv by column name (columns added later, e.g. validation ones, come along)."""
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    return {k: [float(r[k]) if r.get(k) not in (None, "") else float("nan") for r in rows]
            for k in (rows[0] if rows else {})}


NOT_METRICS = ("step", "epoch")
YLABELS = {"loss": "loss", "itc": "ITC loss", "itm": "ITM loss", "mlm": "MLM loss",
           "stl": "STL loss", "stua": "STUA loss", "mvm": "MVM loss", "acc": "accuracy", "itm_acc": "ITM accuracy",
           "grad_norm": "gradient norm (before clipping)", "firing_rate": "SNN firing rate",
           "spiking_share": "spiking branch share |rE| / |F|"}
VAL_PREFIXES = ("val_", "val/")


def metric_of(column: str) -> tuple[str, bool]:
    """(metric, is a validation column): `val_acc` and `val/acc` share the panel of `acc`."""
    for p in VAL_PREFIXES:
        if column.startswith(p):
            return column[len(p):], True
    return column, False


def metric_figure(series: dict[str, dict[str, list[float]]], xlabel: str,
                  phase_starts: dict[float, str] | None = None, columns: int = 4) -> plt.Figure:
    """One panel per metric (y label: the metric), every series a line in it (validation dashed); the
    series' steps must already share one axis. phase_starts: x -> name, a dashed vertical line each."""
    metrics: dict[str, None] = {}
    for cols in series.values():
        metrics.update({metric_of(c)[0]: None for c in cols if c not in NOT_METRICS and not c.startswith("lr/")})
    n = max(len(metrics), 1)
    rows = -(-n // columns)
    fig, axes = plt.subplots(rows, min(n, columns), figsize=(3.6 * min(n, columns), 2.7 * rows), squeeze=False)
    for ax, metric in zip(axes.flat, metrics):
        for i, (name, cols) in enumerate(series.items()):
            for c in cols:
                if metric_of(c)[0] == metric:
                    val = metric_of(c)[1]
                    ax.plot(cols["step"], cols[c], color=f"C{i}", linestyle="--" if val else "-",
                            label=f"{name} (validation)" if val else name)
        for x, label in (phase_starts or {}).items():
            ax.axvline(x, color="grey", linestyle=":", linewidth=1)
            ax.annotate(label, (x, 1), xycoords=("data", "axes fraction"), fontsize=6, va="top", ha="left",
                        color="grey")
        ax.set_xlabel(xlabel, fontsize=8)
        ax.set_ylabel(YLABELS.get(metric, metric), fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(metrics):]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def metric_panels(series: dict[str, dict[str, list[float]]], xlabel: str,
                  phase_starts: dict[float, str] | None = None) -> bytes:
    return _png(metric_figure(series, xlabel, phase_starts))


def phases_on_one_axis(phases: dict[str, Path]) -> tuple[dict[str, dict[str, list[float]]], dict[float, str]]:
    """Consecutive trainings (pretraining warm-up, then main) as series on one step axis: each phase's
    steps continue from the previous phase's last step. Returns (series, {step where a later phase starts: label})."""
    series: dict[str, dict[str, list[float]]] = {}
    starts: dict[float, str] = {}
    offset = 0.0
    for name, path in phases.items():
        cols = read_tsv(path)
        if not cols.get("step"):
            continue
        cols["step"] = [s + offset for s in cols["step"]]
        series[name] = cols
        if offset > 0:
            starts[offset] = f"{name} starts"
        offset = cols["step"][-1]
    return series, starts


def overlays(images: list[np.ndarray], segment_ids: list[np.ndarray], nodes: list[list[int]],
             titles: list[str], per_row: int = 2) -> bytes:
    """Each image beside its segments, every segment in its own colour; graph nodes numbered by slot
    (1 = largest), the other segments hatched."""
    rows = -(-len(images) // per_row)
    fig, axes = plt.subplots(rows, 2 * per_row, figsize=(5.6 * per_row, 3.0 * rows), squeeze=False)
    for k, (img, ids, kept, title) in enumerate(zip(images, segment_ids, nodes, titles)):
        left, right = axes[k // per_row, 2 * (k % per_row)], axes[k // per_row, 2 * (k % per_row) + 1]
        left.imshow(img)
        left.set_title("\n".join(textwrap.wrap(title, 40)), fontsize=7)
        right.imshow(segments.overlay(img, ids, kept))
        for slot, (x, y) in enumerate(segments.node_centres(ids, kept), 1):
            right.text(x, y, str(slot), fontsize=5, ha="center", va="center", color="white",
                       bbox={"boxstyle": "round,pad=0.1", "facecolor": "black", "alpha": 0.6, "linewidth": 0})
    for ax in axes.flat:
        ax.axis("off")
    fig.tight_layout()
    return _png(fig)


def confusion(matrices: dict[str, np.ndarray], labels: list[str], true_label: str, predicted_label: str) -> bytes:
    """Heat maps of confusion counts (rows: true, columns: predicted), one panel per model."""
    n = len(matrices)
    side = min(1.2 + 0.6 * len(labels), 6.5)
    fig, axes = plt.subplots(1, n, figsize=(side * n + 0.5, side), squeeze=False)
    for ax, (name, m) in zip(axes[0], matrices.items()):
        ax.imshow(m, cmap="Blues")
        for (i, j), v in np.ndenumerate(m):
            ax.text(j, i, str(v), ha="center", va="center", fontsize=7,
                    color="white" if v > m.max() / 2 else "black")
        ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=7)
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        ax.set_xlabel(predicted_label, fontsize=8)
        ax.set_ylabel(true_label, fontsize=8)
        ax.set_title(f"{name}: {np.trace(m)} of {m.sum()} on the diagonal", fontsize=8)
    fig.tight_layout()
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


TITLE_CHARS = 26    # characters per title line that fit a square thumbnail at TITLE_SIZE
TITLE_SIZE = 7


def wrap(text: str, chars: int = TITLE_CHARS) -> str:
    """A title in lines that fit one thumbnail (each line of `text` wrapped on its own)."""
    return "\n".join(w for line in text.split("\n") for w in (textwrap.wrap(line, chars) or [""]))


def thumbnail_figure(images: list[np.ndarray], titles: list[str], marks: list[bool] | None = None,
                     width: float = 16.0) -> plt.Figure:
    """Images in rows of at most `width` inches (wider images get wider slots), each title wrapped to its
    slot's width; marks frame each green (right) or red."""
    aspect = max(img.shape[1] / img.shape[0] for img in images)
    wrapped = [wrap(t, int(TITLE_CHARS * aspect)) for t in titles]
    lines = max((w.count("\n") + 1 for w in wrapped), default=1)
    per_row = max(1, min(len(images), int(width // (1.9 * aspect))))
    rows = -(-len(images) // per_row)
    fig, axes = plt.subplots(rows, per_row, figsize=(1.9 * aspect * per_row, (1.9 + 0.13 * lines) * rows),
                             squeeze=False, layout="constrained")   # keeps every title clear of the row above
    for i, (ax, img, title) in enumerate(zip(axes.flat, images, wrapped)):
        ax.imshow(img)
        ax.set_title(title, fontsize=TITLE_SIZE)
        ax.set_xticks([]), ax.set_yticks([])
        if marks is not None:
            for side in ax.spines.values():
                side.set_color("green" if marks[i] else "red")
                side.set_linewidth(3)
    for ax in list(axes.flat)[len(images):]:
        ax.set_visible(False)
    return fig


def thumbnails(images: list[np.ndarray], titles: list[str], marks: list[bool] | None = None) -> bytes:
    return _png(thumbnail_figure(images, titles, marks))
