"""Benchmark: rows/s and peak memory of the official-format adapters on fixtures of realistic size.

It writes, in a temporary folder, annotation files in each dataset's official layout (no image
files: the adapters only build paths; `prepare` decodes images afterwards, which
bench/features.py already measures), then runs each adapter in its own process and measures:

* build: the adapter's `build` (parse + canonical rows), wall clock -> rows/s;
* rows: the table-side rest of `prepare` on those rows: the row checks against the accepted
  image ids (storage.validate.check_rows) and the Arrow tables (storage.tables.to_table);
* peak RSS of that process (VmHWM of /proc/self/status: reset by exec, so the parent's size
  never leaks into it), beside its RSS once the code is imported, and the annotation files'
  size on disk;
* for comparison, the peak RSS of a plain `json.load` of the largest VQAv2 and VG files, which
  is what an adapter that reads the whole document would start from.

Run from the repository root:

    python bench/adapters.py [--scale 1.0] [--only vqav2 ...] [--out bench/results/adapters.json] [--keep]

--only measures some adapters. --scale multiplies every size (1.0: VQAv2 500k questions + annotations,
VG 1M regions on 20k images, GQA 300k, COCO Karpathy 123k images x 5 captions, SNLI-VE 500k, NLVR2 86k, COCO-QA 79k).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SIZES = {"vqav2": 500_000, "vg_images": 20_000, "vg_regions": 50, "gqa": 300_000, "coco": 123_287,
         "snli_ve": 500_000, "nlvr2": 86_000, "cocoqa": 78_736}
WORDS = ("man woman dog cat bus car table chair plate pizza red blue green white black large small wooden "
         "left right top under near holding wearing sitting standing street field kitchen sky tree").split()
CHUNK = 10_000


def _phrase(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def _json_list(fh: TextIO, items: Iterable[Any]) -> None:
    """Write a JSON list item by item (the fixture is never whole in memory)."""
    fh.write("[")
    buf: list[str] = []
    first = True
    for item in items:
        buf.append(json.dumps(item))
        if len(buf) == CHUNK:
            fh.write(("" if first else ", ") + ", ".join(buf))
            buf, first = [], False
    if buf:
        fh.write(("" if first else ", ") + ", ".join(buf))
    fh.write("]")


def _wrapped(path: Path, key: str, items: Iterable[Any], extra: dict[str, Any]) -> None:
    """{key: [items], **extra} written as a stream."""
    with open(path, "w") as fh:
        fh.write("{" + json.dumps(key) + ": ")
        _json_list(fh, items)
        fh.write("".join(f", {json.dumps(k)}: {json.dumps(v)}" for k, v in extra.items()) + "}")


def make_vqav2(root: Path, n: int) -> None:
    rng = random.Random(0)
    ann = root / "vqav2"
    ann.mkdir(parents=True)
    qs = ({"image_id": i // 5, "question": f"what is the {_phrase(rng, 3)}?", "question_id": i} for i in range(n))
    _wrapped(ann / "v2_OpenEnded_mscoco_train2014_questions.json", "questions", qs,
             {"info": {}, "task_type": "Open-Ended", "data_type": "mscoco", "license": {}, "data_subtype": "train2014"})

    def anns() -> Iterator[dict[str, Any]]:
        for i in range(n):
            answer = rng.choice(WORDS)
            yield {"question_type": "what is the", "multiple_choice_answer": answer, "image_id": i // 5,
                   "answer_type": "other", "question_id": i,
                   "answers": [{"answer": answer if k < 7 else rng.choice(WORDS), "answer_confidence": "yes",
                                "answer_id": k + 1} for k in range(10)]}
    _wrapped(ann / "v2_mscoco_train2014_annotations.json", "annotations", anns(),
             {"info": {}, "license": {}, "data_subtype": "train2014"})


def make_vg(root: Path, images: int, regions: int) -> None:
    rng = random.Random(1)
    (root / "vg").mkdir(parents=True)

    def recs() -> Iterator[dict[str, Any]]:
        rid = 0
        for i in range(1, images + 1):
            out = []
            for _ in range(regions):
                rid += 1
                out.append({"region_id": rid, "width": 40, "height": 30, "image_id": i,
                            "phrase": _phrase(rng, rng.randint(2, 6)), "y": 10, "x": 20})
            yield {"regions": out, "id": i}
    with open(root / "vg" / "region_descriptions.json", "w") as fh:
        _json_list(fh, recs())


def make_gqa(root: Path, n: int) -> None:
    rng = random.Random(2)
    (root / "gqa").mkdir(parents=True)
    with open(root / "gqa" / "train_balanced_questions.json", "w") as fh:
        fh.write("{")
        for i in range(n):
            answer = rng.choice(("yes", "no", *WORDS))
            rec = {"semantic": [{"operation": "select", "dependencies": [], "argument": "cat (1)"}], "entailed": [],
                   "equivalent": [str(i)], "question": f"Is the {_phrase(rng, 3)}?",
                   "imageId": str(2_300_000 + i // 10),
                   "isBalanced": True, "groups": {"global": None, "local": "10c"}, "answer": answer,
                   "semanticStr": "select: cat", "annotations": {"answer": {}, "question": {}, "fullAnswer": {}},
                   "types": {"detailed": "existC", "semantic": "obj", "structural": "verify"},
                   "fullAnswer": f"The answer is {answer}."}
            fh.write(("" if i == 0 else ", ") + json.dumps(str(20_000_000 + i)) + ": " + json.dumps(rec))
        fh.write("}")


def make_coco(root: Path, n: int) -> None:
    rng = random.Random(3)
    (root / "karpathy").mkdir(parents=True)

    def recs() -> Iterator[dict[str, Any]]:
        for i in range(n):
            split = "test" if i < 5000 else "val" if i < 10000 else "restval" if i < 40504 else "train"
            folder = "val2014" if i < 40504 else "train2014"
            sents = []
            for k in range(5):
                raw = f"A {_phrase(rng, rng.randint(5, 10))}."
                sents.append({"tokens": raw.lower().strip(".").split(), "raw": raw, "imgid": i, "sentid": 5 * i + k})
            yield {"filepath": folder, "sentids": [s["sentid"] for s in sents], "filename":
                   f"COCO_{folder}_{i:012d}.jpg", "imgid": i, "split": split, "sentences": sents, "cocoid": i}
    _wrapped(root / "karpathy" / "dataset_coco.json", "images", recs(), {"dataset": "coco"})


def make_snli_ve(root: Path, n: int) -> None:
    rng = random.Random(4)
    (root / "snli_ve").mkdir(parents=True)
    with open(root / "snli_ve" / "snli_ve_train.jsonl", "w") as fh:
        for i in range(n):
            img = str(1_000_000 + i // 15)
            label = rng.choice(("entailment", "neutral", "contradiction"))
            fh.write(json.dumps({"Flickr30K_ID": img, "gold_label": label,
                                 "sentence1": f"A {_phrase(rng, 8)}.", "sentence2": f"A {_phrase(rng, 5)}.",
                                 "pairID": f"{img}.jpg#{i % 5}r{i}n", "captionID": f"{img}.jpg#{i % 5}",
                                 "annotator_labels": ["neutral"]}) + "\n")


def make_nlvr2(root: Path, n: int) -> None:
    rng = random.Random(5)
    (root / "nlvr2").mkdir(parents=True)
    with open(root / "nlvr2" / "train.json", "w") as fh:
        for i in range(n):
            ident = f"train-{i // 4}-{i % 4 // 2}-{i % 2}"
            fh.write(json.dumps({"validation": {}, "sentence": f"There are {_phrase(rng, 6)}.", "left_url": "http://x",
                                 "writer": "w", "label": rng.choice(("True", "False")), "right_url": "http://y",
                                 "synset": "dog", "query": "dogs", "identifier": ident, "extra_validations": {},
                                 "directory": (i // 4) % 100}) + "\n")


def make_cocoqa(root: Path, n: int) -> None:
    rng = random.Random(6)
    folder = root / "cocoqa" / "train"
    folder.mkdir(parents=True)
    rows = [(f"what is the {_phrase(rng, 4)}", rng.choice(WORDS), str(rng.randint(1, 80_000)), str(rng.randint(0, 3)))
            for _ in range(n)]
    for k, name in enumerate(("questions", "answers", "img_ids", "types")):
        (folder / f"{name}.txt").write_text("\n".join(r[k] for r in rows) + "\n")


def make_all(root: Path, scale: float) -> dict[str, int]:
    n = {k: max(1, int(v * scale)) for k, v in SIZES.items()}
    n["vg_regions"] = SIZES["vg_regions"]
    makers: list[tuple[str, Callable[[], None]]] = [
        ("vqav2", lambda: make_vqav2(root, n["vqav2"])), ("vg", lambda: make_vg(root, n["vg_images"], n["vg_regions"])),
        ("gqa", lambda: make_gqa(root, n["gqa"])), ("coco", lambda: make_coco(root, n["coco"])),
        ("snli_ve", lambda: make_snli_ve(root, n["snli_ve"])), ("nlvr2", lambda: make_nlvr2(root, n["nlvr2"])),
        ("cocoqa", lambda: make_cocoqa(root, n["cocoqa"]))]
    for name, make in makers:
        t = time.perf_counter()
        make()
        print(f"fixture {name}: {time.perf_counter() - t:.1f} s", flush=True)
    (root / "images").mkdir()
    return n


# ---- child: one adapter, measured in a fresh process ------------------------------------------
def _vm_hwm_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _build(name: str, root: Path) -> Any:
    from storage.adapters import cocoqa, gqa, karpathy, nlvr2, snli_ve, vg, vqav2
    img = str(root / "images")
    calls = {
        "vqav2": lambda: vqav2.build(str(root / "vqav2"), img, splits=["train2014"], progress=False),
        "vg": lambda: vg.build(str(root / "vg"), img, val_fraction=0.01, seed=0, exclude_coco=None, progress=False),
        "gqa": lambda: gqa.build(str(root / "gqa"), img, splits=["train"], progress=False),
        "coco": lambda: karpathy.build("coco", str(root / "karpathy"), img, progress=False),
        "snli_ve": lambda: snli_ve.build(str(root / "snli_ve"), img, splits=["train"], progress=False),
        "nlvr2": lambda: nlvr2.build(str(root / "nlvr2"), img, splits=["train"], progress=False),
        "cocoqa": lambda: cocoqa.build(str(root / "cocoqa"), img, splits=["train"], val_fraction=0.1, seed=0,
                                       progress=False),
    }
    return calls[name]()


def child(name: str, root: Path) -> dict[str, Any]:
    if name.startswith("json.load:"):
        t = time.perf_counter()
        with open(root / name.split(":", 1)[1], "rb") as fh:
            json.load(fh)
        return {"seconds": time.perf_counter() - t, "peak_rss_mib": _vm_hwm_mib()}
    from storage import validate
    from storage.adapters import cocoqa, gqa, karpathy, nlvr2, snli_ve, vg, vqav2  # noqa: F401 (imports not timed)
    from storage.tables import to_table
    before = _vm_hwm_mib()
    t0 = time.perf_counter()
    prep = _build(name, root)
    t1 = time.perf_counter()
    tables = validate.check_rows(prep, {r["image_id"] for r in prep.images})
    tables["images"] = prep.images
    arrow_rows = sum(to_table(t, rows).num_rows for t, rows in tables.items())
    t2 = time.perf_counter()
    rows = sum(len(r) for r in prep.tables().values())
    return {"rows": rows, "rejects": len(prep.rejects), "table_rows": arrow_rows,
            "build_s": t1 - t0, "rows_per_s": rows / (t1 - t0), "check_and_tables_s": t2 - t1,
            "peak_rss_mib": _vm_hwm_mib(), "rss_after_imports_mib": before}


# ---- parent ------------------------------------------------------------------------------------
def _size_mib(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--out", type=Path, default=REPO / "bench/results/adapters.json")
    ap.add_argument("--keep", action="store_true", help="keep the fixture folder")
    ap.add_argument("--only", nargs="+", choices=("vqav2", "vg", "gqa", "coco", "snli_ve", "nlvr2", "cocoqa"),
                    help="measure only these adapters (all fixtures are still written)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.root)))
        return

    root = Path(tempfile.mkdtemp(prefix="bench-adapters-"))
    try:
        sizes = make_all(root, args.scale)
        inputs = {"vqav2": "vqav2", "vg": "vg", "gqa": "gqa", "coco": "karpathy", "snli_ve": "snli_ve",
                  "nlvr2": "nlvr2", "cocoqa": "cocoqa"}
        inputs = {k: v for k, v in inputs.items() if not args.only or k in args.only}
        runs = [*inputs, "json.load:vqav2/v2_mscoco_train2014_annotations.json",
                "json.load:vg/region_descriptions.json"]
        results: dict[str, Any] = {}
        for name in runs:
            res = subprocess.run([sys.executable, __file__, "--child", name, "--root", str(root)],
                                 capture_output=True, text=True, check=True)
            results[name] = json.loads(res.stdout.strip().splitlines()[-1])
            src = inputs.get(name) or name.split(":", 1)[1]
            results[name]["input_mib"] = _size_mib(root / src)
            print(f"{name}: {results[name]}", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print(f"\n{'adapter':<8} {'input MiB':>9} {'rows':>9} {'build s':>8} {'rows/s':>9} {'checks+arrow s':>14} "
          f"{'peak RSS MiB':>12} {'(imports)':>9}")
    for name in inputs:
        r = results[name]
        print(f"{name:<8} {r['input_mib']:>9.0f} {r['rows']:>9d} {r['build_s']:>8.1f} {r['rows_per_s']:>9.0f} "
              f"{r['check_and_tables_s']:>14.1f} {r['peak_rss_mib']:>12.0f} {r['rss_after_imports_mib']:>9.0f}")
    for name in runs[len(inputs):]:
        r = results[name]
        print(f"{name}: {r['input_mib']:.0f} MiB file, {r['seconds']:.1f} s, peak RSS {r['peak_rss_mib']:.0f} MiB")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    from storage.atomic import write_json
    write_json(args.out, {"sizes": sizes, "results": results, "python": platform.python_version(),
                          "cpus": os.cpu_count(), "scale": args.scale})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
