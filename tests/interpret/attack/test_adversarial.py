"""Attacks: they flip the class inside their epsilon-ball, FGSM is the textbook step, the model is untouched."""


import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from cnnviz import zoo
from cnnviz.cli.main import main
from cnnviz.interpret import methods
from cnnviz.interpret.attack.adversarial import (
    amplified_difference,
    attack_report,
    fgsm,
    perturbation_norms,
    pgd,
    project_ball,
    random_point,
)
from cnnviz.interpret.optimize import engine
from cnnviz.interpret.views.sheets import attack_panel
from tests.conftest import assert_unchanged, state_snapshot
from cnnviz.zoo.core import CnnvizError

TOL = 1e-6  # float rounding of (x + delta) - x


@pytest.fixture(scope="module")
def fashion_batch(fashion_mnist, device):
    """fashion_cnn and 16 correctly classified Fashion-MNIST test images."""
    handle = zoo.load("fashion_cnn", device=device)
    data = zoo.data.read_idx_split(zoo.data.DATASETS[fashion_mnist].default_dir, "t10k")
    images = data.images[:64].float().div(255).to(device)
    with torch.no_grad():
        right = handle(images).argmax(-1).cpu() == data.labels[:64]
    return handle, images[right][:16], data.labels[:64][right][:16]


def sign_step_oracle(handle, images, labels, eps, targeted):
    """FGSM by hand with autograd: x + eps * sign(grad CE) (minus for targeted), clamped to [0, 1]."""
    x = images.clone().requires_grad_(True)
    loss = F.cross_entropy(handle(x), labels, reduction="sum")
    (grad,) = torch.autograd.grad(loss, x)
    step = -eps * grad.sign() if targeted else eps * grad.sign()
    return (images + step).clamp(0, 1)


def test_attacks_are_registered():
    assert {m.name for m in methods("adversarial")} == {"pgd", "fgsm"}


@pytest.mark.parametrize("targeted", [False, True])
def test_fgsm_equals_hand_computed_sign_step(tiny, device, targeted):
    torch.manual_seed(1)
    images = torch.rand(4, 3, 16, 16, device=device)
    with torch.no_grad():
        predicted = tiny(images).argmax(-1)
    labels = (predicted + 1) % 3 if targeted else predicted
    adversarial = fgsm(tiny, images, labels if targeted else None, eps=0.03)
    expected = sign_step_oracle(tiny, images, labels, 0.03, targeted)
    assert torch.allclose(adversarial, expected, atol=TOL)
    assert (adversarial != images).float().mean() > 0.5  # the step moved most pixels


def test_fgsm_l2_step_has_length_eps_along_the_gradient(tiny, device):
    torch.manual_seed(2)
    images = 0.25 + 0.5 * torch.rand(2, 3, 16, 16, device=device)  # away from 0 and 1: no clamping
    adversarial = fgsm(tiny, images, eps=0.3, norm="l2")
    with torch.no_grad():
        labels = tiny(images).argmax(-1)
    x = images.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(tiny(x), labels, reduction="sum"), x)
    delta = adversarial - images
    assert torch.allclose(delta.flatten(1).norm(dim=1), torch.full((2,), 0.3, device=device), atol=1e-5)
    assert F.cosine_similarity(delta.flatten(1), grad.flatten(1)).min() > 0.9999


@pytest.mark.parametrize("name", ["sign", "l2"])
def test_engine_steepest_steps_have_the_norm_they_claim(tiny, device, name):
    from cnnviz.interpret.optimize import objectives, param

    start = 0.25 + 0.5 * torch.rand(2, 3, 16, 16, device=device)
    result = engine.optimize(tiny, param.PixelImage(start), objectives.class_logit(0), steps=1, lr=0.01,
                             optimizer=name, progress=False)
    step = (result.images - start).flatten(1)
    if name == "sign":
        moved = step.abs()[step != 0]
        assert torch.allclose(moved, torch.full_like(moved, 0.01), atol=TOL) and moved.numel() > step.numel() // 2
    else:
        assert torch.allclose(step.norm(dim=1), torch.full((2,), 0.01, device=device), atol=1e-6)
    assert (result.history[0] < tiny(result.images)[:, 0].detach().cpu()).all()  # the logit rose


