"""Neuron atlas: top-k against a brute-force oracle, crops against receptive fields, dead channels, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

import cnnviz.interpret.inside.atlas.scan as atlas_module
from cnnviz import zoo
from cnnviz.cli.main import main
from cnnviz.interpret.core.activations import layer_output
from cnnviz.interpret.inside.atlas.examples import channel_examples, load_prepared
from cnnviz.interpret.inside.atlas.feed import prefetch
from cnnviz.interpret.inside.atlas.scan import neuron_atlas
from cnnviz.interpret.inside.atlas.topk import select
from cnnviz.interpret.inside.fields.probe import nonzero_box, unit_gradient
from tests.conftest import TinyCNN, assert_unchanged, state_snapshot
from tests.interpret.inside.test_receptive_field import one_thread  # noqa: F401  (autouse: one intra-op thread)
from cnnviz.zoo.core import CnnvizError, hook_counts, record
from cnnviz.zoo.data import ImageFiles, open_dataset

PHOTOS = ["chelsea", "coffee", "astronaut", "rocket", "motorcycle", "horse", "camera", "coins"]


def with_dead_channel(seed: int = 0) -> zoo.ModelHandle:
    """TinyCNN whose conv2 channel 5 is always -1 before the ReLU: dead on any data."""
    torch.manual_seed(seed)
    net = TinyCNN()
    with torch.no_grad():
        net.conv2.weight[5] = 0.0
        net.conv2.bias[5] = -1.0
    return zoo.wrap(net, input_size=16, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3), name="tiny")


def images_with_ties(n: int = 40) -> torch.Tensor:  # n > 30
    """Random images where 3, 11 and 30 are the same image, so their activations tie exactly."""
    images = torch.rand(n, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    images[11] = images[3]
    images[30] = images[3]
    return images


def oracle(handle: zoo.ModelHandle, layer: str, images: torch.Tensor, k: int, batch: int) -> dict[str, list]:
    """Every activation computed (same batches), then sorted by (value, index) in plain Python."""
    maps = []
    for start in range(0, len(images), batch):
        with torch.no_grad(), record({"layer": handle.layer(layer)}) as rec:
            handle(images[start:start + batch])
        maps.append(rec["layer"].output)
    flat = torch.cat(maps).flatten(2)  # (N, C, h*w)
    width = torch.cat(maps).shape[-1]
    result: dict[str, list] = {"top": [], "bottom": [], "top_values": [], "top_positions": []}
    for c in range(flat.shape[1]):
        peaks = [float(flat[i, c].max()) for i in range(len(images))]
        top = sorted(range(len(images)), key=lambda i: (-peaks[i], i))[:k]
        result["top"].append(top)
        result["bottom"].append(sorted(range(len(images)), key=lambda i: (peaks[i], i))[:k])
        result["top_values"].append([peaks[i] for i in top])
        first = [int((flat[i, c] == flat[i, c].max()).nonzero()[0]) for i in top]  # first maximum, row-major
        result["top_positions"].append([[p // width, p % width] for p in first])
    return result


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    for i, name in enumerate(PHOTOS):
        sub = folder / ("a" if i % 2 else "b")  # sub-folders are searched too
        image = zoo.load_image(name)
        zoo.save_image(sub / f"{name}.png", (image.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8).squeeze())
    return folder


# --- exactness ---------------------------------------------------------------------------------

@pytest.mark.parametrize("merge_columns", [8, 2048])  # merged every batch or so, and once at the end
def test_topk_equals_brute_force_oracle_with_ties_and_a_dead_channel(merge_columns, monkeypatch):
    monkeypatch.setattr(atlas_module, "MERGE_COLUMNS", merge_columns)
    handle = with_dead_channel()
    images = images_with_ties()
    atlas = neuron_atlas(handle, "relu2", images, top=5, bottom=4, batch_size=7, progress=False)
    expected = oracle(handle, "relu2", images, 5, 7)
    assert atlas.top_indices.tolist() == expected["top"]
    assert atlas.bottom_indices.tolist() == [row[:4] for row in expected["bottom"]]
    assert atlas.top_values.tolist() == expected["top_values"]
    assert atlas.top_positions.tolist() == expected["top_positions"]
    # The ties are real: image 3 and its copies score the same; the dead channel ties everywhere.
    peaks = atlas.top_values
    assert atlas.dead == [5]
    assert atlas.top_indices[5].tolist() == [0, 1, 2, 3, 4] and atlas.bottom_indices[5].tolist() == [0, 1, 2, 3]
    copies = [c for c in range(6) if 3 in atlas.top_indices[c].tolist() and 11 in atlas.top_indices[c].tolist()]
    for c in copies:
        row = atlas.top_indices[c].tolist()
        assert row.index(3) < row.index(11) and peaks[c, row.index(3)] == peaks[c, row.index(11)]


def test_answer_does_not_depend_on_batch_size():
    handle = with_dead_channel()
    images = images_with_ties()
    small = neuron_atlas(handle, "conv2", images, top=4, batch_size=3, progress=False)
    large = neuron_atlas(handle, "conv2", images, top=4, batch_size=40, progress=False)
    assert torch.equal(small.top_indices, large.top_indices)
    assert torch.equal(small.top_positions, large.top_positions)
    torch.testing.assert_close(small.top_values, large.top_values)


def test_select_keeps_the_best_and_breaks_ties_by_index():
    values = torch.tensor([[1.0, 5.0, 5.0, float("nan"), 2.0]])
    indices = torch.tensor([[4, 9, 2, 0, 7]])
    best = select(values, indices, indices.clone(), 3, largest=True)
    worst = select(values, indices, indices.clone(), 2, largest=False)
    assert best.indices.tolist() == [[2, 9, 7]] and worst.indices.tolist() == [[4, 7]]


def test_flat_features_work_as_whole_image_units(tiny):
    atlas = neuron_atlas(tiny, "fc", torch.rand(6, 3, 16, 16), top=2, progress=False)
    assert atlas.field is None and atlas.box(0, 0) == (0, 0, 16, 16)
    assert atlas.top_values.shape == (3, 2)


# --- patches match receptive fields ----------------------------------------------------------------

def check_patches(handle: zoo.ModelHandle, atlas, data, channels: list[int]) -> None:
    """Crop = image inside the unit's box; box = the unit's gradient support; activation = the unit's."""
    for ex in channel_examples(handle, atlas, data, channels):
        for rank, (image, box, patch) in enumerate(zip(ex.top_images, ex.top_boxes, ex.top_patches)):
            y, x = atlas.top_positions[ex.channel, rank].tolist()
            assert torch.equal(patch, image[:, box.top:box.bottom, box.left:box.right])
            support = unit_gradient(handle, atlas.layer, (ex.channel, y, x), support=True)
            assert nonzero_box(support) == box
            with torch.no_grad():
                unit_map = layer_output(handle, atlas.layer, image[None].to(handle.device))[0, ex.channel]
            assert float(unit_map[y, x]) == pytest.approx(float(atlas.top_values[ex.channel, rank]), abs=1e-4)
            assert float(unit_map.max()) == pytest.approx(float(unit_map[y, x]), abs=1e-6)


