"""WebDataset tar shards with random access by image_id.

A shard is a plain WebDataset tar: members `<key>.<ext>`, grouped by key, where the key is
`s<8-digit position>` (WebDataset keys may not hold dots) and each sample carries its
original `id.txt`. Tar headers are fixed (mtime 0, uid 0, mode 0444), so the same samples
always give byte-identical shards. `index.parquet` maps image_id -> shard, member offsets
and sizes, so one sample is read with a single seek, without scanning any shard.
"""
from __future__ import annotations

import io
import os
import tarfile
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from storage.atomic import atomic_path

INDEX_NAME = "index.parquet"
INDEX_SCHEMA = pa.schema([
    ("image_id", pa.string()),
    ("shard", pa.string()),
    ("key", pa.string()),
    ("members", pa.list_(pa.struct([("ext", pa.string()), ("offset", pa.int64()), ("size", pa.int64())]))),
])

Sample = dict[str, bytes]  # ext -> bytes, e.g. {"nodes.npy": ..., "geom.npy": ...}


class ShardError(ValueError):
    """A shard folder or its index is missing, inconsistent or lacks a requested id."""


def sample_key(position: int) -> str:
    return f"s{position:08d}"


def npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(arr), allow_pickle=False)
    return buf.getvalue()


def npy_load(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


def _tarinfo(name: str, size: int) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.size, ti.mtime, ti.mode = size, 0, 0o444
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = ""
    return ti


def write_shard(path: str | os.PathLike, samples: Sequence[tuple[str, str, Sample]]) -> list[dict]:
    """Write (image_id, key, sample) triples as one tar, atomically; return its index rows."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
            for image_id, key, sample in samples:
                if "." in key:
                    raise ShardError(f"WebDataset keys may not contain dots: {key!r}")
                members = {"id.txt": image_id.encode()} | sample
                for ext in sorted(members):
                    data = members[ext]
                    tar.addfile(_tarinfo(f"{key}.{ext}", len(data)), io.BytesIO(data))
        rows = _index_rows(tmp, path.name, {key: image_id for image_id, key, _ in samples})
    return rows


def _index_rows(tar_path: Path, shard_name: str, ids: dict[str, str]) -> list[dict]:
    by_key: dict[str, list[dict]] = {}
    with tarfile.open(tar_path, "r") as tar:
        for m in tar.getmembers():
            key, ext = m.name.split(".", 1)
            by_key.setdefault(key, []).append({"ext": ext, "offset": m.offset_data, "size": m.size})
    return [{"image_id": ids[k], "shard": shard_name, "key": k, "members": v} for k, v in by_key.items()]


def write_index(folder: str | os.PathLike, rows: list[dict]) -> None:
    ids = [r["image_id"] for r in rows]
    if len(set(ids)) != len(ids):
        raise ShardError("duplicate image_id in shard index")
    table = pa.Table.from_pylist(rows, schema=INDEX_SCHEMA)
    with atomic_path(Path(folder) / INDEX_NAME) as tmp:
        pq.write_table(table, tmp)


def shard_paths(folder: str | os.PathLike, pattern: str = "*.tar") -> list[Path]:
    return sorted(Path(folder).glob(pattern))


class ShardReader:
    """Random access to shard samples by image_id through the index; keeps a few files open."""

    def __init__(self, folder: str | os.PathLike, max_open: int = 8) -> None:
        self.folder = Path(folder)
        index = self.folder / INDEX_NAME
        if not index.is_file():
            raise ShardError(f"no shard index at {index}: run the stage that writes {self.folder}")
        rows = pq.read_table(index).to_pylist()
        self._where = {r["image_id"]: (r["shard"], r["members"]) for r in rows}
        self.ids = [r["image_id"] for r in rows]
        self._files: OrderedDict[str, io.BufferedReader] = OrderedDict()
        self._max_open = max_open

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, image_id: str) -> bool:
        return image_id in self._where

    def _file(self, shard: str) -> io.BufferedReader:
        fh = self._files.pop(shard, None)
        if fh is None:
            path = self.folder / shard
            if not path.is_file():
                raise ShardError(f"shard {path} listed in the index is missing")
            fh = open(path, "rb")
            if len(self._files) >= self._max_open:
                self._files.popitem(last=False)[1].close()
        self._files[shard] = fh
        return fh

    def get(self, image_id: str) -> Sample:
        try:
            shard, members = self._where[image_id]
        except KeyError:
            raise ShardError(f"image_id {image_id!r} not in {self.folder / INDEX_NAME}") from None
        fh = self._file(shard)
        out = {}
        for m in members:
            fh.seek(m["offset"])
            out[m["ext"]] = fh.read(m["size"])
        return out

    def __iter__(self) -> Iterator[tuple[str, Sample]]:
        for image_id in self.ids:
            yield image_id, self.get(image_id)

    def close(self) -> None:
        for fh in self._files.values():
            fh.close()
        self._files.clear()

    def __enter__(self) -> ShardReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
