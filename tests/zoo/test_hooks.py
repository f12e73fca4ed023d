import pytest
import torch
from torch import nn

from cnnviz.interpret import hook_counts, preserve, record
from tests.conftest import assert_unchanged, state_snapshot
from cnnviz.zoo.core import CnnvizError, graph_from


def test_record_output_and_gradient_match_autograd(tiny, device):
    x = torch.rand(2, 3, 16, 16, device=device)
    with record({"conv2": tiny.model.conv2}, grads=True) as rec:
        logits = tiny(x)
        logits[:, 1].sum().backward()
    # Oracle: recompute the activation by hand and differentiate the head.
    net = tiny.model
    act = net.conv2(net.relu1(net.conv1((x - tiny.mean) / tiny.std))).detach().requires_grad_(True)
    head = net.fc(net.pool(net.relu2(act)).flatten(1))
    (grad,) = torch.autograd.grad(head[:, 1].sum(), act)
    torch.testing.assert_close(rec["conv2"].output, act.detach())
    torch.testing.assert_close(rec["conv2"].grad, grad)


def test_gradient_is_right_when_next_op_is_in_place(device):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(inplace=True), nn.Flatten(), nn.LazyLinear(1)).to(device)
    x = torch.randn(1, 1, 6, 6, device=device, requires_grad=True)
    net(x)  # materialize the lazy layer
    with record({"conv": net[0]}, grads=True) as rec:
        out = net(x)
        out.sum().backward()
    conv_out = net[0](x).detach().requires_grad_(True)
    (expected,) = torch.autograd.grad(net[3](net[2](torch.relu(conv_out))).sum(), conv_out)
    torch.testing.assert_close(rec["conv"].grad, expected)


def test_recorded_output_survives_a_later_in_place_op_and_can_be_differentiated(device):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(inplace=True), nn.Flatten(), nn.LazyLinear(1)).to(device)
    x = torch.randn(1, 1, 6, 6, device=device, requires_grad=True)
    net(x)
    with record({"conv": net[0]}, detach=False) as rec:
        out = net(x)
    conv_out = net[0](x).detach().requires_grad_(True)
    torch.testing.assert_close(rec["conv"].output.detach(), conv_out.detach())
    assert (rec["conv"].output < 0).any()  # the values before the ReLU, not after
    (grad,) = torch.autograd.grad(out.sum(), rec["conv"].output)
    (expected,) = torch.autograd.grad(net[3](net[2](torch.relu(conv_out))).sum(), conv_out)
    torch.testing.assert_close(grad, expected)


def test_hooks_removed_after_success_and_after_exception(tiny, device):
    before = hook_counts(tiny)
    with record({"conv1": tiny.model.conv1, "fc": tiny.model.fc}, grads=True):
        assert hook_counts(tiny)["_forward_hooks"] == before["_forward_hooks"] + 2
        tiny(torch.rand(1, 3, 16, 16, device=device))
    assert hook_counts(tiny) == before
    with pytest.raises(RuntimeError, match="boom"):
        with record({"conv1": tiny.model.conv1}):
            raise RuntimeError("boom")
    assert hook_counts(tiny) == before


def test_shared_module_is_recorded_per_call_and_never_guessed(device):
    relu = nn.ReLU()
    net = nn.Sequential(nn.Conv2d(1, 2, 3), relu, nn.Conv2d(2, 2, 3), relu).to(device)
    with record({"relu": relu}) as rec:
        net(torch.randn(1, 1, 8, 8, device=device))
    assert [tuple(t.shape) for t in rec["relu"].outputs] == [(1, 2, 6, 6), (1, 2, 4, 4)]
    with pytest.raises(CnnvizError, match="runs 2 times per forward pass"):
        rec["relu"].output


def test_layer_that_did_not_run_is_a_clear_error(tiny):
    unused = nn.ReLU()
    tiny.model.unused = unused
    with record({"unused": unused}) as rec:
        tiny(torch.rand(1, 3, 16, 16, device=tiny.device))
    with pytest.raises(CnnvizError, match="did not run"):
        rec["unused"].output


def test_preserve_restores_mode_requires_grad_and_grads_even_on_error(tiny):
    tiny.train()
    tiny.model.fc.weight.requires_grad_(False)
    tiny.model.conv1.weight.grad = torch.ones_like(tiny.model.conv1.weight)
    before = state_snapshot(tiny)
    with preserve(tiny):
        assert not tiny.training and not any(p.requires_grad for p in tiny.parameters())
        tiny.model.conv1.weight.grad = None
    assert_unchanged(before, tiny)
    with pytest.raises(ValueError):
        with preserve(tiny):
            tiny.model.conv2.bias.requires_grad_(True)
            raise ValueError("method failed")
    assert_unchanged(before, tiny)


def test_graph_from_a_layer_gives_the_full_graph_gradient_and_restores_grad_mode(device):
    import torchvision

    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=5).to(device).eval()
    x = torch.rand(2, 3, 64, 64, device=device)
    layer = net.layer4[0].conv1  # the block's skip path bypasses it
    # Oracle: the full graph, input included, differentiated down to the recorded output.
    with record({"conv1": layer}, detach=False) as full:
        score = net(x.clone().requires_grad_(True))[:, 3].sum()
    (expected,) = torch.autograd.grad(score, full["conv1"].output)
    before = hook_counts(net)
    with torch.no_grad():  # the mode to restore
        with graph_from(layer, "layer4.0.conv1") as rec:
            score = net(x)[:, 3].sum()
        assert not torch.is_grad_enabled()
    # Tracked above the layer, nothing below it.
    assert torch.autograd.grad(score, net.conv1.weight, retain_graph=True, allow_unused=True) == (None,)
    (grad,) = torch.autograd.grad(score, rec.output)
    torch.testing.assert_close(grad, expected)
    assert hook_counts(net) == before and torch.is_grad_enabled()
    with pytest.raises(RuntimeError, match="boom"):
        with graph_from(layer):
            net(x)
            raise RuntimeError("boom")
    assert hook_counts(net) == before and torch.is_grad_enabled()
