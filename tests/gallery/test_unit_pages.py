"""Static unit pages (``cnnviz gallery --units``): the explorer's unit template exported to files: every page and
picture is there, names are escaped, the patches are the atlas's top-k, and a real browser loads the pages
without a console error."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch

from cnnviz import interpret
from cnnviz import zoo
from cnnviz.gallery.unit_pages import export_units
from tests.conftest import REPO, TinyCNN
from tests.gallery.test_build import browser_or_skip

HOSTILE = '<img src=x onerror="alert(1)">'
VOID = {"meta", "link", "img", "input", "br", "hr", "source"}


class Balance(HTMLParser):
    """Checks that every opened element is closed in order (void elements aside)."""

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.problems: list[str] = []
        self.sources: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.sources += [value for name, value in attrs if name == "src" and value]
        if tag not in VOID:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.open[-1:] or 'nothing'}")
        else:
            self.open.pop()


def exported(tmp_path: Path) -> tuple[zoo.ModelHandle, torch.Tensor, list[Path]]:
    torch.manual_seed(0)
    model = zoo.wrap(TinyCNN(), input_size=16, classes=["a", "b", "c"], default_layer="conv2", name=HOSTILE)
    data = torch.rand(12, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    return model, data, export_units(tmp_path / "site", model, "conv2", [0, 2], image="coffee", data=data, top=4,
                                     actmax_steps=2)


def test_unit_pages_are_written_valid_escaped_and_show_the_atlas_top_k(tmp_path):
    model, data, pages = exported(tmp_path)
    assert [p.name for p in pages][-1] == "index.html" and len(pages) == 3
    atlas = interpret.inside.neuron_atlas(model, "conv2", data, top=4, progress=False)
    for page, channel in zip(pages, [0, 2]):
        text = page.read_text()
        checker = Balance()
        checker.feed(text)
        assert checker.problems == [] and checker.open == [], (page, checker.problems, checker.open)
        assert HOSTILE not in text and "&lt;img src=x onerror=" in text
        assert all((page.parent / src).is_file() for src in checker.sources), checker.sources
        shown = [f"#{int(i)}" for i in atlas.top_indices[channel]]
        assert [s for s in shown if f"{s} · " in text] == shown
        assert "<script" not in text  # a static page: no server to call
    index = pages[-1].read_text()
    assert all(f'href="{p.name}"' in index for p in pages[:-1])
    assert {p.parent for p in (tmp_path / "site").rglob("*") if p.is_file()} <= {tmp_path / "site" / "units",
                                                                              tmp_path / "site" / "units" / "files"}


@pytest.mark.slow
def test_the_cli_exports_unit_pages(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "cnnviz.cli.main", "gallery", "--model", "fashion_cnn", "--units",
                           "features.block1:1-2", "--images", "coffee", "--quick", "--device", "cpu", "--no-progress",
                           "--out", str(tmp_path)], check=False, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert len(list((tmp_path / "units").glob("fashion_cnn-*.html"))) == 2
    bad = subprocess.run([sys.executable, "-m", "cnnviz.cli.main", "gallery", "--model", "fashion_cnn", "--units",
                          "features.block1:99", "--out", str(tmp_path / "bad")], cwd=REPO, env=env,
                         check=False, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert not (tmp_path / "bad").exists()


def test_a_real_browser_loads_the_unit_pages(tmp_path):
    chromium, driver_path = browser_or_skip()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    _, _, pages = exported(tmp_path)
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(options=options, service=Service(driver_path))
    try:
        for page in pages:
            browser.get(page.as_uri())
            deadline = time.monotonic() + 20
            while browser.execute_script("return document.readyState !== 'complete' || "
                                         "!Array.from(document.images).every(i => i.complete)"):
                assert time.monotonic() < deadline, page
                time.sleep(0.1)
            undecoded = browser.execute_script(
                "return Array.from(document.images).filter(i => !i.naturalWidth).map(i => i.src)")
            assert undecoded == [], undecoded
            assert browser.execute_script("return document.querySelectorAll('[onerror]').length") == 0
            severe = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
            assert severe == [], severe
            if page.name != "index.html":
                assert len(browser.execute_script("return document.querySelectorAll('#patch-grid img')")) == 4
    finally:
        browser.quit()


def test_unit_pages_and_their_index_show_the_sheet_and_each_unit_s_label(tmp_path):
    from cnnviz.interpret.inside import Dissection, UnitLabel
    from cnnviz.interpret.inside.unit_labels import Threshold

    torch.manual_seed(0)
    model = zoo.wrap(TinyCNN(), input_size=16, classes=["a", "b", "c"], default_layer="conv2", name="tiny")
    channels = interpret.inside.layer_channels(model, "conv2")
    labels = Dissection(layer="conv2", model="tiny", fingerprint="-", data="-", images=1, map_size=(4, 4),
                        concepts=("Bag",), detector_iou=0.04, threshold=Threshold(0.005, (1.0,) * channels),
                        units=[UnitLabel(c, "Bag", 0.2 if c == 0 else 0.01, c == 0) for c in range(channels)])
    pages = export_units(tmp_path / "site", model, "conv2", [0, 1], image="coffee", actmax_steps=2, labels=labels)
    assert "Bag (IoU 0.2)" in pages[0].read_text() and "weak: Bag? (IoU 0.01)" in pages[1].read_text()
    index = pages[-1].read_text()
    assert "Bag (IoU 0.2)" in index and index.count('-actmax.png"') == 2
    assert all((pages[-1].parent / f"files/{p.stem}-actmax.png").is_file() for p in pages[:-1])


def test_a_sheet_of_some_channels_gives_only_their_pages_a_picture(fashion, tmp_path):
    sheet = interpret.layer_sheet(fashion, "features.block1", channels=[1], steps=2, progress=False)
    export_units(tmp_path, fashion, "features.block1", [0, 1], image="coffee", sheet=sheet)
    files = tmp_path / "units" / "files"
    assert [p.name.rsplit("-", 2)[-2] for p in files.glob("*-actmax.png")] == ["1"]
    pages = {p.name.rsplit("-", 1)[-1]: p.read_text(encoding="utf-8") for p in (tmp_path / "units").glob("*-?.html")}
    assert "-actmax.png" in pages["1.html"] and "-actmax.png" not in pages["0.html"]
