"""``cnnviz serve`` as a real uvicorn server in its own process: the token on a public address, a clean stop on
SIGINT/SIGTERM mid-job with nothing partial left in the cache folder, 32 concurrent clients, and a real
browser clicking through image -> prediction -> Grad-CAM -> a layer -> a channel -> its unit page ->
start and cancel an optimization (screenshots to $CNNVIZ_ARTIFACTS)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from cnnviz import interpret
from cnnviz import zoo
from cnnviz.cli.commands.serve import is_loopback
from tests.conftest import REPO
from tests.gallery.test_build import browser_or_skip


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def serving(cache: Path, *args: str, host: str = "127.0.0.1",
            headers: dict[str, str] | None = None) -> Iterator[tuple[str, subprocess.Popen]]:
    """A ``cnnviz serve`` process on a free port; yields its URL once /api/health answers."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, "-m", "cnnviz.cli.main", "serve", "--device", "cpu", "--port", str(port),
                                "--host", host, "--cache", str(cache), *args], cwd=REPO, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, process.communicate()
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/api/health", headers=headers, timeout=2).status_code in (200, 401):
                    break
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)
        yield url, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_only_loopback_addresses_count_as_local():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4") and not is_loopback("example.org")


def stop_cleanly(process: subprocess.Popen, stop: signal.Signals, cache: Path) -> str:
    """Stop the server with ``stop``; its stderr, after checking it stopped gracefully and left no file."""
    process.send_signal(stop)
    _, err = process.communicate(timeout=60)
    # uvicorn re-raises the signal once shut down: SIGINT ends in cnnviz's "interrupted" (130), SIGTERM in -15
    assert process.returncode in (0, 130, -stop), err
    assert "cnnviz serve: stopped" in err and "Traceback" not in err, err
    left = [p.relative_to(cache) for p in cache.rglob("*") if p.is_file()]
    assert left == [], left
    return err


@pytest.mark.slow
def test_a_public_address_warns_needs_the_token_and_stops_on_sigint(tmp_path):
    cache = tmp_path / "cache"
    with serving(cache, "--model", "fashion_cnn", "--token", "t0ken", host="0.0.0.0") as (url, process):
        assert httpx.get(url + "/api/health").status_code == 401
        auth = {"Authorization": "Bearer t0ken"}
        assert httpx.get(url + "/api/health", headers=auth).status_code == 200
        assert httpx.post(url + "/api/predict", json={"image": "chelsea"}).status_code == 401
        job = httpx.post(url + "/api/jobs", headers=auth, json={"layer": "features.block2", "channel": 1,
                                                                 "steps": 5000, "round_steps": 2}).json()
        while httpx.get(f"{url}/api/jobs/{job['id']}", headers=auth).json()["step"] == 0:
            time.sleep(0.05)
        err = stop_cleanly(process, signal.SIGINT, cache)
    assert "warning: --host 0.0.0.0" in err


@pytest.mark.slow
def test_a_deep_or_huge_body_gets_one_line_from_the_real_server(tmp_path):
    """uvicorn in its own process: a 50,000-deep body is a 400 and a 40 MB one (declared, or sent in chunks,
    slowly) a 413, each with its one line, and the server keeps serving."""
    from tests.explorer.test_requests import assert_one_line, nested

    headers = {"content-type": "application/json"}
    big = b'{"image": "' + b"a" * (40 * 2**20) + b'"}'

    def slowly():
        for start in range(0, len(big), 4 * 2**20):
            time.sleep(0.05)
            yield big[start:start + 4 * 2**20]

    with serving(tmp_path / "cache", "--model", "fashion_cnn") as (url, _):
        assert_one_line(httpx.post(url + "/api/explain", content=nested(50_000), headers=headers), 400, "nested")
        assert_one_line(httpx.post(url + "/api/explain", content=big, headers=headers, timeout=60), 413, "accepted")
        assert_one_line(httpx.post(url + "/api/predict", content=slowly(), headers=headers, timeout=60), 413,
                        "accepted")
        assert httpx.post(url + "/api/predict", json={"image": "chelsea"}).status_code == 200


def python_maps(handle: zoo.ModelHandle, image: str, method: str, target: str | None) -> np.ndarray:
    batch = handle.prepare([zoo.load_image(image, channels=handle.in_channels)])
    return interpret.get_method(method).fn(handle, batch, target)[0].numpy()


