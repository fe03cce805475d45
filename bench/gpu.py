"""Benchmark: the CUDA path at the papers' size, on synthetic inputs (issue 15, item 5).

Sections, each with its models built the way the stages build them (random weights):

(a) features: the frozen trunk of `features` (stages.features.build_backbone: ResNet-101 to layer3
    at `paper` size, batch-norm folded, fp32 as the stage runs it) on random 640x640 images, and the
    panoptic segmenter of `segment` (Mask R-CNN + DeepLabV3 at the stage's defaults, one image per
    call as the stage calls it) -> images/s. With random weights the detector is confident about
    everything: it returns its cap of detections per image, so its mask head and the merge run at
    their worst case (the JSON gives the instances kept per image).
(b) pretraining steps of presets `gshn` and `gat_only` (phase 2, all their objectives): zero_grad,
    forward under bf16 autocast (CUDA; `--precision`), backward, grad-norm clip, the papers'
    optimisers (AdamW + SGD for the SNN) -> step time, samples/s, peak memory, FLOPs of one step
    (torch.utils.flop_counter), model FLOP utilisation against the device's peak, and the
    GSHN / GAT-only step-time ratio (GSHN paper Table VII: 1.59).
(c) ITM re-ranking as `reorder` and retrieval evaluation do it: one visual pass per chunk of images,
    then `candidates` ITM joint passes per image -> pairs/s, and the seconds that implies at COCO scale.
(d) a VQA finetuning step (TaskModel, `product` pooling, several questions per image).
(e) DDP: the `gshn` step wrapped in DistributedDataParallel over NCCL, one process per CUDA device
    (world size 1 with one device: the wrapper and its gradient hooks still run). On CPU: gloo with
    `--ddp-cpu-procs` processes (0 skips it, said in the JSON). World size 1 runs in this process;
    more are spawned (torch.multiprocessing), one per rank.

    python bench/gpu.py [--device cuda|cpu] [--size paper|tiny] [--steps N] [--out bench/results/gpu.json]

Defaults: CUDA and `paper` when a CUDA device is present, else CPU and `tiny`. `paper` on CPU is
refused unless --force (hours). Prints a table and writes every figure as JSON to --out.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import platform
import queue
import re
import resource
import socket
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("PROGRESS", "0")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn.parallel import DistributedDataParallel  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from models.downstream import TaskBatch, TaskModel  # noqa: E402
from models.gshn import GSHN, PretrainBatch  # noqa: E402
from models.nodes import NodeBatch, collate_nodes  # noqa: E402
from stages.common import params  # noqa: E402
from stages.common.model_factory import build_model, optim_groups  # noqa: E402
from stages.training.groups import OptimGroup, make_optimizer  # noqa: E402
from storage.atomic import write_json  # noqa: E402

PAPER_RATIO = 1.59          # GSHN paper Table VII: GSHN / GAT-only pretraining time
GRAD_CLIP = 1.0             # pretrain.grad_clip / finetune.grad_clip default
COCO_TRAIN_IMAGES = 113_287  # Karpathy train + restval: what `reorder` groups at COCO scale
COCO_TEST_IMAGES, COCO_TEST_CAPTIONS = 5_000, 25_000   # Karpathy test: retrieval evaluation

# Dense bf16 tensor peaks (vendor data sheets, TFLOP/s), matched on the words of the device name;
# the first row whose words are all in the name wins (so "H100 PCIe" before "H100").
PEAK_BF16_TFLOPS: tuple[tuple[frozenset[str], float], ...] = (
    (frozenset({"H100", "PCIE"}), 756.0),
    (frozenset({"H100", "NVL"}), 835.0),
    (frozenset({"H100"}), 989.4),
    (frozenset({"H200"}), 989.4),
    (frozenset({"GH200"}), 989.4),
    (frozenset({"A100"}), 312.0),
    (frozenset({"L40S"}), 362.0),
    (frozenset({"L4"}), 121.0),
    (frozenset({"A10"}), 125.0),
)


@dataclasses.dataclass(frozen=True)
class Shape:
    """Input sizes of one benchmark size."""

    model: str          # model.size
    warmup: int         # untimed calls before timing: cuDNN autotuning, allocator growth, lazy optimizer state
    image: int          # segment.image_size
    backbone: str       # features.backbone (to layer3)
    channels: int       # C of that trunk's layer3
    K: int              # features.max_nodes
    L: int              # model.max_text_len (synthetic texts fill it)
    batch: int          # pretrain.batch_size
    feat_batch: int     # features.batch_size
    seg_images: int     # images per timed segmenter pass
    detections: int     # Mask R-CNN detections per image (torchvision's default 100 = the stage's)
    proposals: int      # RPN proposals kept per image at test time (torchvision's default 1000 = the stage's)
    itm_batch: int      # reorder.batch_size
    candidates: int     # reorder.candidates: ITM batches per visual pass of a chunk
    itr_candidates: int  # evaluate.itr_candidates (the retrieval projection only)
    vqa_batch: int      # finetune.vqa.batch_size
    vqa_images: int     # distinct images in a VQA batch (image_batches keeps an image's questions together)
    answers: int        # VQA answer vocabulary


SHAPES = {
    "paper": Shape(model="paper", warmup=2, image=640, backbone="resnet101", channels=1024, K=36, L=40, batch=16,
                   feat_batch=32, seg_images=8, detections=100, proposals=1000, itm_batch=128, candidates=32,
                   itr_candidates=10, vqa_batch=64, vqa_images=12, answers=3129),
    # tiny: the CPU test; fewer detections and proposals than the stage keep Mask R-CNN's heads short on CPU
    "tiny": Shape(model="tiny", warmup=1, image=64, backbone="resnet18", channels=256, K=12, L=16, batch=8,
                  feat_batch=4, seg_images=1, detections=10, proposals=100, itm_batch=8, candidates=4,
                  itr_candidates=10, vqa_batch=8, vqa_images=4, answers=16),
}


def device_peak(name: str, override_tflops: float | None) -> tuple[float | None, str]:
    """Peak dense bf16 FLOP/s of the device and where the figure comes from (the reason when unknown)."""
    if override_tflops is not None:
        return override_tflops * 1e12, "--peak-tflops"
    words = set(re.split(r"[^A-Z0-9]+", name.upper()))
    for need, tflops in PEAK_BF16_TFLOPS:
        if need <= words:
            return tflops * 1e12, f"table: {' '.join(sorted(need))}"
    return None, f"no bf16 peak known for {name!r}: pass --peak-tflops"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], steps: int, warmup: int, device: torch.device) -> list[float]:
    """Seconds of each of `steps` calls after `warmup` untimed ones, synchronised on CUDA."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return times