def test_lite0_atlas_on_photo_folder_crops_match_receptive_fields(lite0, photo_folder):
    atlas = neuron_atlas(lite0, "blocks.3", photo_folder, top=3, workers=0, progress=False)
    assert atlas.count == len(PHOTOS) and atlas.top_indices.shape == (40, 3)
    assert atlas.field is not None and atlas.field.size[0] < lite0.input_size  # patches, not whole images
    check_patches(lite0, atlas, photo_folder, [0, 17, 39])


def fashion_model() -> zoo.ModelHandle:
    from cnnviz.zoo.models import CnnSpec, cnn_handle
    from cnnviz.zoo.data import FASHION_MEAN, FASHION_STD

    return cnn_handle(CnnSpec("tutorial_cnn"), mean=FASHION_MEAN, std=FASHION_STD, seed=0).eval()


def test_fashion_atlas_crops_match_receptive_fields(fashion_mnist):
    handle = fashion_model()  # He-initialized tutorial CNN: the geometry is what is tested
    atlas = neuron_atlas(handle, "features.block2.act", fashion_mnist, top=4, progress=False)
    assert atlas.count == 10_000 and atlas.field.size == (8, 8)
    check_patches(handle, atlas, fashion_mnist, [0, 31, 63])


def test_shipped_fashion_cnn_atlas(fashion_mnist):
    import cnnviz.zoo  # noqa: F401  (registers fashion_cnn)

    try:
        handle = zoo.load("fashion_cnn", device="cpu")
    except CnnvizError as exc:
        pytest.skip(f"fashion_cnn is not loadable yet: {exc}")
    atlas = neuron_atlas(handle, handle.default_layer, fashion_mnist, top=3, progress=False)
    check_patches(handle, atlas, fashion_mnist, [0, 1])


# --- data sources ---------------------------------------------------------------------------------

