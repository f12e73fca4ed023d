"""What a person sees on the explorer's pages, in headless Chromium against a real uvicorn server in this
process (so a test can count what the server computes): the compare overlay lies on its photo, pixel for pixel,
with the colour bar beside it; an error is a page with the way back; a double click on Explain runs the method
once; the method switcher."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cnnviz import interpret, zoo
from cnnviz.explorer import create_app
from tests.cli.test_serve import chrome_options, free_port, images_loaded
from tests.gallery.test_build import browser_or_skip


@contextlib.contextmanager
def served(app: Any) -> Iterator[str]:
    """``app`` under uvicorn on a free port in a thread of this process; yields its URL once it answers."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(30)


@pytest.fixture(scope="module")
def site(fashion, tmp_path_factory) -> Iterator[str]:
    lenet = zoo.load("lenet5", device="cpu", weights=None)
    with served(create_app([fashion, lenet], cache_dir=tmp_path_factory.mktemp("cache"))) as url:
        yield url


@pytest.fixture(scope="module")
def browser(tmp_path_factory) -> Iterator[Any]:
    chromium, driver_path = browser_or_skip()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    driver = webdriver.Chrome(options=chrome_options(chromium, tmp_path_factory.mktemp("chromium")),
                              service=Service(driver_path))
    yield driver
    driver.quit()


def loaded(browser: Any, seconds: float = 60) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    images_loaded(WebDriverWait(browser, seconds))


def rect(browser: Any, element: Any) -> dict[str, float]:
    return browser.execute_script("const r = arguments[0].getBoundingClientRect();"
                                  "return {left: r.left, top: r.top, right: r.right, bottom: r.bottom};", element)


def shot(browser: Any, name: str) -> None:
    """A screenshot to $CNNVIZ_ARTIFACTS/explorer, where set."""
    folder = os.environ.get("CNNVIZ_ARTIFACTS")
    if folder:
        (Path(folder) / "explorer").mkdir(parents=True, exist_ok=True)
        assert browser.save_screenshot(str(Path(folder) / "explorer" / f"explorer-{name}.png"))


def severe(browser: Any) -> list[str]:
    return [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]


@pytest.mark.slow
def test_the_compare_overlay_lies_on_its_photo_with_the_colour_bar_beside(site, browser):
    from selenium.webdriver.common.by import By

    browser.get(site + "/compare/fashion_cnn/lenet5/image/coffee/explain/gradcam")
    loaded(browser)
    figures = browser.find_elements(By.CSS_SELECTOR, "#compare figure.compared")
    assert len(figures) == 2
    for figure in figures:
        photo, overlay, bar = (figure.find_element(By.CSS_SELECTOR, css) for css in
                               (".stack img:first-child", ".stack img.over", "img[alt='colour bar']"))
        at, over, beside = rect(browser, photo), rect(browser, overlay), rect(browser, bar)
        assert at == over, (at, over)  # the same pixels, not the map at the box's left edge
        assert at["right"] - at["left"] == 224 and at["bottom"] - at["top"] == 224
        assert beside["left"] >= at["right"] and beside["top"] == at["top"], (at, beside)  # beside, not below
    shot(browser, "compare-aligned")
    assert severe(browser) == []


@pytest.mark.slow
def test_a_double_click_on_explain_runs_the_method_once_and_shows_it_works(site, browser, monkeypatch):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    from tests.explorer.test_pages import counting

    runs = counting(monkeypatch, pause=1.5)  # long enough to see the working state and to click twice
    browser.get(site + "/m/fashion_cnn/image/rocket")  # a sample no other test explains, so nothing is cached
    loaded(browser)
    Select(browser.find_element(By.ID, "method")).select_by_value("gradient")
    # two clicks as fast as a script can make them; what the page shows is read before it goes (a WebDriver
    # click waits for the next page)
    disabled, shown = browser.execute_script(
        "const b = document.getElementById('explain'); b.click(); b.click();"
        "return [b.disabled, document.getElementById('explain-state').textContent];")
    assert disabled and shown.startswith("computing…"), shown
    WebDriverWait(browser, 60).until(lambda b: "/explain/gradient" in b.current_url)
    loaded(browser)
    assert runs == ["gradient"]

    switch = Select(browser.find_element(By.ID, "method-switch"))
    assert switch.first_selected_option.get_attribute("value") == "gradient"
    labels = [g.get_attribute("label") for g in browser.find_elements(By.CSS_SELECTOR, "#method-switch optgroup")]
    assert len(labels) == len(set(labels)) >= 3
    occlusion = browser.find_element(By.CSS_SELECTOR, "#method-switch option[value='occlusion']")
    assert "how much the class score drops when a patch is hidden" in occlusion.text
    assert browser.find_element(By.ID, "summary").text == interpret.get_method("gradient").summary
    shown = browser.execute_script(
        "const s = document.getElementById('method-switch'); s.value = 'occlusion';"
        "s.dispatchEvent(new Event('change')); return document.getElementById('switch-state').textContent;")
    assert shown.startswith("loading…"), shown
    WebDriverWait(browser, 60).until(lambda b: "/explain/occlusion" in b.current_url)
    loaded(browser)
    assert runs == ["gradient", "occlusion"]
    assert browser.find_element(By.ID, "summary").text == interpret.get_method("occlusion").summary
    assert severe(browser) == []


