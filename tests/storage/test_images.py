import numpy as np
import pytest
from PIL import Image

from storage.images import PAD_RGB, RESIZE_MODES, ImageError, load_rgb, load_square, open_image, square_box, to_square


def test_every_kind_decodes_or_fails_clearly(bad_images):
    for name, (path, usable) in bad_images.items():
        if name == "1x1":  # decodable; rejected later by the min-side rule
            assert load_rgb(path).shape == (1, 1, 3)
            continue
        if usable:
            arr = load_rgb(path, 64)
            assert arr.shape == (64, 64, 3) and arr.dtype == np.uint8, name
        else:
            with pytest.raises(ImageError) as e:
                load_rgb(path, 64)
            assert str(e.value), name


@pytest.mark.parametrize("name,reason", [("missing", "missing file"), ("zero_byte", "empty file"),
                                         ("corrupt", "undecodable"), ("truncated_png", "undecodable"),
                                         ("truncated_jpg", "undecodable")])
def test_reasons_name_the_problem(bad_images, name, reason):
    with pytest.raises(ImageError, match=reason):
        open_image(bad_images[name][0])


def test_sixteen_bit_keeps_contrast(bad_images):
    arr = load_rgb(bad_images["16bit"][0])
    assert arr.min() == 0 and arr.max() == 255  # scaled, not clipped to white


def test_large_jpeg_is_drafted_and_resized(bad_images):
    arr = load_rgb(bad_images["4000x3000"][0], 128)
    assert arr.shape == (128, 128, 3)
    assert abs(int(arr[..., 1].mean()) - 200) <= 2


def test_rgba_drops_alpha(bad_images):
    assert open_image(bad_images["rgba"][0]).mode == "RGB"


def _wide(path):
    """200 x 100: grey, a black 40 x 40 square in the centre, red 20-pixel bands at the left and right edges."""
    a = np.full((100, 200, 3), 200, np.uint8)
    a[30:70, 80:120] = 0
    a[:, :20] = a[:, -20:] = (255, 0, 0)
    Image.fromarray(a).save(path)
    return path


def _square_shape(arr):
    """(width, height) of the black square's pixels in an image."""
    ys, xs = np.nonzero(arr.max(-1) < 60)
    return xs.max() - xs.min() + 1, ys.max() - ys.min() + 1


def _has_red(arr):
    return bool(((arr[..., 0] > 200) & (arr[..., 1] < 60)).any())


def test_squash_stretches_the_whole_image(tmp_path):
    arr, content = load_square(_wide(tmp_path / "w.png"), 64, "squash")
    assert arr.shape == (64, 64, 3) and content == (0, 0, 64, 64)
    w, h = _square_shape(arr)
    assert abs(h / w - 2) < 0.2          # the 1:1 square is now twice as tall as wide
    assert _has_red(arr[:, :8]) and _has_red(arr[:, -8:])


def test_pad_keeps_aspect_and_every_pixel(tmp_path):
    arr, content = load_square(_wide(tmp_path / "w.png"), 64, "pad")
    assert content == (0, 16, 64, 48)     # 200 x 100 -> 64 x 32, centred
    w, h = _square_shape(arr[16:48])
    assert abs(w - h) <= 1 and abs(w - 13) <= 1
    assert (arr[:16] == PAD_RGB).all() and (arr[48:] == PAD_RGB).all()
    assert _has_red(arr[16:48, :4]) and _has_red(arr[16:48, -4:])


def test_crop_keeps_aspect_and_loses_the_borders(tmp_path):
    arr, content = load_square(_wide(tmp_path / "w.png"), 64, "crop")
    assert content == (0, 0, 64, 64)
    w, h = _square_shape(arr)
    assert abs(w - h) <= 1 and abs(w - 26) <= 1   # the centred 100 x 100 holds the 40 x 40 square
    assert not _has_red(arr)


def test_squash_is_the_plain_resize_of_before(tmp_path):
    """The default mode must not move a byte of existing runs: it is PIL's bilinear resize of the whole image."""
    path = _wide(tmp_path / "w.png")
    before = np.asarray(Image.open(path).convert("RGB").resize((64, 64), Image.BILINEAR, reducing_gap=3.0))
    assert np.array_equal(load_rgb(path, 64), before)


@pytest.mark.parametrize("size,expected", [((100, 300), (21, 0, 42, 64)), ((1, 500), (31, 0, 32, 64)),
                                           ((64, 64), (0, 0, 64, 64))])
def test_pad_box_of_tall_thin_and_square_images(size, expected):
    assert square_box(*size, 64, "pad") == ((0, 0, *size), expected)


def test_ids_follow_the_pixels(tmp_path):
    """A segment-id map squared by the same mode (nearest, fill 0) lines up with the pixels."""
    path = _wide(tmp_path / "w.png")
    ids = Image.fromarray((np.asarray(Image.open(path)).max(-1) < 60).astype(np.uint16))
    for mode in RESIZE_MODES:
        pixels, content = load_square(path, 64, mode)
        squared, box = to_square(ids, 64, mode, Image.NEAREST, 0)
        assert box == content
        dark = np.asarray(squared) == 1
        assert (pixels[dark].max(-1) < 100).all() and (pixels[~dark].max(-1) > 100).all(), mode


def test_unknown_mode():
    with pytest.raises(ValueError, match="resize mode must be one of"):
        square_box(10, 10, 8, "stretch")
