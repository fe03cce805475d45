import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stages.common import params
from storage import maskcodec
from storage.adapters import scene_render, scene_text, scenes
from storage.tables import KEYS, VE_LABELS, to_table
from tests.storage import scene_audit as audit

SPLITS = {"train": 30, "val": 8, "test": 12}
SHAPES = {"circle", "square", "triangle", "star", "diamond", "cross"}
STUFF = {"sky", "grass", "water", "sand", "wall"}
PLURALS = {"circles": "circle", "squares": "square", "triangles": "triangle", "stars": "star",
           "diamonds": "diamond", "crosses": "cross"}
NUMBERS = {w: i for i, w in enumerate(("zero", "one", "two", "three", "four", "five", "six", "seven", "eight"))}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("scenes")
    return out, scenes.generate(out, seed=7, image_size=64, splits=SPLITS, nlvr2_per_image=4.0, progress=False)


def _gt(out: Path, image_id: str) -> tuple[np.ndarray, list[dict]]:
    ids = maskcodec.decode_png((out / "gt" / f"{image_id}.png").read_bytes())
    return ids, maskcodec.decode_segments((out / "gt" / f"{image_id}.json").read_bytes())


def _shape_counts(out: Path, image_id: str) -> Counter:
    return Counter(s["category"] for s in _gt(out, image_id)[1] if s["isthing"])


def _majority(answers: list[str]) -> str:
    return Counter(answers).most_common(1)[0][0]


def _files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def _rows(prep, out: Path) -> dict:
    tables = prep.tables()
    tables["images"] = [r | {"path": str(Path(r["path"]).relative_to(out))} for r in tables["images"]]
    return tables


def test_deterministic_by_seed(tmp_path):
    kw = dict(image_size=48, splits={"train": 6, "val": 2}, progress=False)
    a = scenes.generate(tmp_path / "a", seed=1, **kw)
    b = scenes.generate(tmp_path / "b", seed=1, **kw)
    c = scenes.generate(tmp_path / "c", seed=2, **kw)
    assert _rows(a, tmp_path / "a") == _rows(b, tmp_path / "b")
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    assert len(_files(tmp_path / "a")) == 8 * 3
    assert _rows(a, tmp_path / "a") != _rows(c, tmp_path / "c")
    assert _files(tmp_path / "a") != _files(tmp_path / "c")


def test_image_does_not_depend_on_split_size(tmp_path):
    scenes.generate(tmp_path / "few", seed=3, image_size=48, splits={"val": 2}, progress=False)
    scenes.generate(tmp_path / "many", seed=3, image_size=48, splits={"train": 4, "val": 5}, progress=False)
    few = _files(tmp_path / "few")
    many = _files(tmp_path / "many")
    assert few and all(many[name] == data for name, data in few.items())


def test_ground_truth_masks(data):
    out, prep = data
    for row in prep.images:
        ids, segments = _gt(out, row["image_id"])
        assert ids.shape == (64, 64) and ids.min() >= 1, "every pixel belongs to a segment"
        maskcodec.check_consistent(ids, segments)
        things = [s for s in segments if s["isthing"]]
        stuff = [s for s in segments if not s["isthing"]]
        assert 1 <= len(things) <= 5 and 1 <= len(stuff) <= 3
        assert {s["category"] for s in things} <= SHAPES
        assert {s["category"] for s in stuff} <= STUFF and all(s["isthing"] is False for s in stuff)
        assert all(s["size"] in scene_render.SIZES for s in things)
        assert all(s["color"] is None and s["size"] is None for s in stuff)
        pixels = np.asarray(Image.open(row["path"]), float)
        for s in things:  # the recorded colour is the one drawn
            mean = pixels[ids == s["id"]].mean(axis=0)
            assert s["color"] == min(scenes.COLORS, key=lambda c: np.abs(np.array(scenes.COLORS[c]) - mean).sum())
        with Image.open(row["path"]) as img:
            assert img.mode == "RGB" and img.size == (64, 64)