@pytest.mark.parametrize("norm,eps", [("linf", 0.05), ("l2", 0.7)])
def test_projection_stays_in_ball_and_box(device, norm, eps):
    torch.manual_seed(3)
    images = torch.rand(5, 3, 8, 8, device=device)
    delta = torch.randn(5, 3, 8, 8, device=device)
    projected = project_ball(images, delta, eps, norm)
    linf, l2 = perturbation_norms(images, projected)
    assert projected.min() >= 0 and projected.max() <= 1
    assert ((linf if norm == "linf" else l2) <= eps + TOL).all()
    start = random_point(images, eps, norm, torch.Generator(device=device).manual_seed(0))
    linf, l2 = perturbation_norms(images, start)
    assert ((linf if norm == "linf" else l2) <= eps + TOL).all() and (linf > 0).all()
    inside = images + 0.1 * eps * torch.sign(delta) / (8 * 8 * 3) ** (0.5 if norm == "l2" else 0)
    inside = inside.clamp(0, 1)
    assert torch.allclose(project_ball(images, inside - images, eps, norm), inside, atol=TOL)  # inside: unchanged


@pytest.mark.parametrize("norm,eps", [("linf", 4 / 255), ("l2", 0.5)])
def test_pgd_flips_photos_within_eps(lite0, photos, norm, eps):
    adversarial = pgd(lite0, photos, eps=eps, norm=norm, steps=10, progress=False)
    report = attack_report(lite0, photos, adversarial)
    linf, l2 = perturbation_norms(photos, adversarial)
    assert report.success.all() and (report.adversarial != report.original).all()
    assert ((linf if norm == "linf" else l2) <= eps + TOL).all()
    assert adversarial.min() >= 0 and adversarial.max() <= 1
    assert torch.equal(report.linf, linf.cpu()) and torch.equal(report.l2, l2.cpu())


@pytest.mark.slow
def test_targeted_pgd_reaches_the_target(lite0, photos):
    adversarial = pgd(lite0, photos, ["goldfish", 1], eps=8 / 255, steps=20, progress=False)
    report = attack_report(lite0, photos, adversarial, "goldfish")
    assert (report.adversarial == 1).all() and report.success.all() and (report.target_confidence > 0.5).all()
    assert (report.linf <= 8 / 255 + TOL).all()


def test_pgd_flips_fashion_within_eps(fashion_batch):
    handle, images, labels = fashion_batch
    for norm, eps in (("linf", 0.1), ("l2", 2.0)):
        adversarial = pgd(handle, images, eps=eps, norm=norm, steps=20, batch_size=5, progress=False)
        report = attack_report(handle, images, adversarial)
        assert report.success.all() and torch.equal(report.original, labels)
        assert ((report.linf if norm == "linf" else report.l2) <= eps + TOL).all()
        assert adversarial.min() >= 0 and adversarial.max() <= 1


def test_pgd_beats_fgsm_and_more_eps_beats_less(fashion_batch):
    handle, images, _ = fashion_batch
    rates = [attack_report(handle, images, pgd(handle, images, eps=e, steps=10, progress=False)).success_rate
             for e in (2 / 255, 16 / 255)]
    one_step = attack_report(handle, images, fgsm(handle, images, eps=16 / 255)).success_rate
    assert rates[0] < rates[1] and one_step <= rates[1]


def test_pgd_is_deterministic_and_random_start_moves(fashion_batch):
    handle, images, _ = fashion_batch
    a = pgd(handle, images[:4], eps=0.05, steps=3, seed=5, progress=False)
    b = pgd(handle, images[:4], eps=0.05, steps=3, seed=5, progress=False)
    c = pgd(handle, images[:4], eps=0.05, steps=3, seed=6, progress=False)
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("attack", [pgd, fgsm])
def test_attacks_leave_the_model_unchanged(tiny, device, attack):
    tiny.train()
    before = state_snapshot(tiny)
    images = torch.rand(2, 3, 16, 16, device=device)
    attack(tiny, images, eps=0.05, **({"steps": 3, "progress": False} if attack is pgd else {}))
    assert_unchanged(before, tiny)
    with pytest.raises(CnnvizError):
        attack(tiny, images, target=7, eps=0.05)
    assert_unchanged(before, tiny)


@pytest.mark.parametrize("kwargs,message", [
    ({"eps": 0}, "eps must be positive"),
    ({"eps": -0.1}, "eps must be positive"),
    ({"eps": 1.5}, "allows any image"),
    ({"steps": 0}, "steps must be at least 1"),
    ({"norm": "l1"}, "unknown norm"),
    ({"alpha": 0.0}, "alpha must be positive"),
    ({"eps": float("nan")}, "eps must be a finite number"),
    ({"norm": "l2", "eps": 1000.0}, "allows any image"),
    ({"steps": 2.5}, "steps must be an integer"),
    ({"target": "zebra"}, "no class named 'zebra'"),
    ({"target": 3}, "out of range"),
    ({"target": lambda out: out[:, 0]}, "not a callable"),
])
def test_bad_attack_inputs_raise(tiny, device, kwargs, message):
    with pytest.raises(CnnvizError, match=message):
        pgd(tiny, torch.rand(1, 3, 16, 16, device=device), progress=False, **kwargs)


