"""stages.reorder: the stage end to end on a tiny workspace, its random-groups mode (pretrain.reorder: false),
read_groups."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from stages import features, prepare, pretrain, reorder, segment
from stages.common import params, paths
from stages.common.cli import StageError
from stages.common.model_factory import build_model
from stages.data import grouping
from stages.data.pairs import feature_meta, load_samples
from stages.evaluation import itm

# ------------------------------------------------------------------------------ the stage

OVERRIDES = {"pretrain": {"batch_size": 4}, "reorder": {"candidates": 8, "batch_size": 8}}


@pytest.fixture
def warm_workspace(workspace):
    """Tiny scenes features + a random-init phase-1 model saved as the warm checkpoint."""
    workspace(OVERRIDES)
    prepare.run("scenes"), segment.run("scenes"), features.run("scenes")
    C, K = feature_meta(["scenes"])
    torch.manual_seed(0)
    model = build_model(params.load("model"), C, K, 1)
    paths.pretrained_weights("warmup").parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), paths.pretrained_weights("warmup"))
    return workspace


def test_stage_end_to_end(warm_workspace):
    metrics = reorder.run()
    samples = load_samples(["scenes"], "train")
    N = len(samples)
    assert N == 24
    table = pq.read_table(paths.reorder_batches())
    assert table.schema.equals(grouping.SCHEMA)
    rows = table.to_pylist()
    ids = [r["sample_id"] for r in rows]
    assert sorted(ids) == sorted(samples.image_ids) and len(set(ids)) == N    # each train image once
    sizes = np.bincount([r["batch_id"] for r in rows]).tolist()
    assert sizes == [4] * 6
    for b in range(6):
        assert [r["position"] for r in rows if r["batch_id"] == b] == [0, 1, 2, 3]
    scores = np.array([r["itm_score"] for r in rows])
    assert np.isfinite(scores).all() and (scores >= 0).all() and (scores <= 1).all()

    saved = json.loads((paths.reorder_dir() / "metrics.json").read_text())
    assert saved == metrics
    assert metrics["samples"] == N and metrics["groups"] == 6 and metrics["candidates"] == 8
    assert 0 <= metrics["mean_itm_score"] <= 1 and 0 <= metrics["filled_by_itc"] <= 1
    # (a random-init model's ITC embeddings are nearly collapsed, so within- vs random-group
    # similarity is noise here; test_stage_groups_similar_samples checks it with planted embeddings)

    groups = grouping.read_groups(paths.reorder_batches(), samples)
    assert [[samples.image_ids[i] for i in g] for g in groups] == \
        [[r["sample_id"] for r in rows if r["batch_id"] == b] for b in range(6)]

    # deterministic: a rerun writes the same rows; retrieve_number overrides pretrain.batch_size
    first = paths.reorder_batches().read_bytes()
    reorder.run()
    assert paths.reorder_batches().read_bytes() == first
    warm_workspace(OVERRIDES | {"reorder": {"candidates": 10, "batch_size": 8, "retrieve_number": 5}})
    reorder.run()
    sizes = np.bincount(pq.read_table(paths.reorder_batches()).column("batch_id").to_numpy()).tolist()
    assert sizes == [5, 5, 5, 5, 4]


def test_stage_groups_similar_samples(warm_workspace, monkeypatch):
    """With embeddings that carry signal (3 planted clusters of 8; the real model still does the ITM
    re-ranking), the stage's groups are far more ITC-similar than random groups of the same sizes."""
    def planted(self):
        rng = np.random.default_rng(0)
        labels = np.arange(self.N) % 3
        centres = np.eye(3, 256, dtype=np.float32) * 4
        out = []
        for _ in range(2):
            e = centres[labels] + rng.normal(size=(self.N, 256)).astype(np.float32) * 0.1
            out.append(e / np.linalg.norm(e, axis=1, keepdims=True))
        return out[0], out[1]

    monkeypatch.setattr(itm.Scorer, "embed", planted)
    metrics = reorder.run()
    assert metrics["within_group_itc"] > metrics["random_group_itc"] + 0.3
    assert metrics["anchor_itc"] > metrics["random_anchor_itc"] + 0.3
    assert json.loads((paths.reorder_dir() / "metrics.json").read_text()) == metrics