def reset_peak(device: torch.device) -> bool:
    """Start a new peak-memory window; False where the CPU peak cannot be reset (it then runs from process start)."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        return True
    try:
        Path("/proc/self/clear_refs").write_text("5")    # Linux >= 4.0: VmHWM back to the current RSS
        return True
    except OSError:
        return False


def peak_mib(device: torch.device) -> float:
    """CUDA: max allocated since reset_peak. CPU: peak RSS (VmHWM, or ru_maxrss where /proc is missing)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        with open("/proc/self/status") as fh:
            return next(int(ln.split()[1]) for ln in fh if ln.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    """The trainer's autocast: bf16 on the forward pass, or nothing for fp32."""
    return torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()


def count_flops(fn: Callable[[], Any]) -> int:
    """Matmul / convolution / attention FLOPs of one call (forward and backward when fn trains)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


# ------------------------------------------------------------------------------ synthetic inputs

def synthetic_nodes(n: int, shape: Shape, rng: np.random.Generator) -> NodeBatch:
    """n images of K/2..K nodes with random features, geometry and a symmetric 4-neighbour graph."""
    samples = []
    for _ in range(n):
        k = int(rng.integers(shape.K // 2, shape.K + 1))
        src = np.repeat(np.arange(k), 4)
        dst = (src + rng.integers(1, k, src.size)) % k      # never a self-loop
        edges = np.unique(np.concatenate([np.stack([src, dst]), np.stack([dst, src])], 1), axis=1)
        samples.append((rng.standard_normal((k, shape.channels)).astype(np.float16),
                        rng.random((k, 7)).astype(np.float32), edges.astype(np.int32)))
    return collate_nodes(samples, shape.K)


def synthetic_text(n: int, shape: Shape, vocab: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """[CLS] random word ids [SEP], every text at the full max_text_len (no padding)."""
    ids = torch.from_numpy(rng.integers(1000, vocab, (n, shape.L)))
    ids[:, 0], ids[:, -1] = 101, 102
    return ids, torch.ones(n, shape.L, dtype=torch.long)


def pretrain_batch(shape: Shape, vocab: int, seed: int) -> PretrainBatch:
    rng = np.random.default_rng(seed)
    return PretrainBatch(synthetic_nodes(shape.batch, shape, rng), *synthetic_text(shape.batch, shape, vocab, rng))


def vqa_batch(shape: Shape, vocab: int, seed: int) -> TaskBatch:
    """vqa_batch questions over vqa_images images; soft targets on up to 3 answers each."""
    rng = np.random.default_rng(seed)
    ids, mask = synthetic_text(shape.vqa_batch, shape, vocab, rng)
    targets = torch.zeros(shape.vqa_batch, shape.answers)
    for row in targets:
        row[torch.from_numpy(rng.choice(shape.answers, 3, replace=False))] = torch.tensor([1.0, 0.6, 0.3])
    index = torch.from_numpy(np.arange(shape.vqa_batch) % shape.vqa_images)
    return TaskBatch(ids, mask, [synthetic_nodes(shape.vqa_images, shape, rng)], [index], targets)


# ------------------------------------------------------------------------------ training steps

def pretrain_model(preset: str, shape: Shape, device: torch.device) -> GSHN:
    """The phase-2 model of `preset` as `pretrain` builds it, seeded."""
    torch.manual_seed(0)
    mcfg = params.ModelParams(preset=preset, size=shape.model, max_text_len=shape.L)
    return build_model(mcfg, shape.channels, shape.K, phase=2).to(device).train()


def train_step(net: nn.Module, batch: Any, groups: list[OptimGroup], device: torch.device,
               precision: str) -> Callable[[], None]:
    """One optimizer step as the trainer takes it (its loss bookkeeping and all-reduce of values left out)."""
    opts = [make_optimizer(g) for g in groups if not g.frozen]
    trainable = [p for g in groups if not g.frozen for p in g.params]

    def step() -> None:
        for opt in opts:
            opt.zero_grad(set_to_none=True)
        with autocast(device, precision):
            out = net(batch)
        out["loss"].backward()
        torch.nn.utils.clip_grad_norm_(trainable, GRAD_CLIP)
        for opt in opts:
            opt.step()
    return step


def measure_training(model: nn.Module, batch: Any, samples: int, groups: list[OptimGroup], device: torch.device,
                     precision: str, steps: int, warmup: int, peak: float | None) -> dict[str, Any]:
    """Median step time, samples/s, peak memory, FLOPs of one step and MFU against `peak` FLOP/s."""
    reset_peak(device)
    step = train_step(model, batch, groups, device, precision)
    times = timed(step, steps, warmup, device)
    flops = count_flops(step)
    step_s = statistics.median(times)
    return {"step_ms": 1e3 * step_s, "step_ms_all": [1e3 * t for t in times], "samples_per_step": samples,
            "samples_per_s": samples / step_s, "peak_mib": peak_mib(device), "flops_per_step": flops,
            "achieved_tflops": flops / step_s / 1e12, "mfu": flops / step_s / peak if peak else None,
            "params_m": sum(p.numel() for g in groups for p in g.params) / 1e6}   # trained: no momentum encoders


def bench_pretrain(shape: Shape, device: torch.device, precision: str, steps: int,
                   peak: float | None) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    for preset in ("gshn", "gat_only"):
        model = pretrain_model(preset, shape, device)
        batch = pretrain_batch(shape, model.text.vocab_size, seed=0).to(device)
        groups = optim_groups(model.parameter_groups(), params.PhaseParams(epochs=1))
        rows[preset] = measure_training(model, batch, shape.batch, groups, device, precision, steps, shape.warmup,
                                        peak)
        del model, batch, groups
    rows["gshn_vs_gat_only"] = {"step_time_ratio": rows["gshn"]["step_ms"] / rows["gat_only"]["step_ms"],
                                "paper_table_vii": PAPER_RATIO}
    return rows


def bench_vqa(shape: Shape, device: torch.device, precision: str, steps: int, peak: float | None) -> dict[str, Any]:
    """A VQA finetuning step: the pretrained GSHN's transformer and visual encoder under a product-pooled head."""
    base = pretrain_model("gshn", shape, device)
    model = TaskModel.from_pretrained(base, "vqa", shape.answers, pool="product").to(device).train()
    batch = vqa_batch(shape, base.text.vocab_size, seed=0).to(device)
    groups = optim_groups(model.parameter_groups(), params.TaskParams())
    row = measure_training(model, batch, shape.vqa_batch, groups, device, precision, steps, shape.warmup, peak)
    return row | {"images_per_step": shape.vqa_images, "answers": shape.answers}


# ------------------------------------------------------------------------------ inference sections

def bench_features(shape: Shape, device: torch.device, steps: int) -> dict[str, Any]:
    """(a) The `features` trunk on batches of images, and the `segment` panoptic segmenter per image."""
    return {"backbone": bench_backbone(shape, device, steps), "panoptic": bench_panoptic(shape, device, steps)}


def bench_backbone(shape: Shape, device: torch.device, steps: int) -> dict[str, Any]:
    """The trunk `features` builds (batch norm folded), fp32 as the stage runs it, on uint8 images."""
    from stages.features import build_backbone
    trunk = build_backbone(shape.backbone, "layer3", shape.image, None, 0, device.type)
    images = torch.randint(0, 256, (shape.feat_batch, shape.image, shape.image, 3), dtype=torch.uint8, device=device)
    reset_peak(device)
    with torch.inference_mode():
        batch_s = statistics.median(timed(lambda: trunk(images), steps, shape.warmup, device))
    build_backbone.cache_clear()    # else the trunk stays resident, counted in every later peak
    return {"net": f"{shape.backbone}/layer3", "image": shape.image, "batch": shape.feat_batch, "precision": "fp32",
            "ms_per_batch": 1e3 * batch_s, "images_per_s": shape.feat_batch / batch_s, "peak_mib": peak_mib(device)}


def bench_panoptic(shape: Shape, device: torch.device, steps: int) -> dict[str, Any]:
    """The segmenter as `segment` builds it (stage defaults, min/max size = image size), random weights."""
    from torchvision.models import segmentation
    from torchvision.models.detection import MaskRCNN_ResNet50_FPN_Weights, maskrcnn_resnet50_fpn

    from models.segmenters import PanopticSegmenter
    p = params.PanopticParams()
    torch.manual_seed(0)
    detector = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=p.maskrcnn_num_classes)
    deeplab = segmentation.deeplabv3_resnet50(weights=None, weights_backbone=None, num_classes=p.deeplab_num_classes)
    names = dict(enumerate(MaskRCNN_ResNet50_FPN_Weights.COCO_V1.meta["categories"]))   # shipped metadata
    segmenter = PanopticSegmenter(
        detector.state_dict(), deeplab.state_dict(), num_thing_classes=p.maskrcnn_num_classes,
        num_semantic_classes=p.deeplab_num_classes, thing_names=names, stuff_names=p.stuff_names,
        score_thresh=p.score_thresh, box_nms_thresh=p.nms_thresh, mask_thresh=p.mask_thresh,
        overlap_thresh=p.overlap_thresh, stuff_min_area=p.stuff_min_area, leftover_min_area=p.leftover_min_area,
        min_size=shape.image, max_size=shape.image, device=device)
    segmenter.detector.roi_heads.detections_per_img = shape.detections
    segmenter.detector.rpn._post_nms_top_n["testing"] = shape.proposals
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (shape.image, shape.image, 3), dtype=np.uint8) for _ in range(shape.seg_images)]
    things: list[int] = []

    def run() -> None:
        for image in images:
            things.append(sum(bool(t) for t in segmenter(image).isthing.values()))
    reset_peak(device)
    times = timed(run, steps, shape.warmup, device)
    per_image = statistics.median(times) / shape.seg_images
    return {"score_thresh": p.score_thresh, "image": shape.image, "images_per_s": 1 / per_image,
            "ms_per_image": 1e3 * per_image, "instances_per_image": statistics.mean(things),
            "peak_mib": peak_mib(device)}


