"""Overlay images are drawn with the transform of the masks they sit under (segment.resize)."""
import numpy as np
from PIL import Image

from stages.common import paths
from stages.report import Images
from storage.images import load_rgb
from storage.tables import table_path, write_table


def test_images_follow_the_resize_mode_of_their_masks(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = paths.prepared("toy")
    (folder / "images").mkdir(parents=True)
    rgb = np.zeros((20, 40, 3), np.uint8)
    rgb[:, :10] = (255, 0, 0)                         # a red band that a centre crop loses
    Image.fromarray(rgb).save(folder / "images/a.png")
    write_table(table_path(folder, "images"), "images", [{"image_id": "a", "path": "images/a.png", "width": 40,
                                                          "height": 20, "split": "test", "sha256": "0" * 64}])
    images = Images()
    got = {mode: images.get("toy", "a", size=16, resize=mode) for mode in ("squash", "pad", "crop")}
    for mode, img in got.items():
        assert np.array_equal(img, load_rgb(folder / "images/a.png", 16, mode)), mode
    assert not np.array_equal(got["squash"], got["pad"]) and not np.array_equal(got["squash"], got["crop"])
    assert np.array_equal(images.get("toy", "a", size=16), got["squash"])     # the default, as before