def test_tables_are_canonical_and_linked(data):
    _, prep = data
    image_split = {r["image_id"]: r["split"] for r in prep.images}
    for name, rows in prep.tables().items():
        to_table(name, rows)
        keys = [r[KEYS[name]] for r in rows]
        assert len(keys) == len(set(keys)), f"{name} ids not unique"
        assert prep.given[name] == len(rows)
        for r in rows:
            for col in ("image_id", "left_image_id", "right_image_id"):
                if col in r:
                    assert image_split[r[col]] == r["split"], f"{name}: {r}"
    assert "." not in "".join(image_split)
    assert Counter(image_split.values()) == SPLITS
    n = len(prep.images)
    assert (len(prep.captions), len(prep.vqa), len(prep.ve)) == (5 * n, 6 * n, 3 * n)
    assert len(prep.nlvr2) == 4 * n


def test_task_coverage_and_balance(data):
    _, prep = data
    assert all(len(r["answers"]) == 10 for r in prep.vqa)
    assert {r["answer_type"] for r in prep.vqa} == {"yes/no", "number", "other"}
    assert {r["label"] for r in prep.ve} == {"entailment", "neutral", "contradiction"}
    yes = Counter(_majority(r["answers"]) for r in prep.vqa if r["answer_type"] == "yes/no")
    assert 0.3 <= yes["yes"] / (yes["yes"] + yes["no"]) <= 0.7
    true = sum(r["label"] for r in prep.nlvr2) / len(prep.nlvr2)
    assert 0.35 <= true <= 0.65, true
    for image_id in {r["image_id"] for r in prep.captions}:
        texts = [r["text"] for r in prep.captions if r["image_id"] == image_id]
        assert len(set(texts)) > 1


def _things(out: Path, image_id: str) -> list[dict]:
    """Ground-truth things: shape, colour, size and the centroid (cx, cy) of their visible pixels."""
    ids, segments = _gt(out, image_id)
    yy, xx = np.indices(ids.shape)
    return [{"shape": s["category"], "color": s["color"], "size": s["size"],
             "cx": float(xx[ids == s["id"]].mean()), "cy": float(yy[ids == s["id"]].mean())}
            for s in segments if s["isthing"]]


def _cell(thing: dict, bins: int, n: int) -> tuple[int, int]:
    return min(bins - 1, int(thing["cy"] * bins / n)), min(bins - 1, int(thing["cx"] * bins / n))


PLACES = ({phrase: (cell, 3) for cell, phrase in scene_text.GRID3.items()}
          | {f"{r} {c}": ((i, j), 5) for i, r in enumerate(scene_text.GRID5_ROWS)
             for j, c in enumerate(scene_text.GRID5_COLS)} | {"in the very centre": ((2, 2), 5)})
_DESC = r"(a|an|one|two|three|four|five) (small|large) (\w+) (\w+)"


def test_captions_match_ground_truth(data):
    """Counts, described things and their places agree with the ground-truth segments."""
    out, prep = data
    checked = Counter()
    for r in prep.captions:
        things = _things(out, r["image_id"])
        if m := re.match(r"(\w+) (?:shape|object)s? [^:]*: ", r["text"]):
            assert NUMBERS[m[1].lower()] == len(things), (r, things)
            checked["count"] += 1
        for m in re.finditer(rf"\b{_DESC}\b", r["text"].lower()):
            n = 1 if m[1] in ("a", "an") else NUMBERS[m[1]]
            desc = (m[2], m[3], PLURALS.get(m[4], m[4]))
            assert sum((t["size"], t["color"], t["shape"]) == desc for t in things) >= n, (r, things)
            checked["thing"] += 1
        for m in re.finditer(rf"\b{_DESC} ({'|'.join(PLACES)})\b", r["text"].lower()):
            cell, bins = PLACES[m[5]]
            assert any((t["size"], t["color"], t["shape"]) == m.group(2, 3, 4) and _cell(t, bins, 64) == cell
                       for t in things), (r, things)
            checked[f"place {bins}"] += 1
    assert checked["count"] >= 10 and checked["thing"] >= 100 and checked["place 3"] >= 5 and checked["place 5"] >= 5


def test_count_answers_match_ground_truth(data):
    out, prep = data
    checked = 0
    for r in prep.vqa:
        counts = _shape_counts(out, r["image_id"])
        if r["question"] == "how many objects are there?":
            assert _majority(r["answers"]) == str(sum(counts.values()))
            checked += 1
        elif m := re.fullmatch(r"how many (\w+) are there\?", r["question"]):
            assert r["answer_type"] == "number"
            assert _majority(r["answers"]) == str(counts[PLURALS[m[1]]]), (r, counts)
            checked += 1
        elif m := re.fullmatch(r"how many (\w+) objects are there\?", r["question"]):
            colors = Counter(t["color"] for t in _things(out, r["image_id"]))
            assert _majority(r["answers"]) == str(colors[m[1]]), (r, colors)
            checked += 1
    assert checked >= 20