def test_planted_itm_scores_decide_the_groups(warm_workspace, monkeypatch):
    """ITM scores that contradict ITC decide membership: each anchor's group is its best-ITM candidates,
    and permuting the scores changes the groups. The stored itm_score of every member equals a direct
    ITM forward of (member caption, anchor image)."""
    real_itm = itm.Scorer.itm

    def planted(table):
        def score(self, image, text, desc):
            return table[np.asarray(image), np.asarray(text)].astype(np.float32)
        return score

    groups = []
    for seed in (0, 1):
        table = np.random.default_rng(seed).random((24, 24))      # ITM scores unrelated to ITC: a permutation
        monkeypatch.setattr(itm.Scorer, "itm", planted(table))
        metrics = reorder.run()
        rows = pq.read_table(paths.reorder_batches()).to_pylist()
        groups.append({r["batch_id"]: [] for r in rows})
        for r in rows:
            groups[-1][r["batch_id"]].append(r["sample_id"])
        assert metrics["filled_by_itc"] <= 0.5
        stored = [r["itm_score"] for r in rows if r["position"] > 0]
        assert np.allclose(stored, [table[int(groups[-1][r["batch_id"]][0][-6:]), int(r["sample_id"][-6:])]
                                    for r in rows if r["position"] > 0], atol=1e-6)
    assert sorted(map(sorted, groups[0].values())) != sorted(map(sorted, groups[1].values()))

    monkeypatch.setattr(itm.Scorer, "itm", real_itm)
    reorder.run()
    samples = load_samples(["scenes"], "train")
    index = {s: i for i, s in enumerate(samples.image_ids)}
    rows = pq.read_table(paths.reorder_batches()).to_pylist()
    anchors = {r["batch_id"]: index[r["sample_id"]] for r in rows if r["position"] == 0}
    C, K = feature_meta(["scenes"])
    model = build_model(params.load("model"), C, K, 1)
    model.load_state_dict(torch.load(paths.pretrained_weights("warmup"), weights_only=True))
    scorer = itm.Scorer(model.eval(), samples, K, params.load("model").max_text_len, 8, torch.device("cpu"), False)
    with torch.inference_mode():
        again = scorer.itm(np.array([anchors[r["batch_id"]] for r in rows]),
                           np.array([index[r["sample_id"]] for r in rows]), "check")
    assert np.allclose([r["itm_score"] for r in rows], again, atol=1e-5)


def _groups() -> list[list[str]]:
    rows = pq.read_table(paths.reorder_batches()).to_pylist()
    return [[r["sample_id"] for r in rows if r["batch_id"] == b] for b in sorted({r["batch_id"] for r in rows})]


def test_reorder_off_writes_seeded_random_groups_of_the_same_sizes(warm_workspace, monkeypatch):
    """pretrain.reorder: false -> a seeded shuffle cut to the reordered groups' sizes and count, no model run, no
    ITC/ITM figures in the headline; the same seed gives the same groups, another seed others."""
    warm_workspace(OVERRIDES | {"reorder": {"candidates": 10, "batch_size": 8, "retrieve_number": 5}})
    reorder.run()
    reordered = _groups()
    warm_workspace(OVERRIDES | {"pretrain": {"reorder": False},
                                "reorder": {"candidates": 10, "batch_size": 8, "retrieve_number": 5}})
    monkeypatch.setattr(reorder, "Scorer", None)          # calling it (ITC or ITM scoring) would fail
    metrics = reorder.run()
    shuffled = _groups()
    assert [len(g) for g in shuffled] == [len(g) for g in reordered] == [5, 5, 5, 5, 4]
    assert shuffled != reordered
    samples = load_samples(["scenes"], "train")
    want = grouping.random_groups([5, 5, 5, 5, 4], len(samples), 0)
    assert shuffled == [[samples.image_ids[i] for i in g] for g in want]
    assert np.isnan(pq.read_table(paths.reorder_batches()).column("itm_score").to_numpy()).all()
    assert metrics["reordered"] == 0 and metrics["groups"] == 5 and "filled_by_itc" not in metrics
    assert json.loads(paths.headline("reorder").read_text()) == {"reordered": 0}

    first = paths.reorder_batches().read_bytes()
    reorder.run()
    assert paths.reorder_batches().read_bytes() == first
    warm_workspace(OVERRIDES | {"pretrain": {"reorder": False, "seed": 1},
                                "reorder": {"candidates": 10, "batch_size": 8, "retrieve_number": 5}})
    reorder.run()
    assert _groups() != shuffled and [len(g) for g in _groups()] == [5, 5, 5, 5, 4]


def test_pretrain_trains_on_the_random_groups_unchanged(warm_workspace, monkeypatch):
    """Phase 2 reads batches.parquet as it is: every epoch's batches are its groups, whatever wrote them."""
    warm_workspace(OVERRIDES | {"pretrain": {"reorder": False}})
    reorder.run()
    seen: list[list[list[int]]] = []

    def no_training(model, optim, plan, *args, **kwargs):
        seen.extend(plan(e) for e in range(2))
        raise RuntimeError("stop")

    monkeypatch.setattr(pretrain.trainer, "fit", no_training)
    with pytest.raises(RuntimeError, match="stop"):
        pretrain.run("main")
    samples = load_samples(["scenes"], "train")
    written = sorted(sorted(g) for g in _groups())
    for epoch in seen:
        assert sorted(sorted(samples.image_ids[i] for i, _ in spec) for spec in epoch) == written


