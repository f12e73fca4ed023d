"""The audit's front ends on a real audit (:func:`interpret.audit`) of fashion_cnn over a small folder of
Fashion-MNIST test images in class sub-folders: the explorer's data view (pages and JSON, the audit as a job with
cancel and resume, kept in the cache folder), and the static report (``audit.html``, ``cnnviz gallery --audit``),
checked against the model's own predictions and scikit-learn's confusion matrix."""

from __future__ import annotations

import html.parser
import json
import re
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import numpy as np
import pytest
import torch
from sklearn.metrics import confusion_matrix
from starlette.testclient import TestClient

from cnnviz import interpret, zoo
from cnnviz.explorer import create_app
from cnnviz.explorer.audit_view import Selection, select
from cnnviz.explorer.audit_job import open_run
from cnnviz.zoo.data import ImageFiles, open_dataset
from tests.explorer.test_app import wait_for_job
from tests.explorer.test_requests import assert_one_line

ITEMS = 80  # Fashion-MNIST test images in the folder


HOSTILE = "<img src=x onerror=alert(1)>.png"  # a file name that must stay text on every page


def class_folder(root: Path, items: int = ITEMS) -> Path:
    """The first ``items`` Fashion-MNIST test images as ``ROOT/CLASS/NNNN.png`` (class names as files allow), the
    last one named :data:`HOSTILE`."""
    data = open_dataset("fashion-mnist")
    for index in range(items):
        folder = root / zoo.safe_name(data.classes[int(data.labels[index])])
        folder.mkdir(parents=True, exist_ok=True)
        name = HOSTILE if index == items - 1 else f"{index:04d}.png"
        zoo.save_image(folder / name, data.images[index][0].numpy())
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory, fashion_mnist) -> Path:
    return class_folder(tmp_path_factory.mktemp("audit") / "data")


@pytest.fixture(scope="module")
def audited(folder, fashion, tmp_path_factory) -> Path:
    """The run folder of the Python API's audit of the folder."""
    run = tmp_path_factory.mktemp("audit") / "run"
    interpret.audit(fashion, folder, workdir=run)
    return run


@pytest.fixture(scope="module")
def predicted(folder, fashion) -> tuple[list[str], list[str], list[str]]:
    """Oracle: each file's path, true class (its folder) and the model's predicted class, by the model alone."""
    files = ImageFiles(folder)
    paths = [files.name(i) for i in range(len(files))]
    batch = fashion.prepare([files[i] for i in range(len(files))])
    with torch.no_grad():
        guesses = fashion(batch).argmax(-1).tolist()
    classes = {zoo.safe_name(c): c for c in fashion.classes}
    return paths, [classes[p.split("/")[0]] for p in paths], [fashion.classes[g] for g in guesses]


class Links(html.parser.HTMLParser):
    """Every href and src of a page, and the text of the confusion matrix's cells."""

    def __init__(self) -> None:
        super().__init__()
        self.targets: list[str] = []
        self.cells: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attrs = dict(attrs)
        assert "onerror" not in attrs, attrs  # a name became markup
        self.targets += [attrs[name] for name in ("href", "src") if attrs.get(name)]
        if tag == "a" and attrs.get("class") == "cell-link":
            self.cells.append((attrs["href"], attrs["title"]))


def links_of(page: Path) -> Links:
    parser = Links()
    parser.feed(page.read_text())
    return parser


