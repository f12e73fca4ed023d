"""fashion_seg's score, mean IoU and pixel accuracy, against scikit-learn's on predictions set by hand."""

import pytest
import torch
from sklearn.metrics import accuracy_score, jaccard_score

from cnnviz import zoo
from cnnviz.zoo.train import mean_iou
from cnnviz.zoo.data import Scenes

CLASSES = ("a", "b", "c", "d")  # mask values: 0 background, 1..4 these; 4 is neither true nor predicted


class Painted(torch.nn.Module):
    """Predicts at each pixel the mask value that the pixel holds: the picture is the prediction."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.one_hot(x[:, 0].round().long(), len(CLASSES) + 1).permute(0, 3, 1, 2).float()


def test_mean_iou_and_pixel_accuracy_equal_scikit_learns():
    generator = torch.Generator().manual_seed(0)
    truth = torch.randint(0, 3, (6, 8, 8), generator=generator)  # 0..2 true
    noise = torch.randint(0, 4, (6, 8, 8), generator=generator)  # 3 only ever predicted
    predicted = torch.where(torch.rand(6, 8, 8, generator=generator) < 0.6, truth, noise)
    scenes = Scenes(predicted.float()[:, None], truth, [], [], CLASSES)
    handle = zoo.ModelHandle(Painted(), name="painted", config=zoo.ModelConfig(
        input_size=8, resize_size=8, mean=(0.0,), std=(1.0,), classes=("background", *CLASSES),
        task="segmentation"))
    scores = mean_iou(handle, scenes, batch_size=4)  # two batches: the counts add up over them
    y_true, y_pred = truth.flatten().numpy(), predicted.flatten().numpy()
    present = [0, 1, 2, 3]  # in the truth or the prediction; 4 in neither has no IoU
    per_class = jaccard_score(y_true, y_pred, labels=present, average=None)
    assert scores["miou"] == pytest.approx(per_class.mean())
    assert scores["pixel_accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    names = ("background", *CLASSES)
    assert scores["iou"] == {names[k]: pytest.approx(float(v), abs=5e-5) for k, v in zip(present, per_class)}
