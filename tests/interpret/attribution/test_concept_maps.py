"""Concept relevance (CRP): equal to zennit-crp's CondAttribution, conditional maps that add up to the
unconditional map, K channels in one batched pass, one-line refusals that change nothing."""

import pytest
import torch

from cnnviz import interpret
from cnnviz import zoo
from cnnviz.interpret.attribution.lrp import relevance_network
from tests.conftest import assert_unchanged, state_snapshot
from cnnviz.zoo.core import CnnvizError

LAYER = "features.block2"  # 64 channels, between two conv blocks


@pytest.fixture(scope="module")
def garments() -> torch.Tensor:
    return torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))


def test_concept_relevance_equals_zennit_crp(fashion, garments):
    crp = pytest.importorskip("crp.attribution")
    from crp.concepts import ChannelConcept
    from zennit.composites import EpsilonPlusFlat

    ours = interpret.concept_relevance(fashion, garments, "Dress", layer=LAYER, channels=3)
    # zennit-crp on the same canonized network (its layer names gain the wrapper's "network." prefix).
    reference = crp.CondAttribution(relevance_network(fashion), no_param_grad=True)
    inputs = ((garments - fashion.mean) / fashion.std).requires_grad_(True)
    plain = reference(inputs, [{"y": [3]}], EpsilonPlusFlat(), record_layer=[f"network.{LAYER}"])
    shares = ChannelConcept().attribute(plain.relevances[f"network.{LAYER}"], abs_norm=True)
    assert torch.equal(ours.channels, shares.topk(3).indices)
    torch.testing.assert_close(ours.shares, shares.gather(1, ours.channels), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(ours.total[:, 0], plain.heatmap, atol=1e-7, rtol=1e-5)
    for b in range(2):
        conditions = [{"y": [3], f"network.{LAYER}": [c]} for c in ours.channels[b].tolist()]
        inputs = ((garments[b:b + 1] - fashion.mean) / fashion.std).requires_grad_(True)
        conditional = reference(inputs, conditions, EpsilonPlusFlat())
        torch.testing.assert_close(ours.maps[b], conditional.heatmap, atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize("backend", ["lrp", "gradient"])
def test_the_maps_of_all_channels_add_up_to_the_unconditional_map(fashion, garments, backend):
    # Backward propagation is linear in the relevance it starts from, with LRP's rules as with plain gradients.
    found = interpret.concept_relevance(fashion, garments, "Coat", layer=LAYER, channels=64, backend=backend)
    scale = found.total.abs().max()
    torch.testing.assert_close(found.maps.sum(1, keepdim=True), found.total, atol=1e-5 * scale, rtol=0)
    torch.testing.assert_close(found.shares.abs().sum(1), torch.ones(2))


def test_the_gradient_backend_is_gradient_times_activation_by_autograd(fashion, garments):
    found = interpret.concept_relevance(fashion, garments, 4, layer=LAYER, channels=[7, 3], backend="gradient")
    layer = fashion.layer(LAYER)
    kept = {}
    handle = layer.register_forward_hook(lambda m, i, o: kept.update(out=o))
    try:
        inputs = ((garments - fashion.mean) / fashion.std).requires_grad_(True)
        score = fashion.model(inputs)[:, 4].sum()
        activation_grad, input_grad = torch.autograd.grad(score, [kept["out"], inputs])
    finally:
        handle.remove()
    per_channel = (activation_grad * kept["out"]).sum((2, 3))
    torch.testing.assert_close(found.relevance, per_channel[:, [7, 3]].detach(), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(found.total, (input_grad * inputs).sum(1, keepdim=True).detach(), atol=1e-6, rtol=1e-5)


def test_bad_requests_are_one_line_and_change_nothing(fashion, garments):
    before = state_snapshot(fashion)
    cases = [({"layer": LAYER, "channels": 65}, "channels=65 but layer 'features.block2' has 64 channels"),
             ({"layer": LAYER, "channels": [3, 64]}, r"channels \[64\] are not channels"),
             ({"layer": "features.blok2"}, "features.block2"),
             ({"layer": "classifier.flatten", "channels": 2, "backend": "gradient"}, None),
             ({"layer": LAYER, "backend": "shap"}, "unknown concept backend 'shap'"),
             ({"layer": LAYER, "composite": "zplus"}, "unknown LRP composite 'zplus'")]
    for options, message in cases:
        if message is None:  # a layer past the flatten has units, not channels: still (B, C), so it runs
            assert interpret.concept_relevance(fashion, garments, 0, **options).maps.shape == (2, 2, 28, 28)
            continue
        with pytest.raises(CnnvizError, match=message) as error:
            interpret.concept_relevance(fashion, garments, 0, **options)
        assert "\n" not in str(error.value)
    assert_unchanged(before, fashion)


class Brightness(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1).mean(1)  # one number per image: no channel axis


class ByBrightness(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.brightness = Brightness()
        self.fc = torch.nn.Linear(1, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.brightness(x)[:, None])


def test_a_layer_without_channels_is_refused_in_one_line(garments):
    handle = zoo.wrap(ByBrightness(), input_size=28, mean=(0.5,), std=(0.5,))
    for backend in ["lrp", "gradient"]:
        with pytest.raises(CnnvizError, match="layer 'brightness' gives Tensor \\(2,\\), which has no channels"):
            interpret.concept_relevance(handle, garments, 0, layer="brightness", channels=1, backend=backend)


def test_cnnviz_explain_concepts_draws_a_panel_of_the_top_k_with_their_shares(fashion, tmp_path, capsys):
    import json

    import numpy as np
    from PIL import Image

    from cnnviz.cli.main import main
    from cnnviz.interpret.views.sheets import DISPLAY

    k = 3
    assert main(["explain", "concepts", "--model", "fashion_cnn", "--image", "chelsea", "--layer", LAYER,
                 "--top", str(k), "--no-pictures", "--device", "cpu", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    record = json.loads((tmp_path / "chelsea-concepts.json").read_text())
    found = interpret.concept_relevance(fashion, fashion.prepare([zoo.load_image("chelsea")]), None, layer=LAYER,
                                        channels=k)
    drawn = record["detail"]["concepts"]
    assert [c["channel"] for c in drawn] == found.channels[0].tolist()
    np.testing.assert_allclose([c["share"] for c in drawn], found.shares[0].tolist(), rtol=1e-5, atol=1e-7)
    assert found.summary(0) in printed and record["panel"] == "chelsea-concepts-panel.png"
    panel = np.asarray(Image.open(tmp_path / "chelsea-concepts-panel.png"))
    tiles = k + 2  # the image, the unconditional map, then one tile per concept, in one row
    assert panel.shape[1] == tiles * DISPLAY + (tiles - 1) * 4


def test_cnnviz_explain_concepts_refuses_more_concepts_than_channels_in_one_line(tmp_path, capsys):
    from cnnviz.cli.main import main

    out = tmp_path / "never"
    code = main(["explain", "concepts", "--model", "fashion_cnn", "--image", "chelsea", "--layer", LAYER,
                 "--top", "65", "--device", "cpu", "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "has 64 channels" in err and "--top" in err
    assert not out.exists()
