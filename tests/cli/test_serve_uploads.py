"""Uploads outlive the server: a 6000 x 6000 PNG chosen in a real browser on a real ``cnnviz serve`` gets its page,
and the next server started on the same ``--cache`` folder shows that page and explains it with a map; the kept
file is small."""

from __future__ import annotations

import io
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest
from PIL import Image

from cnnviz import zoo
from cnnviz.explorer.images import upload_side
from tests.cli.test_serve import chrome_options, images_loaded, serving
from tests.explorer.test_uploads import BIG_PNG
from tests.gallery.test_build import browser_or_skip


@pytest.mark.slow
def test_a_6000_px_upload_is_explained_after_a_restart(tmp_path):
    chromium, driver_path = browser_or_skip()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    cache, picture = tmp_path / "cache", tmp_path / "big.png"
    picture.write_bytes(BIG_PNG)
    browser = webdriver.Chrome(options=chrome_options(chromium, tmp_path), service=Service(driver_path))
    wait = WebDriverWait(browser, 120)

    loaded = lambda: images_loaded(wait)  # noqa: E731

    try:
        with serving(cache, "--model", "fashion_cnn") as (url, _):
            browser.get(url + "/")
            loaded()
            browser.find_element(By.ID, "upload").send_keys(str(picture))
            wait.until(lambda b: "upload%3A" in b.current_url or "upload:" in b.current_url)
            loaded()
            page = urlsplit(browser.current_url).path
            predicted = browser.find_element(By.CSS_SELECTOR, "#prediction tr:nth-child(2) td").text
            name = httpx.post(url + "/api/upload", files={"image": ("big.png", BIG_PNG)}, timeout=60).json()
            assert name["size"] == [6000, 6000] and name["image"] in page.replace("%3A", ":")
        side = upload_side([zoo.load("fashion_cnn", device="cpu")])
        files = list((cache / "uploads").glob("*.png"))
        assert len(files) == 1 and files[0].stat().st_size <= 3 * side * side  # at most the kept size's raw bytes
        with serving(cache, "--model", "fashion_cnn") as (url, _):
            browser.get(url + page)
            loaded()
            assert browser.find_element(By.CSS_SELECTOR, "#prediction tr:nth-child(2) td").text == predicted
            browser.find_element(By.ID, "explain").click()  # Grad-CAM is the method selected
            wait.until(lambda b: "/explain/gradcam" in b.current_url)
            loaded()
            answer = httpx.post(url + "/api/explain", json={"image": name["image"], "method": "gradcam"}, timeout=60)
            assert answer.status_code == 200, answer.text
            heat = httpx.get(url + answer.json()["files"]["heat.png"])
            assert heat.status_code == 200 and np.asarray(Image.open(io.BytesIO(heat.content))).std() > 0
            severe = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
            assert severe == []
    finally:
        browser.quit()
