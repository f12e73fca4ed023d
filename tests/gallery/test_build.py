"""The gallery: incremental cards, interrupted builds, escaping, containment, and a real browser.

The browser test drives Debian's headless ``chromium`` through selenium over
a gallery built with a tiny budget; it keeps its screenshots in
``$CNNVIZ_ARTIFACTS/gallery/`` when that variable is set (CI uploads the
folder), else in the test's pytest tmp dir (printed in the test output).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np
import pytest
from PIL import Image

from cnnviz import interpret
from cnnviz.gallery import Budget, Card, Output, Settings, build, plan
from cnnviz.gallery.attribution import attribution_options
from cnnviz.gallery.cards import CARDS_DIR, inside, run_cards, slug
from cnnviz.gallery.site import read_manifest, update_manifest, write_site
from cnnviz.zoo.core import CnnvizError

HOSTILE = "<img src=x onerror=alert(1)> & \"'cat'"
TINY = Budget(images=1, attribution={"samples": 2, "steps": 2, "window": 112, "stride": 112, "masks": 8}, curve_steps=2, layers=2,
              atlas_images=40, atlas_channels=2, atlas_top=2, classes=2, actmax_steps=2, inversion_steps=2,
              dream_steps=2, attack_steps=1, fooling_steps=2, fooling_classes=1, style_steps=2, style_size=48,
              methods=("occlusion", "gradient", "gradcam", "rise"), concept_steps=2)


# ---------------------------------------------------------------- helpers

def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def tiny_card(page: str, card_id: str, calls: list[str], *, fail: BaseException | None = None,
              value: int = 0) -> Card:
    def compute() -> Output:
        calls.append(card_id)
        if fail is not None:
            raise fail
        return Output([("square", np.full((8, 8, 3), value, np.uint8))], {"value": value})

    return Card(page, card_id, f"card {card_id}", "test", {"value": value}, compute)


def files_under(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in sorted(root.rglob("*")) if p.is_file()}


def hostile_image(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{HOSTILE}.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(path)
    return path


class Tags(HTMLParser):
    """Every start tag with its attributes, and the text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(path: Path) -> Tags:
    tags = Tags()
    tags.feed(path.read_text(encoding="utf-8"))
    return tags


def local_targets(page: Path, tags: Tags) -> list[Path]:
    """Files that the page's links, images and stylesheets point to."""
    targets = []
    for tag, attrs in tags.tags:
        ref = attrs.get("href") if tag in ("a", "link") else attrs.get("src") if tag == "img" else None
        if not ref or ref.startswith("data:"):
            continue
        parts = urlsplit(ref)
        assert not parts.scheme and not parts.netloc, f"{page.name} links outside the gallery: {ref}"
        targets.append(page.parent / unquote(parts.path) if parts.path else page)
        if parts.fragment:  # an anchor on this page: the id must exist
            assert not parts.path and ("id", parts.fragment) in {(k, v) for _, a in tags.tags for k, v in a.items()}
    return targets


# ---------------------------------------------------------------- cards: fast, synthetic

def test_second_run_recomputes_nothing(tmp_path: Path) -> None:
    calls: list[str] = []
    cards = [tiny_card("p", "a", calls), tiny_card("p", "b", calls, value=9)]
    first = run_cards(tmp_path, cards, progress=False)
    before = files_under(tmp_path)
    second = run_cards(tmp_path, cards, progress=False)
    assert first.computed == ["p/a", "p/b"] and calls == ["a", "b"]
    assert second.computed == [] and second.skipped == ["p/a", "p/b"] and calls == ["a", "b"]
    assert files_under(tmp_path) == before  # not even rewritten


def test_index_shows_a_thumbnail_of_each_page_with_a_finished_card(tmp_path: Path) -> None:
    from cnnviz.gallery import Page

    def big(card_id: str, value: int) -> Card:
        return Card("p", card_id, card_id, "test", {"value": value},
                    lambda: Output([("big", np.full((300, 600, 3), value, np.uint8))]))

    pages = [Page("p", "page p", "model"), Page("q", "page q", "model")]
    cards = [big("first", 40), big("second", 200), Card("q", "never", "never", "test", {}, lambda: Output())]
    run_cards(tmp_path, cards[:2], progress=False)
    write_site(tmp_path, update_manifest(tmp_path, pages, cards, {}))
    images = [attrs["src"] for tag, attrs in parse(tmp_path / "index.html").tags if tag == "img"]
    assert images == ["thumbs/p.png"]  # page q has no finished card: no thumbnail
    with Image.open(tmp_path / "thumbs" / "p.png") as thumb:
        assert max(thumb.size) == 160 and thumb.size[0] == 2 * thumb.size[1]
        assert np.asarray(thumb)[..., 0].mean() == pytest.approx(40, abs=1)  # the page's first card


