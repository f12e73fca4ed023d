"""Diagnostics: overfitting flag, dead ReLUs and sparsity, gradient norms, confusion matrix, drawings."""

import numpy as np
import pytest
import torch
from torch import nn

from cnnviz.interpret.inside.layer_table import summary_lines
from cnnviz.interpret.views import charts
from cnnviz.interpret.views.charts import Series, line_chart
from cnnviz.interpret.views.pixels import nice_ticks
from tests.conftest import assert_unchanged, state_snapshot
from cnnviz.zoo.models import CnnSpec, cnn_handle
from cnnviz.zoo.models.cnns import build_cnn
from cnnviz.zoo.train import activation_stats, confusion_matrix, find_overfitting, gradient_norms
from cnnviz.zoo.core import CnnvizError


def history(train, val):
    return [{"epoch": i + 1, "train_loss": t, "val_loss": v, "train_acc": 1 - t / 3, "val_acc": 1 - v / 3}
            for i, (t, v) in enumerate(zip(train, val))]


def test_overfitting_flag_fires_at_the_right_epoch():
    overfit = history([1.0, 0.7, 0.5, 0.4, 0.3, 0.22, 0.15, 0.1],
                      [0.9, 0.7, 0.6, 0.55, 0.58, 0.63, 0.70, 0.78])
    found = find_overfitting(overfit)
    assert found is not None and (found.epoch, found.best_epoch) == (5, 4)
    assert "overfitting from epoch 5" in found.message()
    assert (found.val_from, found.val_to, found.train_from, found.train_to) == (0.55, 0.78, 0.4, 0.1)


def test_overfitting_flag_quiet_on_healthy_runs():
    healthy = history([1.0, 0.7, 0.5, 0.4, 0.35, 0.3], [0.9, 0.7, 0.6, 0.55, 0.5, 0.48])
    assert find_overfitting(healthy) is None
    wiggle = history([1.0, 0.7, 0.5, 0.4, 0.35, 0.3], [0.9, 0.7, 0.6, 0.55, 0.553, 0.552])  # within tolerance
    assert find_overfitting(wiggle) is None
    both_rise = history([1.0, 0.7, 0.5, 0.6, 0.8, 1.1], [0.9, 0.7, 0.6, 0.7, 0.9, 1.2])  # divergence, not overfit
    assert find_overfitting(both_rise) is None
    dipped_back = history([1, .8, .6, .5, .4, .3, .2], [.9, .7, .6, .7, .6, .65, .7])
    assert find_overfitting(dipped_back) is None


def test_dead_relu_fraction_and_sparsity_on_a_hand_built_layer():
    layer = nn.Linear(2, 4)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0], [0.0, 0.0]]))
        layer.bias.copy_(torch.tensor([0.0, 0.0, -0.5, -1.0]))
    net = nn.Sequential(layer, nn.ReLU())
    x = torch.tensor([[1.0, 2.0], [3.0, -1.0], [0.5, 0.5]])  # all inputs give units 2 and 3 negative
    # pre-activations: unit0 [1, 3, .5] unit1 [2, -1, .5] unit2 [-3.5, -2.5, -1.5] unit3 [-1, -1, -1]
    stats = activation_stats(net, x, batch_size=2)
    assert len(stats) == 1 and stats[0].name == "1" and stats[0].units == 4 and stats[0].kind == "ReLU"
    assert stats[0].dead_fraction == pytest.approx(2 / 4)
    assert stats[0].sparsity == pytest.approx(7 / 12)  # zeros: unit1 once, units 2 and 3 three times each


