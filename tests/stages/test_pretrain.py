"""pretrain_warmup -> reorder -> pretrain on a tiny workspace: phases, SNN freezing, outputs, resume."""
import csv
import json
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from stages import features, prepare, pretrain, reorder, segment
from stages.training.trainer import load_weights
from tests.conftest import REPO

TINY = {"prepare": {"scenes": {"splits": {"train": 16, "val": 6, "test": 2}}},
        "pretrain": {"batch_size": 4, "heldout": 6, "warmup": {"epochs": 1}, "main": {"epochs": 2}},
        "reorder": {"candidates": 8, "batch_size": 8},
        "model": {"T": 2, "M": 32}}
WAIT_S = 300  # for the killed run to reach its 5th checkpoint; the whole stage takes far less


pytestmark = pytest.mark.usefixtures("one_thread")


def _features(workspace, overrides=None):
    workspace(TINY | (overrides or {}))
    prepare.run("scenes"), segment.run("scenes"), features.run("scenes")


def _step(state_json) -> int:
    """Steps done by the latest checkpoint (0 while none; the folder may be mid-swap)."""
    try:
        return json.loads(state_json.read_text())["state"]["step"]
    except (FileNotFoundError, json.JSONDecodeError):
        return 0


def _steps(path) -> list[int]:
    with open(path) as fh:
        return [int(r["step"]) for r in csv.DictReader(fh, delimiter="\t")]


def _snn(state: dict) -> dict:
    """SNN parameters (weights, tdBN affine), not buffers such as running statistics."""
    return {k: v for k, v in state.items()
            if ".snn." in k and not k.rsplit(".", 1)[-1].startswith(("running_", "num_"))}


@pytest.mark.slow
def test_two_phases(workspace, tmp_path):
    _features(workspace)
    torch.manual_seed(0)
    warm = pretrain.run("warmup")
    out1 = tmp_path / "data/checkpoints/pretrain_warmup"
    assert {"itc", "itm", "mlm", "itc_r1_i2t", "itm_acc"} <= set(warm) and "stl" not in warm
    assert json.loads((out1 / "eval.json").read_text())["heldout_pairs"] == 6
    assert (out1 / "plots/losses.tsv").read_text().startswith("step\t")

    # phase 1 leaves the SNN's parameters exactly as initialised (tdBN running statistics may adapt)
    from stages.common import model_factory, params
    from stages.data.pairs import feature_meta
    torch.manual_seed(0)
    init = model_factory.build_model(params.load("model"), *feature_meta(["scenes"]), 1).state_dict()
    w1 = load_weights(out1 / "model.pt")
    assert _snn(w1) and all(torch.equal(w1[k], init[k]) for k in _snn(w1))
    assert any(not torch.equal(w1[k], init[k]) for k in w1 if k.startswith("itm."))  # the rest trains

    reorder.run()
    main = pretrain.run("main")
    assert {"stl", "itc", "itm", "mlm", "energy/snn_pj", "energy/ann_pj"} <= set(main)
    headline = json.loads((tmp_path / "metrics/pretrain.json").read_text())
    assert headline["seconds_per_epoch"] > 0 and headline["peak_rss_mib"] > 0
    w2 = load_weights(tmp_path / "data/checkpoints/pretrain/model.pt")
    assert any(not torch.equal(w2[k], w1[k]) for k in _snn(w1))  # phase 2 trains the SNN

    # the git-tracked copies of the logs: one step axis, main's steps after the warm-up's
    assert _steps(tmp_path / "plots/pretrain_warmup.tsv") == _steps(out1 / "plots/losses.tsv")
    assert _steps(out1 / "plots/losses.tsv")[-1] == warm["steps"]
    main_steps = _steps(tmp_path / "data/checkpoints/pretrain/plots/losses.tsv")
    assert _steps(tmp_path / "plots/pretrain.tsv") == [s + warm["steps"] for s in main_steps]


def test_headline_has_the_loops_speed_and_peak_memory(workspace, tmp_path):
    _features(workspace)
    warm = pretrain.run("warmup")
    headline = json.loads((tmp_path / "metrics/pretrain_warmup.json").read_text())
    for key in ("seconds_per_epoch", "peak_rss_mib"):
        assert 0 < headline[key] < math.inf and headline[key] == warm[key]
    assert headline["seconds_per_epoch"] == warm["wall_time_s"] / warm["epochs"]
    assert "peak_cuda_mib" not in headline      # CPU run
    assert json.loads((tmp_path / "data/checkpoints/pretrain_warmup/eval.json").read_text())["peak_rss_mib"] > 0


