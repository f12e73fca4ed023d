import pytest
import torchvision
from torch import nn

from cnnviz import zoo
from cnnviz.interpret import layer_table, textbook_params, textbook_total
from cnnviz.zoo.core import CnnvizError
from cnnviz.zoo.handle import layer_at_depth, layer_depth


def test_resolve_by_dotted_name_and_module():
    net = torchvision.models.resnet18()
    assert zoo.resolve_layer(net, "layer4.1.conv2") is net.layer4[1].conv2
    assert zoo.resolve_layer(net, net.fc) is net.fc
    assert zoo.layer_name(net, net.layer3[0].bn1) == "layer3.0.bn1"


def test_typo_gets_closest_names():
    with pytest.raises(CnnvizError, match=r"no layer 'layer4.1.conv3'.*did you mean 'layer4.1.conv2'"):
        zoo.resolve_layer(torchvision.models.resnet18(), "layer4.1.conv3")


def test_foreign_module_is_rejected():
    with pytest.raises(CnnvizError, match="not part of this model"):
        zoo.resolve_layer(torchvision.models.resnet18(), nn.ReLU())


@pytest.mark.parametrize("module,expected", [
    (nn.Conv2d(3, 8, 3), (3 * 3 * 3 + 1) * 8),
    (nn.Conv2d(3, 8, 5, bias=False), 5 * 5 * 3 * 8),
    (nn.Conv2d(8, 8, 3, groups=8), (3 * 3 * 1 + 1) * 8),
    (nn.Linear(120, 84), (120 + 1) * 84),
    (nn.BatchNorm2d(16), 2 * 16),
    (nn.PReLU(6), 6),
    (nn.MaxPool2d(2), 0),
])
def test_textbook_rules(module, expected):
    count, _ = textbook_params(module)
    assert count == expected == sum(p.numel() for p in module.parameters())


def test_layer_table_shapes_by_hand():
    rows = {r.name: r for r in layer_table(torchvision.models.alexnet())}
    # (224 - 11 + 2*2) / 4 + 1 = 55; pool (55 - 3) / 2 + 1 = 27
    assert rows["features.0"].output_shape == (1, 64, 55, 55)
    assert rows["features.2"].output_shape == (1, 64, 27, 27)
    assert rows["classifier.6"].textbook == (4096 + 1) * 1000


@pytest.mark.parametrize("name", zoo.names())
def test_textbook_total_equals_real_count_for_every_model(name):
    handle = zoo.load(name, device="cpu", weights=None)
    assert textbook_total(handle.model) == sum(p.numel() for p in handle.model.parameters())


def test_layer_table_flags_shared_modules_and_leaves_model_alone():
    from tests.conftest import assert_unchanged, state_snapshot
    net = torchvision.models.resnet18().train()
    before = state_snapshot(net)
    rows = {r.name: r for r in layer_table(net)}
    assert rows["layer1.0.relu"].calls == 2  # torchvision reuses each block's ReLU
    assert rows["layer1.0.conv1"].calls == 1
    assert_unchanged(before, net)


def test_layer_depth_runs_from_first_to_last_module_and_picks_blocks():
    net = torchvision.models.resnet18()
    assert layer_depth(net, "conv1") == 0.0 and layer_depth(net, "fc") == 1.0
    assert layer_depth(net, "layer2") < layer_depth(net, "layer3.1") < layer_depth(net, "layer4")
    assert layer_at_depth(net, 0.6) == "layer3.1" and layer_at_depth(net, 0.0) == "conv1"