def test_changed_parameters_recompute_only_that_card(tmp_path: Path) -> None:
    calls: list[str] = []
    run_cards(tmp_path, [tiny_card("p", "a", calls), tiny_card("p", "b", calls)], progress=False)
    report = run_cards(tmp_path, [tiny_card("p", "a", calls), tiny_card("p", "b", calls, value=5)], progress=False)
    assert report.computed == ["p/b"] and calls == ["a", "b", "b"]
    assert np.asarray(Image.open(tmp_path / CARDS_DIR / "p" / "b-0.png")).max() == 5


def test_a_card_with_a_missing_image_is_recomputed(tmp_path: Path) -> None:
    calls: list[str] = []
    cards = [tiny_card("p", "a", calls)]
    run_cards(tmp_path, cards, progress=False)
    (tmp_path / CARDS_DIR / "p" / "a-0.png").unlink()
    assert run_cards(tmp_path, cards, progress=False).computed == ["p/a"]


def test_interrupted_build_keeps_finished_cards(tmp_path: Path) -> None:
    calls: list[str] = []
    cards = [tiny_card("p", "a", calls), tiny_card("p", "b", calls), tiny_card("p", "c", calls)]
    broken = [*cards[:2], tiny_card("p", "c", [], fail=KeyboardInterrupt())]
    with pytest.raises(KeyboardInterrupt):
        run_cards(tmp_path, broken, progress=False)
    folder = tmp_path / CARDS_DIR / "p"
    assert sorted(p.name for p in folder.iterdir()) == ["a-0.png", "a.json", "b-0.png", "b.json"]  # no temp files
    report = run_cards(tmp_path, cards, progress=False)
    assert report.computed == ["p/c"] and report.skipped == ["p/a", "p/b"]


def test_a_failing_card_is_reported_shown_and_retried(tmp_path: Path) -> None:
    calls: list[str] = []
    cards = [tiny_card("p", "bad", calls, fail=CnnvizError(f"broken {HOSTILE}")), tiny_card("p", "good", calls)]
    report = run_cards(tmp_path, cards, progress=False)
    assert report.computed == ["p/good"] and list(report.failed) == ["p/bad"]
    from cnnviz.gallery import Page

    manifest = update_manifest(tmp_path, [Page("p", "page p", "model")], cards, {})
    write_site(tmp_path, manifest, report.failed)
    html = (tmp_path / "p.html").read_text()
    assert "failed: CnnvizError: broken &lt;img src=x onerror=alert(1)&gt;" in html
    assert "<img src=x" not in html and html.count("<img ") == 1  # the good card's picture only
    calls.clear()
    assert run_cards(tmp_path, cards, progress=False).failed and calls == ["bad"]  # retried, good one skipped


def test_duplicate_card_ids_are_refused(tmp_path: Path) -> None:
    with pytest.raises(CnnvizError, match="unique"):
        run_cards(tmp_path, [tiny_card("p", "a", []), tiny_card("p", "a", [])], progress=False)


def test_slugs_are_file_safe_and_distinct() -> None:
    names = [HOSTILE, "../../etc/passwd", "chelsea", "Chelsea", "a b", "a-b", "", "ü"]
    slugs = [slug(n) for n in names]
    assert len(set(slugs)) == len(slugs)
    assert all(s and set(s) <= set("abcdefghijklmnopqrstuvwxyz0123456789-_") for s in slugs)
    assert slug("chelsea") == "chelsea"


