"""``cnnviz microscope``: the sheet's files through the output folder, kept in --cache and reused, read back by
``gallery --units --sheet`` and ``explain concepts --sheet``; bad input (no images, a sheet for other weights) one line and exit 2."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from cnnviz import interpret, zoo

LAYER = "features.block1"


def test_microscope_writes_the_sheet_keeps_it_and_the_gallery_reads_it(cli, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(6):
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (28, 28), dtype=np.uint8)).save(photos / f"{i}.png")
    run = ("microscope", "--model", "fashion_cnn", "--layer", LAYER, "--data", photos, "--steps", 2, "--top", 2,
           "--device", "cpu", "--cache", tmp_path / "cache", "--out", tmp_path / "out")
    code, out, err = cli(*run)
    assert code == 0, err
    index = json.loads((tmp_path / "out" / "sheet.json").read_text())
    atlas = interpret.neuron_atlas(zoo.load("fashion_cnn", device="cpu"), LAYER, str(photos), top=2, progress=False)
    assert [[e["index"] for e in u["top"]] for u in index["units"]] == atlas.top_indices.tolist()
    assert (tmp_path / "out" / "sheet.png").is_file() and len(list((tmp_path / "out" / "units").glob("*.png"))) == 16
    kept = list((tmp_path / "cache").rglob("*.npz"))
    assert len(kept) == 1
    stamp = kept[0].stat().st_mtime_ns
    assert cli(*run).code == 0 and kept[0].stat().st_mtime_ns == stamp  # reused, not made again
    code, out, err = cli("gallery", "--model", "fashion_cnn", "--units", f"{LAYER}:0-1", "--sheet",
                         tmp_path / "out" / "sheet.npz", "--images", "coffee", "--no-progress", "--out", tmp_path / "site")
    assert code == 0, err
    assert len(list((tmp_path / "site" / "units").glob("fashion_cnn-*.html"))) == 2
    explain = ("explain", "concepts", "--model", "fashion_cnn", "--image", "coffee", "--device", "cpu")
    assert cli(*explain, "--layer", LAYER, "--no-pictures", "--out", tmp_path / "plain").code == 0
    code, _, err = cli(*explain, "--layer", LAYER, "--sheet", tmp_path / "out" / "sheet.npz", "--out", tmp_path / "dict")
    assert code == 0, err
    plain, with_pictures = (np.asarray(Image.open(next((tmp_path / d).glob("*-panel.png")))) for d in ("plain", "dict"))
    assert with_pictures.size > plain.size  # each concept's picture beside its map
    code, _, err = cli(*explain, "--layer", "features.block2", "--sheet", tmp_path / "out" / "sheet.npz",
                       "--out", tmp_path / "wrong")
    assert code == 2 and "sheet of features.block1" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "wrong").exists()


def test_bad_input_is_one_line_and_exit_2(cli, tmp_path):
    (tmp_path / "empty").mkdir()
    code, _, err = cli("microscope", "--model", "fashion_cnn", "--layer", LAYER, "--data", tmp_path / "empty",
                       "--device", "cpu", "--out", tmp_path / "out")
    assert code == 2 and "holds no image files" in err and len(err.strip().splitlines()) == 1
    code, _, err = cli("microscope", "--model", "fashion_cnn", "--weights", "random", "--layer", LAYER, "--steps", 1,
                       "--device", "cpu", "--out", tmp_path / "random")
    assert code == 0, err
    code, _, err = cli("gallery", "--model", "fashion_cnn", "--units", LAYER, "--sheet",
                       tmp_path / "random" / "sheet.npz", "--out", tmp_path / "site")
    assert code == 2 and "other weights" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "site").exists() and not (tmp_path / "out").exists()