def test_wrong_images_raise(tiny, device):
    with pytest.raises(CnnvizError, match="1-channel|3-channel"):
        pgd(tiny, torch.rand(1, 1, 16, 16, device=device), progress=False)
    with pytest.raises(CnnvizError, match="needs images"):
        pgd(tiny, None, progress=False)


def test_report_and_panel(tiny, device):
    images = torch.rand(2, 3, 16, 16, device=device)
    adversarial = (images + 0.02).clamp(0, 1)
    adversarial[1] = images[1]
    report = attack_report(tiny, images, adversarial)
    assert not bool(report.success[1]) and float(report.linf[1]) == 0.0 and float(report.l2[1]) == 0.0
    assert abs(float(report.linf[0]) - 0.02) < TOL
    difference = amplified_difference(images, adversarial)
    assert torch.allclose(difference[1], torch.full_like(difference[1], 0.5))  # no change: flat gray
    assert difference[0].max() == 1.0 and difference[0].min() >= 0.5
    panel = attack_panel(tiny, images, adversarial, report, 0, scale=4)
    assert panel.dtype == np.uint8 and panel.shape[1] >= 3 * 64 and panel.shape[0] > 64
    with pytest.raises(CnnvizError, match="shapes differ"):
        attack_report(tiny, images, adversarial[:1])


def test_cli_attack_writes_panels(capsys, tmp_path):
    code = main(["attack", "-i", "coffee", "--model", "fashion_cnn", "--eps", "32/255", "--steps", "10",
                 "--out", str(tmp_path), "--npy", "--device", "cpu"])
    out = capsys.readouterr().out
    assert code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["coffee-pgd-adversarial.npy", "coffee-pgd-adversarial.png",
                                                          "coffee-pgd.png"]
    adversarial = np.load(tmp_path / "coffee-pgd-adversarial.npy")
    assert adversarial.shape == (1, 28, 28) and adversarial.min() >= 0 and adversarial.max() <= 1
    panel = np.asarray(Image.open(tmp_path / "coffee-pgd.png"))
    assert panel.shape[1] >= 3 * 224
    assert "Linf 32.00/255" in out and "1/1 succeeded" in out


def test_cli_attack_targeted_fgsm_on_lite0(capsys, tmp_path):
    code = main(["attack", "-i", "chelsea", "--method", "fgsm", "--target", "goldfish", "--eps", "0.01",
                 "--out", str(tmp_path), "--device", "cpu"])
    assert code == 0 and (tmp_path / "chelsea-fgsm.png").is_file()
    assert "tiger cat" in capsys.readouterr().out


@pytest.mark.parametrize("argv,message", [
    (["--eps", "abc"], "invalid eps 'abc'"),
    (["--eps", "0"], "eps must be positive"),
    (["--target", "tigger cat"], "did you mean 'tiger cat'"),
    (["--norm", "l3"], "invalid choice: 'l3'"),
    (["--method", "cw"], "invalid choice: 'cw'"),
    (["--steps", "0"], "steps must be at least 1"),
])
def test_cli_attack_bad_input(capsys, tmp_path, argv, message):
    try:
        code = main(["attack", "-i", "chelsea", "--out", str(tmp_path), "--device", "cpu", *argv])
    except SystemExit as exit_info:  # argparse's own errors
        code = exit_info.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_pgd_stop_on_success_keeps_each_first_success_and_refills(fashion_batch):
    handle, images, _ = fashion_batch
    eps = 2 / 255  # weak enough that some images hold out
    full = pgd(handle, images, eps=eps, steps=10, batch_size=3, progress=False)
    early = pgd(handle, images, eps=eps, steps=10, batch_size=3, stop_on_success=True, progress=False)
    report, full_report = attack_report(handle, images, early), attack_report(handle, images, full)
    assert report.success.any() and (~report.success).any()
    assert (report.linf <= eps + TOL).all() and early.min() >= 0 and early.max() <= 1
    # An image the full attack flips was flipped on the way, so stopping there keeps a success.
    assert bool((report.success | ~full_report.success).all())
    # Images that never succeed ran every step, as without stopping (up to batch-composition rounding).
    held = ~report.success
    moved = (early[held] - full[held]).abs() > 1e-5
    assert moved.float().mean() < 0.01


def test_cli_attack_flags_default_to_pgds_own_signature():
    import inspect

    from cnnviz.cli.main import build_parser
    from cnnviz.interpret import pgd

    args = build_parser().parse_args(["attack", "-i", "chelsea"])
    for name in ("norm", "steps", "alpha", "random_start", "seed", "stop_on_success"):
        assert getattr(args, name) == inspect.signature(pgd).parameters[name].default, name
    assert args.eps is None  # resolved by --norm: pgd's own default for linf
