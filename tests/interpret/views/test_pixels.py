import numpy as np
import pytest
import torch

from cnnviz.interpret.views import pixels, sheets
from cnnviz.zoo.core import CnnvizError


def test_to_uint8_scales_and_expands_gray():
    out = pixels.to_uint8(torch.tensor([[[0.0, 0.5, 1.0, 2.0]]]))
    assert out.shape == (1, 4, 3) and out[0, :, 0].tolist() == [0, 128, 255, 255]


def test_normalize_map_ranges():
    values = torch.tensor([[-2.0, 0.0], [1.0, 2.0]])
    assert pixels.normalize_map(values).min() == 0 and pixels.normalize_map(values).max() == 1
    sym = pixels.normalize_map(values, symmetric=True)
    assert sym[0, 1] == 0 and sym[0, 0] == -1
    assert not pixels.normalize_map(torch.ones(3, 3)).any()  # flat map: no division by zero


def test_overlay_blends_and_resizes():
    image = torch.rand(3, 20, 30)
    assert np.array_equal(pixels.overlay(image, torch.rand(5, 5), alpha=0.0), pixels.to_uint8(image))
    assert pixels.overlay(image, torch.rand(1, 5, 5)).shape == (20, 30, 3)


def test_colorbar_is_hot_on_top():
    bar = pixels.colorbar(100, "jet")
    assert bar[0, 0, 0] > bar[0, 0, 2] and bar[-1, 0, 2] > bar[-1, 0, 0]  # red top, blue bottom


def test_grid_layout_and_nearest_enlargement():
    tiles = [np.full((2, 3, 3), v, np.uint8) for v in (10, 20, 30)]
    out = pixels.grid(tiles, columns=2, pad=1, scale=2)
    assert out.shape == (2 * 4 + 1, 2 * 6 + 1, 3)
    assert (out[:4, :6] == 10).all() and (out[5:, :6] == 30).all()
    with pytest.raises(CnnvizError, match="share one size"):
        pixels.grid([np.zeros((2, 2, 3), np.uint8), np.zeros((3, 3, 3), np.uint8)])


def test_panel_has_caption_band():
    panel = sheets.explanation_panel(torch.rand(3, 32, 32), torch.rand(32, 32), "a long caption " * 8)
    assert panel.shape[0] > 32 and panel.dtype == np.uint8


def test_a_signed_map_is_drawn_about_zero_on_a_diverging_scale():
    values = torch.tensor([[-1.0, 0.0], [0.5, 1.0]])
    assert pixels.scale_of(values) == (pixels.DIVERGING, True)
    heat = pixels.colorize(values, pixels.DIVERGING, symmetric=True)
    negative, zero, positive = heat[0, 0].astype(int), heat[0, 1].astype(int), heat[1, 1].astype(int)
    assert zero.min() > 230 and np.ptp(zero) < 10  # zero is near white: visible between the signs
    assert negative[2] > negative[0] + 100 and positive[0] > positive[2] + 100  # blue below, red above
    image = torch.rand(3, 2, 2)
    panel = sheets.explanation_panel(image, values, "signed")
    assert np.array_equal(panel, sheets.explanation_panel(image, values, "signed", colormap=pixels.DIVERGING,
                                                          symmetric=True))
    assert not np.array_equal(panel, sheets.explanation_panel(image, values, "signed", symmetric=False))
    unsigned = torch.tensor([[0.0, 0.2], [0.5, 1.0]])
    assert pixels.scale_of(unsigned) == (pixels.DEFAULT_COLORMAP, False)
    assert pixels.scale_of(values, "jet") == ("jet", True)  # another colormap asked for is kept
