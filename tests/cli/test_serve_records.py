"""An all-zero map as a person meets it in a real browser on a real ``cnnviz serve``: Grad-CAM on a Fashion-MNIST
item where fashion_cnn's map is zero everywhere says why on the page, and its record parses with the browser's
own ``JSON.parse``."""

from __future__ import annotations

import httpx
import pytest

from cnnviz.interpret.evaluate.explanation_json import ALL_ZERO
from tests.cli.test_serve import chrome_options, serving
from tests.gallery.test_build import browser_or_skip


@pytest.mark.slow
def test_an_all_zero_map_says_why_in_the_browser(tmp_path, fashion_mnist):
    chromium, driver_path = browser_or_skip()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    with serving(tmp_path / "cache", "--model", "fashion_cnn", "--data", fashion_mnist) as (url, _):
        records = (httpx.post(url + "/api/explain", json={"image": f"data:{i}", "method": "gradcam"}, timeout=60)
                   for i in range(40))
        found = next(r.json() for r in records if r.json()["record"]["map"]["undefined"])
        browser = webdriver.Chrome(options=chrome_options(chromium, tmp_path), service=Service(driver_path))
        wait = WebDriverWait(browser, 120)
        try:
            browser.get(f"{url}/m/fashion_cnn/image/{found['record']['image']}/explain/gradcam")
            wait.until(lambda b: b.execute_script(
                "return document.readyState === 'complete' && "
                "Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)"))
            note = browser.find_element(By.ID, "map-undefined")
            assert note.is_displayed() and note.text == ALL_ZERO
            parsed = browser.execute_async_script(
                "const done = arguments[arguments.length - 1];"
                "fetch(arguments[0]).then(r => r.text()).then(t => done(JSON.parse(t).map))"
                ".catch(e => done(String(e)))", found["files"]["record.json"])
            assert parsed["gini"] is None and parsed["undefined"] == ALL_ZERO, parsed
            severe = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
            assert severe == []
        finally:
            browser.quit()
