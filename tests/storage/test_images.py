import numpy as np
import pytest

from storage.images import ImageError, load_rgb, open_image


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
