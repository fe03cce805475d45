"""stages.studies.catalog: the tables' ids, rows and columns hang together, and every row's overrides apply to
params.yaml and pass the params schema and the model's knob check."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from stages.common import params, paths
from stages.common.model_factory import knobs
from stages.studies.catalog import TABLES, VIT_WEIGHTS, table
from stages.studies.plan import parse_override
from stages.studies.tables import Row, Table

REPO = Path(__file__).resolve().parents[3]
IDS = ("gshn-table2", "gshn-table3", "gshn-table4", "gshn-table5", "gshn-table6", "gshn-table7", "ash-table9",
       "ash-table10", "ash-table11", "ash-table12", "ash-table13", "ash-table14", "control")
# GSHN prints different numbers for its SNN model in Tables V and VII (snn_only in both).
PAPER_DISAGREES = {"SNN"}
ROWS = [(t.id, r) for t in TABLES for r in t.rows]
METRICS = {f"scenes.{k}" for k in ("vqa_acc", "vqa_yes_no", "vqa_number", "vqa_other", "ve_acc", "nlvr2_acc",
                                   "nlvr2_consistency", "i2t_r1", "t2i_r1", "rsum")} | {
    "pretrain:seconds_per_epoch", "pretrain:peak_rss_mib", "pretrain:mlm", "pretrain:mvm", "pretrain:itm"}


def _in_params_yaml(data: dict[str, Any], key: str) -> bool:
    node: Any = data
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def test_ids_are_the_papers_tables_in_order_then_the_control():
    assert tuple(t.id for t in TABLES) == IDS


@pytest.mark.parametrize("t", TABLES, ids=lambda t: t.id)
def test_rows_columns_and_reference_hang_together(t: Table):
    names, labels = [r.name for r in t.rows], [c.label for c in t.columns]
    assert len(names) >= 2 and len(set(names)) == len(names)
    assert len(set(labels)) == len(labels) and t.reference in names
    assert all(set(r.paper) <= set(labels) for r in t.rows)
    assert {c.metric for c in t.columns} <= METRICS


def test_speed_tables_measure_time_and_memory():
    assert [t.id for t in TABLES if t.speed] == ["gshn-table7", "ash-table12"]
    for t in TABLES:
        better = {c.metric: c.better for c in t.columns}
        speed = (better.get("pretrain:seconds_per_epoch"), better.get("pretrain:peak_rss_mib"))
        assert speed == (("lower", "lower") if t.speed else (None, None)), t.id


@pytest.mark.parametrize(("tid", "row"), ROWS, ids=[f"{tid}:{r.name}" for tid, r in ROWS])
def test_overrides_are_canonical(tid: str, row: Row):
    keys = [parse_override(o)[0] for o in row.overrides]
    assert all("=" in o for o in row.overrides) and keys == sorted(set(keys))


@pytest.mark.parametrize(("tid", "row"), ROWS, ids=[f"{tid}:{r.name}" for tid, r in ROWS])
def test_overrides_apply_to_params_yaml_and_validate(tid: str, row: Row):
    data = params.read_yaml(REPO / "params.yaml")
    for key, value in map(parse_override, row.overrides):
        assert _in_params_yaml(data, key), key
        params.set_key(data, key, value)
    params.validate_all(data)
    knobs(params.validate("model", data["model"]))      # a combination that cannot act raises
    reorder = data["reorder"]
    assert reorder["candidates"] >= 2 * (reorder["retrieve_number"] or data["pretrain"]["batch_size"])


@pytest.mark.parametrize(("tid", "row"), ROWS, ids=[f"{tid}:{r.name}" for tid, r in ROWS])
def test_a_new_backbone_reads_its_own_weights(tid: str, row: Row):
    set_ = dict(map(parse_override, row.overrides))
    if set_.get("features.backbone") == "vit_b_16":        # the backbone stage trains no ViT: the user's file
        assert set_["features.weights"] == VIT_WEIGHTS
    elif "features.backbone" in set_:
        assert set_["features.weights"] == str(paths.backbone_weights(set_["features.backbone"]))


def test_a_row_in_several_tables_has_the_same_paper_numbers():
    seen: dict[tuple[str, tuple[str, ...], str], float | None] = {}
    disagree = set()
    for _, r in ROWS:
        for label, value in r.paper.items():
            if seen.setdefault((r.name, r.overrides, label), value) != value:
                disagree.add(r.name)
    assert disagree == PAPER_DISAGREES


def test_an_unknown_id_is_a_key_error_naming_the_valid_ones():
    assert table("ash-table14") is TABLES[11]
    with pytest.raises(KeyError) as err:
        table("nope")
    assert "'nope'" in str(err.value) and all(i in str(err.value) for i in IDS)