def test_the_gallery_publishes_the_models_confusion_and_links_only_to_files_it_wrote(cli, audited, predicted, tmp_path,
                                                                                     folder):
    paths, labels, guesses = predicted
    site = tmp_path / "site"
    code, out, _ = cli("gallery", "--audit", audited, "--data", folder, "--out", site)
    page = Path(out.strip())
    assert code == 0 and page.parent.parent == site / "audits" and page.name == "index.html"
    assert links_of(site / "index.html").targets.count(f"audits/{page.parent.name}/index.html") == 1  # listed
    report = json.loads((audited / "audit.json").read_text())
    names = report["confusion"]["labels"]
    assert np.array_equal(report["confusion"]["matrix"], confusion_matrix(labels, guesses, labels=names))
    overview = links_of(page)
    shown = {title.split(": ")[0]: int(title.split(": ")[1]) for _, title in overview.cells}
    matrix = confusion_matrix(labels, guesses, labels=names)
    expected = {f"{t} predicted as {p}": int(n) for t, row in zip(names, matrix) for p, n in zip(names, row) if n}
    assert shown == expected
    pages = [site / "index.html", page, *page.parent.glob("report/*.html")]
    assert len(pages) > 2 + len(report["classes"])  # the index, the overview, a page per class, the lists of images
    for each in pages:
        for target in set(links_of(each).targets) - {"data:,"}:  # the empty icon
            parts = urlsplit(target)
            assert not parts.scheme and not parts.netloc, (each.name, target)  # nothing outside the report
            file = (each.parent / unquote(parts.path)).resolve()
            assert file.is_file() and site.resolve() in file.parents, (each.name, target)
    shown_anywhere = "".join(p.read_text() for p in pages)
    assert "&lt;img src=x onerror=alert(1)&gt;.png" in shown_anywhere  # the hostile name, as text
    # a cell's page lists exactly the images of that true and that predicted class, each with its figure
    off = next((href, title) for href, title in overview.cells if "predicted as" in title
               and title.split(" predicted as ")[0] != title.split(" predicted as ")[1].split(":")[0])
    true, guess = off[1].split(": ")[0].split(" predicted as ")
    listed = re.findall(r'<figcaption>([^<]+)<br>', (page.parent / unquote(off[0])).read_text())
    assert sorted(listed) == sorted(p for p, t, g in zip(paths, labels, guesses) if (t, g) == (true, guess))


def test_a_selection_picks_what_the_items_say(audited, predicted):
    run = open_run(audited)
    paths, labels, guesses = predicted
    assert [r.item for r in run.rows] == paths and [r.predicted for r in run.rows] == guesses
    items = run.audit.items
    wrong = [items.ids[r] for r in select(items, Selection(correct=False), run.report, order="-confidence")]
    assert sorted(wrong) == sorted(p for p, t, g in zip(paths, labels, guesses) if t != g)
    confidence = {r.item: r.confidence for r in run.rows}
    assert [confidence[w] for w in wrong] == sorted((confidence[w] for w in wrong), reverse=True)
    for klass in run.report["classes"].values():
        for cluster in klass["clusters"]:
            chosen = select(items, Selection(label=next(n for n, c in run.report["classes"].items() if c is klass),
                                                cluster=cluster["id"]), run.report)
            assert {items.ids[r] for r in chosen} == set(cluster["members"])
    band = select(items, Selection(low=0.5, high=0.9), run.report)
    assert {items.ids[r] for r in band} == {p for p, c in confidence.items() if 0.5 <= c <= 0.9}


def test_the_data_view_audits_in_rounds_resumes_after_a_cancel_and_equals_the_python_api(audited, folder, fashion,
                                                                                          predicted, tmp_path):
    with TestClient(create_app([fashion], str(folder), cache_dir=tmp_path)) as client:
        assert_one_line(client.get("/api/models/fashion_cnn/data"), 404, "POST /api/audit")
        assert "Audit the model" in client.get("/m/fashion_cnn/data").text
        started = client.post("/api/audit", json={"model": "fashion_cnn"})
        assert started.status_code == 202, started.text
        job = started.json()["id"]
        client.post(f"/api/jobs/{job}/cancel")
        first = wait_for_job(client, job)
        assert first["state"] == "cancelled" and first["step"] < first["steps"], first
        again = client.post("/api/audit", json={"model": "fashion_cnn"}).json()
        assert again["id"] != job and again["step"] == first["step"]  # resumed from the run folder's chunks
        done = wait_for_job(client, again["id"])
        assert done["state"] == "done" and done["step"] == done["steps"], done
        kept = client.get("/api/models/fashion_cnn/data").json()
        expected = json.loads((audited / "audit.json").read_text())
        assert kept == expected  # the job in rounds of its own chunk size makes the Python API's audit
        assert client.post("/api/audit", json={"model": "fashion_cnn"}).json()["kept"] is True

        paged = client.get("/api/models/fashion_cnn/data/items", params={"correct": "false", "limit": 2}).json()
        after = client.get(paged["next"]).json()  # the next page, as the answer names it
        assert after["offset"] == 2 and after["items"][0]["row"] > paged["items"][-1]["row"]
        wrong = client.get("/api/models/fashion_cnn/data/items", params={"correct": "false", "limit": 1000}).json()
        paths, labels, guesses = predicted
        oracle = sorted(p for p, t, g in zip(paths, labels, guesses) if t != g)
        assert sorted(i["item"] for i in wrong["items"]) == oracle
        assert wrong["total"] == len(wrong["items"]) > 0
        first_wrong = wrong["items"][0]
        assert first_wrong["page"] == f"/m/fashion_cnn/image/data:{first_wrong['row']}"
        files = ImageFiles(folder)
        assert files.name(first_wrong["row"]) == first_wrong["item"]  # data:ROW is that file of --data
        image_page = client.get(first_wrong["page"])
        assert image_page.status_code == 200 and first_wrong["predicted"] in image_page.text
        listed = client.get("/m/fashion_cnn/data/items", params={"correct": "false"}).text
        explain = re.search(r'class="explain-link" href="([^"]+)"', listed)[1].replace("&amp;", "&")
        method = quote(expected["method"], safe="")
        assert explain.startswith(f"{first_wrong['page']}/explain/{method}?")  # the map the audit made, full size
        explained = re.search(r'id="explained"[^>]*>([^<]*)<', client.get(explain).text)[1]
        assert explained == first_wrong["label"]  # the audit explains each item's true class
        picture = client.get(first_wrong["figure"])
        assert picture.status_code == 200 and picture.content[:4] == b"\x89PNG"
        overview = client.get("/m/fashion_cnn/data").text
        assert 'id="confusion"' in overview and "/m/fashion_cnn/data/items?label=" in overview
        name = next(iter(expected["classes"]))
        assert client.get("/m/fashion_cnn/data/class", params={"name": name}).status_code == 200
    with TestClient(create_app([fashion], str(folder), cache_dir=tmp_path)) as client:  # a restart reads it back
        assert client.post("/api/audit", json={"model": "fashion_cnn"}).json()["kept"] is True