def itm_chunk(model: GSHN, nodes: NodeBatch, texts: list[tuple[torch.Tensor, torch.Tensor]],
              local: list[torch.Tensor], device: torch.device, precision: str) -> Callable[[], None]:
    """One chunk of Scorer.itm: a visual pass over the chunk's images, then its pairs in ITM batches."""
    def chunk() -> None:
        with torch.inference_mode(), autocast(device, precision):   # eval mode: reset per sample, as `reorder`
            V = model.visual(nodes).tokens
            for (ids, mask), idx in zip(texts, local):
                torch.softmax(model.itm_logits(ids, mask, V[idx], nodes.node_mask[idx]).float(), -1)[:, 1].cpu()
    return chunk


def bench_itm(shape: Shape, device: torch.device, precisions: list[str], steps: int) -> dict[str, Any]:
    """(c) ITM re-ranking pairs/s, per precision (`reorder` and `evaluate` run fp32 today)."""
    model = pretrain_model("gshn", shape, device).eval()
    rng = np.random.default_rng(0)
    nodes = synthetic_nodes(shape.itm_batch, shape, rng).to(device)
    texts = [tuple(t.to(device) for t in synthetic_text(shape.itm_batch, shape, model.text.vocab_size, rng))
             for _ in range(shape.candidates)]
    local = [torch.from_numpy(rng.permutation(shape.itm_batch)).to(device) for _ in range(shape.candidates)]
    pairs = shape.itm_batch * shape.candidates
    out: dict[str, Any] = {"pairs_per_chunk": pairs, "itm_batch": shape.itm_batch, "candidates": shape.candidates,
                           "itr_candidates": shape.itr_candidates}
    for precision in precisions:
        reset_peak(device)
        chunk = itm_chunk(model, nodes, texts, local, device, precision)
        rate = pairs / statistics.median(timed(chunk, steps, shape.warmup, device))
        out[precision] = {"pairs_per_s": rate, "peak_mib": peak_mib(device),
                          "coco_reorder_s": COCO_TRAIN_IMAGES * shape.candidates / rate,
                          "coco_5k_retrieval_s": (COCO_TEST_IMAGES + COCO_TEST_CAPTIONS) * shape.itr_candidates / rate}
    return out


