"""The layer sheet: its statistics equal the layer's maps over the data counted by hand, its patches are the atlas's,
each picture (made through a queue of rows) excites its channel, the
grouped diversity term is the plain one per group, and bad input (one channel, no images, other weights) is one
line."""

from __future__ import annotations

import copy

import pytest
import torch

from cnnviz import interpret, zoo
from cnnviz.interpret.inside import LayerSheet, layer_channels, layer_sheet, stuck
from cnnviz.interpret.optimize import objectives, unit_pictures, unmoved
from cnnviz.interpret.optimize.objectives import Context
from cnnviz.zoo.core import CnnvizError

LAYER = "features.block1"  # 16 channels of 14x14: quick


@pytest.fixture(scope="module")
def data():
    return torch.rand(24, 1, 28, 28, generator=torch.Generator().manual_seed(1))


def test_statistics_and_patches_come_from_one_scan_and_equal_the_maps_counted_by_hand(fashion, data):
    sheet = layer_sheet(fashion, LAYER, data, top=3, pictures=False, batch_size=5, progress=False)
    maps = torch.cat([interpret.layer_output(fashion, LAYER, data[i:i + 8]) for i in range(0, 24, 8)])
    assert torch.allclose(sheet.stats.mean, maps.mean((0, 2, 3)), atol=1e-5)
    assert torch.allclose(sheet.stats.sparsity.float(), (maps <= 0).float().mean((0, 2, 3)), atol=1e-6)
    assert torch.equal(sheet.stats.alive, (maps > 0).any(3).any(2).any(0))
    atlas = interpret.neuron_atlas(fashion, LAYER, data, top=3, bottom=0, progress=False)
    assert torch.equal(sheet.atlas.top_indices, atlas.top_indices) and sheet.pictures is None


def test_pictures_through_rows_excite_their_channel_and_leave_model_and_rng_alone(fashion):
    before = copy.deepcopy(fashion.model.state_dict())
    rng = torch.get_rng_state()
    one = unit_pictures(fashion, LAYER, [3, 1, 7], steps=6, batch_size=2, progress=False)  # two waves of rows
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(v, fashion.model.state_dict()[k]) for k, v in before.items())
    grey = torch.full((3, 1, 28, 28), 0.5)
    made = interpret.layer_output(fashion, LAYER, one[:, 0].detach())
    start = interpret.layer_output(fashion, LAYER, grey)
    index = torch.arange(3), torch.tensor([3, 1, 7])
    rose = made.mean((2, 3))[index] > start.mean((2, 3))[index]
    still = stuck(fashion, LAYER, torch.zeros(16, *one.shape[1:]).index_copy(0, torch.tensor([3, 1, 7]), one))
    assert (rose | still[[3, 1, 7]]).all() and rose.any()  # each rose, or is flagged as a picture that never moved


def test_diversity_within_groups_is_the_plain_term_per_group():
    acts = torch.rand(6, 4, 5, 5, generator=torch.Generator().manual_seed(0))
    grouped = objectives.diversity_within("a", 3)(Context(None, None, None, {"a": acts}))
    plain = torch.cat([objectives.diversity("a")(Context(None, None, None, {"a": acts[i:i + 3]})) for i in (0, 3)])
    assert torch.allclose(grouped, plain)
    with pytest.raises(CnnvizError, match="blocks of 4"):
        objectives.diversity_within("a", 4)(Context(None, None, None, {"a": acts}))


def test_diversity_gives_each_channel_several_pictures(fashion):
    pictures = unit_pictures(fashion, LAYER, [2], steps=1, diversity=2, progress=False)
    assert pictures.shape == (1, 2, 1, 28, 28) and not torch.allclose(pictures[0, 0], pictures[0, 1])


def test_bad_input_is_one_line(fashion, data):
    net = zoo.wrap(torch.nn.Sequential(torch.nn.Conv2d(1, 1, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                                       torch.nn.LazyLinear(2)), input_size=28, classes=["a", "b"])
    net(torch.zeros(1, 1, 28, 28))
    for call, words in [(lambda: layer_channels(net, "0"), "has one channel"),
                        (lambda: layer_sheet(fashion, LAYER, torch.empty(0, 1, 28, 28), progress=False),
                         "holds no images"),
                        (lambda: layer_sheet(fashion, LAYER, top=0, progress=False), "top must be at least 1"),
                        (lambda: layer_sheet(fashion, LAYER, steps=0, progress=False), "steps must be at least 1"),
                        (lambda: layer_sheet(fashion, LAYER, diversity=0, progress=False),
                         "diversity must be at least 1"),
                        (lambda: layer_sheet(fashion, LAYER, channels=[3, 16], progress=False),
                         "has channels 0 to 15, not 16")]:
        with pytest.raises(CnnvizError, match=words) as caught:
            call()
        assert len(str(caught.value).splitlines()) == 1


def test_a_sheet_read_back_for_other_weights_is_refused(fashion, data):
    sheet = layer_sheet(fashion, LAYER, data[:6], top=2, steps=2, progress=False)
    again = LayerSheet.from_arrays(fashion, sheet.to_arrays())
    assert torch.equal(again.atlas.top_indices, sheet.atlas.top_indices)
    assert torch.allclose(again.pictures, sheet.pictures, atol=1 / 255)
    assert torch.equal(again.stats.alive, sheet.stats.alive)
    changed = copy.deepcopy(fashion)
    with torch.no_grad():
        changed.model.features.block1.conv.weight.mul_(1.01)
    with pytest.raises(CnnvizError, match="other weights") as caught:
        LayerSheet.from_arrays(changed, sheet.to_arrays())
    assert len(str(caught.value).splitlines()) == 1


def test_a_sheet_of_some_channels_holds_theirs_as_unit_pictures_makes_them_and_reads_back(fashion):
    from types import SimpleNamespace as Found

    from cnnviz.interpret.views.sheets import concept_tiles

    sheet = layer_sheet(fashion, LAYER, channels=[7, 2, 7, 8], steps=3, progress=False)
    oracle = unit_pictures(fashion, LAYER, [2, 7, 8], steps=3, progress=False).cpu()
    assert all(torch.equal(sheet.picture(c), oracle[i]) for i, c in enumerate([2, 7, 8]))
    assert [c for c in range(16) if sheet.picture(c) is not None] == [2, 7, 8]
    assert [u["pictures"] for u in sheet.to_dict()["units"]] == [int(c in (2, 7, 8)) for c in range(16)]
    by_hand = [unmoved(fashion, f"{LAYER}:{c}", oracle[i:i + 1, 0])[0] is not None for i, c in enumerate([2, 7, 8])]
    assert sheet.still[[2, 7, 8]].tolist() == by_hand and not sheet.still[[0, 1, 3]].any()
    again = LayerSheet.from_arrays(fashion, sheet.to_arrays())
    assert torch.equal(again.made, sheet.made) and again.picture(3) is None
    assert all(torch.allclose(again.picture(c), sheet.picture(c), atol=0.5 / 255) for c in (2, 7, 8))
    found = Found(layer=LAYER, channels=torch.tensor([[7, 5]]), shares=torch.tensor([[0.5, 0.1]]),
                  maps=torch.rand(1, 2, 28, 28), total=torch.rand(1, 1, 28, 28))
    _, texts = concept_tiles(torch.rand(1, 28, 28), found, 0, dictionary=again)
    assert [t for t in texts if "looks for" in t] == ["#7 looks for"]  # channel 5 has no picture: none is drawn