def test_writing_outside_the_folder_is_refused(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    assert inside(site, site / "cards" / "x.png") == site / "cards" / "x.png"
    with pytest.raises(CnnvizError, match="outside"):
        inside(site, site / ".." / "evil.png")


def test_occlusion_windows_scale_with_the_input() -> None:
    occlusion = interpret.get_method("occlusion", "attribution")
    assert attribution_options(occlusion, 224, {"window": 48, "stride": 24}) == {"window": 48, "stride": 24}
    small = attribution_options(occlusion, 28, {"window": 48, "stride": 24})
    assert small == {"window": 6, "stride": 3}
    gradient = interpret.get_method("gradient", "attribution")
    assert attribution_options(gradient, 224, {"samples": 4, "window": 8}) == {}


def test_every_registered_attribution_method_gets_a_card_in_the_full_gallery() -> None:
    from dataclasses import replace

    result = plan(Settings(models=["fashion_cnn"], budget=replace(TINY, methods=None)))
    image_cards = {c.id for c in result.cards if c.page == result.pages[0].slug}
    assert {slug(m.name) for m in interpret.methods("attribution")} <= image_cards
    quick = plan(Settings(models=["fashion_cnn"], budget=TINY))
    assert {c.id for c in quick.cards if c.page == quick.pages[0].slug} >= {slug(n) for n in TINY.methods}


def test_the_relevance_section_shows_lrp_per_composite_and_the_concepts_panel(tmp_path: Path) -> None:
    from dataclasses import replace

    from cnnviz.gallery.context import Context
    from cnnviz.gallery.relevance import RELEVANCE_SECTION, relevance_cards
    from cnnviz.interpret.attribution import COMPOSITES

    settings = Settings(models=["fashion_cnn"], budget=replace(TINY, concepts=3))
    cards = relevance_cards(Context(settings), "fashion_cnn")
    assert [c.id for c in cards] == [slug(f"lrp-{c}") for c in COMPOSITES] + ["concepts"]
    assert {c.section for c in cards} == {RELEVANCE_SECTION}
    assert {c.id for c in plan(settings).cards} >= {c.id for c in cards}
    report = run_cards(tmp_path, cards, progress=False, log=lambda _: None)
    assert not report.failed and len(report.computed) == len(cards)

    ctx = Context(settings)
    handle, image = ctx.handle("fashion_cnn"), ctx.batch("fashion_cnn")[:1]
    folder = tmp_path / CARDS_DIR / cards[0].page
    for composite in COMPOSITES:
        card = read_json(folder / f"{slug(f'lrp-{composite}')}.json")
        relevance = interpret.lrp(handle, image, None, composite=composite)
        assert card["scores"]["relevance summed"] == f"{relevance.sum():.3f}"
        assert all((folder / shown["file"]).is_file() for shown in card["images"])
    found = interpret.concept_relevance(handle, image, None, layer=handle.default_layer, channels=3)
    concepts = read_json(folder / "concepts.json")
    assert concepts["scores"] == {f"channel {int(c)}": f"{float(s):+.1%}"
                                  for c, s in zip(found.channels[0], found.shares[0])}
    panel = np.asarray(Image.open(folder / concepts["images"][0]["file"]))
    assert panel.shape[1] == 4 * 224 + 3 * 4  # the image, the unconditional map and 3 concepts: one row of 4 tiles

    from cnnviz.gallery.attribution import image_page

    page = image_page("fashion_cnn", ctx.subjects("fashion_cnn")[0])
    write_site(tmp_path, update_manifest(tmp_path, [page], cards, {}))
    html = (tmp_path / f"{page.slug}.html").read_text(encoding="utf-8")
    assert RELEVANCE_SECTION in html and all(f"{CARDS_DIR}/{page.slug}/{c.id}-0.png" in html for c in cards)


def test_concept_cards_show_what_their_channels_look_for_made_once_per_model(monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    from cnnviz.gallery.context import Context
    from cnnviz.gallery.relevance import relevance_cards
    from cnnviz.interpret.optimize import unit_pictures
    from cnnviz.interpret.views.pixels import enlarge, to_uint8
    from cnnviz.interpret.views.sheets import DISPLAY
    from tests.conftest import holds_tile

    ctx = Context(Settings(models=["fashion_cnn"], budget=replace(TINY, concepts=2, images=2)))
    made, real = [], interpret.layer_sheet
    monkeypatch.setattr(interpret, "layer_sheet", lambda *a, **k: made.append(sorted(k["channels"])) or real(*a, **k))
    panels = [card.compute().images[0][1] for card in relevance_cards(ctx, "fashion_cnn") if card.id == "concepts"]
    handle = ctx.handle("fashion_cnn")
    layer = handle.default_layer
    shown = [interpret.concept_relevance(handle, ctx.batch("fashion_cnn")[b:b + 1], None, layer=layer,
                                        channels=2).channels[0].tolist() for b in range(2)]
    channels = sorted({c for each in shown for c in each})
    assert len(panels) == 2 and made == [channels]  # one optimization for both cards' channels
    oracle = unit_pictures(handle, layer, channels, steps=TINY.concept_steps, progress=False).cpu()
    for panel, each in zip(panels, shown):
        assert all(holds_tile(panel, enlarge(to_uint8(oracle[channels.index(c), 0]), DISPLAY)) for c in each)


# ---------------------------------------------------------------- real builds (fashion_cnn, tiny budget)

@pytest.mark.slow
def test_hostile_names_are_escaped_and_nothing_is_written_outside(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    image = hostile_image(tmp_path / "in")
    home, cwd, site = tmp_path / "home", tmp_path / "cwd", tmp_path / "site"
    home.mkdir()
    cwd.mkdir()
    for var in ("HOME", "XDG_CACHE_HOME", "TORCH_HOME", "MPLCONFIGDIR"):
        monkeypatch.setenv(var, str(home))
    monkeypatch.chdir(cwd)
    weights = Path(interpret.__file__).resolve().parent.parent / "zoo" / "weights"
    shipped = files_under(weights)
    report = build(site, Settings(models=["fashion_cnn"], images=[str(image)], budget=TINY), progress=False,
                   log=lambda _: None)
    assert not report.failed and report.computed
    outside = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")
               if site not in p.parents and p != site}
    assert outside == {"in", f"in/{image.name}", "home", "cwd"}
    assert files_under(weights) == shipped
    pages = sorted(site.glob("*.html"))
    image_page = next(p for p in pages if "fashion_cnn" in p.name and p.name.startswith("img-"))
    raw = image_page.read_text(encoding="utf-8")
    assert "<img src=x" not in raw and "&lt;img src=x onerror=alert(1)&gt; &amp; &#34;&#39;cat&#39;" in raw
    tags = parse(image_page)
    assert all(attrs.get("onerror") is None for _, attrs in tags.tags)
    assert all(attrs["src"].startswith(f"{CARDS_DIR}/") for tag, attrs in tags.tags if tag == "img")
    assert HOSTILE in "".join(tags.text)  # shown as text, exactly
    for page in pages:
        for target in local_targets(page, parse(page)):
            assert target.is_file(), f"{page.name} points to a missing {target}"


@pytest.mark.slow
def test_rebuild_is_incremental_and_resumes_after_an_interrupt(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(models=["fashion_cnn"], budget=TINY)

    def interrupt(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(interpret, "filters", interrupt)  # the model page's first card
    with pytest.raises(KeyboardInterrupt):
        build(tmp_path, settings, progress=False, log=lambda _: None)
    finished = sorted(tmp_path.glob(f"{CARDS_DIR}/*/*.json"))
    assert finished and (tmp_path / "index.html").is_file()  # the site shows what was finished
    monkeypatch.undo()
    before = {p: p.stat().st_mtime_ns for p in finished}
    resumed = build(tmp_path, settings, progress=False, log=lambda _: None)
    assert not resumed.failed and len(resumed.skipped) == len(finished)
    assert all(p.stat().st_mtime_ns == t for p, t in before.items())
    again = build(tmp_path, settings, progress=False, log=lambda _: None)
    assert again.computed == [] and len(again.skipped) == len(resumed.skipped) + len(resumed.computed)
    manifest = read_manifest(tmp_path)
    shown = sum(len(p["cards"]) for p in manifest["pages"])
    assert shown == len(again.skipped)


# ---------------------------------------------------------------- the real browser

def browser_or_skip() -> tuple[str, str]:
    pytest.importorskip("selenium", reason="the browser test needs selenium (pip install selenium)")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("the browser test needs Debian's chromium and chromium-driver (apt-get install chromium "
                    "chromium-driver)")
    return chromium, driver


def artifact_dir(tmp_path: Path) -> Path:
    root = os.environ.get("CNNVIZ_ARTIFACTS")
    folder = Path(root) / "gallery" if root else tmp_path / "artifacts"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def page_problems(browser: object, page: Path, site: Path) -> list[str]:
    """Load ``page`` and list what is wrong: not loaded, an image that does not decode, a console
    error, a link to no gallery file, a name turned into markup."""
    browser.get(page.as_uri())
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        state = browser.execute_script(
            "return [document.readyState, Array.from(document.images).every(i => i.complete)]")
        if state == ["complete", True]:
            break
        time.sleep(0.1)
    problems = []
    if not browser.title.endswith("cnnviz gallery"):
        problems.append(f"not loaded (title {browser.title!r})")
    images = browser.execute_script(
        "return Array.from(document.images).map(i => [i.getAttribute('src'), i.naturalWidth])")
    problems += [f"image does not decode: {src}" for src, width in images if not width]
    problems += [f"console: {entry['message']}" for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    for link in browser.execute_script("return Array.from(document.links).map(a => a.href)"):
        parts = urlsplit(link)
        target = Path(unquote(parts.path))
        if parts.scheme != "file" or not target.is_file() or site.resolve() not in target.resolve().parents:
            problems.append(f"link to no gallery file: {link}")
        elif parts.fragment and target == page and not browser.execute_script(
                "return document.getElementById(arguments[0]) !== null", unquote(parts.fragment)):
            problems.append(f"anchor to nothing: {link}")
    injected = browser.execute_script(
        "return [document.querySelectorAll('[onerror]').length,"
        " Array.from(document.images).filter(i => !/^(cards|thumbs)\\//.test(i.getAttribute('src'))).length]")
    if injected != [0, 0]:
        problems.append("a name became markup")
    return problems


@pytest.mark.slow
def test_gallery_in_a_real_browser(tmp_path: Path) -> None:
    chromium, driver_path = browser_or_skip()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    site = tmp_path / "site"
    image = hostile_image(tmp_path / "in")
    report = build(site, Settings(models=["efficientnet_lite0", "fashion_cnn"], images=["chelsea", str(image)],
                                  budget=TINY), progress=False, log=lambda _: None)
    assert not report.failed
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(options=options, service=Service(driver_path))
    artifacts = artifact_dir(tmp_path)
    try:
        pages = sorted(site.glob("*.html"))
        assert {"index.html", "attacks.html", "model-efficientnet_lite0.html", "model-fashion_cnn.html",
                "training-fashion_cnn.html"} <= {p.name for p in pages} and len(pages) == 9
        for page in pages:
            assert page_problems(browser, page, site) == [], page.name
        shots = {"index": site / "index.html", "model": site / "model-efficientnet_lite0.html",
                 "image": site / "img-efficientnet_lite0-chelsea.html"}
        for name, page in shots.items():
            browser.get(page.as_uri())
            height = browser.execute_script("return document.body.scrollHeight")
            browser.set_window_size(1280, min(max(height, 600), 6000))
            path = artifacts / f"gallery-{name}.png"
            assert browser.save_screenshot(str(path)), path
            assert Image.open(path).size[0] > 0
        print(f"gallery screenshots in {artifacts}")
        # The checks can fail: a corrupt and a missing picture are both caught.
        folder = site / CARDS_DIR / "img-efficientnet_lite0-chelsea"
        (folder / "gradcam-0.png").write_bytes(b"not a png")
        (folder / "gradcam-1.png").unlink()
        problems = page_problems(browser, shots["image"], site)
        undecoded = {p.rsplit("/", 1)[-1] for p in problems if "does not decode" in p}
        assert undecoded == {"gradcam-0.png", "gradcam-1.png"} and any("console" in p for p in problems)
    finally:
        browser.quit()


def test_cli_refuses_bad_input_before_writing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cnnviz.cli.main import main

    site = tmp_path / "site"
    assert main(["gallery", "--model", "efficientnet_lite9", "--out", str(site), "--no-progress"]) == 2
    assert "efficientnet_lite0" in capsys.readouterr().err  # the closest names are suggested
    assert main(["gallery", "--model", "fashion_cnn", "--images", str(tmp_path / "missing.png"),
                 "--out", str(site), "--no-progress"]) == 2
    assert not site.exists()
    (tmp_path / "file").write_text("x")
    assert main(["gallery", "--model", "fashion_cnn", "--out", str(tmp_path / "file"), "--no-progress"]) == 2