@pytest.mark.parametrize("path, status, words", [
    ("/api/models/fashion_cnn/data/items?flag=99", 400, "flag 99"),
    ("/api/models/fashion_cnn/data/items?low=2", 400, "low must be between 0 and 1"),
    ("/api/models/fashion_cnn/data/items?order=up", 400, "unknown order"),
    ("/api/models/fashion_cnn/data/items?label=Bag&cluster=77", 400, "no cluster 77"),
    ("/api/models/fashion_cnn/data/figures/item-99999.png", 404, "items 0 to"),
    ("/api/models/fashion_cnn/data/figures/map-1.png", 404, "item-ROW"),
    ("/m/fashion_cnn/data/class?name=Unicorn", 404, "no class 'Unicorn'"),
    ("/api/models/resnet/data", 404, "no model 'resnet'"),
])
def test_bad_requests_get_one_line(audited, folder, fashion, tmp_path, path, status, words):
    cache = tmp_path / "cache"
    with TestClient(create_app([fashion], str(folder), cache_dir=cache)) as client:
        explorer = client.app.state.explorer
        kept = explorer.audit_path(fashion, None, None)
        kept.parent.mkdir(parents=True)
        kept.symlink_to(audited)  # the audit this data view would make, kept
        assert_one_line(client.get(path), status, words)


def test_without_data_there_is_nothing_to_audit(fashion, tmp_path):
    with TestClient(create_app([fashion], cache_dir=tmp_path)) as client:
        assert_one_line(client.post("/api/audit", json={}), 404, "--data")
        assert 'id="no-data"' in client.get("/m/fashion_cnn/data").text


@pytest.mark.parametrize("body, words", [({"method": "gradcam++x"}, "gradcam"),
                                         ({"layer": "features.nope"}, "no layer"),
                                         ({"model": "resnet"}, "no model 'resnet'")])
def test_an_audit_the_request_cannot_make_gets_one_line(folder, fashion, tmp_path, body, words):
    with TestClient(create_app([fashion], str(folder), cache_dir=tmp_path)) as client:
        answer = client.post("/api/audit", json=body)
        assert_one_line(answer, 404 if "model" in body else 400, words)
        assert client.app.state.explorer.jobs == {}


def test_a_data_set_the_audit_refuses_gets_one_line(fashion, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    zoo.save_image(photos / "loose.png", np.zeros((28, 28), np.uint8))
    with TestClient(create_app([fashion], str(photos), cache_dir=tmp_path / "cache")) as client:
        assert_one_line(client.post("/api/audit", json={}), 400, "class sub-folder")
        assert not (tmp_path / "cache" / "audit").exists() or not any((tmp_path / "cache" / "audit").iterdir())


def test_the_gallery_refuses_a_folder_without_an_audit(cli, tmp_path):
    code, _, err = cli("gallery", "--audit", tmp_path / "nothing", "--out", tmp_path / "other")
    assert code == 2 and "no finished audit" in err and not (tmp_path / "other").exists()
