"""Uploads outlive the server: a 6000 x 6000 PNG uploaded to a real ``cnnviz serve`` is explained, with a map,
by the next server started on the same ``--cache`` folder; the kept file is small."""

from __future__ import annotations

import io

import httpx
import numpy as np
import pytest
from PIL import Image

from cnnviz import zoo
from cnnviz.explorer.images import upload_side
from tests.cli.test_serve import serving
from tests.explorer.test_uploads import BIG_PNG


@pytest.mark.slow
def test_a_6000_px_upload_is_explained_after_a_restart(tmp_path):
    cache = tmp_path / "cache"
    with serving(cache, "--model", "fashion_cnn") as (url, _):
        kept = httpx.post(url + "/api/upload", files={"image": ("big.png", BIG_PNG)}, timeout=60)
        assert kept.status_code == 200, kept.text
        assert kept.json()["size"] == [6000, 6000]
    side = upload_side([zoo.load("fashion_cnn", device="cpu")])
    files = list((cache / "uploads").glob("*.png"))
    assert len(files) == 1 and files[0].stat().st_size <= 3 * side * side  # at most the raw bytes of the kept size
    with serving(cache, "--model", "fashion_cnn") as (url, _):
        answer = httpx.post(url + "/api/explain", json={"image": kept.json()["image"], "method": "gradcam"},
                            timeout=60)
        assert answer.status_code == 200, answer.text
        heat = httpx.get(url + answer.json()["files"]["heat.png"])
        assert heat.status_code == 200 and np.asarray(Image.open(io.BytesIO(heat.content))).std() > 0
        page = httpx.get(url + f"/m/fashion_cnn/image/{kept.json()['image']}/explain/gradcam")
        assert page.status_code == 200 and "no longer kept" not in page.text
