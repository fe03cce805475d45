"""Image-text samples for pretraining: captions joined to node shards, collated into model batches.

A sample is one image with its captions; each epoch pairs it with one of them, chosen by
(seed, epoch, sample), so an epoch costs one pass over the images and the captions rotate.
Captions whose image has no features (rejected upstream) are counted, never silently
dropped: `Samples.missing`.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import numpy as np
import torch

from models.gshn import PretrainBatch
from models.nodes import collate_nodes
from models.text import build_tokenizer, tokenize
from stages.common import paths
from stages.common.cli import StageError
from storage.shards import ShardReader, npy_load
from storage.tables import read_table, table_path

Spec = list[tuple[int, int]]   # a batch: (sample index, caption index) pairs


@dataclass
class Samples:
    image_ids: list[str] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)
    captions: list[list[str]] = field(default_factory=list)
    caption_ids: list[list[str]] = field(default_factory=list)   # parallel to `captions`
    missing: int = 0            # captions whose image has no node features

    def __len__(self) -> int:
        return len(self.image_ids)

    def subset(self, idx: list[int]) -> Samples:
        return Samples([self.image_ids[i] for i in idx], [self.datasets[i] for i in idx],
                       [self.captions[i] for i in idx], [self.caption_ids[i] for i in idx])


def load_samples(datasets: list[str], split: str) -> Samples:
    """Images of `split` that have node features, with their captions, across datasets."""
    out = Samples()
    for ds in datasets:
        with ShardReader(paths.features(ds)) as shards:
            have = set(shards.ids)
        by_image: dict[str, list[tuple[str, str]]] = {}
        for r in read_table(table_path(paths.prepared(ds), "captions"), "captions").to_pylist():
            if r["split"] != split:
                continue
            if r["image_id"] not in have:
                out.missing += 1
                continue
            by_image.setdefault(r["image_id"], []).append((r["caption_id"], r["text"]))
        for image_id, caps in by_image.items():
            out.image_ids.append(image_id), out.datasets.append(ds)
            out.captions.append([t for _, t in caps]), out.caption_ids.append([c for c, _ in caps])
    if not out.image_ids:
        raise StageError(f"no {split} image-text pairs in {datasets}: do these datasets have captions and features?")
    return out


def feature_meta(datasets: list[str]) -> tuple[int, int]:
    """(channels C, node slots K) of the node features; all datasets must agree."""
    metas = []
    for ds in datasets:
        path = paths.features_meta(ds)
        if not path.is_file():
            raise StageError(f"{path} not found: run `dvc repro features@{ds}` first")
        metas.append(json.loads(path.read_text()))
    shapes = {(m["channels"], m["max_nodes"]) for m in metas}
    if len(shapes) != 1:
        raise StageError(f"datasets {datasets} have node features of different shapes (C, K) {sorted(shapes)}")
    return shapes.pop()


def caption_choice(samples: Samples, seed: int, epoch: int, idx: list[int]) -> Spec:
    """Pair each sample with one of its captions, fixed by (seed, epoch)."""
    rng = np.random.default_rng([seed, epoch])
    pick = rng.integers(0, 1 << 30, len(samples))
    return [(i, int(pick[i] % len(samples.captions[i]))) for i in idx]


def random_plan(samples: Samples, batch_size: int, seed: int, epoch: int) -> list[Spec]:
    """Phase 1: a seeded shuffle per epoch cut into batches; a last batch of one joins the previous."""
    order = np.random.default_rng([seed, epoch, 1]).permutation(len(samples)).tolist()
    batches = [order[i: i + batch_size] for i in range(0, len(order), batch_size)]
    if len(batches) > 1 and len(batches[-1]) < 2:
        last = batches.pop()  # pop first: `batches[-2] += batches.pop()` would pick its target before the pop
        batches[-1] += last
    return [caption_choice(samples, seed, epoch, b) for b in batches]


def grouped_plan(samples: Samples, groups: list[list[int]], seed: int, epoch: int) -> list[Spec]:
    """Phase 2: the reordered groups, visited in a seeded order per epoch (members stay together)."""
    order = np.random.default_rng([seed, epoch, 2]).permutation(len(groups)).tolist()
    return [caption_choice(samples, seed, epoch, groups[g]) for g in order]


def normalise_caption(text: str) -> str:
    """Lower case, single spaces, no final full stop: two captions equal after this say the same thing."""
    return " ".join(text.lower().split()).rstrip(" .")


def stable_id(text: str) -> int:
    """A 63-bit id of `text`, the same in every process and stage: the ITC queue, which the weights carry from
    one stage to the next, compares the ids of its entries' images and captions with a batch's."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little") >> 1


class PairCollator:
    """A batch spec -> PretrainBatch (node shards read by image id, captions tokenised)."""

    def __init__(self, samples: Samples, K: int, max_text_len: int) -> None:
        self.samples, self.K, self.max_len = samples, K, max_text_len
        self.tokenizer = build_tokenizer()
        self._readers: dict[str, ShardReader] = {}

    def _reader(self, ds: str) -> ShardReader:
        if ds not in self._readers:
            self._readers[ds] = ShardReader(paths.features(ds))
        return self._readers[ds]

    def nodes(self, idx: list[int]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        out = []
        for i in idx:
            s = self._reader(self.samples.datasets[i]).get(self.samples.image_ids[i])
            out.append((npy_load(s["nodes.npy"]), npy_load(s["geom.npy"]), npy_load(s["edges.npy"])))
        return out

    def __call__(self, spec: Spec) -> PretrainBatch:
        texts = [self.samples.captions[i][j] for i, j in spec]
        ids, mask = tokenize(self.tokenizer, texts, self.max_len)
        # equal ids: the same caption text after normalisation (never each other's negative), the same image
        caption_ids = torch.tensor([stable_id(normalise_caption(t)) for t in texts])
        image_ids = torch.tensor([stable_id(f"{self.samples.datasets[i]}/{self.samples.image_ids[i]}") for i, _ in spec])
        return PretrainBatch(collate_nodes(self.nodes([i for i, _ in spec]), self.K), ids, mask, caption_ids, image_ids)

    def close(self) -> None:
        for r in self._readers.values():
            r.close()
        self._readers.clear()