# ------------------------------------------------------------------------------ DDP

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, size: str, device_type: str, precision: str, steps: int,
                threads: int, results: Any) -> None:
    """One rank: the gshn step under DistributedDataParallel (find_unused_parameters as `pretrain` sets it)."""
    cuda = device_type == "cuda"
    if cuda:
        torch.cuda.set_device(rank)
    else:
        torch.set_num_threads(threads)
    dist.init_process_group("nccl" if cuda else "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world)
    try:
        device = torch.device(f"cuda:{rank}" if cuda else "cpu")
        shape = SHAPES[size]
        model = pretrain_model("gshn", shape, device)
        net = DistributedDataParallel(model, device_ids=[rank] if cuda else None, find_unused_parameters=True)
        batch = pretrain_batch(shape, model.text.vocab_size, seed=rank).to(device)
        reset_peak(device)
        groups = optim_groups(model.parameter_groups(), params.PhaseParams(epochs=1))
        step = train_step(net, batch, groups, device, precision)
        times = timed(step, steps, shape.warmup, device)
        results.put({"rank": rank, "step_ms": 1e3 * statistics.median(times), "peak_mib": peak_mib(device)})
    finally:
        dist.destroy_process_group()


def bench_ddp(size: str, device: torch.device, precision: str, steps: int, cpu_procs: int, threads: int,
              single_step_ms: float) -> dict[str, Any]:
    """(e) Step time per rank over world = CUDA device count (CPU: cpu_procs), against the single-process step."""
    world = torch.cuda.device_count() if device.type == "cuda" else cpu_procs
    if world < 1:
        return {"skipped": "--ddp-cpu-procs 0: no gloo rank asked for"}
    args = (world, free_port(), size, device.type, precision, steps, threads)
    if world == 1:      # no process to spawn: this one is rank 0
        results: Any = queue.SimpleQueue()
        _ddp_worker(0, *args, results)
    else:
        results = mp.get_context("spawn").SimpleQueue()
        mp.spawn(_ddp_worker, args=(*args, results), nprocs=world)
    ranks = sorted((results.get() for _ in range(world)), key=lambda r: r["rank"])
    step_ms = max(r["step_ms"] for r in ranks)      # the slowest rank sets the pace
    batch = SHAPES[size].batch
    note = "world size 1 (one device, or --ddp-cpu-procs 1): the DDP wrapper and its gradient hooks run, " \
           "no gradient traffic" if world == 1 else ""
    return {"backend": "nccl" if device.type == "cuda" else "gloo", "world_size": world, "ranks": ranks,
            "step_ms": step_ms, "samples_per_s": world * batch / (step_ms / 1e3), "batch_per_rank": batch,
            "scaling_efficiency": single_step_ms / step_ms, "note": note}


# ------------------------------------------------------------------------------ command line

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    cuda = torch.cuda.is_available()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if cuda else "cpu")
    ap.add_argument("--size", choices=tuple(SHAPES), default=None, help="default: paper on CUDA, tiny on CPU")
    ap.add_argument("--steps", type=int, default=10, help="timed calls per measurement, after warm-up")
    ap.add_argument("--precision", choices=("bf16", "fp32"), default=None,
                    help="autocast of the training steps and ITM (default: bf16 on CUDA, as the trainer; fp32 on CPU)")
    ap.add_argument("--peak-tflops", type=float, default=None, help="device peak dense bf16 TFLOP/s for the MFU")
    ap.add_argument("--ddp-cpu-procs", type=int, default=1,
                    help="gloo ranks of the DDP section on CPU (1: in this process; 0: skip)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads on CPU (as the stages' CPU workers)")
    ap.add_argument("--force", action="store_true", help="allow --size paper on CPU")
    ap.add_argument("--out", type=Path, default=REPO / "bench/results/gpu.json")
    args = ap.parse_args(argv)
    if args.device == "cuda" and not cuda:
        ap.exit(2, "gpu.py: --device cuda but no CUDA device is available (use --device cpu)\n")
    args.size = args.size or ("paper" if args.device == "cuda" else "tiny")
    if args.size == "paper" and args.device == "cpu" and not args.force:
        ap.exit(2, "gpu.py: --size paper on CPU would take hours; use --size tiny, or --force\n")
    if args.steps < 1 or args.ddp_cpu_procs < 0 or args.threads < 1:
        ap.exit(2, "gpu.py: --steps and --threads must be >= 1, --ddp-cpu-procs >= 0\n")
    args.precision = args.precision or ("bf16" if args.device == "cuda" else "fp32")
    return args


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()


