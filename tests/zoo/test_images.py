import numpy as np
import pytest
import torch
from PIL import Image

from cnnviz import zoo
from cnnviz.zoo.core import CnnvizError


def _rgb(h=12, w=20):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("suffix,tolerance", [(".png", 0), (".bmp", 0), (".tiff", 0), (".webp", 0),
                                              (".jpg", 0.25)])
def test_formats_round_trip(tmp_path, suffix, tolerance):
    array = _rgb()
    path = tmp_path / f"x{suffix}"
    Image.fromarray(array).save(path, **({"lossless": True} if suffix == ".webp" else {}))
    image = zoo.load_image(path)
    assert image.shape == (3, 12, 20) and image.dtype == torch.float32
    expected = torch.from_numpy(array).permute(2, 0, 1) / 255.0
    assert (image - expected).abs().mean() <= tolerance + 1e-6


def test_grayscale_stays_one_channel(tmp_path):
    Image.fromarray(np.full((5, 7), 51, np.uint8)).save(tmp_path / "g.png")
    image = zoo.load_image(tmp_path / "g.png")
    assert image.shape == (1, 5, 7) and torch.allclose(image, torch.full_like(image, 0.2))


def test_rgba_is_composited_over_white(tmp_path):
    array = np.zeros((2, 2, 4), np.uint8)
    array[0, 0] = (255, 0, 0, 255)  # opaque red; the rest fully transparent black
    Image.fromarray(array, "RGBA").save(tmp_path / "a.png")
    image = zoo.load_image(tmp_path / "a.png")
    assert image[:, 0, 0].tolist() == [1.0, 0.0, 0.0]
    assert image[:, 1, 1].tolist() == [1.0, 1.0, 1.0]


def test_palette_image(tmp_path):
    Image.fromarray(_rgb()).convert("P").save(tmp_path / "p.png")
    assert zoo.load_image(tmp_path / "p.png").shape == (3, 12, 20)


def test_16_bit_png_uses_full_range(tmp_path):
    array = np.array([[0, 32768, 65535]], np.uint16)
    Image.fromarray(array).save(tmp_path / "d.png")
    image = zoo.load_image(tmp_path / "d.png")
    torch.testing.assert_close(image[0, 0], torch.tensor([0.0, 32768 / 65535, 1.0]))


def test_exif_rotation_is_applied(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to view"
    Image.fromarray(_rgb(10, 30)).save(tmp_path / "r.jpg", exif=exif.tobytes())
    assert zoo.load_image(tmp_path / "r.jpg").shape == (3, 30, 10)


def test_samples_and_folders(tmp_path):
    assert zoo.load_image("coffee").shape == (3, 400, 600)
    assert zoo.load_image("camera").shape[0] == 1
    for name in ("b", "a"):
        Image.fromarray(_rgb()).save(tmp_path / f"{name}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    assert [n for n, _ in zoo.load_images([tmp_path, "chelsea"])] == ["a", "b", "chelsea"]


def test_bad_sources_are_clear(tmp_path):
    with pytest.raises(CnnvizError, match="did you mean 'chelsea'"):
        zoo.load_image("chelsee")
    (tmp_path / "fake.png").write_text("hello")
    with pytest.raises(CnnvizError, match="not an image Pillow can read"):
        zoo.load_image(tmp_path / "fake.png")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CnnvizError, match="holds no image files"):
        zoo.load_images(tmp_path / "empty")


def test_save_image_is_atomic(tmp_path):
    path = tmp_path / "out" / "x.png"
    zoo.save_image(path, _rgb())
    original = path.read_bytes()
    with pytest.raises(Exception):
        zoo.save_image(path, np.zeros((4, 4, 7), np.uint8))  # PIL cannot encode 7 channels
    assert path.read_bytes() == original  # the old file survived the failed write
    assert [p.name for p in path.parent.iterdir()] == ["x.png"]  # no temp file left
    np.testing.assert_array_equal(np.asarray(Image.open(path)), _rgb())
    with pytest.raises(CnnvizError, match="uint8"):
        zoo.save_image(path, np.zeros((4, 4), np.float32))