class Pairs(Dataset):
    """A user dataset of (uint8 image, label) pairs."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images = (images * 255).round().to(torch.uint8)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index], index % 3


def test_any_dataset_and_workers_give_the_same_answer(tiny, photo_folder):
    images = images_with_ties()[:12]
    as_uint8 = (images * 255).round() / 255
    from_tensor = neuron_atlas(tiny, "conv2", as_uint8, top=3, progress=False)
    from_pairs = neuron_atlas(tiny, "conv2", Pairs(images), top=3, progress=False)
    from_tuples = neuron_atlas(tiny, "conv2", TensorDataset(as_uint8, torch.zeros(12)), top=3, progress=False)
    for other in (from_pairs, from_tuples):
        assert torch.equal(other.top_indices, from_tensor.top_indices)
        torch.testing.assert_close(other.top_values, from_tensor.top_values)
    in_process = neuron_atlas(tiny, "conv2", photo_folder, top=2, workers=0, progress=False)
    with_workers = neuron_atlas(tiny, "conv2", photo_folder, top=2, workers=2, batch_size=3, progress=False)
    assert torch.equal(in_process.top_indices, with_workers.top_indices)


def test_open_dataset_sources(photo_folder):
    files = open_dataset(photo_folder)
    assert isinstance(files, ImageFiles) and len(files) == len(PHOTOS) and files.name(0).startswith("a/")
    assert load_prepared(zoo.wrap(nn.Conv2d(3, 1, 1), input_size=32), files, [0, 1]).shape == (2, 3, 32, 32)


def test_prefetch_passes_items_and_errors():
    assert list(prefetch(range(5))) == [0, 1, 2, 3, 4]

    def broken():
        yield 1
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        list(prefetch(broken()))
    stream = prefetch(range(1000), depth=1)
    assert next(stream) == 0
    stream.close()  # leaving early stops the thread


# --- errors and no mutation --------------------------------------------------------------------------

def test_bad_input_errors(tiny, tmp_path):
    data = torch.rand(4, 3, 16, 16)
    with pytest.raises(CnnvizError, match="dataset has 4"):
        neuron_atlas(tiny, "conv2", data, top=5)
    with pytest.raises(CnnvizError, match="top must be at least 1"):
        neuron_atlas(tiny, "conv2", data, top=0)
    with pytest.raises(CnnvizError, match="no layer"):
        neuron_atlas(tiny, "conv7", data)
    with pytest.raises(CnnvizError, match="holds no image files"):
        neuron_atlas(tiny, "conv2", tmp_path)
    with pytest.raises(CnnvizError, match="is a file"):
        (tmp_path / "x.txt").write_text("x")
        neuron_atlas(tiny, "conv2", tmp_path / "x.txt")
    with pytest.raises(CnnvizError, match="no folder or dataset"):
        neuron_atlas(tiny, "conv2", "fashion-mnst")
    with pytest.raises(CnnvizError, match="unknown split"):
        neuron_atlas(tiny, "conv2", "fashion-mnist:val")


class Broken(Dataset):
    def __len__(self) -> int:
        return 30

    def __getitem__(self, index: int) -> torch.Tensor:
        if index == 20:
            raise RuntimeError("unreadable image 20")
        return torch.rand(3, 16, 16)


def test_model_unchanged_and_hooks_gone_after_success_and_error(tiny):
    tiny.train()
    before = state_snapshot(tiny)
    neuron_atlas(tiny, "conv2", torch.rand(10, 3, 16, 16), top=2, batch_size=4, progress=False)
    assert_unchanged(before, tiny)
    with pytest.raises(RuntimeError, match="unreadable image 20"):
        neuron_atlas(tiny, "conv2", Broken(), top=2, batch_size=4, workers=0, progress=False)
    assert_unchanged(before, tiny)
    assert hook_counts(tiny) == before["hooks"] and tiny.training


# --- command line ---------------------------------------------------------------------------------

def test_cli_atlas_writes_sheets_overview_and_index(photo_folder, tmp_path, capsys):
    out = tmp_path / "atlas"
    code = main(["atlas", "--layer", "blocks.3", "--data", str(photo_folder), "--top", "3", "--bottom", "2",
                 "--channels", "0-1,39", "--no-pictures", "--out", str(out), "--device", "cpu"])
    assert code == 0
    assert sorted(p.name for p in (out / "channels").iterdir()) == [
        "channel-0000.png", "channel-0001.png", "channel-0039.png"]
    assert (out / "atlas.png").is_file()
    index = json.loads((out / "index.json").read_text())
    assert index["layer"] == "blocks.3" and index["images"] == len(PHOTOS) and len(index["channels"]) == 40
    entry = index["channels"][39]["top"][0]
    assert set(entry) == {"index", "name", "activation", "position", "box"} and entry["name"].endswith(".png")
    assert len(index["channels"][0]["bottom"]) == 2 and isinstance(index["dead_channels"], list)
    assert "index.json" in capsys.readouterr().out


def test_cli_atlas_one_line_errors(photo_folder, tmp_path, capsys):
    assert main(["atlas", "--layer", "blocks.3", "--data", str(photo_folder), "--top", "99",
                 "--out", str(tmp_path), "--device", "cpu"]) == 2
    assert main(["atlas", "--layer", "blocks.3", "--data", str(photo_folder), "--top", "2", "--channels", "0-99",
                 "--out", str(tmp_path), "--device", "cpu"]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 2 and "dataset has 8 image(s)" in errors[0] and "outside the layer" in errors[1]
