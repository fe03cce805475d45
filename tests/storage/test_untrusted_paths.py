"""Image paths from annotation files are untrusted: each resolves inside its root (symlinks followed) or is a
reject naming the root; non-regular files and unusable names are rejects, never a hang or a traceback."""
import os
from pathlib import Path
from typing import Any

import pytest

from storage.images import ImageError, open_image
from tests.storage.official_layout import image, run, write_json, write_jsonl


def _custom(tmp_path: Path, lines: list[Any]) -> dict[str, str]:
    root = tmp_path / "root"
    image(root / "ok.png")
    return {"root": str(root), "annotations": str(write_jsonl(tmp_path / "ann.jsonl", lines))}


def test_paths_outside_the_root_are_rejected_naming_it(workspace, tmp_path):
    outside = image(tmp_path / "outside" / "x.png", seed=1)
    secret = tmp_path / "outside" / "secret.txt"
    secret.write_text("not for the pipeline")
    section = _custom(tmp_path, [
        {"image": "ok.png", "id": "ok", "captions": ["fine"]},
        {"image": "../outside/x.png", "id": "dotdot", "captions": ["escapes"]},
        {"image": str(outside), "id": "absolute"},
        {"image": "link.png", "id": "symlink"},
        {"image": "text.png", "id": "symlink-to-text"},
        {"image": "inner.png", "id": "inner-link"},
        {"image": "sub/../ok.png", "id": "inside-after-dotdot"},
    ])
    root = tmp_path / "root"
    (root / "link.png").symlink_to(outside)
    (root / "text.png").symlink_to(secret)
    (root / "inner.png").symlink_to(root / "ok.png")     # a link that stays inside is fine
    (root / "sub").mkdir()
    counts, t, why = run(workspace, "custom", section)
    assert {r["image_id"] for r in t["images"]} == {"ok", "inner-link", "inside-after-dotdot"}
    for item in ("dotdot", "absolute", "symlink", "symlink-to-text"):
        assert why[f"images:{item}"].startswith(f"outside the images root {root.resolve()}: "), why[f"images:{item}"]
    assert why["captions:dotdot-c0"] == "unknown or rejected image 'dotdot'"
    assert counts["lines"] == {"given": 7, "accepted": 7, "rejected": 0}


def test_official_paths_stay_inside_their_folders(workspace, tmp_path):
    """An annotation-controlled part of an official path (GQA's imageId) cannot leave `images`."""
    ann, imgs = tmp_path / "gqa", tmp_path / "gqa-images"
    image(imgs / "1.jpg")
    image(tmp_path / "elsewhere.jpg", seed=2)
    write_json(ann / "val_balanced_questions.json", {
        "q1": {"imageId": "1", "question": "what?", "answer": "cat"},
        "q2": {"imageId": "../elsewhere", "question": "where?", "answer": "dog"}})
    counts, t, why = run(workspace, "gqa", {"annotations": str(ann), "images": str(imgs), "splits": ["val"]})
    assert [r["question_id"] for r in t["vqa"]] == ["q1"]
    assert why["images:gqa-../elsewhere"].startswith(f"outside the images root {imgs.resolve()}")


def test_symlinked_official_subfolder_is_allowed(workspace, tmp_path):
    """The official subfolders themselves (coco's val2014/) may live elsewhere: code names them, not annotations."""
    ann, imgs, store = tmp_path / "vqav2", tmp_path / "coco", tmp_path / "store" / "val2014"
    image(store / "COCO_val2014_000000000002.jpg")
    imgs.mkdir()
    (imgs / "val2014").symlink_to(store)
    write_json(ann / "v2_OpenEnded_mscoco_val2014_questions.json",
               {"questions": [{"question_id": 1, "image_id": 2, "question": "what is it?"}]})
    write_json(ann / "v2_mscoco_val2014_annotations.json", {"annotations": [
        {"question_id": 1, "image_id": 2, "answer_type": "other", "answers": [{"answer": "cat"}] * 10}]})
    counts, t, _ = run(workspace, "vqav2", {"annotations": str(ann), "images": str(imgs), "splits": ["val2014"]})
    assert counts["images"] == {"given": 1, "accepted": 1, "rejected": 0}


def test_non_regular_files_and_long_names(workspace, tmp_path):
    long_name = "x" * 300 + ".png"
    section = _custom(tmp_path, [{"image": "ok.png", "id": "ok"}, {"image": "folder.png", "id": "dir"},
                                 {"image": "pipe.png", "id": "fifo"}, {"image": long_name, "id": "long"},
                                 {"image": "loop.png", "id": "loop"}])
    root = tmp_path / "root"
    (root / "folder.png").mkdir()
    os.mkfifo(root / "pipe.png")              # opening it for reading would block: it must never be opened so
    (root / "loop.png").symlink_to(root / "loop.png")
    counts, t, why = run(workspace, "custom", section)
    assert [r["image_id"] for r in t["images"]] == ["ok"]
    assert why["images:dir"].startswith("not a regular file (directory)")
    assert why["images:fifo"].startswith("not a regular file (FIFO)")
    assert why["images:long"].startswith("unreadable path (File name too long)")
    assert why["images:loop"].startswith("unreadable path (Too many levels of symbolic links)")


@pytest.mark.parametrize("kind", ["dir", "fifo"])
def test_open_image_refuses_non_regular_files(tmp_path, kind):
    path = tmp_path / "x.png"
    path.mkdir() if kind == "dir" else os.mkfifo(path)
    with pytest.raises(ImageError, match=r"not a regular file \((directory|FIFO)\)"):
        open_image(path)
