"""Robust image decoding: any common file -> H x W x 3 uint8 RGB, or an ImageError with a reason.

Handles grayscale, grayscale+alpha, RGBA (alpha dropped), palette, CMYK, 16-bit and 32-bit
integer and float modes, EXIF orientation, and large JPEGs (decoded at reduced scale when a
target size is given). Corrupt, zero-byte, truncated and missing files raise ImageError, and so
does anything that is not a regular file (a directory, a FIFO, a device): it is never read, so a
FIFO named like an image cannot block a stage.
"""
from __future__ import annotations

import io
import os
import stat
import warnings

import numpy as np
from PIL import Image, ImageOps

# A decompression bomb is an error, not a warning.
warnings.simplefilter("error", Image.DecompressionBombWarning)


class ImageError(ValueError):
    """An image file cannot be used; the message is the reject reason."""


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        scale = 255.0 / (hi - lo) if hi > lo else 0.0
        img = Image.fromarray(((arr - lo) * scale).round().astype(np.uint8), "L")
    if img.mode in ("P", "PA"):
        img = img.convert("RGBA")
    return img.convert("RGB")


KINDS = {stat.S_IFDIR: "directory", stat.S_IFIFO: "FIFO", stat.S_IFSOCK: "socket", stat.S_IFCHR: "character device",
         stat.S_IFBLK: "block device"}
# O_NONBLOCK: opening a FIFO returns at once instead of waiting for a writer; it is refused right after.
OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


def read_file(path: str | os.PathLike) -> bytes:
    """The bytes of a regular file; ImageError (missing, not a regular file, empty, unreadable) otherwise."""
    try:
        fd = os.open(path, OPEN_FLAGS)
    except FileNotFoundError:
        raise ImageError(f"missing file: {path}") from None
    except (OSError, ValueError) as e:   # ValueError: a NUL byte or an unencodable name
        raise ImageError(f"unreadable path ({getattr(e, 'strerror', None) or e}): {path}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise ImageError(f"not a regular file ({KINDS.get(stat.S_IFMT(mode), 'special file')}): {path}")
        with open(fd, "rb", closefd=False) as fh:
            data = fh.read()
    except OSError as e:
        raise ImageError(f"unreadable file ({e.strerror or e}): {path}") from None
    finally:
        os.close(fd)
    if not data:
        raise ImageError(f"empty file: {path}")
    return data


def open_image(path: str | os.PathLike, draft_size: int | None = None) -> Image.Image:
    """Open and fully decode an image file as RGB; raise ImageError with the reason on failure."""
    return decode(read_file(path), draft_size)


def decode(data: bytes, draft_size: int | None = None) -> Image.Image:
    """Fully decode an image file's bytes as RGB; raise ImageError with the reason on failure."""
    try:
        img = Image.open(io.BytesIO(data))
        if draft_size and img.format == "JPEG":
            img.draft("RGB", (draft_size, draft_size))
        img.load()
        img = ImageOps.exif_transpose(img)
    except Image.DecompressionBombError as e:
        raise ImageError(f"too large: {e}") from e
    except Image.DecompressionBombWarning as e:
        raise ImageError(f"too large: {e}") from e
    except (OSError, SyntaxError, ValueError) as e:
        # PIL reports truncated and corrupt data as OSError / SyntaxError.
        raise ImageError(f"undecodable: {type(e).__name__}: {e}") from e
    if img.width < 1 or img.height < 1:
        raise ImageError("zero-sized image")
    return _to_rgb(img)


RESIZE_MODES = ("squash", "pad", "crop")
# Padding colour: the ImageNet mean, which the backbone's normalisation maps to zero input.
PAD_RGB = (124, 116, 104)
Box = tuple[int, int, int, int]


def square_box(width: int, height: int, size: int, mode: str) -> tuple[Box, Box]:
    """Where a width x height image goes in a size x size square under `mode`: (source box, target box),
    both (x1, y1, x2, y2), exclusive. squash: all of it, stretched; pad: all of it, aspect kept, centred
    (the rest of the square is padding); crop: the centred square of side min(width, height)."""
    if mode == "squash":
        return (0, 0, width, height), (0, 0, size, size)
    if mode == "crop":
        side = min(width, height)
        x, y = (width - side) // 2, (height - side) // 2
        return (x, y, x + side, y + side), (0, 0, size, size)
    if mode == "pad":
        scale = size / max(width, height)
        w, h = max(1, round(width * scale)), max(1, round(height * scale))
        x, y = (size - w) // 2, (size - h) // 2
        return (0, 0, width, height), (x, y, x + w, y + h)
    raise ValueError(f"resize mode must be one of {RESIZE_MODES}, got {mode!r}")


def to_square(img: Image.Image, size: int, mode: str, resample: Image.Resampling = Image.BILINEAR,
              fill: int | tuple[int, ...] = PAD_RGB) -> tuple[Image.Image, Box]:
    """`img` as size x size by `mode` (square_box), and the box its content covers; padding is `fill`.

    Pixels (bilinear, antialiased) and segment-id maps (nearest, fill 0 = void) share this one
    geometry, so masks and the features pooled over them stay aligned under every mode."""
    src, dst = square_box(img.width, img.height, size, mode)
    w, h = dst[2] - dst[0], dst[3] - dst[1]
    if src != (0, 0, img.width, img.height) or img.size != (w, h):
        img = img.resize((w, h), resample, box=src, reducing_gap=3.0)
    if (w, h) == (size, size):
        return img, dst
    canvas = Image.new(img.mode, (size, size), fill)
    canvas.paste(img, dst[:2])
    return canvas, dst


def load_square(path: str | os.PathLike, size: int, mode: str) -> tuple[np.ndarray, Box]:
    """Decode to size x size x 3 uint8 by `mode` (to_square); also the box the image covers in it."""
    img, content = to_square(open_image(path, draft_size=size), size, mode)
    return np.asarray(img, dtype=np.uint8), content


def load_rgb(path: str | os.PathLike, size: int | None = None, resize: str = "squash") -> np.ndarray:
    """Decode to H x W x 3 uint8; with `size`, to size x size by `resize` (see to_square)."""
    if size is None:
        return np.asarray(open_image(path), dtype=np.uint8)
    return load_square(path, size, resize)[0]