def memory_kind(device: torch.device) -> str:
    """What the peak_mib figures are on this machine."""
    if device.type == "cuda":
        return "torch.cuda.max_memory_allocated per measurement"
    if reset_peak(device):
        return ("peak RSS per measurement (VmHWM reset through /proc/self/clear_refs); it starts from the RSS "
                "left by earlier sections, which the allocator does not hand back to the OS")
    return "peak RSS of the process so far (it cannot be reset here)"


def run(args: argparse.Namespace) -> dict[str, Any]:
    device, shape = torch.device(args.device), SHAPES[args.size]
    peak, source = device_peak(device_name(device), args.peak_tflops)
    machine = {"device": device_name(device), "device_count": torch.cuda.device_count() if args.device == "cuda" else 0,
               "cpu_count": os.cpu_count(), "loadavg_1min": os.getloadavg()[0], "torch": torch.__version__,
               "cuda": torch.version.cuda, "platform": platform.platform(), "peak_bf16_flops": peak,
               "peak_source": source, "memory": memory_kind(device)}
    result: dict[str, Any] = {"machine": machine,
                              "config": {"size": args.size, "device": args.device, "steps": args.steps,
                                         "precision": args.precision, "threads": args.threads,
                                         "shape": dataclasses.asdict(shape)}}
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    timings = (("features", lambda: bench_features(shape, device, args.steps)),
               ("pretrain", lambda: bench_pretrain(shape, device, args.precision, args.steps, peak)),
               ("itm", lambda: bench_itm(shape, device, sorted({"fp32", args.precision}), args.steps)),
               ("vqa", lambda: bench_vqa(shape, device, args.precision, args.steps, peak)),
               ("ddp", lambda: bench_ddp(args.size, device, args.precision, args.steps, args.ddp_cpu_procs,
                                         args.threads, result["pretrain"]["gshn"]["step_ms"])))
    for name, section in timings:
        print(f"{name} ...", flush=True)
        start = time.perf_counter()
        result[name] = section()
        result[name]["section_s"] = time.perf_counter() - start
    return result


