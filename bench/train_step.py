"""Benchmark: pretraining step cost per preset, and what the ITM-reordered batches buy.

Part A (always): forward + backward + optimiser step of the phase-2 model (all objectives of the
preset) at equal width for presets gshn, gat_only, gat_gat, snn_snn, on the same synthetic batch
(B samples, K nodes of C channels, L text tokens). Each preset runs in its own spawned process, so
its peak memory is its own: peak RSS on CPU, torch.cuda.max_memory_allocated on CUDA. Prints the
median step time and the ratios to gat_only (goal: gshn / gat_only <= 1.25; the GSHN paper
measured 1.59).

Part B (`--reorder`, needs the outputs of `dvc repro reorder`): phase 2 from the warm weights,
twice with the same seed, once on the reordered groups and once on random batches, evaluating the
ITC + ITM loss on fixed held-out batches (random composition, so the reordered run's harder
in-batch negatives do not bias it) every `--eval-every` steps. Prints the steps each run needs to
reach the loss levels the random run reaches at 25/50/100% of its steps (the ASH-Nets paper
claims 30 vs 100 epochs).

    python bench/train_step.py [--size tiny|paper] [--device cpu|cuda] [--reorder] [--steps 150]

Writes bench/results/train_step.json (override with --out).
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("PROGRESS", "0")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from models.nodes import collate_nodes  # noqa: E402
from stages.common import params  # noqa: E402
from stages.common.model_factory import build_model  # noqa: E402
from storage.atomic import write_json  # noqa: E402

PRESETS = ("gshn", "gat_only", "gat_gat", "snn_snn")


def synthetic_batch(B: int, K: int, C: int, L: int, vocab: int, seed: int = 0) -> Any:
    from models.gshn import PretrainBatch
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(B):
        k = int(rng.integers(K // 2, K + 1))
        pairs = {(i, int(j)) for i in range(k) for j in rng.choice(k, size=min(4, k - 1), replace=False) if i != j}
        pairs |= {(j, i) for i, j in pairs}
        edges = np.array(sorted(pairs), np.int32).T if pairs else np.zeros((2, 0), np.int32)
        samples.append((rng.standard_normal((k, C)).astype(np.float16), rng.random((k, 7)).astype(np.float32), edges))
    ids = torch.from_numpy(rng.integers(1000, vocab, (B, L)))
    ids[:, 0], ids[:, -1] = 101, 102
    return PretrainBatch(collate_nodes(samples, K), ids, torch.ones(B, L, dtype=torch.long))


def time_preset(preset: str, size: str, device: str, B: int, K: int, C: int, L: int, steps: int,
                threads: int, queue: Any) -> None:
    """Child process: median step time and peak memory of one preset."""
    torch.set_num_threads(threads)
    mcfg = params.ModelParams(preset=preset, size=size, max_text_len=L)
    torch.manual_seed(0)
    model = build_model(mcfg, C, K, phase=2).to(device).train()
    trained = [p for group in model.parameter_groups().values() for p in group]   # not the momentum encoders
    opt = torch.optim.AdamW(trained, lr=1e-4)
    batch = synthetic_batch(B, K, C, L, model.text.vocab_size).to(device)
    times = []
    for i in range(steps + 2):
        if device == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        with torch.autocast("cuda", torch.bfloat16, enabled=device == "cuda"):
            out = model(batch)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        if device == "cuda":
            torch.cuda.synchronize()
        if i >= 2:  # two warm-up steps
            times.append(time.perf_counter() - t)
    peak = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" \
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put({"preset": preset, "step_ms": 1000 * statistics.median(times), "peak_mib": peak,
               "params_m": sum(p.numel() for p in trained) / 1e6})


def part_a(args: argparse.Namespace) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    rows = {}
    for preset in PRESETS:
        q = ctx.Queue()
        p = ctx.Process(target=time_preset, args=(preset, args.size, args.device, args.batch, args.nodes,
                                                  args.channels, args.text_len, args.timing_steps, args.threads, q))
        p.start()
        rows[preset] = q.get()
        p.join()
    base = rows["gat_only"]
    for r in rows.values():
        r["time_vs_gat_only"] = r["step_ms"] / base["step_ms"]
        r["memory_vs_gat_only"] = r["peak_mib"] / base["peak_mib"]
    return rows


def part_b(args: argparse.Namespace) -> dict[str, Any]:
    """Phase 2 on reordered vs random batches, held-out ITC+ITM loss against steps."""
    from stages.common import model_factory
    from stages.data.grouping import read_groups
    from stages.data.pairs import PairCollator, feature_meta, grouped_plan, load_samples, random_plan
    from stages.training.trainer import load_weights
    torch.set_num_threads(args.threads)
    mcfg, pcfg = params.load("model"), params.load("pretrain")
    C, K = feature_meta(pcfg.datasets)
    train, val = load_samples(pcfg.datasets, "train"), load_samples(pcfg.datasets, "val")
    groups = read_groups(Path("data/reorder/batches.parquet"), train)
    collate, vcollate = PairCollator(train, K, mcfg.max_text_len), PairCollator(val, K, mcfg.max_text_len)
    held = [vcollate(spec) for spec in random_plan(val, pcfg.batch_size, 123, 0)[:4]]
    curves = {}
    for name in ("reordered", "random"):
        torch.manual_seed(pcfg.seed)
        model = build_model(mcfg, C, K, phase=2)
        model.load_state_dict(load_weights(Path("data/checkpoints/pretrain_warmup/model.pt")))
        groups_ = model_factory.optim_groups(model.parameter_groups(), pcfg.main)
        opts = [torch.optim.AdamW(g.params, lr=g.lr, weight_decay=g.weight_decay) if g.optimizer == "adamw"
                else torch.optim.SGD(g.params, lr=g.lr, momentum=g.momentum, weight_decay=g.weight_decay)
                for g in groups_]
        specs, epoch = [], 0
        while len(specs) < args.steps:
            specs += grouped_plan(train, groups, pcfg.seed, epoch) if name == "reordered" \
                else random_plan(train, pcfg.batch_size, pcfg.seed, epoch)
            epoch += 1
        curve = []
        for step, spec in enumerate(specs[: args.steps], 1):
            torch.manual_seed(step)
            model.train()
            out = model(collate(spec))
            for o in opts:
                o.zero_grad()
            out["loss"].backward()
            for o in opts:
                o.step()
            if step % args.eval_every == 0:
                model.eval()
                with torch.no_grad():
                    losses = []
                    for b in held:
                        torch.manual_seed(0)
                        o = model(b)
                        losses.append(float(o["itc"] + o["itm"]))
                curve.append((step, float(np.mean(losses))))
                print(f"  {name:9s} step {step:4d}: held-out ITC+ITM {curve[-1][1]:.4f}", flush=True)
        curves[name] = curve
    levels = {f"random@{int(f * 100)}%": curves["random"][max(0, int(f * len(curves["random"])) - 1)][1]
              for f in (0.25, 0.5, 1.0)}

    def steps_to(curve: list[tuple[int, float]], level: float) -> int | None:
        return next((s for s, v in curve if v <= level), None)
    reach = {k: {"random": steps_to(curves["random"], v), "reordered": steps_to(curves["reordered"], v), "level": v}
             for k, v in levels.items()}
    return {"curves": curves, "steps_to_level": reach, "steps": args.steps, "eval_every": args.eval_every}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="tiny", choices=("tiny", "minilm", "paper"))
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=("cpu", "cuda"))
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--nodes", type=int, default=36)
    ap.add_argument("--channels", type=int, default=256)
    ap.add_argument("--text-len", type=int, default=24)
    ap.add_argument("--timing-steps", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest for the tiny size on CPU)")
    ap.add_argument("--reorder", action="store_true", help="also run part B (needs `dvc repro reorder` outputs)")
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--eval-every", type=int, default=10)
    ap.add_argument("--out", type=Path, default=REPO / "bench/results/train_step.json")
    args = ap.parse_args()
    result: dict[str, Any] = {"machine": {"cpu_count": os.cpu_count(), "torch": torch.__version__,
                                          "platform": platform.platform(),
                                          "cuda": torch.cuda.get_device_name() if args.device == "cuda" else None},
                              "config": {k: v for k, v in vars(args).items() if k != "out"}}
    rows = part_a(args)
    result["presets"] = rows
    print(f"\n{args.size} size on {args.device}, batch {args.batch}, K {args.nodes}, L {args.text_len}")
    print(f"{'preset':10s} {'step ms':>9s} {'x gat_only':>11s} {'peak MiB':>9s} {'x gat_only':>11s} {'params M':>9s}")
    for r in rows.values():
        print(f"{r['preset']:10s} {r['step_ms']:9.1f} {r['time_vs_gat_only']:11.2f} {r['peak_mib']:9.0f} "
              f"{r['memory_vs_gat_only']:11.2f} {r['params_m']:9.2f}")
    ratio = rows["gshn"]["time_vs_gat_only"]
    print(f"GSHN / GAT-only step time = {ratio:.2f} (goal <= 1.25: {'met' if ratio <= 1.25 else 'NOT met'}; "
          f"paper 1.59)")
    if args.reorder:
        print("\nphase 2: reordered vs random batches")
        result["reorder"] = part_b(args)
        for k, v in result["reorder"]["steps_to_level"].items():
            print(f"  to reach {k} (held-out ITC+ITM {v['level']:.4f}): random {v['random']} steps, "
                  f"reordered {v['reordered']} steps")
    write_json(args.out, result)
    print(f"results: {args.out}")


if __name__ == "__main__":
    main()
