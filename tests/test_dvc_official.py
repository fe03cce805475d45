"""`dvc exp run -S` on a scratch copy of the project: real-dataset sections pointing at tiny fixtures in
the official layouts run prepare -> segment -> features through the DAG's `foreach`."""
import sys
from pathlib import Path

import pytest
import torch
import torchvision
import yaml

from storage.adapters.vqav2 import annotations_file, questions_file
from storage.shards import ShardReader
from storage.tables import read_table
from tests.conftest import copy_code, tiny_params
from tests.storage.official_layout import image, write_json, write_jsonl
from tests.test_dvc_pipeline import _sh


def _fixtures(root: Path) -> dict[str, Path]:
    write_jsonl(root / "nlvr2/dev.json", [{"identifier": "dev-1-0-0", "sentence": "two dogs", "label": "True"},
                                          {"identifier": "dev-1-0-1", "sentence": "one dog", "label": "False"}])
    for k in (0, 1):
        image(root / f"nlvr2-images/dev/dev-1-0-img{k}.png", seed=k)
    write_json(root / "vqav2" / questions_file("val2014"),
               {"questions": [{"question_id": 1, "image_id": 2, "question": "what is it?"}]})
    write_json(root / "vqav2" / annotations_file("val2014"), {"annotations": [
        {"question_id": 1, "image_id": 2, "answer_type": "other", "answers": [{"answer": "cat"}] * 10}]})
    write_json(root / "vqav2" / questions_file("test-dev2015"),
               {"questions": [{"question_id": 5, "image_id": 9, "question": "why?"}]})
    image(root / "coco/val2014/COCO_val2014_000000000002.jpg")
    image(root / "coco/test2015/COCO_test2015_000000000009.jpg", seed=3)
    return {"nlvr2": root / "nlvr2", "nlvr2_images": root / "nlvr2-images", "vqav2": root / "vqav2",
            "coco": root / "coco"}


@pytest.mark.slow
def test_exp_run_overrides_add_a_real_dataset(tmp_path):
    project, fx = tmp_path / "project", _fixtures(tmp_path / "fixtures")
    copy_code(project)
    # A trunk weight file of the user's own (as the papers' ImageNet file): nothing upstream of features to train.
    weights = project / "weights" / "resnet18.pth"
    weights.parent.mkdir()
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), weights)
    params = tiny_params({"datasets": ["nlvr2"], "features": {"weights": "weights/resnet18.pth"},
                          "prepare": {"nlvr2": {"annotations": str(fx["nlvr2"]), "images": str(fx["nlvr2_images"]),
                                                "splits": ["dev"]}}})
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    _sh(["git", "init", "-q"], project)
    _sh(["git", "add", "-A"], project)
    _sh(["git", "commit", "-qm", "init"], project)

    log = _sh([sys.executable, "-m", "dvc", "exp", "run", "-S", "datasets=[nlvr2,vqav2]",
               "-S", f"prepare.vqav2.annotations={fx['vqav2']}", "-S", f"prepare.vqav2.images={fx['coco']}",
               "-S", "prepare.vqav2.splits=[val2014,test-dev2015]", "features"], project)
    for ds in ("nlvr2", "vqav2"):
        for stage in ("prepare", "segment", "features"):
            assert f"Running stage '{stage}@{ds}'" in log
    vqa = read_table(project / "data/prepared/vqav2/vqa.parquet", "vqa").to_pylist()
    assert [(r["question_id"], r["split"], r["subset"], r["answers"]) for r in vqa] == [
        ("1", "val", None, ["cat"] * 10), ("5", "test", "test-dev2015", [])]
    pairs = read_table(project / "data/prepared/nlvr2/nlvr2.parquet", "nlvr2").to_pylist()
    assert [(r["pair_id"], r["label"]) for r in pairs] == [("dev-1-0-0", True), ("dev-1-0-1", False)]
    with ShardReader(project / "data/features/vqav2") as shards:
        assert sorted(shards.ids) == ["coco-2", "coco-9"]
    with ShardReader(project / "data/features/nlvr2") as shards:
        assert sorted(shards.ids) == ["nlvr2-dev-1-0-img0", "nlvr2-dev-1-0-img1"]
