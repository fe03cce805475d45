"""Image paths named by annotation files are untrusted: each must resolve inside a configured root.

`inside` follows every symlink (os.path.realpath) before it compares, so `../x.jpg`, an absolute
path and a link inside the root that points out of it are all refused, while a link that stays
inside is fine. The roots are real paths of folders that params.yaml or the code names (the images
folder and the official subfolders an adapter knows), never a folder an annotation names.
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from storage.images import ImageError


def real_roots(root: Path, subfolders: Iterable[str] = ()) -> tuple[Path, ...]:
    """`root` and its named subfolders, with symlinks followed: where its images may live."""
    return tuple(dict.fromkeys(Path(os.path.realpath(p)) for p in (root, *(root / s for s in subfolders))))


def inside(path: str | os.PathLike, roots: tuple[Path, ...]) -> Path:
    """The real path of `path` if it lies inside one of `roots`; else ImageError naming the first root."""
    try:
        real = Path(os.path.realpath(path))
    except (OSError, ValueError) as e:   # ValueError: a NUL byte or an unencodable name
        raise ImageError(f"unreadable path ({e}): {path}") from None
    if not any(real.is_relative_to(root) for root in roots):
        raise ImageError(f"outside the images root {roots[0]}: {path}")
    return real
