"""The data view on a real uvicorn server: an explain made while an audit runs waits for at most one of the
audit's rounds (counted, never timed), and a real browser resumes the audit, clicks a confusion cell, reaches an
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
from tests.cli.test_serve import chrome_options, free_port, images_loaded
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


def watch_calls(monkeypatch, queue, job) -> list[tuple[int, int, bool]]:
    """From now on, each interactive call on ``queue``: the job's rounds when it was asked and when it ran, and
    whether the job was over."""
    seen: list[tuple[int, int, bool]] = []
    submit = queue.submit

    def watched(fn):
        asked = job.rounds

        def run():
            seen.append((asked, job.rounds, job.over))
            return fn()
        return submit(run)

    monkeypatch.setattr(queue, "submit", watched)
    return seen


@pytest.mark.slow
def test_an_audit_in_rounds_with_an_explain_between_then_resumed_in_a_real_browser(fashion, fashion_mnist, tmp_path,
                                                                                   monkeypatch):
    """One uvicorn server over a folder of class sub-folders: an explain made while the audit runs waits for one
    round at most; the audit is cancelled, then a real browser resumes it from the data view, clicks a confusion
    cell and reaches an image page; the static report of the kept audit opens with every picture."""
    chromium, driver_path = browser_or_skip()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    artifacts = Path(os.environ.get("CNNVIZ_ARTIFACTS") or tmp_path / "artifacts") / "explorer"
    artifacts.mkdir(parents=True, exist_ok=True)
    folder, cache = class_folder(tmp_path / "data"), tmp_path / "cache"
    app = create_app([fashion], str(folder), cache_dir=cache)
    with uvicorn_thread(app) as url:
        explorer = app.state.explorer
        started = httpx.post(url + "/api/audit", json={"model": "fashion_cnn"}, timeout=60)
        assert started.status_code == 202, started.text
        job = explorer.jobs[started.json()["id"]]
        until(lambda: job.rounds >= 2)
        seen = watch_calls(monkeypatch, explorer.queue(fashion), job)
        answer = httpx.post(url + "/api/explain", json={"image": "coffee", "method": "gradcam", "target": "Bag"},
                            timeout=120)
        assert answer.status_code == 200, answer.text
        monkeypatch.undo()
        assert len(seen) >= 2 and not any(over for *_, over in seen), seen  # the prediction, then the map
        assert seen[-1][1] - seen[0][0] <= 1, seen  # the whole request waited for one round at most
        status = httpx.post(f"{url}/api/jobs/{job.id}/cancel").json()
        assert status["kind"] == "audit" and status["steps"] > status["step"] >= 2, status
        until(lambda: job.over)
        assert job.state == "cancelled"

        browser = webdriver.Chrome(options=chrome_options(chromium, tmp_path), service=Service(driver_path))
        wait = WebDriverWait(browser, 180)
        try:
            browser.get(url + "/m/fashion_cnn/image/coffee")
            browser.find_element(By.ID, "data-link").click()
            wait.until(lambda b: b.find_elements(By.ID, "audit-start"))
            browser.find_element(By.ID, "audit-start").click()  # resumes from the chunks the cancelled job wrote
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