@pytest.mark.slow
def test_the_faithfulness_chart_has_axes_and_a_legend(site, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(site + "/m/fashion_cnn/image/coffee/explain/gradcam")
    loaded(browser)
    browser.find_element(By.ID, "faithfulness").click()
    WebDriverWait(browser, 120).until(lambda b: b.find_elements(By.CSS_SELECTOR, "#curves polyline"))
    scores = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#faithfulness-scores li")]
    assert len(scores) == 2 and scores[0].startswith("insertion AUC") and "(random 0." in scores[1]
    texts = [t.text for t in browser.find_elements(By.CSS_SELECTOR, "#curves .axis text")]
    assert {"0", "0.5", "1", "fraction of pixels inserted / deleted", "class probability"} <= set(texts)
    assert [t.text for t in browser.find_elements(By.CSS_SELECTOR, "#curves .legend text")] == \
        ["insertion", "deletion onto blur"]
    chart = rect(browser, browser.find_element(By.ID, "curves"))
    for curve in browser.find_elements(By.CSS_SELECTOR, "#curves polyline"):  # inside the chart, drawn
        box = rect(browser, curve)
        assert chart["left"] < box["left"] <= box["right"] < chart["right"] and box["right"] - box["left"] > 100
    browser.execute_script("document.getElementById('faithfulness').scrollIntoView()")
    shot(browser, "faithfulness-chart")
    assert severe(browser) == []


@pytest.mark.slow
def test_the_layer_table_hides_batchnorm_until_asked(site, browser):
    from selenium.webdriver.common.by import By

    browser.get(site + "/m/fashion_cnn/layers?image=coffee")
    loaded(browser)
    rows = browser.find_elements(By.CSS_SELECTOR, "#layer-table tbody tr")
    batchnorm = [r for r in rows if "BatchNorm" in r.text or r.get_attribute("class").startswith("skippable")]
    assert len(batchnorm) == 4 and not any(r.is_displayed() for r in batchnorm)
    assert sum(r.is_displayed() for r in rows) == len(rows) - 4
    stages = browser.find_elements(By.CSS_SELECTOR, "#stages a.stage")
    tops = {rect(browser, s)["top"] for s in stages}
    assert len(stages) == 4 and len(tops) == 1  # the stages side by side, in one line
    shot(browser, "layers")
    browser.find_element(By.ID, "show-all").click()
    assert all(r.is_displayed() for r in rows)
    browser.find_element(By.CSS_SELECTOR, "#stages a.stage[href='#stage-classifier']").click()
    assert browser.execute_script("return location.hash") == "#stage-classifier"
    assert severe(browser) == []


@pytest.mark.slow
def test_deepdream_counts_its_steps_as_the_user_set_them(site, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(site + '/m/fashion_cnn/image/coffee/optimize/dream?options={"steps": 3, "octaves": 2}')
    loaded(browser)
    browser.find_element(By.ID, "job-start").click()
    WebDriverWait(browser, 120).until(lambda b: b.find_element(By.ID, "job-state").get_attribute("data-state") == "done")
    assert browser.find_element(By.ID, "job-state").text == "done, step 3 of 3, octave 2 of 2"
    assert severe(browser) == []


def test_why_by_units_paints_before_its_sheet_then_shows_what_each_channel_looks_for(site, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(site + "/m/fashion_cnn/image/coffee/why?layer=features.block1&top=3")
    evidence = browser.find_element(By.ID, "evidence")
    assert evidence.get_attribute("data-sheet") == "missing"  # the first paint did not wait for the sheet
    assert len(browser.find_elements(By.CSS_SELECTOR, "#evidence a img")) == 3
    WebDriverWait(browser, 30).until(lambda b: b.execute_script(
        "return Array.from(document.querySelectorAll('#evidence a img')).every(i => i.complete && i.naturalWidth)"))
    WebDriverWait(browser, 120).until(lambda b: b.execute_script(
        "const p = Array.from(document.querySelectorAll('img.looks-for'));"
        "return p.length === 3 && p.every(i => !i.hidden && i.complete && i.naturalWidth > 0)"))
    WebDriverWait(browser, 60).until(lambda b: b.find_element(By.ID, "sheet-state").get_attribute("data-state")
                                     == "kept")  # the pictures may come before the sheet is written
    shot(browser, "why-by-units")
    assert severe(browser) == []
