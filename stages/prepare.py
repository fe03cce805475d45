"""Stage `prepare`: a dataset's own format -> canonical tables + image refs under data/prepared/<dataset>/.

Outputs: images/ (copied or generated images; custom data and the real datasets are referenced in
place), gt/ (scenes ground-truth panoptic masks), <table>.parquet for images, captions, vqa, ve, nlvr2,
rejects.parquet, counts.json (given / accepted / rejected per table; always reconciles).
The folder is built under a temporary name and swapped in whole, so a killed run leaves
the previous output (or none) in place.
"""
from __future__ import annotations

import logging
from pathlib import Path

from stages.common import params, paths
from stages.common.cli import DATASET, StageError, progress_enabled, run_stage
from storage import validate
from storage.adapters import cocoqa, custom, easy_vqa, gqa, karpathy, nlvr2, scenes, snli_ve, vg, vqacp_v2, vqav2
from storage.adapters.base import Prepared
from storage.atomic import atomic_dir, clean_temporaries, write_json
from storage.containment import real_roots
from storage.tables import TABLES, table_path, write_table

log = logging.getLogger("stages.prepare")
# Real datasets in their official formats: prepare.<name> holds the adapter's keyword arguments.
OFFICIAL = {"vg": vg, "vqav2": vqav2, "vqacp_v2": vqacp_v2, "gqa": gqa, "cocoqa": cocoqa, "snli_ve": snli_ve,
            "nlvr2": nlvr2}


def build(dataset: str, cfg: params.PrepareParams, out: Path) -> Prepared:
    """Run the dataset's adapter into folder `out`."""
    progress = progress_enabled()
    if dataset == "scenes":
        s = cfg.scenes
        return scenes.generate(out, seed=s.seed, image_size=s.image_size, splits=dict(s.splits),
                               captions_per_image=s.captions_per_image, questions_per_image=s.questions_per_image,
                               ve_per_image=s.ve_per_image, nlvr2_per_image=s.nlvr2_per_image,
                               max_things=s.max_things, progress=progress)
    if dataset == "easy_vqa":
        return easy_vqa.build(out, val_fraction=cfg.easy_vqa.val_fraction, seed=cfg.easy_vqa.seed, progress=progress)
    if dataset == "custom":
        c = cfg.custom
        return custom.build(c.root, c.annotations, val_fraction=c.val_fraction, seed=c.seed)
    if dataset in ("coco", "flickr30k"):
        return karpathy.build(dataset, **getattr(cfg, dataset).model_dump(), progress=progress)
    if dataset in OFFICIAL:
        return OFFICIAL[dataset].build(**getattr(cfg, dataset).model_dump(), progress=progress)
    raise StageError(f"unknown dataset {dataset!r}; known: {', '.join(params.DATASETS)}")


def _relative_paths(rows: list[dict], out: Path) -> None:
    """Store paths of images inside the output folder relative to it (the artifact can move)."""
    for row in rows:
        p = Path(row["path"])
        if p.is_absolute() and p.is_relative_to(out.resolve()):
            row["path"] = str(p.relative_to(out.resolve()))
        elif not p.is_absolute() and p.parts[: len(out.parts)] == out.parts:
            row["path"] = str(p.relative_to(out))


def run(dataset: str) -> dict[str, dict[str, int]]:
    cfg = params.load("prepare")
    if dataset not in params.datasets():
        raise StageError(f"dataset {dataset!r} is not listed in params.yaml `datasets`")
    final = paths.prepared(dataset)
    clean_temporaries(final.parent)
    with atomic_dir(final) as out:
        prep = build(dataset, cfg, out)
        prep.rejects.source = f"prepare:{dataset}"
        for r in prep.rejects.rows:
            r["source"] = prep.rejects.source
        _relative_paths(prep.images, out)
        roots = prep.image_roots or real_roots(out)   # generated images live in the output folder
        images = validate.check_images(prep.images, out, roots, cfg.min_side, prep.rejects, progress_enabled())
        tables = validate.check_rows(prep, {r["image_id"] for r in images})
        tables["images"] = images
        accepted = {name: write_table(table_path(out, name), name, tables.get(name, []))
                    for name in TABLES if name != "rejects"}
        counts = validate.reconcile(prep.given, accepted | prep.accepted_extra, prep.rejects)
        prep.rejects.write(table_path(out, "rejects"))
        write_json(out / "counts.json", counts)
    for name, c in counts.items():
        log.info("%s %-8s given %6d  accepted %6d  rejected %5d", dataset, name, c["given"], c["accepted"],
                 c["rejected"])
    if len(prep.rejects):
        log.warning("%s: %d rejects (%s); see %s", dataset, len(prep.rejects), prep.rejects.summary(),
                    table_path(final, "rejects"))
    if not images:
        raise StageError(f"{dataset}: no usable images (all {len(prep.images)} rejected); "
                         f"see {table_path(final, 'rejects')}")
    if cfg.strict and len(prep.rejects):
        raise StageError(f"{dataset}: {len(prep.rejects)} rejects and prepare.strict is true; "
                         f"see {table_path(final, 'rejects')}")
    return counts


def main(argv: list[str] | None = None) -> None:
    run_stage("prepare", __doc__, run, argv, DATASET)


if __name__ == "__main__":
    main()