def _attr(word: str) -> str:
    return "shape" if word in SHAPES else "size" if word in scene_render.SIZES else "color"


def _relation_label(things: list[dict], ref: str, a: str, rel: str, b: str, n: int) -> str | None:
    """Label of 'the <a> is <rel> the <b>' read for every pair of things named a and b (None: borderline only)."""
    def offset(x: dict, r: str, y: dict) -> float:
        d = {"left of": y["cx"] - x["cx"], "right of": x["cx"] - y["cx"], "above": y["cy"] - x["cy"],
             "below": x["cy"] - y["cy"]}[r]
        return d / (scene_render.RELATION_MARGIN * n)
    pairs = [(x, y) for x in things if x[ref] == a for y in things if y[ref] == b]
    true = sum(offset(x, rel, y) > 1 for x, y in pairs)
    false = sum(offset(x, scene_text.OPPOSITE[rel], y) > 1 for x, y in pairs)
    if true and false:
        return "neutral"
    return "entailment" if true == len(pairs) else "contradiction" if false == len(pairs) else None


def _ve_label(things: list[dict], stuff: set[str], text: str, n: int) -> str | None:
    """The label a VE hypothesis has on the ground truth, or None for a form this test does not read."""
    if m := re.fullmatch(r"The (\w+)(?: object)? is (left of|right of|above|below) the (\w+)(?: object)?\.", text):
        return _relation_label(things, _attr(m[1]), m[1], m[2], m[3], n)
    if m := re.fullmatch(r"The (\w+)(?: object)? is (?:a )?(\w+)\.", text):
        said = {t[_attr(m[2])] for t in things if t[_attr(m[1])] == m[1]}
        return "contradiction" if m[2] not in said else "entailment" if len(said) == 1 else "neutral"
    if m := re.fullmatch(r"There is an? (\w+) (\w+) (\w+)\.", text):
        present = any((t["size"], t["color"], t["shape"]) == m.group(1, 2, 3) for t in things)
        return "entailment" if present else "contradiction"
    if m := re.fullmatch(r"The picture shows (?:the |a )?(\w+)\.", text):
        return "entailment" if m[1] in stuff else "contradiction"
    if m := re.fullmatch(r"There are more (\w+) than (\w+)\.", text):
        more = sum(t["shape"] == PLURALS[m[1]] for t in things) > sum(t["shape"] == PLURALS[m[2]] for t in things)
        return "entailment" if more else "contradiction"
    return None


def test_ve_labels_match_ground_truth(data):
    """Every hypothesis form's label, neutral included, recomputed from the ground-truth segments."""
    out, prep = data
    checked = Counter()
    for r in prep.ve:
        stuff = {s["category"] for s in _gt(out, r["image_id"])[1] if not s["isthing"]}
        label = _ve_label(_things(out, r["image_id"]), stuff, r["hypothesis"], 64)
        assert label == r["label"], r
        checked[label] += 1
    assert sum(checked.values()) == len(prep.ve) and min(checked[k] for k in VE_LABELS) >= 5, checked


def test_nlvr2_labels_match_ground_truth(data):
    out, prep = data
    checked = 0
    for r in prep.nlvr2:
        left, right = (_things(out, r[k]) for k in ("left_image_id", "right_image_id"))
        if m := re.fullmatch(r"Both images contain an? (\w+) object\.", r["sentence"]):
            truth = all(any(t["color"] == m[1] for t in side) for side in (left, right))
        elif m := re.fullmatch(r"Neither image contains an? (\w+)\.", r["sentence"]):
            truth = not any(t["shape"] == m[1] for t in left + right)
        elif m := re.fullmatch(r"The left image has an? (\w+) (\w+) but the right image does not\.", r["sentence"]):
            truth = [any((t["color"], t["shape"]) == m.group(1, 2) for t in side) for side in (left, right)] == [1, 0]
        elif r["sentence"] == "The right image contains more objects than the left image.":
            truth = len(right) > len(left)
        else:
            continue
        assert truth == r["label"], r
        checked += 1
    assert checked >= 50