def _mfu(row: dict[str, Any]) -> str:
    return f"{100 * row['mfu']:.1f}%" if row["mfu"] is not None else "n/a"


def print_report(r: dict[str, Any], out: Path) -> None:
    m, c = r["machine"], r["config"]
    print(f"\n{c['size']} size on {m['device']} ({c['device']}, {m['device_count']} CUDA devices), {c['precision']} "
          f"training, torch {m['torch']}; load average {m['loadavg_1min']:.2f}; peak {m['peak_source']}")
    f = r["features"]
    print(f"(a) {f['backbone']['net']} at {f['backbone']['image']}px, batch {f['backbone']['batch']}: "
          f"{f['backbone']['images_per_s']:.1f} images/s")
    row = f["panoptic"]
    print(f"    panoptic at {row['image']}px, score >= {row['score_thresh']}: {row['images_per_s']:.2f} images/s "
          f"({row['instances_per_image']:.1f} instances/image)")
    print(f"(b) {'preset':9s} {'step ms':>9s} {'samples/s':>10s} {'peak MiB':>9s} {'TFLOP/s':>8s} {'MFU':>6s}")
    for preset in ("gshn", "gat_only"):
        row = r["pretrain"][preset]
        print(f"    {preset:9s} {row['step_ms']:9.1f} {row['samples_per_s']:10.1f} {row['peak_mib']:9.0f} "
              f"{row['achieved_tflops']:8.3f} {_mfu(row):>6s}")
    print(f"    GSHN / GAT-only step time = {r['pretrain']['gshn_vs_gat_only']['step_time_ratio']:.2f} "
          f"(paper Table VII: {PAPER_RATIO})")
    for precision in ("fp32", "bf16"):
        if precision in r["itm"]:
            row = r["itm"][precision]
            print(f"(c) ITM {precision}: {row['pairs_per_s']:.0f} pairs/s; COCO reorder {row['coco_reorder_s']:.0f} s, "
                  f"5k retrieval {row['coco_5k_retrieval_s']:.0f} s")
    v = r["vqa"]
    print(f"(d) VQA step: {v['step_ms']:.1f} ms, {v['samples_per_s']:.1f} samples/s, {v['peak_mib']:.0f} MiB, "
          f"MFU {_mfu(v)}")
    d = r["ddp"]
    print(f"(e) DDP: skipped ({d['skipped']})" if "skipped" in d else
          f"(e) DDP {d['backend']} x {d['world_size']}: {d['step_ms']:.1f} ms/step, "
          f"{d['samples_per_s']:.1f} samples/s, "
          f"scaling efficiency {d['scaling_efficiency']:.2f} {d['note']}")
    print(f"results: {out}")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    result = run(args)
    write_json(args.out, result)
    print_report(result, args.out)


if __name__ == "__main__":
    main()
