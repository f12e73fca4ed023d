"""The trainable CNNs: shapes, textbook parameter counts, one module per activation, He init, zoo entries."""

import math

import pytest
import torch
from torch import nn

from cnnviz import zoo
import cnnviz.zoo  # noqa: F401  (registers fashion_cnn and the untrained architectures)
from cnnviz.interpret import layer_table, textbook_total
from cnnviz.zoo.models import ACTIVATIONS, ARCHITECTURES, CnnSpec, cnn_handle
from cnnviz.zoo.models.cnns import TutorialCNN, build_cnn, he_init
from cnnviz.zoo.core import CnnvizError

ARCHS = list(ARCHITECTURES)
ACTS = list(ACTIVATIONS)


@pytest.mark.parametrize("activation", ACTS)
@pytest.mark.parametrize("arch", ARCHS)
def test_shapes_counts_and_activation_modules(arch, activation):
    net = build_cnn(arch, activation=activation, seed=0)
    assert net(torch.rand(3, 1, 28, 28)).shape == (3, 10)
    assert textbook_total(net) == sum(p.numel() for p in net.parameters())
    handle = cnn_handle(CnnSpec(arch, activation=activation), mean=(0.3,), std=(0.3,))
    rows = layer_table(handle)
    assert all(row.calls <= 1 for row in rows)  # no module runs twice: hooks see each use once
    assert all(row.calls == 1 for row in rows if row.rule)  # every leaf runs
    acts = [m for m in net.modules() if isinstance(m, type(ACTIVATIONS[activation](4)))]
    assert len(acts) >= 4 and len({id(m) for m in acts}) == len(acts)
    default = next(r for r in rows if r.name == handle.default_layer)
    assert len(default.output_shape) == 4 and default.output_shape[-1] > 1  # a spatial map for CAM


@pytest.mark.parametrize("arch", ARCHS)
def test_other_input_shapes_and_class_counts(arch):
    net = build_cnn(arch, in_channels=3, num_classes=7, input_size=32)
    assert net(torch.rand(2, 3, 32, 32)).shape == (2, 7)


def test_textbook_formulas_by_hand():
    net = TutorialCNN(channels=(16,), dense=(64,), input_size=28)
    # conv 3x3x1 -> 16 without bias (batch norm shifts): 9*1*16; BN 2*16; dense (16*14*14)*64 no bias;
    # BN1d 2*64; output (64 + 1)*10.
    expected = 9 * 16 + 2 * 16 + 16 * 14 * 14 * 64 + 2 * 64 + 65 * 10
    assert textbook_total(net) == expected == sum(p.numel() for p in net.parameters())
    assert sum(p.numel() for p in build_cnn("lenet5").parameters()) == 61_706  # the paper's LeNet-5 count


def test_tutorial_block_order_is_conv_bn_dropout_act_pool():
    net = TutorialCNN(convs_per_block=(1, 2, 1))
    assert list(net.features.block1._modules) == ["conv", "bn", "drop", "act", "pool"]
    assert list(net.features.block2._modules) == ["conv1", "bn1", "drop1", "act1", "conv2", "bn2", "drop2",
                                                  "act2", "pool"]
    assert list(net.classifier._modules) == ["flatten", "fc1", "bn1", "drop1", "act1", "out"]


def test_he_initialization_variance():
    torch.manual_seed(0)
    conv = he_init(nn.Conv2d(64, 256, 3))
    fan_in = 64 * 9
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / fan_in), rel=0.03)
    assert torch.count_nonzero(conv.bias) == 0
    leaky = he_init(nn.Linear(1000, 500), "leaky_relu")
    assert leaky.weight.std().item() == pytest.approx(math.sqrt(2 / (1 + 0.01 ** 2) / 1000), rel=0.03)


def test_seeded_build_is_reproducible_and_leaves_global_rng_alone():
    state = torch.get_rng_state()
    a, b = build_cnn("small_resnet", seed=3), build_cnn("small_resnet", seed=3)
    assert torch.equal(torch.get_rng_state(), state)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)


def test_bad_names_give_one_line_errors():
    with pytest.raises(CnnvizError, match="did you mean 'relu'"):
        build_cnn("tutorial_cnn", activation="reluu")
    with pytest.raises(CnnvizError, match="did you mean 'lenet5'"):
        build_cnn("lenet", activation="relu")
    with pytest.raises(CnnvizError, match="shrink"):
        TutorialCNN(channels=(8, 8, 8, 8, 8, 8), input_size=28)


def test_spec_round_trip():
    spec = CnnSpec("tutorial_cnn", activation="gelu", options={"channels": (8, 16), "dense": [32]})
    again = CnnSpec.from_dict(spec.as_dict())
    assert again.as_dict() == spec.as_dict()
    assert again.build()(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    with pytest.raises(CnnvizError):
        CnnSpec.from_dict({"arch": "lenet5", "colour": "red"})


@pytest.mark.parametrize("arch", ARCHS)
def test_untrained_zoo_entries(arch):
    with pytest.raises(CnnvizError, match="no pretrained weights"):
        zoo.load(arch, device="cpu")
    handle = zoo.load(arch, device="cpu", weights=None)
    assert handle.classes[9] == "Ankle boot" and not handle.training
    assert handle(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    handle.layer(handle.default_layer)


def test_fashion_cnn_loads_offline():
    handle = zoo.load("fashion_cnn", device="cpu")
    assert handle.classes == ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                              "Sneaker", "Bag", "Ankle boot"]
    assert handle.input_size == 28 and handle.in_channels == 1
    assert 0.2 < handle.mean.item() < 0.4 and 0.3 < handle.std.item() < 0.4
    assert handle.default_layer.startswith("features.block")
    assert zoo.entry("fashion_cnn").weights_file().stat().st_size < 5_000_000
    # prepare() takes any image (RGB photo included) to the model's gray 28x28
    batch = handle.prepare([zoo.load_image("chelsea")])
    assert batch.shape == (1, 1, 28, 28)
    with torch.no_grad():
        assert torch.isfinite(handle(batch)).all()
