"""Shared fixtures. Run the suite on a GPU with ``--device cuda`` or CNNVIZ_TEST_DEVICE=cuda."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable, NamedTuple

import pytest
import torch
from torch import nn

from cnnviz import zoo
from cnnviz.zoo.data import DATASETS, has_idx_files
from cnnviz.zoo.handle import ModelHandle

REPO = Path(__file__).resolve().parents[1]
FASHION_DIR = DATASETS["fashion-mnist"].default_dir
NO_FASHION = "Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)"
needs_fashion = pytest.mark.skipif(not has_idx_files(FASHION_DIR), reason=NO_FASHION)

# Compile records and inductor's cache go to a fresh folder: the suite neither reads the user's
# measured compile costs (which would change what compile="auto" decides) nor writes to ~/.cache.
os.environ["CNNVIZ_CACHE"] = tempfile.mkdtemp(prefix="cnnviz-test-cache-")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--device", default=os.environ.get("CNNVIZ_TEST_DEVICE", "cpu"),
                     help="device the tests run models on (default: cpu)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def device(request: pytest.FixtureRequest) -> torch.device:
    return zoo.pick_device(request.config.getoption("--device"))


class TinyCNN(nn.Module):
    """Two convs, a shared-nothing ReLU per use, global pooling, a dense layer."""

    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(4, 6, 3, stride=2, padding=1)
        self.relu2 = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(6, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu2(self.conv2(self.relu1(self.conv1(x))))
        return self.fc(self.pool(x).flatten(1))


class SharedConv(nn.Module):
    """One conv module applied twice per forward pass: the shared-module case."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.conv(x))


@pytest.fixture
def tiny(device: torch.device) -> ModelHandle:
    torch.manual_seed(0)
    return zoo.wrap(TinyCNN().to(device), input_size=16, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3),
                    classes=["ant", "bee", "cow"], default_layer="conv2", name="tiny")


@pytest.fixture(scope="session")
def lite0(device: torch.device) -> ModelHandle:
    return zoo.load("efficientnet_lite0", device=device)


@pytest.fixture(scope="session")
def photos(lite0: ModelHandle) -> torch.Tensor:
    """chelsea (a cat) and coffee (espresso), prepared for efficientnet_lite0."""
    return lite0.prepare([zoo.load_image("chelsea"), zoo.load_image("coffee")])


@pytest.fixture(scope="session")
def fashion() -> ModelHandle:
    """fashion_cnn, the shipped Fashion-MNIST classifier, on the CPU (its weights ship: no data set needed)."""
    return zoo.load("fashion_cnn", device="cpu")


@pytest.fixture(scope="session")
def fashion_mnist() -> str:
    """The Fashion-MNIST data set's name, for tests that read it; they skip where it is not installed."""
    if not has_idx_files(FASHION_DIR):
        pytest.skip(NO_FASHION)
    return "fashion-mnist"


class CliRun(NamedTuple):
    """One in-process ``cnnviz`` run: its exit code and what it wrote to stdout and stderr."""

    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliRun]:
    """Run ``cnnviz ARGS...`` in this process: its exit code (argparse's own exits included) and what it printed.

    Arguments may be paths or numbers: ``code, out, err = cli("explain", "gradcam", "--out", tmp_path)``.
    """
    from cnnviz.cli.main import main

    def run(*argv: object) -> CliRun:
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exit_info:  # argparse's errors (2) and --help (0)
            code = exit_info.code
        out, err = capsys.readouterr()
        return CliRun(code, out, err)

    return run


def state_snapshot(model: nn.Module) -> dict:
    """Everything a method must leave unchanged: weights, modes, requires_grad, grads, hooks."""
    from cnnviz.zoo.core import hook_counts

    return {
        "weights": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "training": [m.training for m in model.modules()],
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "grads": [None if p.grad is None else p.grad.clone() for p in model.parameters()],
        "hooks": hook_counts(model),
    }


def assert_unchanged(before: dict, model: nn.Module) -> None:
    after = state_snapshot(model)
    assert after["training"] == before["training"]
    assert after["requires_grad"] == before["requires_grad"]
    assert after["hooks"] == before["hooks"]
    for a, b in zip(after["grads"], before["grads"]):
        assert (a is None and b is None) or torch.equal(a, b)
    assert after["weights"].keys() == before["weights"].keys()
    for key, value in before["weights"].items():
        assert torch.equal(after["weights"][key], value), key


def holds_tile(picture, tile) -> bool:
    """Whether the uint8 ``(H, W, 3)`` ``tile`` appears, pixel for pixel, somewhere in ``picture`` (a drawn panel)."""
    import cv2
    import numpy as np

    picture, tile = np.ascontiguousarray(picture[..., :3]), np.ascontiguousarray(tile[..., :3])
    if tile.shape[0] > picture.shape[0] or tile.shape[1] > picture.shape[1]:
        return False
    differences = cv2.matchTemplate(picture.astype(np.float32), tile.astype(np.float32), cv2.TM_SQDIFF)
    y, x = np.unravel_index(int(differences.argmin()), differences.shape)  # the closest place, then checked exactly
    return bool(np.array_equal(picture[y:y + tile.shape[0], x:x + tile.shape[1]], tile))
