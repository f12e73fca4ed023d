import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnviz import zoo
from cnnviz.zoo.models.efficientnet_lite import Conv2dSame
from cnnviz.zoo.catalog import shipped_weights_path
from cnnviz.zoo.core import CnnvizError

CAT_CLASSES = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
ESPRESSO = 967
CLASSICS = ["alexnet", "vgg16", "vgg19", "resnet18", "resnet50", "googlenet"]


def test_registry_lists_default_first_and_the_classics():
    names = zoo.names()
    assert names[0] == "efficientnet_lite0"
    assert {"efficientnet_lite1", "efficientnet_lite2", *CLASSICS} <= set(names)


@pytest.mark.parametrize("name", ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"])
def test_lite_logits_equal_reference_package_on_photos(name, device):
    reference_pkg = pytest.importorskip("efficientnet_lite_pytorch")
    handle = zoo.load(name, device=device)
    reference = reference_pkg.EfficientNet.from_name(name.replace("_", "-"))
    reference.load_state_dict(torch.load(shipped_weights_path(name), weights_only=True))
    reference.to(device).eval()
    images = handle.prepare([zoo.load_image(s) for s in ("chelsea", "coffee", "astronaut")])
    with torch.no_grad():
        ours, theirs = handle(images), reference((images - 0.5) / 0.5)
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)
    top = ours.argmax(1).tolist()
    assert top[0] in CAT_CLASSES and top[1] == ESPRESSO


def test_lite0_classifies_photos(lite0, photos):
    with torch.no_grad():
        probs = lite0(photos).softmax(1)
    assert probs[0].argmax().item() in CAT_CLASSES
    assert lite0.classes[probs[1].argmax().item()] == "espresso"
    assert probs[1, ESPRESSO] > 0.9


def test_lite_has_one_module_per_activation(lite0):
    activations = [m for m in lite0.model.modules() if isinstance(m, torch.nn.ReLU6)]
    assert len({id(m) for m in activations}) == len(activations) > 30
    from cnnviz.interpret import layer_table
    assert all(row.calls <= 1 for row in layer_table(lite0))


