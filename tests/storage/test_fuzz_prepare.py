"""Property-based: random JSONL lines and random image bytes never stop `prepare` on the custom format; every
input line is accounted for (given = accepted + rejected) and every accepted image lies inside the root."""
from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from PIL import Image

from stages import prepare
from stages.common.cli import StageError
from storage.adapters.base import DatasetError
from tests.conftest import deep_merge, tiny_params

BASE_PARAMS = tiny_params({"datasets": ["custom"]})
FILES = ("a.png", "b.jpg", "sub/c.png")
HAZARDS = ("../outside/x.png", "link-out.png", "link-text.png", "folder.png", "pipe.png", "x" * 300 + ".png",
           "missing.png", "sub/../a.png", "./a.png", "a\ud800.png", "a\udc80.png", "nul\x00.png", "", " ", "/")
ABSOLUTE = "<absolute path of ../outside/x.png>"
EXAMPLES = 200               # sized for the CI budget of 30 to 60 s
SECONDS_PER_EXAMPLE = 60      # a blocking open (a FIFO) would hang the run: fail it instead


def _png(w: int, h: int, seed: int, keep: float) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)).save(buf, "PNG")
    data = buf.getvalue()
    return data[: max(1, int(len(data) * keep))] if keep < 1 else data


texts = st.text(max_size=12) | st.sampled_from(["\ud800", "a\udc80b", "", "  ", "\x00", "é", "\ufeff"])
values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | texts,
                      lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
                      max_leaves=6)
questions = st.fixed_dictionaries({}, optional={
    "question": texts | values, "answers": st.lists(texts, max_size=11) | values,
    "answer_type": st.sampled_from(["yes/no", "number", "other", "color", None]) | values, "answer": values})
records = st.fixed_dictionaries({"image": st.sampled_from(FILES + HAZARDS + (ABSOLUTE,)) | texts}, optional={
    "id": texts | values, "split": st.sampled_from(["train", "val", "test", "dev"]) | values,
    "captions": st.lists(texts, max_size=3) | values, "questions": st.lists(questions, max_size=3) | values,
    "caption": values})
lines = st.one_of(
    records.map(lambda r: json.dumps(r).encode()),
    values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=40).map(lambda b: b.replace(b"\n", b" ")),
    st.integers(1, 200_000).map(lambda n: b"[" * n),
    st.just(b'{"image": "a.png", "image": "b.jpg"}'),
    st.sampled_from([b"", b"  ", b"\r", b"\t"]))
image_bytes = st.binary(max_size=64) | st.builds(_png, st.integers(1, 24), st.integers(1, 24),
                                                 st.integers(0, 1000), st.sampled_from([1.0, 1.0, 0.5]))


def _arena(base: Path, images: list[bytes]) -> Path:
    """The images root: drawn bytes under FILES, and every hazard a path from an annotation may name."""
    root, outside = base / "root", base / "outside"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    for name, data in zip(FILES, images):
        (root / name).write_bytes(data)
    (outside / "x.png").write_bytes(_png(16, 16, 0, 1.0))
    (outside / "secret.txt").write_text("not for the pipeline")
    (root / "link-out.png").symlink_to(outside / "x.png")
    (root / "link-text.png").symlink_to(outside / "secret.txt")
    (root / "folder.png").mkdir()
    os.mkfifo(root / "pipe.png")
    return root


def _timeout(*_: Any) -> None:
    raise TimeoutError("prepare did not finish: did it open the FIFO?")


def _run(base: Path) -> dict[str, dict[str, int]] | None:
    """prepare's counts; None when the file held no record (the documented DatasetError)."""
    with contextlib.chdir(base):
        try:
            return prepare.run("custom")
        except DatasetError as e:
            assert "has no records" in str(e)
            return None
        except StageError as e:    # written and reconciled, but not one image usable
            assert "no usable images" in str(e)
            return json.loads((base / "data/prepared/custom/counts.json").read_text())


@pytest.mark.slow
# no shrink phase: shrinking a failure here once took 5 minutes of CI; the unshrunk example is still printed
@settings(max_examples=EXAMPLES, deadline=None, database=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(data=st.data(), bom=st.booleans())
def test_random_lines_and_images_never_stop_prepare(tmp_path_factory, data, bom):
    base = Path(tempfile.mkdtemp(dir=tmp_path_factory.getbasetemp()))
    root = _arena(base, [data.draw(image_bytes) for _ in FILES])
    body = b"\n".join(data.draw(st.lists(lines, max_size=10)))
    body = body.replace(json.dumps(ABSOLUTE).encode(), json.dumps(str(base / "outside" / "x.png")).encode())
    (base / "ann.jsonl").write_bytes(b"\xef\xbb\xbf" * bom + body)
    custom = {"root": str(root), "annotations": str(base / "ann.jsonl")}
    (base / "params.yaml").write_text(yaml.safe_dump(deep_merge(BASE_PARAMS, {"prepare": {"custom": custom}})))

    old = signal.signal(signal.SIGALRM, _timeout)
    signal.alarm(SECONDS_PER_EXAMPLE)
    try:
        counts = _run(base)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    text = (b"\xef\xbb\xbf" * bom + body).removeprefix(b"\xef\xbb\xbf")   # only the file's first BOM is a BOM
    n_lines = sum(1 for line in text.split(b"\n") if line.strip())
    if counts is None:
        assert n_lines == 0
        return
    assert counts["lines"]["given"] == n_lines
    for table, c in counts.items():
        assert c["given"] == c["accepted"] + c["rejected"], (table, c)
    out = base / "data/prepared/custom"
    assert pq.read_table(out / "rejects.parquet").num_rows == sum(c["rejected"] for c in counts.values())
    real_root = root.resolve()
    for row in pq.read_table(out / "images.parquet").to_pylist():
        real = Path(os.path.realpath(out / row["path"]))
        assert real.is_relative_to(real_root) and real.is_file(), row
