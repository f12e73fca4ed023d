"""The data view on a real uvicorn server: an explain made while an audit runs waits for at most one of the
audit's rounds (counted, never timed), and a real browser starts an audit, clicks a confusion cell, reaches an
image page, and opens the static report of the same audit (screenshots to $CNNVIZ_ARTIFACTS)."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from cnnviz.explorer import create_app
from cnnviz.gallery.audit_report import write_audit_report
from tests.cli.test_serve import chrome_options, free_port, images_loaded, serving
from tests.explorer.test_audit import class_folder
from tests.explorer.test_scheduler import until
from tests.gallery.test_build import browser_or_skip


@contextlib.contextmanager
def uvicorn_thread(app) -> Iterator[str]:
    """``app`` served by uvicorn on a thread of this process (its explorer's queue can be watched); yields the
    URL."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        until(lambda: server.started or not thread.is_alive())
        assert server.started
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(60)


@pytest.mark.slow
def test_an_explain_made_during_an_audit_waits_for_at_most_one_round(fashion, fashion_mnist, tmp_path, monkeypatch):
    app = create_app([fashion], fashion_mnist, cache_dir=tmp_path)
    with uvicorn_thread(app) as url:
        explorer = app.state.explorer
        started = httpx.post(url + "/api/audit", json={"model": "fashion_cnn"}, timeout=60)
        assert started.status_code == 202, started.text
        job = explorer.jobs[started.json()["id"]]
        assert job.steps > 300  # 10,000 items in chunks of 32, then the classes: far more rounds than the test sees
        until(lambda: job.rounds >= 2)
        queue, seen = explorer.queue(fashion), []
        submit = queue.submit

        def watched(fn):  # each interactive call: the audit's rounds when it was asked and when it ran
            asked = job.rounds

            def run():
                seen.append((asked, job.rounds, job.over))
                return fn()
            return submit(run)

        monkeypatch.setattr(queue, "submit", watched)
        answer = httpx.post(url + "/api/explain", json={"image": "coffee", "method": "gradcam", "target": "Bag"},
                            timeout=60)
        assert answer.status_code == 200, answer.text
        monkeypatch.undo()
        assert len(seen) >= 2 and not any(over for *_, over in seen), seen  # the prediction, then the map
        assert seen[-1][1] - seen[0][0] <= 1, seen  # the whole request waited for one round at most
        status = httpx.get(f"{url}/api/jobs/{job.id}").json()
        assert status["kind"] == "audit" and status["state"] == "running" and status["stage"] == "maps", status
        httpx.post(f"{url}/api/jobs/{job.id}/cancel")
        until(lambda: job.over)
        assert job.state == "cancelled" and job.step < job.steps


@pytest.mark.slow
def test_a_real_browser_audits_clicks_a_confusion_cell_and_reaches_an_image_page(tmp_path, fashion_mnist):
    chromium, driver_path = browser_or_skip()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    artifacts = Path(os.environ.get("CNNVIZ_ARTIFACTS") or tmp_path / "artifacts") / "explorer"
    artifacts.mkdir(parents=True, exist_ok=True)
    folder = class_folder(tmp_path / "data")
    cache = tmp_path / "cache"
    with serving(cache, "--model", "fashion_cnn", "--data", str(folder)) as (url, _):
        browser = webdriver.Chrome(options=chrome_options(chromium, tmp_path), service=Service(driver_path))
        wait = WebDriverWait(browser, 120)
        try:
            browser.get(url + "/m/fashion_cnn/image/coffee")
            browser.find_element(By.ID, "data-link").click()
            wait.until(lambda b: b.find_elements(By.ID, "audit-start"))
            browser.find_element(By.ID, "audit-start").click()
            wait.until(lambda b: b.find_elements(By.ID, "confusion"))  # the page shows the audit once done
            images_loaded(wait)
            browser.save_screenshot(str(artifacts / "explorer-data.png"))
            cells = [c for c in browser.find_elements(By.CSS_SELECTOR, "#confusion a.cell-link")
                     if "diagonal" not in c.find_element(By.XPATH, "..").get_attribute("class")]
            assert cells, "no mistake among the items"
            predicted = cells[0].get_attribute("title").split(" predicted as ")[1].split(":")[0]
            count = int(cells[0].text)
            cells[0].click()
            wait.until(lambda b: "/data/items" in b.current_url)
            images_loaded(wait)
            assert len(browser.find_elements(By.CSS_SELECTOR, "a.item-link img")) == count
            browser.save_screenshot(str(artifacts / "explorer-data-cell.png"))
            browser.find_element(By.CSS_SELECTOR, "a.item-link").click()
            wait.until(lambda b: "/image/data:" in b.current_url)
            images_loaded(wait)
            top = browser.find_element(By.CSS_SELECTOR, "#prediction tr:nth-child(2) td").text
            assert top.startswith(predicted), (top, predicted)  # the image page predicts what the cell says
            severe = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
            assert severe == []

            run = next((cache / "audit").iterdir())  # the audit the server kept; published as static pages
            page = write_audit_report(tmp_path / "site", run, images=folder)
            browser.get(page.as_uri())
            images_loaded(wait)
            browser.find_element(By.CSS_SELECTOR, "#confusion a.cell-link").click()
            images_loaded(wait)
            assert browser.find_elements(By.CSS_SELECTOR, "a.item-link img")
            browser.save_screenshot(str(artifacts / "audit-static-cell.png"))
            severe = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
            assert severe == []
        finally:
            browser.quit()
