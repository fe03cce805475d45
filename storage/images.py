"""Robust image decoding: any common file -> H x W x 3 uint8 RGB, or an ImageError with a reason.

Handles grayscale, grayscale+alpha, RGBA (alpha dropped), palette, CMYK, 16-bit and 32-bit
integer and float modes, EXIF orientation, and large JPEGs (decoded at reduced scale when a
target size is given). Corrupt, zero-byte, truncated and missing files raise ImageError.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

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


def open_image(path: str | os.PathLike, draft_size: int | None = None) -> Image.Image:
    """Open and fully decode an image file as RGB; raise ImageError with the reason on failure."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"missing file: {path}")
    if path.stat().st_size == 0:
        raise ImageError(f"empty file: {path}")
    try:
        img = Image.open(path)
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


def load_rgb(path: str | os.PathLike, size: int | None = None) -> np.ndarray:
    """Decode to H x W x 3 uint8; with `size`, resize to size x size (bilinear, antialiased)."""
    img = open_image(path, draft_size=size)
    if size is not None and img.size != (size, size):
        img = img.resize((size, size), Image.BILINEAR, reducing_gap=3.0)
    return np.asarray(img, dtype=np.uint8)
