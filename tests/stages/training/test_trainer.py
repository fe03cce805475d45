"""stages.training: training, lr schedules, validation and the kept epoch, exact resume after SIGKILL,
fingerprints, weights-only files, DDP."""
from __future__ import annotations

import csv
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from stages.training.metrics_log import LOSSES
from stages.training.trainer import (
    CHECKPOINT,
    CheckpointError,
    OptimGroup,
    TrainConfig,
    TrainError,
    Validation,
    fit,
    load_weights,
    lr_factor,
    step_seed,
)
from tests.conftest import REPO
from tests.stages.training import trainer_toy as toy

SCRIPT = Path(toy.__file__)
EPOCHS = 4


def _rows(out: Path, name: str = "losses") -> list[dict[str, str]]:
    with open(out / f"plots/{name}.tsv") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def _equal_states(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """The toy is tiny: on 2 cores one thread is ~10x faster (and the scripts run with one too)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One in-process run of the toy: (out_dir, model, initial state, metrics)."""
    out = tmp_path_factory.mktemp("trained") / "run"
    model, groups, plan, collate = toy.build()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    metrics = fit(model, groups, plan, collate, toy.config(epochs=EPOCHS), out, progress=False, fingerprint="fp1")
    return out, model, before, metrics


def test_trains_frozen_group_stays_and_lr_follows_schedule(trained):
    out, model, before, metrics = trained
    rows = _rows(out)
    steps = [int(r["step"]) for r in rows]
    total = EPOCHS * toy.N_SAMPLES // toy.BATCH
    assert steps == list(range(1, total + 1)) and metrics["steps"] == total and metrics["samples"] == total * 16

    first = float(rows[0]["loss"])
    assert metrics["loss"] < 0.5 * first, (first, metrics["loss"])
    assert set(metrics) >= {"loss", "mae", "epochs", "wall_time_s", "samples_per_s", "world_size"}
    assert json.loads((out / "metrics.json").read_text()) == metrics
    # metrics.json = means over the last epoch of the per-step values in losses.tsv (log_every=1)
    last = [float(r["loss"]) for r in rows[-16:]]
    assert metrics["loss"] == pytest.approx(sum(last) / 16, rel=1e-6)

    state = model.state_dict()
    for k in ("embed.weight", "embed.bias"):
        assert torch.equal(state[k], before[k]) and not model.get_parameter(k).requires_grad
    assert not torch.equal(state["body.0.weight"], before["body.0.weight"])
    assert not torch.equal(state["head.weight"], before["head.weight"])

    assert "lr/embed" not in rows[0]
    warmup = round(0.2 * total)
    for name, base in (("body", 3e-3), ("head", 1e-2)):
        lrs = [float(r[f"lr/{name}"]) for r in rows]
        assert all(a < b for a, b in zip(lrs[:warmup - 1], lrs[1:warmup])), "warm-up is not rising"
        assert lrs[warmup - 1] == pytest.approx(base) and max(lrs) == pytest.approx(base)
        assert all(a >= b for a, b in zip(lrs[warmup:], lrs[warmup + 1:])), "decay is not falling"
        assert lrs[-1] == pytest.approx(0.05 * base)
        assert lrs == pytest.approx([base * lr_factor(s, total, 0.2, 0.05) for s in range(total)], rel=1e-6)


def test_lr_factor_linear_and_no_warmup():
    assert [lr_factor(s, 5, 0.0, 0.0, "linear") for s in range(5)] == pytest.approx([1, 0.75, 0.5, 0.25, 0])
    assert [lr_factor(s, 4, 0.5, 0.1) for s in range(4)] == pytest.approx([0.5, 1.0, 1.0, 0.1])
    assert step_seed(1, 2, 3) == step_seed(1, 2, 3) != step_seed(1, 2, 4)


def test_checkpoint_files_are_weights_only(trained):
    out, model, _, _ = trained
    ckpt = out / CHECKPOINT
    names = sorted(p.name for p in ckpt.iterdir())
    assert names == ["model.pt", "optim-body.pt", "optim-head.pt", "rng.pt", "sched-body.pt", "sched-head.pt",
                     "state.json"]
    for p in ckpt.glob("*.pt"):
        assert torch.load(p, map_location="cpu", weights_only=True) is not None, p
    optim = torch.load(ckpt / "optim-body.pt", weights_only=True)
    assert optim["state"] and "exp_avg" in optim["state"][0]
    assert isinstance(torch.load(ckpt / "rng.pt", weights_only=True)["torch_cpu"], torch.Tensor)
    state = json.loads((ckpt / "state.json").read_text())
    assert state["fingerprint"] == "fp1" and state["state"]["step"] == state["total_steps"] == 64
    assert _equal_states(load_weights(out / "model.pt"), model.state_dict())
    assert _equal_states(load_weights(ckpt / "model.pt"), model.state_dict())


def test_load_weights_errors(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_weights(tmp_path / "nope.pt")
    (tmp_path / "bad.pt").write_bytes(b"not a zip file at all")
    with pytest.raises(CheckpointError, match="not a readable"):
        load_weights(tmp_path / "bad.pt")


def test_fingerprint_mismatch_starts_fresh_and_match_resumes(trained, tmp_path, caplog):
    src, _, _, metrics = trained
    out = tmp_path / "run"
    shutil.copytree(src, out)
    caplog.set_level(logging.INFO, logger="stages.training.trainer")

    # same fingerprint, finished run: nothing is retrained, outputs rewritten from the checkpoint
    model, groups, plan, collate = toy.build()
    again = fit(model, groups, plan, collate, toy.config(epochs=EPOCHS), out, progress=False, fingerprint="fp1")
    assert "resuming from" in caplog.text and "step 64 of 64" in caplog.text
    assert {k: v for k, v in again.items() if k != "samples_per_s"} == \
        {k: v for k, v in metrics.items() if k != "samples_per_s"}
    assert _equal_states(load_weights(out / "model.pt"), load_weights(src / "model.pt"))

    # another fingerprint: fresh start, with the reason in the log; a 1-epoch run replaces everything
    caplog.clear()
    model, groups, plan, collate = toy.build()
    fresh = fit(model, groups, plan, collate, toy.config(epochs=1), out, progress=False, fingerprint="fp2")
    assert "starting fresh" in caplog.text and "fingerprint differs" in caplog.text
    assert fresh["steps"] == 16 and [int(r["step"]) for r in _rows(out)] == list(range(1, 17))
    assert json.loads((out / CHECKPOINT / "state.json").read_text())["fingerprint"] == "fp2"

    # same fingerprint, other config (epochs): also fresh
    caplog.clear()
    model, groups, plan, collate = toy.build()
    fit(model, groups, plan, collate, toy.config(epochs=2), out, progress=False, fingerprint="fp2")
    assert "starting fresh" in caplog.text and "another training config" in caplog.text


def test_checkpoint_without_its_training_log_starts_fresh(trained, tmp_path, caplog):
    """A checkpoint without its losses.tsv (DVC restored the one and not the other while the log was an uncached
    output): resuming would end with no training log, so the run starts fresh and writes a whole one."""
    src, _, _, _ = trained
    out = tmp_path / "run"
    shutil.copytree(src, out)
    (out / LOSSES).unlink()
    caplog.set_level(logging.INFO, logger="stages.training.trainer")
    model, groups, plan, collate = toy.build()
    fit(model, groups, plan, collate, toy.config(epochs=EPOCHS), out, progress=False, fingerprint="fp1")
    assert "starting fresh" in caplog.text and "training log plots/losses.tsv is missing" in caplog.text
    assert [int(r["step"]) for r in _rows(out)] == [int(r["step"]) for r in _rows(src)]


def test_checkpoint_recovered_from_interrupted_swap(trained, tmp_path, caplog):
    """A kill between atomic_dir's two renames leaves the previous checkpoint as .tmp-checkpoint.old."""
    src, _, _, _ = trained
    out = tmp_path / "run"
    shutil.copytree(src, out)
    os.replace(out / CHECKPOINT, out / ".tmp-checkpoint.old")
    (out / ".tmp-checkpoint.abc123").mkdir()  # the half-swapped new one
    caplog.set_level(logging.INFO, logger="stages.training.trainer")
    model, groups, plan, collate = toy.build()
    fit(model, groups, plan, collate, toy.config(epochs=EPOCHS), out, progress=False, fingerprint="fp1")
    assert "resuming from" in caplog.text and "starting fresh" not in caplog.text
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint", "metrics.json", "model.pt", "plots"]


def test_validation_keeps_the_best_epoch_and_keep_last_needs_no_retraining(tmp_path, caplog):
    """Scores after every epoch (a scripted curve peaking at epoch 2): val.tsv, metrics.json and model.pt
    follow the best epoch; rerun with keep="last", the finished run writes the last epoch's weights
    without training again."""
    out, seen = tmp_path / "run", []
    curve = [0.2, 0.6, 0.4, 0.6]             # a tie keeps the earlier epoch

    def score(model):
        assert not model.training and not torch.is_grad_enabled()
        seen.append({k: v.clone() for k, v in model.state_dict().items()})
        return {"acc": curve[len(seen) - 1], "loss": 1.0 - curve[len(seen) - 1]}

    model, groups, plan, collate = toy.build()
    metrics = fit(model, groups, plan, collate, toy.config(epochs=EPOCHS), out, progress=False, fingerprint="v",
                  validation=Validation(score, "acc"))
    assert len(seen) == EPOCHS and not _equal_states(seen[1], seen[3])
    assert [(int(r["epoch"]), int(r["step"]), float(r["val_acc"])) for r in _rows(out, "val")] == \
        [(e + 1, 16 * (e + 1), a) for e, a in enumerate(curve)]
    assert (metrics["best_epoch"], metrics["kept_epoch"], metrics["val_acc"]) == (2, 2, 0.6)
    assert metrics["val_loss"] == pytest.approx(0.4) and metrics["steps"] == 64
    assert _equal_states(load_weights(out / "model.pt"), seen[1]) and _equal_states(model.state_dict(), seen[1])
    assert _equal_states(load_weights(out / CHECKPOINT / "best.pt"), seen[1])
    assert _equal_states(load_weights(out / CHECKPOINT / "model.pt"), seen[3])   # training goes on from the last

    caplog.set_level(logging.INFO, logger="stages.training.trainer")
    model, groups, plan, collate = toy.build()
    last = fit(model, groups, plan, collate, toy.config(epochs=EPOCHS), out, progress=False, fingerprint="v",
               validation=Validation(score, "acc", keep="last"))
    assert "step 64 of 64" in caplog.text and len(seen) == EPOCHS             # resumed, nothing scored again
    assert (last["best_epoch"], last["kept_epoch"], last["val_acc"]) == (2, 4, 0.6)
    assert _equal_states(load_weights(out / "model.pt"), seen[3])
    assert len(_rows(out, "val")) == EPOCHS


def test_validation_is_part_of_the_run_signature_and_its_output_is_checked(trained, tmp_path, caplog):
    src = trained[0]
    out = tmp_path / "run"
    shutil.copytree(src, out)
    caplog.set_level(logging.INFO, logger="stages.training.trainer")
    model, groups, plan, collate = toy.build()
    fit(model, groups, plan, collate, toy.config(epochs=1), out, progress=False, fingerprint="fp1",
        validation=toy.validation())
    assert "another training config" in caplog.text    # a checkpoint without validation history is not resumed
    assert len(_rows(out, "val")) == 1
    model, groups, plan, collate = toy.build()
    with pytest.raises(TrainError, match="must return a dict with 'acc'"):
        fit(model, groups, plan, collate, toy.config(epochs=1), tmp_path / "b", progress=False,
            validation=Validation(lambda m: {"loss": 1.0}, "acc"))
    with pytest.raises(TrainError, match="keep must be"):
        Validation(lambda m: {}, "acc", keep="first")


def test_bad_groups_and_outputs_are_refused(tmp_path):
    model, groups, plan, collate = toy.build()
    with pytest.raises(TrainError, match="in no group"):
        fit(model, groups[:2], plan, collate, toy.config(), tmp_path / "a", progress=False)
    dup = groups + [OptimGroup("again", groups[0].params[:1])]
    with pytest.raises(TrainError, match="in both groups"):
        fit(model, dup, plan, collate, toy.config(), tmp_path / "b", progress=False)
    with pytest.raises(TrainError, match="warmup_ratio"):
        TrainConfig(warmup_ratio=1.5)

    class NoLoss(toy.Toy):
        def forward(self, batch):
            return {"mae": super().forward(batch)["mae"]}

    torch.manual_seed(0)
    m = NoLoss()
    g = [OptimGroup("all", list(m.parameters()))]
    with pytest.raises(TrainError, match="'loss'"):
        fit(m, g, plan, collate, toy.config(), tmp_path / "c", progress=False)


def test_grad_clip_logs_grad_norm_and_nan_loss_stops(tmp_path):
    model, groups, plan, collate = toy.build()
    metrics = fit(model, groups, plan, collate, toy.config(epochs=1, grad_clip=0.5, log_every=4), tmp_path / "a",
                  progress=False)
    rows = _rows(tmp_path / "a")
    assert list(rows[0])[-1] == "grad_norm" and metrics["grad_norm"] > 0
    assert [int(r["step"]) for r in rows] == [4, 8, 12, 16]

    class Diverges(toy.Toy):
        calls = 0

        def forward(self, batch):
            out = super().forward(batch)
            Diverges.calls += 1
            return out | ({"loss": out["loss"] * float("nan")} if Diverges.calls == 5 else {})

    torch.manual_seed(0)
    m = Diverges()
    g = [OptimGroup("all", list(m.parameters()))]
    with pytest.raises(TrainError, match="loss is nan at epoch 1, step 5"):
        fit(m, g, plan, collate, toy.config(), tmp_path / "b", progress=False)
    assert all(torch.isfinite(p).all() for p in m.parameters())
    assert not (tmp_path / "b/model.pt").exists()


# ------------------------------------------------------------------------- subprocess tests

def _env() -> dict[str, str]:
    return os.environ | {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PROGRESS": "0"}


def _start(out: Path, *args: str) -> subprocess.Popen:
    cmd = [sys.executable, str(SCRIPT), "--out", str(out), "--epochs", "3", "--checkpoint-every", "1",
           "--log-every", "3", "--validate", *args]
    return subprocess.Popen(cmd, env=_env(), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(proc: subprocess.Popen, rc: int = 0) -> str:
    log, _ = proc.communicate(timeout=120)
    assert proc.returncode == rc, log
    return log


def _ckpt_step(out: Path) -> int:
    return json.loads((out / CHECKPOINT / "state.json").read_text())["state"]["step"]


def _resume_in_process(out: Path, **cfg) -> dict:
    model, groups, plan, collate = toy.build(seed=7)
    return fit(model, groups, plan, collate, toy.config(log_every=3, **cfg), out, progress=False, fingerprint="toy",
               validation=toy.validation())


@pytest.mark.slow
def test_killed_and_resumed_run_is_bit_identical(tmp_path, caplog):
    """With validation after every epoch (toy.validation: its best epoch is the first, so the kept weights
    must come from the checkpoint's best.pt)."""
    a, b = tmp_path / "a", tmp_path / "b"
    caplog.set_level(logging.INFO, logger="stages.training.trainer")

    # 1) b is killed while writing the checkpoint of step 16, the end of epoch 1 of 3 (16 steps each;
    #    steps 1-15 each wrote one checkpoint of 6 torch.save calls, so call 6 * 15 + 3 is the 3rd file
    #    of step 16's). Epoch 1 is validated and its row is in val.tsv, as step 16's is in losses.tsv;
    #    the checkpoint stays at step 15.
    leg1 = _start(b, "--kill", f"save:{6 * 15 + 3}")
    # meanwhile the uninterrupted reference (in this process, one thread like the script; checkpoints
    # only at epoch ends, which must not matter)
    _resume_in_process(a)
    _finish(leg1, -signal.SIGKILL)
    assert _ckpt_step(b) == 15
    assert list(b.glob(".tmp-checkpoint.*")), "the half-written checkpoint should be left under its temp name"
    assert int(_rows(b)[-1]["step"]) == 16 and [r["epoch"] for r in _rows(b, "val")] == ["1"]
    assert not (b / "model.pt").exists()

    # 2) resumed (epoch 1's validation row is dropped, then made again), killed in the middle of step 20
    #    (in collate: the 5th batch of this process); the checkpoints from step 16 on carry best.pt
    log = _finish(_start(b, "--kill", "collate:5"), -signal.SIGKILL)
    assert "resuming from" in log and "step 15 of 48" in log
    assert _ckpt_step(b) == 19 and (b / CHECKPOINT / "best.pt").is_file()

    # 3) resumed to the end
    caplog.clear()
    _resume_in_process(b, checkpoint_every_steps=1)
    assert "resuming from" in caplog.text and "step 19 of 48" in caplog.text

    assert _equal_states(load_weights(a / "model.pt"), load_weights(b / "model.pt"))
    for name in ("model.pt", "best.pt"):
        assert _equal_states(load_weights(a / CHECKPOINT / name), load_weights(b / CHECKPOINT / name)), name
    assert _equal_states(load_weights(b / "model.pt"), load_weights(b / CHECKPOINT / "best.pt"))
    assert not _equal_states(load_weights(b / "model.pt"), load_weights(b / CHECKPOINT / "model.pt"))
    for name in ("optim-body.pt", "optim-head.pt"):
        sa, sb = (torch.load(d / CHECKPOINT / name, weights_only=True)["state"] for d in (a, b))
        assert sa.keys() == sb.keys() and all(_equal_states(sa[i], sb[i]) for i in sa)
    steps = [int(r["step"]) for r in _rows(b)]
    assert len(steps) == len(set(steps)) and steps == sorted(steps) and steps[-1] == 48
    for name in ("losses", "val"):
        assert (a / f"plots/{name}.tsv").read_bytes() == (b / f"plots/{name}.tsv").read_bytes(), name
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (a, b))
    timing = ("wall_time_s", "samples_per_s", "val_wall_time_s")
    assert {k: v for k, v in ma.items() if k not in timing} == {k: v for k, v in mb.items() if k not in timing}
    assert ma["steps"] == 48 and ma["best_epoch"] == ma["kept_epoch"] == 1 and len(_rows(b, "val")) == 3
    assert not list(b.glob(".tmp-*"))


@pytest.mark.slow
def test_ddp_two_cpu_ranks(tmp_path):
    out, dump = tmp_path / "out", tmp_path / "dump"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(SCRIPT),
           "--out", str(out), "--epochs", "1", "--log-every", "2", "--checkpoint-every", "3", "--dump", str(dump),
           "--validate"]
    proc = subprocess.run(cmd, env=_env(), cwd=REPO, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    w0, w1 = torch.load(dump / "rank0.pt", weights_only=True), torch.load(dump / "rank1.pt", weights_only=True)
    assert _equal_states(w0, w1)
    assert _equal_states(w0, load_weights(out / "model.pt"))
    r0, r1 = (json.loads((dump / f"rank{r}-writes.json").read_text()) for r in (0, 1))
    assert r1["writes"] == [], r1["writes"][:5]
    assert any("model.pt" in w for w in r0["writes"])
    timing = ("wall_time_s", "samples_per_s", "val_wall_time_s")
    assert {k: v for k, v in r0["metrics"].items() if k not in timing} == \
        {k: v for k, v in r1["metrics"].items() if k not in timing}
    assert r0["metrics"]["best_epoch"] == 1 and [r["step"] for r in _rows(out, "val")] == ["8"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["steps"] == 8 and metrics["samples"] == toy.N_SAMPLES
    assert [int(r["step"]) for r in _rows(out)] == [2, 4, 6, 8]
    assert _ckpt_step(out) == 8
