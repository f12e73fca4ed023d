"""Network dissection: the protocol against a numpy/scipy oracle on a net whose activations are known by hand,
the exact streamed quantile against numpy, the folder formats, the JSON form, bad input, and fashion_seg."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage
from torch import nn

from cnnviz import zoo
from cnnviz.interpret.inside import Dissection, TopQuantile, dissect
from cnnviz.zoo.core import CnnvizError
from cnnviz.zoo.data import FASHION_MNIST_CLASSES, MaskedImages, open_masked
from tests.conftest import assert_unchanged, needs_fashion, state_snapshot

CONCEPTS = ("bright", "dark", "never")  # "never" marks no pixel: it must be skipped, not divided by


def block_net(channels: int = 3) -> zoo.ModelHandle:
    """A 2x2 stride-2 conv on 8 px gray images, no normalization: channel 0 is each block's mean, channel 1
    minus it, channel 2 the block's top-left pixel (see :func:`known_maps`)."""
    conv = nn.Conv2d(1, channels, 2, stride=2, bias=False)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0] = 0.25
        if channels > 1:
            conv.weight[1] = -0.25
            conv.weight[2, 0, 0, 0] = 1.0
    return zoo.wrap(nn.Sequential(conv), input_size=8, mean=(0.0,), std=(1.0,), name="blocks")


def known_maps(images: np.ndarray) -> np.ndarray:
    """``block_net``'s maps ``(N, 3, 4, 4)``, computed by hand from ``(N, 8, 8)`` images."""
    n = len(images)
    means = images.reshape(n, 4, 2, 4, 2).mean(axis=(2, 4))
    return np.stack([means, -means, images[:, ::2, ::2]], axis=1)