@pytest.mark.parametrize("size", [7, 8, 223, 224])
@pytest.mark.parametrize("kernel,stride", [(3, 2), (5, 2), (3, 1), (5, 1)])
def test_same_conv_matches_tensorflow_rule(size, kernel, stride):
    torch.manual_seed(0)
    conv = Conv2dSame(2, 3, kernel, stride)
    x = torch.randn(1, 2, size, size)
    out = conv(x)
    assert out.shape[-1] == math.ceil(size / stride)
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    padded = F.pad(x, (total // 2, total - total // 2, total // 2, total - total // 2))
    torch.testing.assert_close(out, F.conv2d(padded, conv.weight, conv.bias, stride))


@pytest.mark.parametrize("name", CLASSICS)
def test_classics_build_with_random_weights(name, device):
    handle = zoo.load(name, device=device, weights=None)
    with torch.no_grad():
        out = handle(torch.rand(2, 3, 224, 224, device=device))
    assert out.shape == (2, 1000) and torch.isfinite(out).all()
    assert handle.default_layer is not None
    handle.layer(handle.default_layer)


def test_classic_without_weights_file_says_which_file(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(CnnvizError, match=r"resnet18-\w+\.pth.*--weights"):
        zoo.load("resnet18", device="cpu")


def test_classic_loads_weights_from_a_path(tmp_path):
    source = zoo.load("resnet18", device="cpu", weights=None)
    path = tmp_path / "r18.pth"
    torch.save(source.model.state_dict(), path)
    loaded = zoo.load("resnet18", device="cpu", weights=path)
    for (k, a), b in zip(source.model.state_dict().items(), loaded.model.state_dict().values()):
        assert torch.equal(a, b), k


def test_wrong_weights_file_is_a_clear_error(tmp_path):
    path = tmp_path / "r18.pth"
    torch.save(zoo.load("resnet18", device="cpu", weights=None).model.state_dict(), path)
    with pytest.raises(CnnvizError, match="does not fit alexnet"):
        zoo.load("alexnet", device="cpu", weights=path)


def test_unknown_model_suggests_names():
    with pytest.raises(CnnvizError, match="did you mean 'resnet18'"):
        zoo.load("resnet-18")


def test_handle_normalizes_inside_forward(tiny, device):
    x = torch.rand(2, 3, 16, 16, device=device)
    expected = tiny.model((x - tiny.mean) / tiny.std)
    torch.testing.assert_close(tiny(x), expected)


def test_zoo_networks_get_channels_last_batches_on_cpu_and_wrapped_ones_do_not():
    class ViewHead(nn.Module):  # classic course code: .view on a conv activation
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(x).view(x.shape[0], -1)[:, :5]

    wrapped = zoo.wrap(ViewHead(), input_size=8)
    assert wrapped(torch.rand(2, 3, 8, 8)).shape == (2, 5)  # would raise on a channels-last activation
    lite0 = zoo.load("efficientnet_lite0", device="cpu")
    seen = []
    with zoo.core.forward_pre_hooks([(lite0.model.stem.conv, lambda m, args: seen.append(args[0]))]):
        x = lite0.prepare([zoo.load_image("chelsea"), zoo.load_image("coffee")]).requires_grad_(True)
        logits = lite0(x)
    assert seen[0].is_contiguous(memory_format=torch.channels_last) and not seen[0].is_contiguous()
    plain = lite0.model((x - lite0.mean) / lite0.std)
    torch.testing.assert_close(logits, plain, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(torch.autograd.grad(logits[:, 0].sum(), x)[0],
                               torch.autograd.grad(plain[:, 0].sum(), x)[0], rtol=1e-3, atol=1e-5)


class Evil:
    """Any object that is not a tensor: weights_only loading must refuse it."""


def test_wrap_loads_checkpoint_safely(tmp_path):
    from tests.conftest import TinyCNN
    torch.manual_seed(1)
    source = TinyCNN()
    path = tmp_path / "tiny.pt"
    torch.save({"state_dict": source.state_dict()}, path)
    handle = zoo.wrap(TinyCNN(), weights=path, input_size=16)
    assert torch.equal(handle.model.conv1.weight, source.conv1.weight)
    bad = tmp_path / "pickle.pt"
    torch.save({"state_dict": source.state_dict(), "extra": Evil()}, bad)
    with pytest.raises(CnnvizError, match="cannot read weights"):
        zoo.wrap(TinyCNN(), weights=bad)  # weights_only=True refuses arbitrary objects


def test_wrap_checks_default_layer():
    from tests.conftest import TinyCNN
    with pytest.raises(CnnvizError, match="did you mean 'conv2'"):
        zoo.wrap(TinyCNN(), default_layer="conv3")


def test_prepare_resizes_crops_and_matches_channels(lite0):
    gray = torch.rand(1, 300, 500)
    batch = lite0.prepare([gray, torch.rand(3, 240, 240)])
    assert batch.shape == (2, 3, 224, 224) and batch.device == lite0.device
    assert torch.equal(batch[0, 0], batch[0, 1])
    one_channel = zoo.wrap(torch.nn.Conv2d(1, 2, 3), input_size=28, mean=(0.5,), std=(0.5,))
    assert one_channel.prepare([torch.rand(3, 28, 28)]).shape == (1, 1, 28, 28)


def test_pick_device():
    assert zoo.pick_device("cpu").type == "cpu"
    with pytest.raises(CnnvizError, match="unknown device"):
        zoo.pick_device("gpu7")
    if not torch.cuda.is_available():
        with pytest.raises(CnnvizError, match="CUDA is not available"):
            zoo.pick_device("cuda")


def test_lite_traces_with_fx_and_keeps_its_names(lite0, photos):
    import torch.fx

    traced = torch.fx.symbolic_trace(lite0.model)
    x = (photos - lite0.mean) / lite0.std
    with torch.no_grad():
        assert torch.equal(traced(x), lite0.model(x))
    assert dict(traced.named_parameters()).keys() == dict(lite0.model.named_parameters()).keys()
    convs = [n for n in traced.graph.nodes if n.op == "call_function" and n.target is F.conv2d]
    assert len(convs) == sum(isinstance(m, Conv2dSame) for m in lite0.model.modules())


def test_an_old_flat_zoo_path_still_imports_with_a_warning(recwarn):
    import importlib
    import sys

    from cnnviz.zoo import _moved

    for old, new in [("cnnviz.zoo.training_log", "cnnviz.zoo.train.log"),
                     ("cnnviz.zoo.efficientnet_lite", "cnnviz.zoo.models.efficientnet_lite")]:
        sys.modules.pop(old, None)
        module = importlib.import_module(old)
        assert module is importlib.import_module(new) and module.__spec__.name == new
        assert any(new in str(w.message) and w.category is DeprecationWarning for w in recwarn.list)
    for old, new in _moved.MOVED.items():  # every old name has a home that imports
        assert importlib.import_module(new).__name__ == new, old
    assert zoo.errors is importlib.import_module("cnnviz.zoo.core.errors")  # attributes of the flat layout too


def test_zoo_and_interpret_share_one_moved_module_finder():
    import sys

    from cnnviz import interpret  # noqa: F401  (installs interpret's finder)
    from cnnviz.zoo.core import MovedFinder

    packages = sorted(f.package for f in sys.meta_path if isinstance(f, MovedFinder))
    assert packages == ["cnnviz.interpret", "cnnviz.zoo"]
    assert not [f for f in sys.meta_path if type(f).__name__.endswith("MovedFinder") and not isinstance(f, MovedFinder)]