def test_activation_stats_on_conv_maps_leave_the_model_unchanged():
    net = cnn_handle(CnnSpec("tutorial_cnn"), mean=(0.3,), std=(0.3,), seed=0).train()  # names: of net.model
    before = state_snapshot(net)
    stats = activation_stats(net, torch.rand(20, 1, 28, 28), batch_size=8)
    norms = gradient_norms(net, torch.rand(8, 1, 28, 28), torch.arange(8))
    assert list(norms)[0] == "features.block1.conv" and len(norms) == 9
    assert [s.name for s in stats] == ["features.block1.act", "features.block2.act", "features.block3.act",
                                       "classifier.act1"]
    assert [s.units for s in stats] == [16, 64, 128, 256]
    assert all(0 <= s.sparsity <= 1 and 0 <= s.dead_fraction <= 1 for s in stats)
    assert_unchanged(before, net)


def test_gradient_norms_match_autograd_and_leave_the_model_unchanged():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)).train()
    x, y = torch.randn(6, 4), torch.tensor([0, 1, 0, 1, 1, 0])
    before = state_snapshot(net)
    norms = gradient_norms(net, x, y)
    assert_unchanged(before, net)
    loss = nn.functional.cross_entropy(net(x), y)
    loss.backward()
    expected = torch.cat([net[0].weight.grad.flatten(), net[0].bias.grad]).norm().item()
    assert norms["0"] == pytest.approx(expected, rel=1e-5)
    assert set(norms) == {"0", "2"}


def test_confusion_matrix_against_a_hand_count():
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2])
    predictions = torch.tensor([0, 1, 0, 1, 1, 2, 0, 2, 1])
    matrix = confusion_matrix(predictions, labels, 3)
    assert matrix.tolist() == [[2, 1, 0], [0, 2, 0], [1, 1, 2]]
    assert matrix.sum() == 9 and matrix.trace() == 6
    with pytest.raises(CnnvizError):
        confusion_matrix(torch.tensor([3]), torch.tensor([0]), 3)


def test_summary_lists_leaves_and_agrees_with_the_real_count():
    lines = summary_lines(build_cnn("small_resnet"), 28)
    assert lines[-1].endswith("equal")
    assert any(line.startswith("layer1.0.conv1") for line in lines)
    assert not any(line.startswith("layer1.0 ") for line in lines)  # containers are not leaves


def draw_curves(history, **options):
    return charts.to_array(charts.training_curves(history, **options))


def draw_confusion(matrix, classes):
    return charts.to_array(charts.confusion(matrix, classes))


def draw_lr_range(*args):
    return charts.to_array(charts.lr_range(*args))


def draw_bars(values, **options):
    return charts.to_array(charts.bars(values, **options))


def draw_activation_stats(stats):
    return charts.to_array(charts.activation_bars(stats))


def test_drawings_are_uint8_images():
    h = history([1.0, 0.7, 0.5, 0.4, 0.3, 0.22], [0.9, 0.7, 0.6, 0.65, 0.7, 0.8])
    with_flag, without = draw_curves(h, title="run"), draw_curves(h, overfitting=False)
    for image in (with_flag, without):
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    red = (with_flag[..., 0] > 200) & (with_flag[..., 1] < 80)
    assert red.sum() > 50  # the overfitting mark and message are drawn in red
    assert draw_confusion(torch.tensor([[5, 1], [2, 7]]), ["a", "b"]).dtype == np.uint8
    lrs = list(np.geomspace(1e-5, 1, 30))
    assert draw_lr_range(lrs, [1.0] * 30, [1.0] * 30, 1e-3).dtype == np.uint8
    assert draw_bars({"conv": 1e-3, "fc": 2.0}, title="norms", log=True).dtype == np.uint8
    stats = activation_stats(build_cnn("lenet5"), torch.rand(4, 1, 28, 28))
    assert draw_activation_stats(stats).dtype == np.uint8
    with pytest.raises(CnnvizError):
        line_chart([Series("x", [1], [float("nan")], (0, 0, 0))], title="t", xlabel="x", ylabel="y")


def test_nice_ticks():
    assert nice_ticks(0.03, 0.97) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert nice_ticks(1, 15, 6) == [0, 5, 10, 15]
    ticks = nice_ticks(0.9012, 0.9034)
    assert ticks[0] <= 0.9012 and ticks[-1] >= 0.9034 and len(ticks) <= 7
