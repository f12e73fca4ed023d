"""DeepDream: the layer's activation rises, octaves and jitter undo exactly, tiles work, nothing is mutated."""

import pytest
import torch

from cnnviz.interpret import deepdream
from cnnviz.interpret.core.activations import layer_output
from cnnviz.interpret.optimize.deepdream import RandomShift, octave_sizes
from cnnviz.interpret.optimize.param import PixelImage
from tests.conftest import assert_unchanged, state_snapshot
from cnnviz.zoo.core import CnnvizError


def _energy(handle, layer, images, channel=None):
    with torch.no_grad():
        act = layer_output(handle, layer, images)
    return (act.pow(2).mean() if channel is None else act[:, channel].mean()).item()


def test_dream_raises_the_layer_activation_and_leaves_the_model(tiny, device):
    torch.manual_seed(0)
    photo = torch.rand(1, 3, 40, 48, device=device)
    tiny.train()
    before = state_snapshot(tiny)
    dreamt = deepdream(tiny, photo, layer="conv2", octaves=3, steps=8, lr=0.02, jitter=4, progress=False)
    assert dreamt.shape == photo.shape and dreamt.min() >= 0 and dreamt.max() <= 1
    assert _energy(tiny, "conv2", dreamt) > 1.2 * _energy(tiny, "conv2", photo)
    assert_unchanged(before, tiny)


def test_channel_objective_raises_that_channel(tiny, device):
    photo = torch.rand(1, 3, 32, 32, device=device, generator=torch.Generator(device).manual_seed(1))
    dreamt = deepdream(tiny, photo, layer="conv2", channel=1, octaves=2, steps=10, lr=0.02, progress=False)
    assert _energy(tiny, "conv2", dreamt, channel=1) > _energy(tiny, "conv2", photo, channel=1)


def test_zero_step_size_gives_the_photo_back_exactly(tiny, device):
    photo = torch.rand(2, 3, 37, 53, device=device)
    dreamt = deepdream(tiny, photo, layer="conv2", octaves=3, steps=3, lr=0.0, jitter=9, progress=False)
    torch.testing.assert_close(dreamt, photo, rtol=0, atol=0)


def test_random_shift_undo_is_exact():
    torch.manual_seed(0)
    start = torch.rand(1, 3, 9, 11)
    image, shift = PixelImage(start), RandomShift(5)
    for step in range(7):
        shift(image, step)
    assert shift.total != (0, 0)
    torch.testing.assert_close(shift.undo(image.pixels.detach()), start, rtol=0, atol=0)


def test_octaves_grow_by_the_scale_up_to_the_original():
    sizes = octave_sizes(1000, 700, 4, 1.4)
    assert sizes[-1] == (1000, 700) and sizes[0] == (round(1000 / 1.4 ** 3), round(700 / 1.4 ** 3))
    with pytest.raises(CnnvizError, match="octaves"):
        octave_sizes(100, 100, 0, 1.4)


def test_tiled_dream_on_a_large_image(tiny, device):
    photo = torch.rand(1, 3, 96, 80, device=device)
    dreamt = deepdream(tiny, photo, layer="conv2", octaves=2, steps=6, lr=0.02, tile=32, progress=False)
    assert dreamt.shape == photo.shape
    assert _energy(tiny, "conv2", dreamt) > _energy(tiny, "conv2", photo)


def test_dream_needs_a_photo(tiny):
    with pytest.raises(CnnvizError, match="photo"):
        deepdream(tiny, None)
