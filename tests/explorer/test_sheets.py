"""Semantic dictionaries in the explorer: a layer's sheet made in the background (pictures first, then the scan in
chunks whose top patches show while it goes on), kept under the weights' and the data's identity and shown inline
on "why, by units" and the unit page; a one-channel layer refused with a 4xx, through the real ASGI app."""

from __future__ import annotations

import copy

import pytest
import torch
from starlette.testclient import TestClient

from cnnviz import interpret, zoo
from cnnviz.explorer import create_app
from cnnviz.explorer.sheet_job import SheetJob, cached_sheet
from cnnviz.interpret.inside import load_sheet
from tests.explorer.test_app import wait_for_job

LAYER = "features.block1"


@pytest.fixture(scope="module")
def data():
    return torch.rand(40, 1, 28, 28, generator=torch.Generator().manual_seed(0))


def test_a_sheet_shows_the_patches_of_the_items_scanned_so_far(fashion, data, tmp_path):
    job = SheetJob(fashion, LAYER, data, tmp_path / "sheet.npz", top=9, steps=2, chunk=8)  # 8 seen: a top-8
    while job.pictures is None:
        job.step += job.advance()
    assert job.current() is None and job.picture(5).shape == (1, 1, 28, 28)
    job.step += job.advance()
    partial = job.current()
    assert partial.count == 8
    first = interpret.neuron_atlas(fashion, LAYER, data[:8], top=8, bottom=0, progress=False)
    assert torch.equal(partial.top_indices, first.top_indices)


def test_why_by_units_paints_first_then_shows_what_each_channel_looks_for(fashion, data, tmp_path):
    with TestClient(create_app([fashion], data, cache_dir=tmp_path)) as client:
        explorer = client.app.state.explorer
        page = client.get(f"/m/fashion_cnn/image/coffee/why?layer={LAYER}&top=3")
        assert page.status_code == 200 and 'data-sheet="missing"' in page.text and explorer.jobs == {}
        channels = [int(c) for c in page.text.split('data-channels="')[1].split('"')[0].split(",")]
        started = client.post("/api/sheets", json={"layer": LAYER, "channels": ",".join(map(str, channels))})
        assert started.status_code == 202
        assert wait_for_job(client, started.json()["id"])["state"] == "done"
        answer = client.get(f"/api/models/fashion_cnn/sheets/{LAYER}?channels={channels[0]}").json()
        unit = answer["units"][0]
        assert answer["state"] == "kept" and unit["picture"] and len(unit["patches"]) == 9 and "zero" in unit["words"]
        assert client.get(unit["picture"]).headers["content-type"] == "image/png"
        kept = load_sheet(fashion, explorer.sheet_path(fashion, LAYER))
        atlas = interpret.neuron_atlas(fashion, LAYER, data, top=9, bottom=0, progress=False)
        assert [p["index"] for p in unit["patches"]] == atlas.top_indices[channels[0]].tolist()
        assert torch.equal(kept.atlas.top_indices, atlas.top_indices)
        again = client.get(f"/m/fashion_cnn/image/coffee/why?layer={LAYER}&top=3").text
        assert 'data-sheet="kept"' in again and again.count('class="looks-for" alt="what channel') == 3
        assert again.count("/api/maps/") == 6  # each channel's evidence map and its picture, in the first paint
        unit_page = client.get(f"/m/fashion_cnn/units/{LAYER}/{channels[0]}?image=coffee").text
        assert 'data-state="kept"' in unit_page and unit["words"] in unit_page
        assert client.post("/api/sheets", json={"layer": LAYER}).json()["kept"] is True
        made = cached_sheet(fashion, LAYER, data, cache=tmp_path)  # what cnnviz microscope --cache finds: this one
        assert torch.equal(made.pictures, kept.pictures) and len(list((tmp_path / "sheets").glob("*.npz"))) == 1


def test_a_sheet_for_changed_weights_is_never_shown(fashion, data, tmp_path):
    with TestClient(create_app([fashion], data[:8], cache_dir=tmp_path)) as client:
        assert wait_for_job(client, client.post("/api/sheets", json={"layer": LAYER}).json()["id"])["state"] == "done"
    changed = copy.deepcopy(fashion)
    with torch.no_grad():
        changed.model.features.block1.conv.weight.mul_(-1)
    with TestClient(create_app([changed], data[:8], cache_dir=tmp_path)) as client:
        assert client.get(f"/api/models/fashion_cnn/sheets/{LAYER}?channels=0").json()["state"] == "missing"


def test_a_layer_of_one_channel_is_refused_with_a_4xx(tmp_path):
    net = zoo.wrap(torch.nn.Sequential(torch.nn.Conv2d(1, 1, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                                       torch.nn.Linear(676, 2)), input_size=28, classes=["a", "b"], name="one")
    with TestClient(create_app([net], cache_dir=tmp_path)) as client:
        refused = client.post("/api/sheets", json={"layer": "0"})
        assert refused.status_code // 100 == 4 and "one channel" in refused.json()["error"]
        assert len(refused.json()["error"].splitlines()) == 1


def test_dissection_labels_kept_for_these_weights_show_with_their_iou_and_stale_ones_never(fashion, tmp_path):
    from cnnviz.explorer.identity import model_identity
    from cnnviz.explorer.sheet_job import dissection_file
    from cnnviz.interpret.core import weights_digest
    from cnnviz.interpret.inside import Dissection, UnitLabel
    from cnnviz.interpret.inside.unit_labels import Threshold

    def labels(fingerprint: str) -> str:
        return Dissection(layer=LAYER, model="fashion_cnn", fingerprint=fingerprint, data="scenes", images=4,
                          map_size=(14, 14), concepts=("Bag", "Shirt"), detector_iou=0.04,
                          threshold=Threshold(0.005, (1.0,) * 16),
                          units=[UnitLabel(c, "Bag" if c == 2 else "Shirt", 0.2 if c == 2 else 0.01, c == 2)
                                 for c in range(16)]).to_json()

    path = dissection_file(tmp_path, model_identity(fashion), LAYER)
    path.parent.mkdir(parents=True)
    with TestClient(create_app([fashion], cache_dir=tmp_path)) as client:
        path.write_text(labels(weights_digest(fashion.model, fashion.name)))
        units = client.get(f"/api/models/fashion_cnn/sheets/{LAYER}?channels=2,3").json()["units"]
        assert [u["words"] for u in units] == ["Bag (IoU 0.2)", "weak: Shirt? (IoU 0.01)"]
        assert units[0]["label"]["detector"] is True
        path.write_text(labels("other weights"))
        assert client.get(f"/api/models/fashion_cnn/sheets/{LAYER}?channels=2").json()["units"][0]["label"] is None
