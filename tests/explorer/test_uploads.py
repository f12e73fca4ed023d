"""Uploads kept as what they are, through the real ASGI app: a 6000 x 6000 PNG and a 24 MP JPEG are kept
downscaled to what the served models need, on disk, under their content's hash, with the original's size; they
outlive the result cache's pressure; a small upload is kept as sent, upright; a broken one is refused with a 4xx."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from starlette.testclient import TestClient

from cnnviz import interpret, zoo
from cnnviz.explorer import create_app
from cnnviz.explorer.images import LONG_SIDE, MAX_UPLOAD_PIXELS, keep_upload, upload_side


def encoded(size: tuple[int, int], format: str = "PNG", **options) -> bytes:
    """chelsea enlarged to ``size`` (blocky, so a 6000 x 6000 PNG stays small enough to send)."""
    photo = Image.fromarray(zoo.data.SAMPLES["chelsea"]()).resize(size, Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    photo.save(buffer, format=format, **options)
    return buffer.getvalue()


BIG_PNG = encoded((6000, 6000), compress_level=1)


@pytest.fixture(scope="module")
def client(fashion, tmp_path_factory):
    """A result cache of 64 kB: nothing an upload needs may live only there."""
    with TestClient(create_app([fashion], cache_dir=tmp_path_factory.mktemp("cache"), cache_bytes=2**16)) as client:
        yield client


def kept_file(client, name: str):
    folder = client.app.state.explorer.cache_dir / "uploads"
    files = list(folder.glob(f"{name.removeprefix('upload:')}.png"))
    assert len(files) == 1, sorted(p.name for p in folder.iterdir())
    return files[0]


@pytest.mark.parametrize("size, format", [((6000, 6000), "PNG"), ((6000, 4000), "JPEG")])
def test_a_huge_upload_is_kept_small_and_explained(client, fashion, size, format):
    content = BIG_PNG if format == "PNG" else encoded(size, "JPEG", quality=90)
    answer = client.post("/api/upload", files={"image": (f"photo.{format.lower()}", content)})
    assert answer.status_code == 200, answer.text
    kept = answer.json()
    side = upload_side([fashion])
    assert kept["size"] == list(size) and min(kept["kept"]) == side and kept["image"].startswith("upload:")
    assert kept["kept"][0] * size[1] == pytest.approx(kept["kept"][1] * size[0], rel=0.01)  # the aspect kept
    path = kept_file(client, kept["image"])
    assert Image.open(path).size == tuple(kept["kept"]) and path.stat().st_size <= 3 * side * max(kept["kept"])
    for _ in range(3):  # other results push everything else out of the 64 kB cache between requests
        for sample in ("coffee", "astronaut"):
            assert client.post("/api/explain", json={"image": sample, "method": "gradient"}).status_code == 200
        explained = client.post("/api/explain", json={"image": kept["image"], "method": "gradcam"})
        assert explained.status_code == 200, explained.text
        assert explained.json()["record"]["map"]["shape"] == [1, 28, 28]
    again = client.post("/api/upload", files={"image": ("again.png", content)})
    assert again.json() == kept  # the same content, the same name, kept once


def test_a_small_upload_is_kept_as_sent_and_upright(client, fashion, tmp_path):
    """A JPEG whose EXIF says "turn 90 degrees" is kept upright at its size, and explained as the file is."""
    photo = Image.fromarray(zoo.data.SAMPLES["chelsea"]()).resize((300, 200))
    exif = Image.Exif()
    exif[0x0112] = 6  # the camera was turned: show rotated 90 degrees clockwise
    path = tmp_path / "turned.jpg"
    photo.save(path, format="JPEG", exif=exif)
    answer = client.post("/api/explain", files={"image": ("turned.jpg", path.read_bytes())},
                         data={"method": "gradient"})
    assert answer.status_code == 200, answer.text
    name = answer.json()["record"]["image"]
    assert client.post("/api/upload", files={"image": ("turned.jpg", path.read_bytes())}).json()["size"] == [200, 300]
    served = np.load(io.BytesIO(client.get(answer.json()["files"]["map.npy"]).content), allow_pickle=False)
    batch = fashion.prepare([zoo.load_image(path, channels=1)])
    np.testing.assert_allclose(served, interpret.get_method("gradient").fn(fashion, batch, None)[0].numpy(),
                               rtol=1e-5, atol=1e-7)
    assert np.array_equal(np.asarray(Image.open(kept_file(client, name)).convert("RGB")),
                          np.asarray(Image.open(path).transpose(Image.Transpose.ROTATE_270).convert("RGB")))


def test_an_upload_kept_for_smaller_models_is_kept_again_for_larger_ones(tmp_path):
    """A restart serving a model with a larger input re-keeps an upload kept smaller; never the other way."""
    small, large = keep_upload(BIG_PNG, tmp_path, 300), keep_upload(BIG_PNG, tmp_path, 600)
    assert small.name == large.name and (small.kept, large.kept) == ((300, 300), (600, 600))
    assert keep_upload(BIG_PNG, tmp_path, 300) == large and len(list(tmp_path.iterdir())) == 1


def test_a_strip_is_kept_as_its_centre(client):
    """handle.prepare reads only the centre square of a strip, so no more than its centre is kept."""
    answer = client.post("/api/upload", files={"image": ("strip.png", encoded((3000, 100)))})
    assert answer.status_code == 200, answer.text
    assert answer.json()["size"] == [3000, 100] and answer.json()["kept"] == [LONG_SIDE * 100, 100]
    assert client.post("/api/explain", json={"image": answer.json()["image"], "method": "gradcam"}).status_code == 200


def truncated() -> bytes:
    return BIG_PNG[:len(BIG_PNG) // 2]


def huge_header() -> bytes:
    buffer = io.BytesIO()
    Image.new("1", (8000, 8000)).save(buffer, format="PNG")  # 64 M pixels declared in a few kB
    return buffer.getvalue()


@pytest.mark.parametrize("content, words", [(truncated(), "not an image"), (b"\x89PNG\r\n\x1a\n" + b"\0" * 300,
                                                                             "not an image"),
                                            (huge_header(), f"{MAX_UPLOAD_PIXELS:,} accepted")])
def test_an_upload_that_cannot_be_kept_is_refused(client, content, words):
    before = sorted((client.app.state.explorer.cache_dir / "uploads").glob("*"))
    answer = client.post("/api/upload", files={"image": ("broken.png", content)})
    assert answer.status_code == 400 and words in answer.json()["error"], answer.text
    assert sorted((client.app.state.explorer.cache_dir / "uploads").glob("*")) == before  # nothing left behind


@pytest.mark.parametrize("name", ["upload:../../../etc/passwd", "upload:0123456789abcdef01234567",
                                  "upload:0123456789ABCDEF01234567"])
def test_an_upload_name_that_names_nothing_kept_is_a_404(client, name):
    answer = client.post("/api/explain", json={"image": name, "method": "gradcam"})
    assert answer.status_code == 404 and "upload the file again" in answer.json()["error"], answer.text
