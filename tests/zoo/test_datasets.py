"""Datasets: IDX files, image folders, split-then-statistics, augmentation, on-device batches."""

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnnviz.zoo.data import DATASETS, FASHION_MNIST_CLASSES, TensorData, load_dataset, read_idx_split
from cnnviz.zoo.data.datasets import (
    Augment, augment_batch, batches, channel_stats, read_idx, split_indices, synthetic, write_idx,
)
from cnnviz.zoo.core import CnnvizError
from tests.conftest import FASHION_DIR, needs_fashion


def write_idx_dataset(directory: Path, train: TensorData, test: TensorData | None = None, gz: bool = True) -> Path:
    suffix = ".gz" if gz else ""
    for split, data in (("train", train), ("t10k", test)):
        if data is not None:
            write_idx(directory / f"{split}-images-idx3-ubyte{suffix}", data.images[:, 0].numpy())
            write_idx(directory / f"{split}-labels-idx1-ubyte{suffix}", data.labels.numpy().astype(np.uint8))
    return directory


def test_read_idx_by_hand(tmp_path):
    # magic 0x00000803 (uint8, 3 dims), dims 2x2x3, then the bytes
    raw = bytes([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3]) + bytes(range(12))
    (tmp_path / "a").write_bytes(raw)
    with gzip.open(tmp_path / "a.gz", "wb") as f:
        f.write(raw)
    for name in ("a", "a.gz"):
        array = read_idx(tmp_path / name)
        assert array.shape == (2, 2, 3) and array[1, 1, 2] == 11
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(CnnvizError, match="not an IDX file"):
        read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(raw[:-1])
    with pytest.raises(CnnvizError, match="truncated"):
        read_idx(tmp_path / "short")


def test_write_read_round_trip(tmp_path):
    for array in (np.arange(24, dtype=np.uint8).reshape(2, 3, 4), np.array([-3, 7], dtype=np.int32),
                  np.array([0.5, 1.5], dtype=np.float32)):
        assert np.array_equal(read_idx(write_idx(tmp_path / "x.gz", array)), array)