def scene_data(count: int = 7, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Images whose pixels are multiples of 1/16 (every activation and upsampled value is exact in float32),
    and label maps: 1 "bright" where a pixel is above 0.6, 2 "dark" below 0.2 (with some noise), never 3."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 17, size=(count, 8, 8)) / 16.0
    labels = np.where(images > 0.6, 1, np.where(images < 0.2, 2, 0))
    labels[rng.random(labels.shape) < 0.15] = 0
    return images, labels


def oracle(images: np.ndarray, labels: np.ndarray, quantile: float, concepts: int) -> dict[str, np.ndarray]:
    """Bau et al.'s protocol written out: numpy's quantile over all positions of all images, scipy's bilinear
    zoom (half-pixel centres, edges repeated), IoU from intersections and unions summed over the images."""
    maps = known_maps(images)
    units = maps.shape[1]
    thresholds = np.array([np.quantile(maps[:, u].ravel(), 1 - quantile) for u in range(units)], dtype=np.float32)
    inter, unit_area = np.zeros((units, concepts)), np.zeros(units)
    for i in range(len(images)):
        for u in range(units):
            fired = ndimage.zoom(maps[i, u], 2, order=1, grid_mode=True, mode="nearest") > thresholds[u]
            unit_area[u] += fired.sum()
            for k in range(concepts):
                inter[u, k] += (fired & (labels[i] == k + 1)).sum()
    area = np.array([(labels == k + 1).sum() for k in range(concepts)])
    union = unit_area[:, None] + area[None, :] - inter
    return {"thresholds": thresholds, "iou": np.where(union > 0, inter / np.maximum(union, 1), 0.0), "area": area}


@pytest.mark.parametrize("quantile,count", [(0.005, 40), (0.2, 7)])
def test_dissection_equals_the_hand_computed_protocol(quantile, count):
    images, labels = scene_data(count)
    handle = block_net()
    data = MaskedImages.from_tensors(torch.tensor(images, dtype=torch.float32)[:, None], torch.tensor(labels),
                                     CONCEPTS)
    before, rng = state_snapshot(handle.model), torch.get_rng_state()
    found = dissect(handle, "0", data, quantile=quantile, batch_size=3, progress=False)
    assert_unchanged(before, handle.model)
    assert torch.equal(torch.get_rng_state(), rng)
    want = oracle(images, labels, quantile, len(CONCEPTS))
    np.testing.assert_allclose(found.threshold.values, want["thresholds"], rtol=1e-6)
    assert found.threshold.quantile == quantile
    assert found.concepts == ("bright", "dark") and found.skipped == ("never",)
    assert any("'never' has no pixels" in note for note in found.notes)
    iou = want["iou"][:, :2]  # the skipped concept is not a candidate
    assert any(unit.concept is not None for unit in found.units)
    for unit in found.units:
        best = int(np.argmax(iou[unit.channel]))
        assert unit.concept == (CONCEPTS[best] if iou[unit.channel, best] > 0 else None)
        assert unit.iou == pytest.approx(iou[unit.channel, best], abs=1e-12)
        assert unit.detector == (iou[unit.channel, best] >= 0.04)
        assert [c for c, _ in unit.runners_up] == [CONCEPTS[1 - best]] * int(iou[unit.channel, 1 - best] > 0)
    assert found.counts == {c: sum(u.detector and u.concept == c for u in found.units) for c in ("bright", "dark")}
    assert np.isfinite([u.iou for u in found.units]).all()


def test_mean_unit_detects_bright_and_its_negation_dark():
    """The property behind the oracle: the block mean fires on bright regions, minus the mean on dark ones."""
    images, labels = scene_data(count=20, seed=3)
    data = MaskedImages.from_tensors(torch.tensor(images, dtype=torch.float32)[:, None], torch.tensor(labels),
                                     CONCEPTS)
    found = dissect(block_net(), "0", data, quantile=0.2, progress=False)
    assert (found.label(0).concept, found.label(1).concept) == ("bright", "dark")
    assert found.label(0).detector and found.label(1).detector
    assert found.label(99) is None


@pytest.mark.parametrize("quantile,total,batch", [(0.005, 100_000, 4096), (0.1, 20_000, 500), (0.3, 777, 50),
                                                  (0.999, 3000, 1000)])
def test_streamed_quantile_is_numpys_exactly(quantile, total, batch):
    generator = torch.Generator().manual_seed(total)
    values = torch.randint(0, 50, (5, total), generator=generator).float()  # many ties
    values[0] = torch.randn(total, generator=generator)
    values[1] = 0.0  # a dead unit
    top = TopQuantile(5, total, quantile)
    for part in values.split(batch, dim=1):
        top.add(part)
    np.testing.assert_allclose(top.value().numpy(), np.quantile(values.double().numpy(), 1 - quantile, axis=1),
                               rtol=1e-12)


def write_folder(root, images: np.ndarray, labels: np.ndarray, *, per_concept: bool = False) -> None:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i, (image, label) in enumerate(zip(images, labels)):
        Image.fromarray(image).save(root / "images" / f"im{i}.png")
        if not per_concept:
            Image.fromarray(label.astype(np.uint8)).save(root / "masks" / f"im{i}.png")
            continue
        (root / "masks" / f"im{i}").mkdir()
        for k, concept in enumerate(CONCEPTS[:2]):
            if (label == k + 1).any():  # a concept absent from an image may have no file
                Image.fromarray(((label == k + 1) * 255).astype(np.uint8)).save(root / "masks" / f"im{i}" /
                                                                                f"{concept}.png")
    (root / "concepts.txt").write_text("\n".join(CONCEPTS) + "\n")


def test_mask_folders_in_both_formats_give_the_tensors_result(tmp_path):
    images, labels = scene_data(count=6, seed=1)
    pixels = (images * 240).astype(np.uint8)
    reference = dissect(block_net(), "0", MaskedImages.from_tensors(torch.tensor(pixels)[:, None],
                                                                    torch.tensor(labels), CONCEPTS),
                        quantile=0.1, progress=False)
    write_folder(tmp_path / "maps", pixels, labels)
    write_folder(tmp_path / "files", pixels, labels, per_concept=True)
    from_maps = dissect(block_net(), "0", tmp_path / "maps" / "images", quantile=0.1, progress=False, workers=0)
    from_files = dissect(block_net(), "0", tmp_path / "files", quantile=0.1, progress=False, workers=0)
    assert from_maps.units == reference.units and from_maps.threshold == reference.threshold
    assert from_files.units == reference.units  # concepts from file names: bright, dark (sorted, same order)


def test_json_round_trip_and_stale_weights():
    images, labels = scene_data()
    handle = block_net()
    found = dissect(handle, "0", MaskedImages.from_tensors(torch.tensor(images, dtype=torch.float32)[:, None],
                                                           torch.tensor(labels), CONCEPTS), progress=False)
    again = Dissection.from_json(found.to_json())
    assert again == found and again.counts == found.counts and again.label(0) == found.label(0)
    assert found.made_by(handle)
    with torch.no_grad():
        handle.model[0].weight[0] *= 2
    assert not found.made_by(handle)
    with pytest.raises(CnnvizError, match="not a dissection.json"):
        Dissection.from_json('{"units": []}')


def one_line(excinfo: pytest.ExceptionInfo) -> str:
    text = str(excinfo.value)
    assert "\n" not in text and text
    return text


def test_bad_folders_are_refused_in_one_line(tmp_path):
    images, labels = scene_data(count=3)
    pixels = (images * 240).astype(np.uint8)
    write_folder(tmp_path / "ok", pixels, labels)
    Image.fromarray(np.zeros((6, 6), np.uint8)).save(tmp_path / "ok" / "masks" / "im1.png")
    with pytest.raises(CnnvizError) as err:
        dissect(block_net(), "0", tmp_path / "ok", progress=False)
    assert "is 6x6 but its image" in one_line(err)

    write_folder(tmp_path / "missing", pixels, labels)
    (tmp_path / "missing" / "masks" / "im2.png").unlink()
    with pytest.raises(CnnvizError) as err:
        dissect(block_net(), "0", tmp_path / "missing", progress=False)
    assert "no mask for 1 of 3 images (im2.png)" in one_line(err)

    (tmp_path / "empty" / "images").mkdir(parents=True)
    (tmp_path / "empty" / "masks").mkdir()
    with pytest.raises(CnnvizError) as err:
        dissect(block_net(), "0", tmp_path / "empty", progress=False)
    assert "holds no image files" in one_line(err)

    write_folder(tmp_path / "unnamed", pixels, labels)
    (tmp_path / "unnamed" / "concepts.txt").unlink()
    with pytest.raises(CnnvizError) as err:
        dissect(block_net(), "0", tmp_path / "unnamed", progress=False)
    assert "no concepts.txt" in one_line(err)


def test_bad_data_and_layers_are_refused_in_one_line():
    images, labels = scene_data(count=3)
    tensors = torch.tensor(images, dtype=torch.float32)[:, None]
    with pytest.raises(CnnvizError) as err:
        dissect(block_net(channels=1), "0", MaskedImages.from_tensors(tensors, torch.tensor(labels), CONCEPTS))
    assert "has one channel" in one_line(err)
    with pytest.raises(CnnvizError) as err:
        dissect(block_net(), "0", MaskedImages.from_tensors(tensors, torch.zeros(3, 8, 8), CONCEPTS))
    assert "mark no concept anywhere" in one_line(err)
    with pytest.raises(CnnvizError) as err:
        MaskedImages.from_tensors(tensors, torch.tensor(labels) * 2, CONCEPTS)
    assert "3 concepts are named" in one_line(err)
    with pytest.raises(CnnvizError) as err:
        MaskedImages.from_tensors(tensors[:0], torch.zeros(0, 8, 8), CONCEPTS)
    assert "non-empty" in one_line(err)
    with pytest.raises(CnnvizError) as err:
        dissect(block_net(), "0", MaskedImages.from_tensors(tensors, torch.tensor(labels), CONCEPTS), quantile=1.5)
    assert "quantile" in one_line(err)
    broken = block_net()
    with torch.no_grad():
        broken.model[0].weight[2, 0, 0, 0] = float("nan")
    before, rng = state_snapshot(broken.model), torch.get_rng_state()
    with pytest.raises(CnnvizError) as err:
        dissect(broken, "0", MaskedImages.from_tensors(tensors, torch.tensor(labels), CONCEPTS), progress=False)
    assert "NaN or infinite activations (units [2])" in one_line(err)
    assert torch.equal(torch.get_rng_state(), rng)  # and the model as found, also when it raises:
    broken.model[0].weight.data[2, 0, 0, 0] = 0.0
    before["weights"]["0.weight"][2, 0, 0, 0] = 0.0  # (NaN != NaN: compare with the NaN replaced)
    assert_unchanged(before, broken.model)
    flat = zoo.wrap(nn.Sequential(nn.Flatten(), nn.Linear(64, 4)), input_size=8, mean=(0.0,), std=(1.0,))
    with pytest.raises(CnnvizError) as err:
        dissect(flat, "1", MaskedImages.from_tensors(tensors, torch.tensor(labels), CONCEPTS))
    assert "needs spatial maps" in one_line(err)


@pytest.mark.slow
@needs_fashion
def test_fashion_seg_last_layers_hold_class_detectors():
    """features.3 (the last feature block) and the classifier's per-pixel class scores, over 300 held-out scenes.

    fashion_seg is a weak segmenter (held-out mIoU 0.37; Shirt, Coat and Pullover mixed up), and the margins
    say so: over 1000 scenes every class has detectors here (bench/dissect.py reports the counts), over 300
    Coat may have none. The class-score channels must mostly be labelled with their own class (chance: 1 in 10).
    """
    handle = zoo.load("fashion_seg", device="cpu")
    scenes = open_masked("fashion-scenes:300", size=handle.input_size)  # made once for both layers
    found = {layer: dissect(handle, layer, scenes, progress=False)
             for layer in ("features.3", "classifier")}
    per_class = {c: sum(f.counts[c] for f in found.values()) for c in FASHION_MNIST_CLASSES}
    print("detectors per class (features.3 + classifier, 300 scenes):", per_class)  # pytest -s shows them
    assert sum(count > 0 for count in per_class.values()) >= 8, per_class
    assert len(found["features.3"].detectors) >= 5
    scores = found["classifier"].units[1:]  # channel 0 scores the background, channel k + 1 class k
    own = [unit.concept == FASHION_MNIST_CLASSES[unit.channel - 1] for unit in scores]
    assert sum(own) >= 6, [(u.channel, u.text) for u in scores]