def test_bad_reorder_flag_is_a_params_error(warm_workspace):
    warm_workspace(OVERRIDES | {"pretrain": {"reorder": "sometimes"}})
    with pytest.raises(params.ParamsError, match=r"pretrain\.reorder: Input should be a valid boolean"):
        reorder.run()


def test_too_few_candidates_for_the_group_size(warm_workspace):
    warm_workspace(OVERRIDES | {"reorder": {"candidates": 7, "batch_size": 8}})
    with pytest.raises(StageError, match="reorder.candidates=7 must be at least twice the group size 4"):
        reorder.run()


def test_read_groups_names_missing_and_unknown(warm_workspace):
    reorder.run()
    samples = load_samples(["scenes"], "train")
    fewer = samples.subset(list(range(1, len(samples))))
    with pytest.raises(StageError, match=f"unknown sample ids: {samples.image_ids[0]}"):
        grouping.read_groups(paths.reorder_batches(), fewer)
    more = samples.subset(list(range(len(samples))))
    more.image_ids.append("scenes-train-999999"), more.datasets.append("scenes"), more.captions.append(["x"])
    with pytest.raises(StageError, match="1 train samples missing: scenes-train-999999"):
        grouping.read_groups(paths.reorder_batches(), more)
    with pytest.raises(StageError, match="run `dvc repro reorder` first"):
        grouping.read_groups(Path("nowhere.parquet"), samples)


def test_unusable_warm_checkpoint(warm_workspace):
    paths.pretrained_weights("warmup").write_bytes(b"not a checkpoint")
    with pytest.raises(StageError, match="not a readable weights-only state dict"):
        reorder.run()
    torch.save({"visual.nope": torch.zeros(1)}, paths.pretrained_weights("warmup"))
    with pytest.raises(StageError, match="does not fit the model"):
        reorder.run()


def test_missing_warm_checkpoint(workspace):
    workspace(OVERRIDES)
    with pytest.raises(StageError, match=r"run `dvc repro pretrain_warmup` first"):
        reorder.run()


def test_cli_exits_2_with_one_line(workspace, caplog):
    workspace(OVERRIDES)
    with pytest.raises(SystemExit) as exit_info:
        reorder.main([])
    assert exit_info.value.code == 2
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and errors[0].startswith("reorder failed:") and "dvc repro pretrain_warmup" in errors[0]


# ------------------------------------------------------------------------- the shared ITM score

def test_itm_probability_cuts_shared_padding_only():
    """One ITM scorer for reorder and retrieval: padding every row shares is cut (text; node slots unless
    cut_nodes is off), and what lies in padded slots never matters."""
    torch.manual_seed(0)
    model = build_model(params.ModelParams(), 8, 12, 2).eval()
    d = model.transformer.cfg.d
    tokens, ids = torch.randn(5, 12, d), torch.randint(1000, 2000, (5, 40))
    node_mask = torch.arange(12)[None] < torch.tensor([3, 7, 5, 2, 6])[:, None]
    text_mask = (torch.arange(40)[None] < torch.tensor([6, 9, 4, 8, 5])[:, None]).long()
    with torch.inference_mode():
        cut = itm.itm_probability(model, ids, text_mask, tokens, node_mask)
        full = itm.itm_probability(model, ids, text_mask, tokens, node_mask, cut_nodes=False)
        direct = model.itm_logits(ids[:, :9], text_mask[:, :9], tokens[:, :7], node_mask[:, :7]).softmax(-1)[:, 1]
        uncut = model.itm_logits(ids[:, :9], text_mask[:, :9], tokens, node_mask).softmax(-1)[:, 1]
        noisy = itm.itm_probability(model, torch.where(text_mask.bool(), ids, 1500), text_mask,
                                    torch.where(node_mask[..., None], tokens, 9.0), node_mask)
        log_odds = itm.itm_log_odds(model, ids, text_mask, tokens, node_mask)   # retrieval's score
    assert torch.allclose(torch.sigmoid(log_odds), cut, atol=1e-6)
    assert torch.equal(cut, direct) and torch.equal(full, uncut)
    assert torch.allclose(cut, full, atol=1e-6) and torch.allclose(cut, noisy, atol=1e-6)
    assert cut.shape == (5,) and ((cut > 0) & (cut < 1)).all() and cut.std() > 0
