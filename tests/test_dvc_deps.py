"""`dvc repro` of the selections and `dvc status` on a scratch copy of the project: adding a dataset that no
consumer lists leaves their selections byte-identical and pretraining up to date; listing it in
`pretrain.datasets` changes pretraining's selection, which DVC then reports as a changed dep."""
import json
import sys
from pathlib import Path

import pytest
import torch
import torchvision
import yaml

from stages.common import paths
from tests.conftest import copy_code, rgb, save, tiny_params
from tests.test_dvc_pipeline import _changed_stages, _sh

CONSUMERS = ("pretrain", "vqa", "report")           # the other tasks' selections work as vqa's
SELECTS = [f"select@{c}" for c in CONSUMERS]


def _custom(root: Path) -> dict:
    """A user's folder of three captioned images and its prepare.custom section."""
    for i in range(3):
        save(root / "photos" / f"{i}.png", rgb(32, 32, seed=i))
    ann = root / "ann.jsonl"
    ann.write_text("".join(json.dumps({"image": f"{i}.png", "captions": [f"photo {i}"]}) + "\n" for i in range(3)))
    return {"root": str(root / "photos"), "annotations": str(ann)}


def _write(project: Path, params: dict) -> None:
    (project / "params.yaml").write_text(yaml.safe_dump(params))


def _dvc(project: Path, *args: str) -> str:
    return _sh([sys.executable, "-m", "dvc", *args], project)


def _selections(project: Path) -> dict[str, bytes]:
    return {c: (project / paths.selection(c)).read_bytes() for c in CONSUMERS}


@pytest.mark.slow
def test_adding_a_dataset_nothing_reads_leaves_pretraining_up_to_date(tmp_path):
    project = tmp_path / "project"
    copy_code(project)
    weights = project / "weights" / "resnet18.pth"     # the user's own trunk: no backbone stage to run
    weights.parent.mkdir()
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), weights)
    with open(project / ".gitignore", "a") as fh:
        fh.write("/weights/\n")
    params = tiny_params({"features": {"weights": "weights/resnet18.pth"}})
    _write(project, params)
    for cmd in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "init"]):
        _sh(["git", *cmd], project)
    _dvc(project, "repro", "pretrain_warmup", *SELECTS)
    assert "pretrain_warmup" not in _changed_stages(project)
    before = _selections(project)

    params["datasets"] = ["scenes", "custom"]
    params["prepare"]["custom"] |= _custom(tmp_path)
    _write(project, params)
    log = _dvc(project, "repro", *SELECTS)   # custom's stages and digest, then the selections
    for stage in ("features@custom", "digest@custom", *SELECTS):
        assert f"Running stage '{stage}'" in log, stage
    assert _selections(project) == before     # custom is in no consumer's lists: the same bytes
    assert "pretrain_warmup" not in _changed_stages(project)

    params["pretrain"]["datasets"] = ["scenes", "custom"]   # now pretraining reads it
    _write(project, params)
    log = _dvc(project, "repro", *SELECTS)
    assert "Running stage 'digest@" not in log                  # no dataset changed
    after = _selections(project)
    assert after["pretrain"] != before["pretrain"] and after["vqa"] == before["vqa"]
    out = _dvc(project, "status", "--json", "pretrain_warmup")
    [why] = json.loads(out[out.index("{"):])["pretrain_warmup"]      # besides params.yaml's `pretrain`
    assert why["changed deps"][str(paths.selection("pretrain"))] == "modified"