def test_pair_statement_balances_a_rarely_true_statement(monkeypatch):
    """'The left image has a red circle but the right image does not' is seldom true of a random pair; drawing
    pairs until the truth matches a coin makes it true half of the time, and the truth is that of the pair."""
    scene_list = [scene_render.make_scene(np.random.default_rng([5, i]), 48, 5)[3] for i in range(60)]
    monkeypatch.setattr(scene_text, "PAIR_STATEMENTS", (scene_text._nl_only_left,))
    random_pairs = 0
    for k in range(300):
        rng = np.random.default_rng([6, k])
        _, true_of = scene_text._nl_only_left(rng)
        i, j = rng.choice(len(scene_list), 2, replace=False)
        random_pairs += true_of(scene_list[i], scene_list[j])
    assert random_pairs / 300 < 0.25
    rows = [scene_text.pair_statement(scene_list, np.random.default_rng([5, k])) for k in range(300)]
    assert 0.4 <= sum(truth for *_, truth in rows) / 300 <= 0.6
    for i, j, sentence, truth in rows:
        m = re.fullmatch(r"The left image has an? (\w+) (\w+) but the right image does not\.", sentence)
        left, right = (scene_list[k].count(color=m[1], shape=m[2]) for k in (i, j))
        assert truth == (left > 0 and right == 0)


def test_color_answers_match_pixels(data):
    out, prep = data
    paths = {r["image_id"]: r["path"] for r in prep.images}
    palette = {name: np.array(rgb, float) for name, rgb in scenes.COLORS.items()}
    checked = 0
    for r in prep.vqa:
        if not (m := re.fullmatch(r"what color is the (\w+)\?", r["question"])):
            continue
        ids, segments = _gt(out, r["image_id"])
        (seg,) = [s for s in segments if s["category"] == m[1]]
        mean = np.asarray(Image.open(paths[r["image_id"]]))[ids == seg["id"]].mean(axis=0)
        assert _majority(r["answers"]) == min(palette, key=lambda c: np.abs(palette[c] - mean).sum())
        checked += 1
    assert checked >= 5


