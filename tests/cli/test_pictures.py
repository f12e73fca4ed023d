"""What each named channel looks for, without a sheet made beforehand: ``explain concepts`` and ``atlas`` draw the
pictures :func:`interpret.optimize.unit_pictures` makes of just the channels they show (found pixel for pixel in
their panels), skip them with ``--no-pictures``, refuse ``--pictures-steps 0`` in one line, and past the limit
say in one line how to get them, optimizing nothing."""

from __future__ import annotations

import json
import sys

import numpy as np
from PIL import Image

from cnnviz.interpret.optimize import unit_pictures
from cnnviz.interpret.views.pixels import enlarge, to_uint8
from cnnviz.interpret.views.sheets import DISPLAY
from tests.conftest import holds_tile

LAYER = "features.block2"  # 64 channels of fashion_cnn


def test_explain_concepts_draws_the_pictures_of_its_channels_over_every_image(cli, fashion, tmp_path):
    run = ("explain", "concepts", "--model", "fashion_cnn", "--image", "coffee", "chelsea", "--layer", LAYER,
           "--top", 2, "--device", "cpu")
    code, _, err = cli(*run, "--pictures-steps", 3, "--out", tmp_path / "made")
    assert code == 0, err
    records = [json.loads(p.read_text()) for p in sorted((tmp_path / "made").glob("*-concepts.json"))]
    channels = sorted({c["channel"] for r in records for c in r["detail"]["concepts"]})  # the union, one run
    oracle = unit_pictures(fashion, LAYER, channels, steps=3, progress=False).cpu()
    tile = {c: enlarge(to_uint8(oracle[i, 0]), DISPLAY) for i, c in enumerate(channels)}
    for record in records:
        panel = np.asarray(Image.open(tmp_path / "made" / record["panel"]))
        assert all(holds_tile(panel, tile[c["channel"]]) for c in record["detail"]["concepts"])
    code, _, err = cli(*run, "--no-pictures", "--out", tmp_path / "plain")
    assert code == 0, err
    plain = np.asarray(Image.open(tmp_path / "plain" / records[0]["panel"]))
    assert not any(holds_tile(plain, t) for t in tile.values())
    code, _, err = cli(*run, "--pictures-steps", 0, "--out", tmp_path / "never")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--pictures-steps" in err
    assert not (tmp_path / "never").exists()


def test_atlas_pages_hold_the_pictures_and_past_the_limit_one_line_says_how(cli, fashion, tmp_path, monkeypatch):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(4):
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (28, 28), dtype=np.uint8)).save(folder / f"{i}.png")
    run = ("atlas", "--model", "fashion_cnn", "--layer", "features.block1", "--data", folder, "--top", 1,
           "--bottom", 0, "--pictures-steps", 2, "--device", "cpu")
    code, _, err = cli(*run, "--channels", "7,2", "--out", tmp_path / "few")  # channels whose pictures move
    assert code == 0, err
    oracle = unit_pictures(fashion, "features.block1", [2, 7], steps=2, progress=False).cpu()
    for i, c in enumerate([2, 7]):
        page = np.asarray(Image.open(tmp_path / "few" / "channels" / f"channel-{c:04d}.png"))
        assert holds_tile(page, enlarge(to_uint8(oracle[i, 0])))

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("optimized past the limit")

    monkeypatch.setattr(sys.modules["cnnviz.interpret.inside.layer_sheet"], "unit_pictures", never)
    monkeypatch.setattr(sys.modules["cnnviz.cli.pictures"], "LIMIT", 3)
    code, out, err = cli(*run, "--channels", "0-3", "--out", tmp_path / "many")
    assert code == 0, err
    said = [line for line in out.splitlines() if "no pictures" in line]
    assert len(said) == 1 and "4 channels" in said[0] and "--channels" in said[0] and "--sheet" in said[0]
    assert len(list((tmp_path / "many" / "channels").glob("*.png"))) == 4


def _dissection(fashion, layer: str, fingerprint: str | None = None) -> str:
    """A dissection of ``layer`` of fashion_cnn: channel 2 a Bag detector, the rest weak Shirts."""
    from cnnviz.interpret.core import weights_digest
    from cnnviz.interpret.inside import Dissection, UnitLabel
    from cnnviz.interpret.inside.unit_labels import Threshold

    return Dissection(layer=layer, model="fashion_cnn", fingerprint=fingerprint or weights_digest(fashion.model,
                                                                                                 fashion.name),
                      data="scenes", images=4, map_size=(14, 14), concepts=("Bag", "Shirt"), detector_iou=0.04,
                      threshold=Threshold(0.005, (1.0,) * 64),
                      units=[UnitLabel(c, "Bag" if c == 2 else "Shirt", 0.2 if c == 2 else 0.01, c == 2)
                             for c in range(64)]).to_json()


def test_a_dissection_names_the_channels_drawn_and_a_stale_one_is_refused(cli, fashion, tmp_path):
    from types import SimpleNamespace as Found

    import torch

    from cnnviz.interpret.inside import read_dissection
    from cnnviz.interpret.views.sheets import concept_tiles

    labels = tmp_path / "dissection.json"
    labels.write_text(_dissection(fashion, LAYER))
    found = Found(layer=LAYER, channels=torch.tensor([[2, 5]]), shares=torch.tensor([[0.5, 0.1]]),
                  maps=torch.rand(1, 2, 28, 28), total=torch.rand(1, 1, 28, 28))
    _, texts = concept_tiles(torch.rand(1, 28, 28), found, 0, labels=read_dissection(fashion, labels, LAYER))
    assert texts[2:] == ["#2  +50.0%  Bag (IoU 0.2)", "#5  +10.0%  weak: Shirt? (IoU 0.01)"]

    explain = ("explain", "concepts", "--model", "fashion_cnn", "--image", "coffee", "--layer", LAYER, "--top", 2,
               "--no-pictures", "--device", "cpu")
    panels = {}
    for name, extra in (("named", ("--dissection", labels)), ("plain", ())):
        code, _, err = cli(*explain, *extra, "--out", tmp_path / name)
        assert code == 0, err
        panels[name] = np.asarray(Image.open(next((tmp_path / name).glob("*-panel.png"))))
    assert panels["named"].shape != panels["plain"].shape or (panels["named"] != panels["plain"]).any()

    stale, other = tmp_path / "stale.json", tmp_path / "other.json"
    stale.write_text(_dissection(fashion, LAYER, fingerprint="other weights"))
    other.write_text(_dissection(fashion, "features.block1"))
    for bad, words in ((stale, "other weights"), (other, "features.block1")):
        code, _, err = cli(*explain, "--dissection", bad, "--out", tmp_path / "never")
        assert code == 2 and len(err.strip().splitlines()) == 1 and words in err
        assert not (tmp_path / "never").exists()
