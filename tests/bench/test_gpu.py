"""bench/gpu.py: the CPU run at tiny size writes every section, and its peak, FLOP and memory helpers act."""
from __future__ import annotations

import json
import mmap
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from bench import gpu
from models.backbone import ResNetTrunk
from stages import overlay
from stages.common import params
from stages.training.groups import OptimGroup
from tests.conftest import REPO

SECTIONS = ("features", "pretrain", "itm", "vqa", "ddp")


def _numbers(node: Any, path: str = "") -> list[tuple[str, Any]]:
    """Every (path, leaf) of a JSON tree whose leaf is a number or null (strings and flags left out)."""
    if isinstance(node, dict):
        return [x for k, v in node.items() for x in _numbers(v, f"{path}.{k}")]
    if isinstance(node, list):
        return [x for i, v in enumerate(node) for x in _numbers(v, f"{path}[{i}]")]
    return [] if isinstance(node, (str, bool)) else [(path, node)]


def test_cpu_tiny_run_writes_every_section_with_positive_figures(tmp_path: Path) -> None:
    out = tmp_path / "gpu.json"
    env = os.environ | {"TMPDIR": str(tmp_path), "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, "bench/gpu.py", "--device", "cpu", "--size", "tiny", "--steps", "2",
                           "--out", str(out)], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(out.read_text())
    assert set(SECTIONS) <= set(r)
    leaves = [(f"{s}{p}", v) for s in SECTIONS for p, v in _numbers(r[s])]
    mfu = [v for p, v in leaves if p.endswith(".mfu")]
    assert len(mfu) == 3 and all(v is None for v in mfu)          # no CPU peak: null, with the reason below
    assert r["machine"]["peak_source"].startswith("no bf16 peak known")
    figures = [(p, v) for p, v in leaves if not p.endswith((".mfu", ".rank"))]
    bad = [(p, v) for p, v in figures if not (isinstance(v, (int, float)) and v > 0)]
    assert not bad, bad
    pre = r["pretrain"]
    ratio = pre["gshn"]["step_ms"] / pre["gat_only"]["step_ms"]
    assert pre["gshn_vs_gat_only"] == {"step_time_ratio": pytest.approx(ratio), "paper_table_vii": 1.59}
    assert pre["gshn"]["flops_per_step"] > pre["gat_only"]["flops_per_step"]    # the spiking branch adds work
    assert r["ddp"]["world_size"] == 1 and r["ddp"]["backend"] == "gloo"
    assert r["features"]["panoptic"]["score_thresh"] == params.PanopticParams().score_thresh
    assert "GSHN / GAT-only step time" in proc.stdout


@pytest.mark.parametrize(("name", "tflops"), [
    ("NVIDIA H200", 989.4), ("NVIDIA H100 80GB HBM3", 989.4), ("NVIDIA H100 PCIe", 756.0),
    ("NVIDIA A100-SXM4-80GB", 312.0), ("NVIDIA A10", 125.0), ("NVIDIA L4", 121.0), ("NVIDIA L40S", 362.0)])
def test_device_peak_matches_whole_words(name: str, tflops: float) -> None:
    peak, source = gpu.device_peak(name, None)
    assert peak == pytest.approx(tflops * 1e12) and source.startswith("table")


def test_unknown_device_has_no_peak_unless_given() -> None:
    peak, reason = gpu.device_peak("Tesla V100-SXM2-16GB", None)
    assert peak is None and "--peak-tflops" in reason
    assert gpu.device_peak("Tesla V100-SXM2-16GB", 125.0) == (125e12, "--peak-tflops")


class _Linear(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(64, 32, bias=False)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"loss": self.fc(x).square().mean()}


def test_flops_and_mfu_of_a_training_step() -> None:
    model, x = _Linear(), torch.randn(16, 64, requires_grad=False)
    row = gpu.measure_training(model, x, 16, [OptimGroup("main", list(model.parameters()))], torch.device("cpu"),
                               "fp32", steps=2, warmup=0, peak=1e9)
    assert row["flops_per_step"] == 2 * (2 * 16 * 64 * 32)      # forward mm + the weight-gradient mm (x needs none)
    step_s = row["step_ms"] / 1e3
    assert row["mfu"] == pytest.approx(row["flops_per_step"] / step_s / 1e9)
    assert row["samples_per_s"] == pytest.approx(16 / step_s)


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
def test_cpu_peak_memory_restarts_at_reset() -> None:
    cpu = torch.device("cpu")
    assert gpu.reset_peak(cpu)              # the peak so far is this process's history (other tests), not ours
    # a mapping of its own: malloc could serve 64 MiB from memory already resident, and keep it after a free
    block = mmap.mmap(-1, 64 * 2**20)
    block.write(b"\1" * len(block))          # 64 MiB resident
    high = gpu.peak_mib(cpu)
    block.close()
    assert gpu.reset_peak(cpu)
    assert gpu.peak_mib(cpu) < high - 32


def test_paper_shape_is_the_paper_overlay() -> None:
    full = overlay.merged(overlay.load(REPO / "params-paper.yaml"), params.read_yaml(REPO / "params.yaml"))
    shape = gpu.SHAPES["paper"]
    assert (shape.model, shape.backbone, shape.image, shape.batch) == (
        full["model"]["size"], full["features"]["backbone"], full["segment"]["image_size"],
        full["pretrain"]["batch_size"])
    assert (shape.K, shape.L) == (full["features"]["max_nodes"], params.ModelParams().max_text_len)
    assert (shape.candidates, shape.itm_batch, shape.itr_candidates, shape.vqa_batch) == (
        full["reorder"]["candidates"], full["reorder"]["batch_size"], full["evaluate"]["itr_candidates"],
        full["finetune"]["vqa"]["batch_size"])
    for s in gpu.SHAPES.values():
        assert ResNetTrunk(s.backbone, "layer3").channels == s.channels


@pytest.mark.parametrize(("argv", "message"), [
    (["--device", "cpu", "--size", "paper"], "would take hours"),
    (["--device", "cpu", "--steps", "0"], "--steps"),
])
def test_bad_arguments_are_refused_with_one_line(argv: list[str], message: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        gpu.parse_args(argv)
    assert exit_.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present")
def test_cuda_without_a_device_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        gpu.parse_args(["--device", "cuda"])
    assert exit_.value.code == 2 and "no CUDA device" in capsys.readouterr().err
