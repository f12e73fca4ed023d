"""RISE against TorchRay's reference on the same masks, and extremal perturbations against the paper's
defining properties: the mask keeps the requested area, is nearly binary, and sits where the evidence is."""

import pytest
import torch
from torch import nn
from torchray.attribution.rise import rise as torchray_rise

from cnnviz import interpret
from cnnviz import zoo
from cnnviz.interpret.attribution.rise import rise_masks, rise_with_masks
from cnnviz.zoo.core import CnnvizError


def test_rise_equals_torchray_on_the_same_masks(lite0):
    images = lite0.prepare([zoo.load_image("coffee")])
    masks = rise_masks(24, (224, 224), generator=torch.Generator().manual_seed(3), device=lite0.device)
    ours = rise_with_masks(lite0, images, 967, masks, keep=0.5, score="sigmoid", fill="black")  # TorchRay on the handle
    theirs = torchray_rise(lite0, images, filter_masks=masks, num_masks=24, batch_size=8)[:, 967:968]
    torch.testing.assert_close(ours * 0.5, theirs, rtol=1e-4, atol=1e-6)  # TorchRay divides by N, not N * keep


def test_rise_masks_keep_the_requested_share_and_shift_within_a_cell():
    masks = rise_masks(4000, (28, 28), cells=7, keep=0.3, generator=torch.Generator().manual_seed(0))
    assert abs(masks.mean().item() - 0.3) < 0.01
    assert masks.min() >= 0 and masks.max() <= 1
    # Random shifts: the masks are not all aligned to the 4-pixel grid.
    assert (masks[:, 0, :, 0] != masks[:, 0, :, 1]).any()


def test_rise_is_seeded_batch_invariant_and_leaves_the_global_rng(tiny, device):
    x = torch.rand(2, 3, 16, 16, device=device)
    state = torch.random.get_rng_state()
    first = interpret.rise(tiny, x, [0, 2], masks=50, batch_size=7)
    assert torch.equal(torch.random.get_rng_state(), state)
    torch.testing.assert_close(first, interpret.rise(tiny, x, [0, 2], masks=50, batch_size=64))
    assert not torch.equal(first, interpret.rise(tiny, x, [0, 2], masks=50, seed=1))


class TopLeftRed(nn.Module):
    """Class 0's logit is 100 x the mean red of the top-left quadrant; class 1's is a constant."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        half = x.shape[-1] // 2
        red = 100 * x[:, 0, :half, :half].mean(dim=(1, 2))
        return torch.stack([red, torch.full_like(red, 5.0)], dim=1)


def test_extremal_mask_has_the_requested_area_and_covers_the_evidence(device):
    handle = zoo.wrap(TopLeftRed().to(device), input_size=32, name="top-left")
    x = torch.full((2, 3, 32, 32), 0.1, device=device)
    x[:, 0, :16, :16] = 0.9  # red only in the top-left quadrant
    masks = interpret.extremal(handle, x, 0, area=0.25, steps=250, lr=0.5, step=4, blur=0.0)
    assert masks.shape == (2, 1, 32, 32)
    for mask in masks:
        assert abs(mask.mean().item() - 0.25) < 0.03  # the preserved area equals the requested area
        assert ((mask > 0.1) & (mask < 0.9)).float().mean() < 0.15  # nearly binary
        assert mask[0, :16, :16].mean() > 0.8  # and it keeps the quadrant the score reads (black elsewhere)


def test_extremal_refuses_impossible_areas(tiny, device):
    with pytest.raises(CnnvizError, match="area"):
        interpret.extremal(tiny, torch.rand(1, 3, 16, 16, device=device), 0, area=1.5)


def test_extremal_levels_average_nested_masks_of_their_areas(device):
    handle = zoo.wrap(TopLeftRed().to(device), input_size=32, name="top-left")
    x = torch.full((1, 3, 32, 32), 0.1, device=device)
    x[:, 0, :16, :16] = 0.9
    graded = interpret.extremal(handle, x, 0, area=0.5, levels=2, steps=250, lr=0.5, step=4, blur=0.0)
    assert abs(graded.mean().item() - (0.25 + 0.5) / 2) < 0.03  # masks of areas 0.25 and 0.5, averaged
    assert graded[0, 0, :16, :16].mean() > 0.85  # the quadrant is in both: it ranks highest
