"""Probe: how well do easy_vqa node features tell the shape and the colour of the image's one shape?

Labels come from easy_vqa's own question/answer pairs (data/prepared/easy_vqa/vqa.parquet):
"what shape ...?" / "what is the <colour> shape?" answer the shape, "what color ...?" the colour;
the colour or shape named in such a question labels the other attribute too. A small
attention-pooling MLP reads each image's node features (nodes.npy, layer-normalised) and geometry
(geom.npy; --no-geom leaves it out) from a `features` output folder, is trained on the train split
and scored on the test split (mean and spread over --seeds). Compare the random trunk with the
`backbone` stage's weights (features computed once with each):

    python bench/backbone_probe.py --features data/features/easy_vqa --tag random
    python bench/backbone_probe.py --features /tmp/f/data/features/easy_vqa --tag backbone

Prints the accuracies and writes bench/results/backbone_probe-<tag>.json.
"""
from __future__ import annotations

import argparse
import json
import platform
import re
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from storage.atomic import write_json  # noqa: E402
from storage.shards import ShardReader, npy_load  # noqa: E402
from storage.tables import read_table  # noqa: E402

SHAPES = ("circle", "rectangle", "triangle")
COLORS = ("red", "green", "blue", "black", "gray", "teal", "brown", "yellow")


def labels(vqa_path: Path) -> dict[str, dict[str, str]]:
    """image_id -> {"shape": ..., "color": ...} from the answers of what-questions."""
    out: dict[str, dict[str, str]] = {}
    for r in read_table(vqa_path, "vqa").to_pylist():
        q, a = r["question"], r["answers"][0]
        if not q.startswith("what"):
            continue
        lab = out.setdefault(r["image_id"], {})
        words = set(re.findall(r"[a-z]+", q))
        for name, vocab in (("shape", SHAPES), ("color", COLORS)):
            if a in vocab:
                lab[name] = a
            named = words & set(vocab)
            if len(named) == 1:
                lab[name] = named.pop()
    return out


def load(features: Path, ids: list[str], k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Padded nodes N x K x C, geometry N x K x 7 and node mask N x K."""
    with ShardReader(features) as shards:
        samples = [shards.get(i) for i in ids]
    c = npy_load(samples[0]["nodes.npy"]).shape[1]
    nodes, geom, mask = np.zeros((len(ids), k, c), np.float32), np.zeros((len(ids), k, 7), np.float32), \
        np.zeros((len(ids), k), bool)
    for n, s in enumerate(samples):
        x, g = npy_load(s["nodes.npy"])[:k], npy_load(s["geom.npy"])[:k]
        nodes[n, : len(x)], geom[n, : len(g)], mask[n, : len(x)] = x, g, True
    return torch.from_numpy(nodes), torch.from_numpy(geom), torch.from_numpy(mask)


class Probe(nn.Module):
    """LN(nodes) ++ geometry -> MLP -> attention pooling over nodes -> shape and colour logits."""

    def __init__(self, channels: int, geom: bool, width: int = 128) -> None:
        super().__init__()
        self.geom = geom
        self.norm = nn.LayerNorm(channels)
        self.mlp = nn.Sequential(nn.Linear(channels + 7 * geom, width), nn.GELU(), nn.Linear(width, width), nn.GELU())
        self.score = nn.Linear(width, 1)
        self.shape, self.color = nn.Linear(width, len(SHAPES)), nn.Linear(width, len(COLORS))

    def forward(self, nodes: torch.Tensor, geom: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.mlp(torch.cat([self.norm(nodes), geom], -1) if self.geom else self.norm(nodes))
        w = self.score(h).squeeze(-1).masked_fill(~mask, float("-inf")).softmax(-1)
        pooled = (w.unsqueeze(-1) * h).sum(1)
        return self.shape(pooled), self.color(pooled)


def fit_and_score(train: tuple, test: tuple, seed: int, epochs: int, geom: bool, batch: int = 128
                  ) -> dict[str, float]:
    torch.manual_seed(seed)
    (xn, xg, xm, ys, yc), (tn, tg, tm, ts, tc) = train, test
    probe = Probe(xn.shape[-1], geom)
    opt = torch.optim.AdamW(probe.parameters(), lr=1e-3, weight_decay=1e-2)
    for _ in range(epochs):
        probe.train()
        for idx in torch.randperm(len(xn)).split(batch):
            s, c = probe(xn[idx], xg[idx], xm[idx])
            ks, kc = ys[idx] >= 0, yc[idx] >= 0
            loss = F.cross_entropy(s[ks], ys[idx][ks]) + F.cross_entropy(c[kc], yc[idx][kc])
            opt.zero_grad()
            loss.backward()
            opt.step()
    probe.eval()
    with torch.no_grad():
        s, c = probe(tn, tg, tm)
    ks, kc = ts >= 0, tc >= 0
    return {"shape_acc": float((s.argmax(1)[ks] == ts[ks]).float().mean()),
            "color_acc": float((c.argmax(1)[kc] == tc[kc]).float().mean())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--features", type=Path, default=REPO / "data/features/easy_vqa")
    ap.add_argument("--prepared", type=Path, default=REPO / "data/prepared/easy_vqa")
    ap.add_argument("--tag", default="current", help="names the output file bench/results/backbone_probe-<tag>.json")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--max-nodes", type=int, default=36)
    ap.add_argument("--no-geom", action="store_true", help="node features only: what the backbone alone tells")
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    lab = labels(args.prepared / "vqa.parquet")
    splits = {}
    with ShardReader(args.features) as shards:
        have = set(shards.ids)
    for split in ("train", "test"):
        ids = sorted(i for i, v in lab.items() if f"-{split}-" in i and i in have and v)
        n, g, m = load(args.features, ids, args.max_nodes)
        ys = torch.tensor([SHAPES.index(lab[i]["shape"]) if "shape" in lab[i] else -1 for i in ids])
        yc = torch.tensor([COLORS.index(lab[i]["color"]) if "color" in lab[i] else -1 for i in ids])
        splits[split] = (n, g, m, ys, yc)
    runs = [fit_and_score(splits["train"], splits["test"], seed, args.epochs, not args.no_geom)
            for seed in range(args.seeds)]
    result = {"tag": args.tag, "features": str(args.features),
              "meta": json.loads((args.features / "meta.json").read_text()),
              "train_images": len(splits["train"][0]), "test_images": len(splits["test"][0]),
              "test_shape_labels": int((splits["test"][3] >= 0).sum()),
              "test_color_labels": int((splits["test"][4] >= 0).sum()),
              "epochs": args.epochs, "geometry": not args.no_geom, "runs": runs,
              "wall_s": round(time.perf_counter() - t0, 1),
              "machine": platform.machine()}
    for key in ("shape_acc", "color_acc"):
        vals = np.array([r[key] for r in runs])
        result[key], result[f"{key}_std"] = float(vals.mean()), float(vals.std())
    print(f"{args.tag}: shape {result['shape_acc']:.3f} +- {result['shape_acc_std']:.3f}, "
          f"colour {result['color_acc']:.3f} +- {result['color_acc_std']:.3f} "
          f"(geometry {'on' if result['geometry'] else 'off'}, {result['test_images']} test images, "
          f"{args.seeds} seeds, {result['wall_s']} s)")
    write_json(REPO / "bench" / "results" / f"backbone_probe-{args.tag}.json", result)


if __name__ == "__main__":
    main()