def test_channel_statistics_are_numpys_per_channel_over_every_pixel():
    images = torch.randint(0, 256, (5, 3, 4, 6), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    images[:, 2] //= 4  # the channels differ, so mixing them up shows
    mean, std = channel_stats(images)
    pixels = images.numpy().astype(np.float64) / 255
    np.testing.assert_allclose(mean, pixels.mean(axis=(0, 2, 3)), atol=1e-6)
    np.testing.assert_allclose(std, pixels.std(axis=(0, 2, 3)), atol=1e-6)  # the population's (ddof 0)


def test_split_first_then_statistics_from_the_training_split(tmp_path):
    data = synthetic(200, size=12, classes=4, seed=1)
    data.images[:100] = 0  # make the halves differ so leaking validation pixels would show
    write_idx_dataset(tmp_path, data, synthetic(40, size=12, classes=4, seed=2), gz=False)
    splits = load_dataset(tmp_path, val_fraction=0.25, seed=5)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (150, 50, 40)
    train_index, val_index = split_indices(200, 0.25, seed=5)
    assert set(train_index.tolist()).isdisjoint(val_index.tolist())
    assert sorted(train_index.tolist() + val_index.tolist()) == list(range(200))
    assert torch.equal(splits.train.images, data.images[train_index])
    assert splits.mean == channel_stats(data.images[train_index])[0]
    assert splits.mean != channel_stats(data.images)[0]
    pixels = data.images[train_index].double() / 255
    assert splits.mean[0] == pytest.approx(pixels.mean().item(), abs=1e-6)
    assert splits.std[0] == pytest.approx(pixels.std(unbiased=False).item(), abs=1e-6)
    assert splits.classes == ["0", "1", "2", "3"] and splits.augment == Augment()
    assert torch.equal(load_dataset(tmp_path, val_fraction=0.25, seed=5).val.labels, splits.val.labels)


def test_missing_dataset_says_how_to_get_it(tmp_path):
    with pytest.raises(CnnvizError, match=r"apt-get install dataset-fashion-mnist.*--data-dir"):
        load_dataset("fashion-mnist", data_dir=tmp_path)
    with pytest.raises(CnnvizError, match="did you mean 'mnist'"):
        load_dataset("mnis")
    with pytest.raises(CnnvizError, match="validation fraction"):
        split_indices(10, 1.5, 0)


def test_image_folder(tmp_path):
    for cls, value in (("cats", 40), ("dogs", 200)):
        (tmp_path / cls).mkdir()
        for i in range(5):
            Image.fromarray(np.full((20 + i, 30, 3), value, np.uint8)).save(tmp_path / cls / f"{i}.png")
    splits = load_dataset(tmp_path, val_fraction=0.2, image_size=16, progress=False)
    assert splits.classes == ["cats", "dogs"] and splits.test is None
    assert splits.train.images.shape[1:] == (3, 16, 16) and len(splits.train) + len(splits.val) == 10
    assert splits.augment.hflip and splits.augment.padding == "border"
    cats = torch.cat([splits.train.images[splits.train.labels == 0], splits.val.images[splits.val.labels == 0]])
    assert int(cats.float().mean().round()) == 40


def test_augment_is_seeded_and_label_preserving():
    images = torch.rand(16, 1, 28, 28)
    assert augment_batch(images, Augment(), torch.Generator()) is images
    a = augment_batch(images, Augment(shift=0.1, rotate=10, zoom=0.1, hflip=True), torch.Generator().manual_seed(3))
    b = augment_batch(images, Augment(shift=0.1, rotate=10, zoom=0.1, hflip=True), torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and not torch.equal(a, images)
    flipped = augment_batch(images, Augment(hflip=True), torch.Generator().manual_seed(0))
    for original, out in zip(images, flipped):  # a flip is exact: each image is kept or mirrored
        assert torch.allclose(out, original, atol=1e-5) or torch.allclose(out, original.flip(-1), atol=1e-5)
    shifted = augment_batch(images, Augment(shift=0.1), torch.Generator().manual_seed(0))
    for original, out in zip(images, shifted):  # whole-pixel shifts: no blur, just moved pixels and zeros
        found = False
        for dy in range(-3, 4):
            for dx in range(-3, 4):
                moved = torch.zeros_like(original)
                src = original[:, max(0, -dy):28 - max(0, dy), max(0, -dx):28 - max(0, dx)]
                moved[:, max(0, dy):max(0, dy) + src.shape[1], max(0, dx):max(0, dx) + src.shape[2]] = src
                found = found or torch.allclose(out, moved, atol=1e-5)
        assert found


def test_batches_cover_the_data_in_a_seeded_order():
    data = TensorData(torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1), torch.arange(10))
    seen = torch.cat([y for _, y in batches(data, 4, shuffle=True, generator=torch.Generator().manual_seed(1))])
    assert sorted(seen.tolist()) == list(range(10)) and seen.tolist() != list(range(10))
    again = torch.cat([y for _, y in batches(data, 4, shuffle=True, generator=torch.Generator().manual_seed(1))])
    assert torch.equal(seen, again)
    sizes = [len(y) for _, y in batches(data, 4, drop_last=True)]
    assert sizes == [4, 4]
    x, y = next(batches(data, 10))
    assert x.dtype == torch.float32 and torch.allclose(x.flatten() * 255, y.float())
    with pytest.raises(CnnvizError):
        next(batches(data, 0))


@needs_fashion
def test_real_fashion_mnist():
    test = read_idx_split(FASHION_DIR, "t10k")
    assert test.images.shape == (10000, 1, 28, 28) and test.images.dtype == torch.uint8
    assert torch.bincount(test.labels).tolist() == [1000] * 10
    splits = load_dataset("fashion-mnist", val_fraction=0.1, seed=0)
    assert (len(splits.train), len(splits.val)) == (54000, 6000)
    assert splits.classes == FASHION_MNIST_CLASSES
    assert splits.mean[0] == pytest.approx(0.286, abs=0.002) and splits.std[0] == pytest.approx(0.353, abs=0.002)
    assert splits.augment.hflip and not DATASETS["mnist"].augment.hflip  # flips keep clothes, not digits