def test_band_hidden_by_things_is_dropped(monkeypatch):
    n = 32
    bands = np.zeros((n, n), np.int32)
    bands[n // 2:] = 1
    cover = np.zeros((n, n), bool)
    cover[: n // 2 + 2] = True  # a (huge) thing hides the whole sky band
    monkeypatch.setattr(scene_render, "_stuff_bands", lambda rng, size: (bands, ["sky", "grass"]))
    monkeypatch.setattr(scene_render, "_place_things", lambda rng, size, k: ([("square", "red", "large")], [cover]))
    _, ids, segments, scene = scenes.make_scene(np.random.default_rng(0), n, 5)
    assert scene.stuff == ("grass",) and [t.shape for t in scene.things] == ["square"]
    assert sorted(np.unique(ids).tolist()) == [1, 2]
    maskcodec.check_consistent(ids, segments)
    assert [(s["id"], s["category"], s["isthing"]) for s in segments] == [(1, "grass", False), (2, "square", True)]
    assert [(s["color"], s["size"]) for s in segments] == [(None, None), ("red", "large")]


@pytest.mark.parametrize("kwargs, message", [
    (dict(image_size=16), "image_size"),
    (dict(splits={"train": 0}), "positive"),
    (dict(splits={"train": -3}), "positive"),
    (dict(splits={"dev": 5}), "unknown split"),
    (dict(splits={}), "at least one"),
    (dict(seed=-1), "seed"),
    (dict(max_things=0), "max_things"),
    (dict(captions_per_image=-1), "captions_per_image"),
])
def test_bad_arguments(tmp_path, kwargs, message):
    args = dict(seed=0, image_size=64, splits={"train": 2}, progress=False) | kwargs
    with pytest.raises(ValueError, match=message):
        scenes.generate(tmp_path, **args)
    assert not (tmp_path / "images").exists()


# ---- the default run (params.yaml prepare.scenes): caption sharing and text priors ----------
MIN_ROWS = 100  # templates with fewer rows (train + test) are too noisy for a share check on their own
TASKS = {  # table, text column, label of a row, which rows
    "yes/no": ("vqa", "question", lambda r: _majority(r["answers"]), lambda r: r["answer_type"] == "yes/no"),
    "number": ("vqa", "question", lambda r: _majority(r["answers"]), lambda r: r["answer_type"] == "number"),
    "ve": ("ve", "hypothesis", lambda r: r["label"], lambda r: True),
    "nlvr2": ("nlvr2", "sentence", lambda r: r["label"], lambda r: True),
}


@pytest.fixture(scope="module")
def default_run(tmp_path_factory) -> dict[str, list[dict]]:
    """Tables of the default run's train and test splits (a split's rows do not depend on the other splits)."""
    s = params.load("prepare").scenes
    prep = scenes.generate(tmp_path_factory.mktemp("default"), seed=s.seed, image_size=s.image_size,
                           splits={k: s.splits[k] for k in ("train", "test")}, captions_per_image=s.captions_per_image,
                           questions_per_image=s.questions_per_image, ve_per_image=s.ve_per_image,
                           nlvr2_per_image=s.nlvr2_per_image, max_things=s.max_things, progress=False)
    return prep.tables()


def _task(tables: dict, task: str, split: str | None = None) -> tuple[list[str], list]:
    """(texts, labels) of a task's rows, of one split or all."""
    table, text, label, keep = TASKS[task]
    rows = [r for r in tables[table] if keep(r) and split in (None, r["split"])]
    return [r[text] for r in rows], [label(r) for r in rows]


def _shares(tables: dict, task: str) -> dict[str, dict]:
    """Label shares of every template with at least MIN_ROWS rows, and of all smaller templates pooled."""
    out, pooled = {}, Counter()
    for t, counts in audit.label_shares(*_task(tables, task)).items():
        if sum(counts.values()) >= MIN_ROWS:
            out[t] = counts
        else:
            pooled += counts
    if sum(pooled.values()) >= MIN_ROWS:
        out["(smaller templates)"] = pooled
    return {t: {y: n / sum(c.values()) for y, n in c.items()} for t, c in out.items()}


def test_no_caption_shared_by_two_test_images(default_run):
    test = [r for r in default_run["captions"] if r["split"] == "test"]
    train = [r for r in default_run["captions"] if r["split"] == "train"]
    assert len({r["image_id"] for r in test}) == 1000 and len(test) == 5000
    assert audit.shared_share(test) == 0
    assert audit.shared_share(train) < 0.01


def test_captions_fit_the_text_length(default_run):
    """Under max_text_len 40 with room to spare, counted by the model's own tokenizer ([CLS] and [SEP] included)."""
    from models.text import build_tokenizer

    tokenizer = build_tokenizer()
    lengths = [len(ids) for ids in tokenizer.encode([r["text"] for r in default_run["captions"]])]
    assert max(lengths) <= 38


@pytest.mark.parametrize("task, label", [("yes/no", "yes"), ("nlvr2", True)])
def test_two_way_tasks_balanced_per_template(default_run, task, label):
    shares = _shares(default_run, task)
    assert len(shares) >= 4
    for template, share in shares.items():
        assert 0.4 <= share.get(label, 0.0) <= 0.6, (template, share)


def test_ve_labels_balanced_per_template(default_run):
    shares = _shares(default_run, "ve")
    three_way = {t: s for t, s in shares.items() if "neutral" in s}
    for template, share in shares.items():
        if template in three_way:
            assert all(0.27 <= share[y] <= 0.4 for y in VE_LABELS), (template, share)
        else:
            assert 0.4 <= share["entailment"] <= 0.6, (template, share)
    for y in VE_LABELS:
        assert sum(y in share for share in shares.values()) >= 2, y
    assert len(three_way) >= 4


def test_count_answers_not_dominated_by_one_value(default_run):
    for template, share in _shares(default_run, "number").items():
        assert max(share.values()) <= 0.4, (template, share)


@pytest.mark.parametrize("task", ["yes/no", "ve", "nlvr2"])
def test_text_alone_does_not_beat_the_prior(default_run, task):
    """A blind model that predicts the most common train label of the text's template (or of the exact text)
    scores on test no better than the overall most common label, give or take noise."""
    train, test = _task(default_run, task, "train"), _task(default_run, task, "test")
    prior = audit.prior(train[1], test[1])
    assert audit.majority_blind(train, test) <= prior + 0.05
    assert audit.majority_blind(train, test, key=audit.normalise) <= prior + 0.05


def test_template_masks_slot_words():
    assert audit.template("Is the red  circle left of the large star?") == "is the COLOR SHAPE REL the SIZE SHAPE?"
    assert audit.template("There are exactly two crosses in an orange sky.") == (
        "there are exactly NUM SHAPE in a COLOR STUFF.")
