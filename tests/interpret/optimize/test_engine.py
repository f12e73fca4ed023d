"""The optimization engine: objectives rise, regularizers do what they claim, the model is untouched."""

import pytest
import torch

from cnnviz.interpret import forward_hooks
from cnnviz.interpret.optimize import engine, objectives, param, transforms
from tests.conftest import assert_unchanged, state_snapshot


@pytest.mark.parametrize("objective_fn", [
    lambda: objectives.class_logit([0, 2]),
    lambda: objectives.class_log_prob(1),
    lambda: objectives.channel("conv2", [1, 3]),
    lambda: objectives.neuron("conv2", 0, 2, 3),
    lambda: objectives.dream("conv1"),
])
@pytest.mark.parametrize("kind", ["pixels", "fourier"])
def test_objective_rises_and_model_is_untouched(tiny, device, objective_fn, kind):
    tiny.train()
    before = state_snapshot(tiny)
    image = param.make_image(kind, (2, 3, 16, 16), device)
    result = engine.optimize(tiny, image, objective_fn(), steps=30, lr=0.05, progress=False)
    assert (result.history[-1] > result.history[0]).all()
    assert result.images.min() >= 0 and result.images.max() <= 1
    assert_unchanged(before, tiny)


def test_total_variation_falls_when_subtracted(tiny, device):
    start = torch.rand(1, 3, 16, 16, device=device)
    image = param.PixelImage(start)
    result = engine.optimize(tiny, image, -objectives.total_variation(), steps=40, lr=0.02, progress=False)
    tv = objectives.total_variation()
    ctx = lambda x: objectives.Context(x, x, torch.zeros(1, 3))  # noqa: E731
    assert tv(ctx(result.images)) < 0.5 * tv(ctx(start))


def test_total_variation_does_not_difference_channels():
    flat = torch.zeros(1, 3, 8, 8)
    flat[:, 1] = 1.0  # channels differ, but each is spatially constant
    assert objectives.total_variation()(objectives.Context(flat, flat, torch.zeros(1, 1))).item() < 1e-3


def test_l2_and_alpha_norm_pull_towards_gray(tiny, device):
    image = param.PixelImage(torch.rand(1, 3, 16, 16, device=device))
    result = engine.optimize(tiny, image, -objectives.alpha_norm(2.0) - objectives.l2(), steps=60, lr=0.05,
                             optimizer="adam", progress=False)
    assert (result.images - 0.5).abs().max() < 0.1


def test_composition_adds_and_scales():
    ctx = objectives.Context(torch.zeros(2, 3, 4, 4), torch.zeros(2, 3, 4, 4), torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    combined = 2 * objectives.class_logit(1) - objectives.class_logit(0) + 1.0
    assert combined(ctx).tolist() == [2 * 2 - 1 + 1, 2 * 4 - 3 + 1]


def test_until_stops_and_records_steps(tiny, device):
    image = param.PixelImage(shape=(2, 3, 16, 16), device=device)
    result = engine.optimize(tiny, image, objectives.class_log_prob(0), steps=500, lr=0.1, progress=False,
                             until=lambda c: c.logits.softmax(-1)[:, 0] > 0.45)
    assert (result.done_at >= 0).all() and result.history.shape[0] == int(result.done_at.max()) + 1


def test_tiled_gradient_equals_whole_image_gradient(tiny, device):
    start = torch.rand(1, 3, 32, 32, device=device)
    objective = objectives.dream("conv1")  # local objective: tiles differ only at their borders
    whole = engine.optimize(tiny, param.PixelImage(start), objective, steps=1, lr=0.01, optimizer="sgd",
                            progress=False)
    tiled = engine.optimize(tiny, param.PixelImage(start), objective, steps=1, lr=0.01, optimizer="sgd",
                            tile=16, progress=False)
    step_whole, step_tiled = (whole.images - start).flatten(), (tiled.images - start).flatten()
    assert step_whole.abs().sum() > 0
    assert torch.nn.functional.cosine_similarity(step_whole, step_tiled, dim=0) > 0.9


def test_transforms_are_batched_and_keep_shape(device):
    images = torch.rand(4, 3, 32, 32, device=device)
    out = transforms.standard(32)(images)
    assert out.shape[0] == 4 and torch.isfinite(out).all()


def test_layer_objectives_stop_the_forward_pass_after_their_layer(tiny, device):
    calls = []
    with forward_hooks([(tiny.model.fc, lambda *_: calls.append(1))]):
        engine.optimize(tiny, param.PixelImage(shape=(1, 3, 16, 16), device=device),
                        objectives.dream("conv1") - objectives.total_variation(), steps=3, progress=False)
        assert calls == []
        engine.optimize(tiny, param.PixelImage(shape=(1, 3, 16, 16), device=device),
                        objectives.dream("conv1") + objectives.class_logit(0), steps=3, progress=False)
        assert len(calls) == 3


def test_refill_restarts_finished_rows_until_no_work_is_left(tiny):
    from cnnviz.interpret.optimize import engine, objectives, param

    queue = list(range(5))  # five tasks through two rows
    finished_tasks: list[int] = []
    task = torch.tensor([queue.pop(0), queue.pop(0)])
    image = param.PixelImage(torch.full((2, 3, 16, 16), 0.5))
    calls = {"n": 0}

    def until(context):
        calls["n"] += 1
        return torch.ones(2, dtype=torch.bool) if calls["n"] % 3 == 0 else torch.zeros(2, dtype=torch.bool)

    def refill(done):
        restarted = torch.zeros_like(done)
        for row in done.nonzero().flatten().tolist():
            finished_tasks.append(int(task[row]))
            if queue:
                task[row] = queue.pop(0)
                restarted[row] = True
        return restarted

    result = engine.optimize(tiny, image, objectives.class_logit(0), steps=50, lr=0.01, until=until, refill=refill,
                             progress=False)
    assert sorted(finished_tasks) == [0, 1, 2, 3, 4] and not queue
    assert result.images.shape == (2, 3, 16, 16) and calls["n"] == 9  # 3 rounds of 3 steps for 5 tasks on 2 rows
