"""GQA balanced questions (https://cs.stanford.edu/people/dorarad/gqa/download.html), in folder
`annotations`: {train,val,testdev}_balanced_questions.json, each a top-level object
{"<questionId>": {"imageId", "question", "answer", ...}}, streamed one question at a time.

Images: `<images>/<imageId>.jpg` (the release's images/ folder). Splits: train, val,
testdev -> test (subset "testdev"). Each question has one answer, stored as 10 identical
annotator answers so the VQA accuracy equals GQA's exact-match accuracy; the answer type
(yes/no, number, other) is inferred from the answer. `images` is the release's images/ folder itself
(pointing at its parent is a DatasetError naming it).
Ids: question "<questionId>", image "gqa-<imageId>".
"""
from __future__ import annotations

from tqdm import tqdm

from storage.adapters.base import Prepared
from storage.adapters.official import (
    Builder,
    image_folder,
    infer_answer_type,
    require,
    require_param,
    stream_json_pairs,
    text_problem,
)

URL = "https://cs.stanford.edu/people/dorarad/gqa/download.html"
SPLITS = ("train", "val", "testdev")
SPLIT = {"train": "train", "val": "val", "testdev": "test"}


def build(annotations: str | None, images: str | None, *, splits: list[str], progress: bool = True) -> Prepared:
    ann = require_param(annotations, "gqa", "annotations", "folder of the *_balanced_questions.json files")
    files = {s: require(ann / f"{s}_balanced_questions.json", f"{s}_balanced_questions.json", "gqa", URL,
                        "gqa.annotations") for s in splits}
    img_root = image_folder(images, "gqa", URL, "the release's images/ folder", named="images")
    b = Builder(img_root)
    for name in SPLITS:
        if name not in splits:
            continue
        split, subset = SPLIT[name], ("testdev" if name == "testdev" else None)
        for qid, rec in tqdm(stream_json_pairs(files[name]), desc=f"gqa {name}", unit="q",
                             disable=not progress, mininterval=1.0):
            with b.record("vqa", qid):
                problem = text_problem(rec, ("imageId", "question", "answer"))
                if problem is None and not all(isinstance(rec[f], str) for f in ("imageId", "question", "answer")):
                    problem = '"imageId", "question" and "answer" must be strings'
                if problem:
                    b.reject("vqa", qid, problem)
                    continue
                image_id = f"gqa-{rec['imageId']}"
                b.image(image_id, img_root / f"{rec['imageId']}.jpg", split, subset)
                b.row("vqa", {"question_id": qid, "image_id": image_id, "question": rec["question"],
                              "answers": [rec["answer"]] * 10, "answer_type": infer_answer_type([rec["answer"]]),
                              "split": split, "subset": subset})
    return b.done("gqa", ann)