@pytest.mark.slow
def test_32_concurrent_clients(tmp_path):
    """A short run of bench/serve.py's load: mixed requests from 32 clients, no error, maps equal the Python
    API's, the result cache under its limit and one torch job at a time; then SIGTERM mid-job."""
    from bench.serve import load

    handle = zoo.load("fashion_cnn", device="cpu")
    cache = tmp_path / "cache"
    with serving(cache, "--model", "fashion_cnn", "--cache-mb", "2") as (url, process):
        report = load(url, seconds=10, clients=32, expected=lambda *key: python_maps(handle, *key), pid=process.pid)
        # then a stop mid-job, with an upload under way
        job = httpx.post(url + "/api/jobs", json={"layer": "features.block2", "channel": 1, "steps": 5000,
                                                  "round_steps": 2}).json()

        def upload() -> None:
            with contextlib.suppress(httpx.HTTPError):  # answered, or cut off by the stop
                httpx.post(url + "/api/explain", files={"image": ("x.png", b"\x89PNG" + b"\0" * 200_000)},
                           data={"method": "gradient"}, timeout=60)

        uploader = threading.Thread(target=upload)
        uploader.start()
        while httpx.get(f"{url}/api/jobs/{job['id']}").json()["step"] == 0:
            time.sleep(0.05)
        stop_cleanly(process, signal.SIGTERM, cache)
        uploader.join()
    print(report)
    assert report["errors"] == [] and report["requests"] >= 2 * report["clients"], report
    assert report["maps_checked"] >= 10 and report["maps_differing"] == 0, report
    assert report["cache_bytes"] <= report["cache_limit_bytes"] == 2 * 2**20
    assert report["most_jobs_at_once"] == 1
    assert report["rss_growth_mb"] < 400, report


def chrome_options(chromium: str, tmp_path: Path) -> Any:
    """Headless Chromium with its own profile folder and the browser's console log kept."""
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,900"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return options


@pytest.mark.slow
def images_loaded(wait: Any) -> None:
    """Wait until the page and every picture it shows have loaded."""
    wait.until(lambda b: b.execute_script(
        "return document.readyState === 'complete' && "
        "Array.from(document.images).every(i => i.complete && (i.hidden || i.naturalWidth > 0))"))


def test_a_real_browser_clicks_through_the_explorer(tmp_path):
    chromium, driver_path = browser_or_skip()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    artifacts = Path(os.environ.get("CNNVIZ_ARTIFACTS") or tmp_path / "artifacts") / "explorer"
    artifacts.mkdir(parents=True, exist_ok=True)
    options = chrome_options(chromium, tmp_path)
    with serving(tmp_path / "cache", "--model", "efficientnet_lite0") as (url, _):
        browser = webdriver.Chrome(options=options, service=Service(driver_path))
        wait = WebDriverWait(browser, 120)

        loaded = lambda: images_loaded(wait)  # noqa: E731

        def shot(name: str) -> None:
            assert browser.save_screenshot(str(artifacts / f"explorer-{name}.png"))

        try:
            browser.get(url + "/")
            loaded()
            first = browser.find_element(By.CSS_SELECTOR, "#prediction tr:nth-child(2) td").text
            assert first.startswith("tiger cat") or first.startswith("tabby"), first
            shot("image")
            browser.find_element(By.ID, "explain").click()  # Grad-CAM is the method selected
            wait.until(lambda b: "/explain/gradcam" in b.current_url)
            loaded()
            assert browser.find_element(By.ID, "explained").text == first.split(" (")[0]
            slider = browser.find_element(By.ID, "opacity")
            browser.execute_script("arguments[0].value = 0.8; arguments[0].dispatchEvent(new Event('input'))", slider)
            assert browser.find_element(By.ID, "overlay").value_of_css_property("opacity") == "0.8"
            browser.find_element(By.ID, "faithfulness").click()
            wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#curves polyline"))
            shown = browser.find_element(By.ID, "faithfulness-result").text
            assert "insertion AUC" in shown and "deletion AUC onto a blurred copy" in shown and "(random 0." in shown
            shot("gradcam")
            browser.find_element(By.ID, "layers-link").click()
            loaded()
            browser.find_element(By.CSS_SELECTOR, "a.layer[href*='/layers/blocks.5?']").click()
            loaded()
            channels = browser.find_elements(By.CSS_SELECTOR, "#feature-maps a.channel")
            assert len(channels) == 32
            shot("layer")
            channels[0].click()
            wait.until(lambda b: "/units/blocks.5/" in b.current_url)
            loaded()
            browser.find_element(By.ID, "job-start").click()
            wait.until(lambda b: b.find_element(By.ID, "job-state").get_attribute("data-state") == "running")
            wait.until(lambda b: b.find_element(By.ID, "actmax-image").get_attribute("hidden") is None)
            browser.find_element(By.ID, "job-cancel").click()
            wait.until(lambda b: b.find_element(By.ID, "job-state").get_attribute("data-state") == "cancelled")
            loaded()
            shot("unit")
            severe = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
            assert severe == []
        finally:
            browser.quit()


