"""Downstream task samples (VQA, VE, NLVR2) joined to node shards, and their collation into TaskBatch.

A sample whose image has no node features (rejected upstream) is counted in `missing`, never
dropped silently; evaluation reports it beside the metric.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from models.downstream import IMAGES_PER_SAMPLE, TaskBatch
from models.nodes import NodeBatch, collate_nodes
from models.text import build_tokenizer, tokenize
from stages.common import paths
from stages.common.cli import StageError
from stages.evaluation.vqa_answers import soft_scores
from storage.shards import ShardReader, npy_load
from storage.tables import VE_LABELS, read_table, table_path

TABLE = {"vqa": "vqa", "ve": "ve", "nlvr2": "nlvr2"}


@dataclass
class TaskData:
    task: str
    dataset: str
    split: str
    ids: list[str] = field(default_factory=list)              # question_id / pair_id
    images: list[tuple[str, ...]] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    labels: list[Any] = field(default_factory=list)           # VQA: answer lists; VE: label id; NLVR2: 0/1
    answer_types: list[str] = field(default_factory=list)     # VQA only
    missing: int = 0                                          # samples whose image has no features
    given: int = 0                                            # labelled rows of the split in the table
    unlabelled: int = 0                                       # VQA rows without answers (left out when labelled)

    def __len__(self) -> int:
        return len(self.ids)


def _row(task: str, r: dict[str, Any]) -> tuple[str, tuple[str, ...], str, Any, str]:
    if task == "vqa":
        return r["question_id"], (r["image_id"],), r["question"], list(r["answers"]), r["answer_type"]
    if task == "ve":
        return r["pair_id"], (r["image_id"],), r["hypothesis"], VE_LABELS.index(r["label"]), ""
    return r["pair_id"], (r["left_image_id"], r["right_image_id"]), r["sentence"], int(r["label"]), ""


def load_task(task: str, dataset: str, split: str, labelled: bool = True) -> TaskData:
    """Rows of `split` whose images all have node features. An empty split is an error naming it.

    labelled=True also requires answers (VQA test questions of real benchmarks have none)."""
    if task not in TABLE:
        raise StageError(f"unknown task {task!r}; known: {sorted(TABLE)}")
    path = table_path(paths.prepared(dataset), TABLE[task])
    if not path.is_file():
        raise StageError(f"{path} not found: dataset {dataset!r} has no {task} table "
                         f"(run `dvc repro prepare@{dataset}`)")
    with ShardReader(paths.features(dataset)) as shards:
        have = set(shards.ids)
    out = TaskData(task, dataset, split)
    for r in read_table(path, TABLE[task]).to_pylist():
        if r["split"] != split:
            continue
        sid, images, text, label, atype = _row(task, r)
        if labelled and task == "vqa" and not label:
            out.unlabelled += 1
            continue
        out.given += 1
        if not all(i in have for i in images):
            out.missing += 1
            continue
        out.ids.append(sid), out.images.append(images), out.texts.append(text)
        out.labels.append(label), out.answer_types.append(atype)
    if not out.ids:
        why = f" ({out.missing} rows whose images have no features)" if out.missing else ""
        raise StageError(f"{dataset}: the {split} split of the {task} table is empty{why}; "
                         f"{task} needs {split} samples")
    return out


class TaskCollator:
    """Sample indices -> TaskBatch: texts tokenised, node shards read by image id, targets built.

    `vocab` (VQA) maps normalised answers to head outputs; `blind` skips the images."""

    def __init__(self, data: TaskData, K: int, max_text_len: int, vocab: dict[str, int] | None = None,
                 blind: bool = False) -> None:
        if data.task == "vqa" and not vocab:
            raise ValueError("VQA collation needs the answer vocabulary")
        self.data, self.K, self.max_len, self.vocab, self.blind = data, K, max_text_len, vocab, blind
        self.tokenizer = build_tokenizer()
        self._reader: ShardReader | None = None
        self._soft: dict[int, dict[int, float]] = {}   # sample -> VQA soft scores (normalising is slow)

    def _nodes(self, image_ids: list[str]) -> tuple[NodeBatch, torch.Tensor]:
        """Distinct images of `image_ids` as a NodeBatch padded to the most nodes among them (<= K),
        and each id's row in it."""
        if self._reader is None:
            self._reader = ShardReader(paths.features(self.data.dataset))
        distinct = list(dict.fromkeys(image_ids))
        out = []
        for image_id in distinct:
            s = self._reader.get(image_id)
            out.append((npy_load(s["nodes.npy"]), npy_load(s["geom.npy"]), npy_load(s["edges.npy"])))
        row = {image_id: r for r, image_id in enumerate(distinct)}
        K = min(self.K, max(n.shape[0] for n, _, _ in out))
        return collate_nodes(out, K), torch.tensor([row[i] for i in image_ids])

    def targets(self, idx: list[int]) -> torch.Tensor:
        if self.data.task != "vqa":
            return torch.tensor([self.data.labels[i] for i in idx], dtype=torch.long)
        scores = torch.zeros(len(idx), len(self.vocab))
        for b, i in enumerate(idx):
            if i not in self._soft:
                self._soft[i] = soft_scores(self.data.labels[i], self.vocab)
            for j, s in self._soft[i].items():
                scores[b, j] = s
        return scores

    def __call__(self, idx: list[int]) -> TaskBatch:
        ids, mask = tokenize(self.tokenizer, [self.data.texts[i] for i in idx], self.max_len)
        slots = [] if self.blind else [self._nodes([self.data.images[i][slot] for i in idx])
                                       for slot in range(IMAGES_PER_SAMPLE[self.data.task])]
        return TaskBatch(ids, mask, [n for n, _ in slots], [i for _, i in slots], self.targets(idx))

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None


def image_batches(data: TaskData, batch_size: int, seed: int | None, epoch: int = 0,
                  limit: int | None = None) -> list[list[int]]:
    """An epoch's batches: images in a seeded order (seed None: table order), each with all its
    samples, cut after a batch reaches `batch_size` samples and holds at least 2 images (so one
    visual pass serves every question of an image; batch norms need 2). `limit` keeps only the
    first images whose samples add up to about that many. A last batch with fewer than 2 images
    joins the previous one."""
    by_image: dict[str, list[int]] = {}
    for i, images in enumerate(data.images):
        by_image.setdefault(images[0], []).append(i)
    keys = list(by_image)
    order = range(len(keys)) if seed is None else np.random.default_rng([seed, epoch, 3]).permutation(len(keys))
    batches: list[list[int]] = [[]]
    images_in_last, taken = 0, 0
    for k in order:
        if limit is not None and taken >= limit:
            break
        members = by_image[keys[k]]
        if len(batches[-1]) >= batch_size and images_in_last >= 2:
            batches.append([])
            images_in_last = 0
        batches[-1] += members
        images_in_last += 1
        taken += len(members)
    if len(batches) > 1 and images_in_last < 2:
        last = batches.pop()
        batches[-1] += last
    return batches