def test_phase2_needs_warmup(workspace):
    _features(workspace)
    with pytest.raises(Exception, match="run `dvc repro pretrain_warmup` first"):
        pretrain.run("main")


def test_ash_preset_trains(workspace, tmp_path):
    _features(workspace, {"model": {"preset": "ash", "T": 2, "M": 32}, "pretrain": {"batch_size": 4, "heldout": 6,
                          "warmup": {"epochs": 1}, "main": {"epochs": 1}}})
    warm = pretrain.run("warmup")
    assert "stl" not in warm and warm["mvm"] > 0  # the frozen SNN still fires, so MVM has targets


@pytest.mark.slow
def test_killed_pretrain_resumes_to_identical_weights(workspace, tmp_path):
    _features(workspace, {"pretrain": {"batch_size": 4, "heldout": 6, "warmup": {"epochs": 3},
                                       "checkpoint_every_steps": 1}})
    env = os.environ | {"PYTHONPATH": str(REPO), "PROGRESS": "0", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "stages.pretrain", "--phase", "warmup"]
    state = tmp_path / "data/checkpoints/pretrain_warmup/checkpoint/state.json"
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + WAIT_S
    while _step(state) < 5:
        assert proc.poll() is None, proc.stdout.read()
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"no checkpoint at step >= 5 in {state} after {WAIT_S} s; log:\n{proc.communicate()[0]}")
        time.sleep(0.02)  # short: the run must still be mid-way when it is killed
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    resumed = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "resum" in resumed.stdout + resumed.stderr
    w_resumed = load_weights(tmp_path / "data/checkpoints/pretrain_warmup/model.pt")

    shutil.rmtree(tmp_path / "data/checkpoints/pretrain_warmup")
    clean = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert clean.returncode == 0, clean.stderr
    w_clean = load_weights(tmp_path / "data/checkpoints/pretrain_warmup/model.pt")
    assert w_resumed.keys() == w_clean.keys()
    assert all(torch.equal(w_resumed[k], w_clean[k]) for k in w_clean)


class Killed(Exception):
    pass


def test_interrupted_pretrain_with_an_itc_queue_resumes_to_the_same_queue_and_weights(workspace, tmp_path,
                                                                                       monkeypatch):
    """In process: a run stopped after its 3rd step (mid-epoch, a checkpoint every step) and resumed ends with the
    weights, momentum encoders and queue of an uninterrupted run; the queue (6 slots, 4 pairs a step) wraps."""
    _features(workspace, {"model": {"preset": "ash", "itc_queue": 6, "T": 2, "M": 32},
                          "pretrain": {"batch_size": 4, "heldout": 6, "warmup": {"epochs": 2},
                                       "checkpoint_every_steps": 1}})
    out = tmp_path / "data/checkpoints/pretrain_warmup"
    real_step, calls = pretrain.trainer._train_step, []

    def stop_at_4th(*args):
        calls.append(1)
        if len(calls) == 4:
            raise Killed
        return real_step(*args)

    monkeypatch.setattr(pretrain.trainer, "_train_step", stop_at_4th)
    with pytest.raises(Killed):
        pretrain.run("warmup")
    assert _step(out / "checkpoint/state.json") == 3
    monkeypatch.setattr(pretrain.trainer, "_train_step", real_step)
    pretrain.run("warmup")
    resumed = load_weights(out / "model.pt")
    shutil.rmtree(out)
    pretrain.run("warmup")
    clean = load_weights(out / "model.pt")
    assert int(clean["itc.queue.count"]) == 6 and any(k.startswith("momentum.") for k in clean)
    assert resumed.keys() == clean.keys() and all(torch.equal(resumed[k], clean[k]) for k in clean)


def test_code_change_never_resumes_an_old_checkpoint(workspace, monkeypatch, caplog):
    _features(workspace)
    pretrain.run("warmup")
    monkeypatch.setattr(pretrain, "code_digest", lambda *_: "other code")
    caplog.set_level(logging.INFO, logger="stages.training.trainer")
    pretrain.run("warmup")
    assert "starting fresh" in caplog.text