@pytest.mark.slow
def test_a_real_browser_uses_options_patches_optimization_and_compare(tmp_path):
    chromium, driver_path = browser_or_skip()
    from PIL import Image
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    artifacts = Path(os.environ.get("CNNVIZ_ARTIFACTS") or tmp_path / "artifacts") / "explorer"
    artifacts.mkdir(parents=True, exist_ok=True)
    photos = tmp_path / "photos"
    photos.mkdir()
    noise = np.random.default_rng(0)
    for i in range(24):
        Image.fromarray(noise.integers(0, 256, (28, 28), dtype=np.uint8)).save(photos / f"item{i:02d}.png")
    options = chrome_options(chromium, tmp_path)
    with serving(tmp_path / "cache", "--model", "fashion_cnn", "--model", "lenet5", "--weights", "random",
                 "--data", str(photos)) as (url, _):
        browser = webdriver.Chrome(options=options, service=Service(driver_path))
        wait = WebDriverWait(browser, 60)

        loaded = lambda: images_loaded(wait)  # noqa: E731

        try:
            browser.get(url + "/m/fashion_cnn/image/coffee")
            loaded()
            browser.find_element(By.CSS_SELECTOR, "a.compare-link").click()
            wait.until(lambda b: "/compare/fashion_cnn/lenet5/" in b.current_url)
            loaded()
            assert len(browser.find_elements(By.CSS_SELECTOR, "#compare figure.compared")) == 2
            browser.save_screenshot(str(artifacts / "explorer-compare.png"))

            browser.get(url + "/m/fashion_cnn/image/coffee/explain/occlusion")
            loaded()
            browser.find_element(By.CSS_SELECTOR, "[data-option='window']").send_keys("7")
            Select(browser.find_element(By.CSS_SELECTOR, "[data-option='fill']")).select_by_value("black")
            browser.find_element(By.CSS_SELECTOR, "#options-form button[type=submit]").click()
            wait.until(lambda b: "window" in b.current_url)
            loaded()
            assert Select(browser.find_element(By.CSS_SELECTOR, "[data-option='fill']")).first_selected_option \
                .get_attribute("value") == "black"
            assert browser.find_element(By.CSS_SELECTOR, "[data-option='window']").get_attribute("value") == "7"

            browser.get(url + "/m/fashion_cnn/units/features.block2/3?image=coffee")
            loaded()
            # painted before the layer's sheet was made; the sheet is made while the page is open
            assert browser.find_element(By.ID, "patches").get_attribute("data-sheet") == "missing"
            wait.until(lambda b: b.find_element(By.ID, "sheet-state").get_attribute("data-state") == "kept")
            loaded()
            assert len(browser.find_elements(By.CSS_SELECTOR, "#patch-grid img")) == 9
            assert browser.find_element(By.CSS_SELECTOR, "#sheet-picture img.looks-for").get_attribute("hidden") is None
            browser.save_screenshot(str(artifacts / "explorer-unit-patches.png"))

            browser.get(url + '/m/fashion_cnn/image/coffee/optimize/pgd?options={"steps": 5000}')
            loaded()
            assert browser.find_element(By.ID, "job-cost").text.startswith("cost: 5000 steps")  # before it starts
            browser.find_element(By.ID, "job-start").click()
            wait.until(lambda b: b.find_element(By.ID, "job-state").get_attribute("data-state") == "running")
            wait.until(lambda b: b.find_element(By.ID, "optimize-image").get_attribute("hidden") is None)
            browser.find_element(By.ID, "job-cancel").click()
            wait.until(lambda b: b.find_element(By.ID, "job-state").get_attribute("data-state") == "cancelled")
            loaded()
            browser.save_screenshot(str(artifacts / "explorer-optimize.png"))
            severe = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
            assert severe == []
        finally:
            browser.quit()
