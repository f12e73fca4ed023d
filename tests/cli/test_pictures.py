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
