"""The shipped fashion_det on held-out Fashion-MNIST scenes: mAP@0.5 by hand, its log, the CLI, the occlusion
property, and its train/eval mode left as found."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.ops import box_iou

from cnnviz import interpret
from cnnviz import zoo
from cnnviz.interpret.core import class_probabilities
from cnnviz.zoo.data import fashion_scenes
from cnnviz.zoo.handle import WEIGHTS_DIR
from cnnviz.zoo.train import average_precision, detection_accuracy, mean_average_precision
from tests.conftest import needs_fashion


def test_map_equals_the_hand_computed_value():
    # Class 0: three true boxes over two images. Ranked detections of class 0: 0.95 lies on the class-1 box
    # (false), 0.9 finds A1, 0.8 duplicates A1 (already claimed: false), 0.7 finds B1, 0.6 overlaps nothing.
    # Precision 0, 1/2, 1/3, 2/4, 2/5 at recall 0, 1/3, 1/3, 2/3, 2/3; made non-increasing it is 1/2 up to
    # recall 2/3: AP = 1/3 * 1/2 + 1/3 * 1/2 = 1/3. Class 1: its box is found only with the wrong class or as
    # padding (label -1): AP 0. mAP = 1/6.
    truth = [torch.tensor([[0., 0., 10., 10.], [20., 20., 30., 30.], [40., 0., 50., 10.]]),
             torch.tensor([[5., 5., 15., 15.]])]
    labels = [torch.tensor([0, 0, 1]), torch.tensor([0])]
    found = [torch.tensor([[0., 0., 10., 10., 0.9, 0.], [1., 0., 10., 10., 0.8, 0.], [40., 40., 50., 50., 0.6, 0.],
                           [40., 0., 50., 10., 0.95, 0.], [40., 0., 50., 10., 0.99, -1.]]),
             torch.tensor([[5., 5., 15., 16., 0.7, 0.]])]
    scores = mean_average_precision(found, truth, labels)
    assert scores["ap"][1] == 0.0
    assert scores["ap"][0] == pytest.approx(1 / 3)
    assert scores["map"] == pytest.approx(1 / 6)
    # Without the first false positive: precision 1, 1/2, 2/3, 2/4 at recall 1/3, 1/3, 2/3, 2/3: AP 5/9.
    assert average_precision(torch.tensor([0.9, 0.8, 0.7, 0.6]), torch.tensor([True, False, True, False]),
                             3) == pytest.approx(5 / 9)
    assert mean_average_precision([t.new_zeros(0, 6) for t in truth], truth, labels)["map"] == 0.0


@pytest.fixture(scope="module")
def det():
    return zoo.load("fashion_det", device="cpu")


@pytest.fixture(scope="module")
def held_out():
    return fashion_scenes(60, split="test", canvas=64, items=(1, 3), seed=4321)  # not the log's test seed


@needs_fashion
def test_the_log_says_how_it_was_trained_and_its_held_out_map_holds(det, held_out):
    log = json.loads((WEIGHTS_DIR / "fashion_det-log.json").read_text())
    assert log["history"] and log["test"]["map50"] > 0.6 and log["config"]["optimizer"] == "adamw"
    assert (WEIGHTS_DIR / "fashion_det.pt").stat().st_size < 5_000_000
    scores = detection_accuracy(det, held_out)
    print(f"mAP@0.5 on 60 fresh held-out scenes {scores['map50']:.3f}, log {log['test']['map50']:.3f}")
    assert abs(scores["map50"] - log["test"]["map50"]) < 0.1


def background_patch(image, taken, height, width):
    """The top-left corner of a height x width patch of empty pixels that overlaps no box, or None."""
    free = (image[0] == 0).float()
    for x0, y0, x1, y1 in taken.long().tolist():
        free[max(y0 - 2, 0):y1 + 2, max(x0 - 2, 0):x1 + 2] = 0  # keep clear of every item's box
    inside = torch.nn.functional.avg_pool2d(free[None, None], (height, width), stride=1)[0, 0]
    corners = (inside > 1 - 1e-6).nonzero()
    return corners[len(corners) // 2].tolist() if len(corners) else None


@needs_fashion
def test_occluding_the_object_lowers_its_box_score_more_than_occluding_as_much_background(det):
    sparse = fashion_scenes(80, split="test", canvas=64, items=(1, 2), seed=4322)  # room for a background patch
    drops = []
    for image, boxes in zip(sparse.images, sparse.boxes):
        # The best detection (--box 1), matched among its label's detections: FCOS gives one box several labels.
        target = interpret.detection_target(det, image[None], 0, rule="iou*score", same_label=True)
        overlaps = box_iou(target.box[None], boxes)[0]
        if overlaps.max() < 0.5:  # the best detection is no item: nothing to occlude
            continue
        x0, y0, x1, y1 = boxes[int(overlaps.argmax())].long().tolist()  # the item it found
        corner = background_patch(image, boxes, y1 - y0, x1 - x0)
        if corner is None:  # the scene has no empty patch that large
            continue
        by, bx = corner
        on_object, on_background = image.clone(), image.clone()
        on_object[:, y0:y1, x0:x1] = 0.5  # gray, as occlusion's default fill
        on_background[:, by:by + y1 - y0, bx:bx + x1 - x0] = 0.5
        with torch.no_grad():
            scores = target(class_probabilities(det, det(torch.stack([image, on_object, on_background]))))
        drops.append((scores[0] - scores[1]) - (scores[0] - scores[2]))
    assert len(drops) >= 40
    drops = torch.stack(drops)
    print(f"object minus background drop of the best detection's IoU x score: median {drops.median():.3f}, "
          f"min {drops.min():.3f}, max {drops.max():.3f}, positive in {int((drops > 0).sum())} of {len(drops)} "
          "held-out scenes")
    # Measured on the shipped model (mAP@0.5 0.84): positive in 62 of 68 scenes, median 0.46, spread -0.05..0.87.
    # A detector blind to the object would put the median near 0 and half the scenes below it.
    assert (drops > 0).float().mean() >= 0.8 and drops.median() > 0.2


def state_of(model):
    return ({k: v.clone() for k, v in model.state_dict().items()}, [m.training for m in model.modules()],
            [p.requires_grad for p in model.parameters()])


@needs_fashion
@pytest.mark.parametrize("name,mode", [("gradcam", "train"), ("gradient", "train"), ("occlusion", "train"),
                                       ("occlusion", "eval")])
def test_methods_leave_fashion_det_as_found(det, held_out, name, mode):
    image = held_out.images[:1]
    target = interpret.detection_target(det, image, 0)
    model = det.model.train(mode == "train")
    before, rng = state_of(model), torch.get_rng_state()
    try:
        result = interpret.get_method(name).fn(det, image, target, **({"window": 16, "stride": 8}
                                                                       if name == "occlusion" else {}))
        assert result.shape[-2:] == (64, 64) and torch.isfinite(result).all() and result.abs().sum() > 0
        after = state_of(model)
        assert after[1:] == before[1:]
        assert all(torch.equal(before[0][k], v) for k, v in after[0].items())
        assert sum(interpret.hook_counts(model).values()) == 0 and torch.equal(rng, torch.get_rng_state())
    finally:
        model.eval()


@needs_fashion
def test_cli_explains_the_first_detection_of_a_scene_and_draws_the_boxes(cli, tmp_path, held_out):
    scene = tmp_path / "scene.png"
    Image.fromarray((held_out.images[0, 0] * 255).round().byte().numpy()).save(scene)
    code, out, err = cli("explain", "occlusion", "--model", "fashion_det", "--image", scene, "--box", "1",
                         "--window", "16", "--stride", "8", "--device", "cpu", "--out", tmp_path, "--npy")
    assert code == 0, err
    record = json.loads((tmp_path / "scene-occlusion.json").read_text())
    assert record["task"] == "detection" and np.load(tmp_path / "scene-occlusion.npy").shape == (1, 64, 64)
    code, out, err = cli("predict", "--model", "fashion_det", "--image", scene, "--device", "cpu",
                         "--out", tmp_path)
    assert code == 0 and "  1. " in out and (tmp_path / "scene-detections.png").is_file(), err
    code, out, err = cli("explain", "occlusion", "--model", "fashion_det", "--image", scene, "--box", "99",
                         "--device", "cpu", "--out", tmp_path)
    assert code == 2 and "detection 99 was asked for" in err and len(err.strip().splitlines()) == 1


@needs_fashion
@pytest.mark.slow  # two short training runs, about 30 s on a shared CPU
@pytest.mark.parametrize("name", ["fashion_seg", "fashion_det"])
def test_cnnviz_train_rebuilds_a_scene_model_through_the_output_folder(cli, tmp_path, name):
    out = tmp_path / "run"
    code, _text, err = cli("train", "--model", name, "--epochs", "2", "--scenes", "64", "--seed", "3",
                          "--out", out, "--keep-checkpoint", "--quiet", "--device", "cpu")
    assert code == 0, err
    log = json.loads((out / f"{name}-log.json").read_text())
    assert len(log["history"]) == 2 and log["data"]["train_scenes"] == 64 and log["data"]["seed"] == 3
    assert ("map50" if name == "fashion_det" else "miou") in log["test"]
    checkpoint = torch.load(out / f"{name}-checkpoint.pt", weights_only=True)
    assert checkpoint["epoch"] == 2
    handle = zoo.load(name, weights=out / f"{name}.pt", device="cpu")  # the written weights load into the model
    assert handle.config.task in ("segmentation", "detection")
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []  # no temporaries left
    code, _text, err = cli("train", "--model", name, "--epochs", "2", "--out", out, "--quiet")
    assert code == 2 and "holds an unfinished run" in err


def test_cnnviz_train_refuses_classifier_flags_for_a_scene_model(cli, tmp_path):
    code, _text, err = cli("train", "--model", "fashion_det", "--lr", "0.1", "--optimizer", "sgd",
                          "--out", tmp_path / "never")
    assert code == 2 and "--optimizer, --lr do not apply to fashion_det" in err and not (tmp_path / "never").exists()
    code, _text, err = cli("train", "--scenes", "10", "--out", tmp_path / "never")
    assert code == 2 and "--scenes is for fashion_seg and fashion_det" in err


def test_the_shipped_scenes_explain_without_the_dataset_and_a_warning_is_one_line(cli, tmp_path):
    scene = zoo.load_image("scene4")  # a Sandal, a Pullover and a Sneaker: shipped, no Fashion-MNIST needed
    assert scene.shape == (1, 64, 64) and zoo.scene_names() == ["scene1", "scene2", "scene3", "scene4"]
    code, _, err = cli("explain", "occlusion", "--model", "fashion_det", "--image", "scene4", "--box", "1",
                         "--window", "32", "--stride", "32", "--device", "cpu", "--out", tmp_path)
    assert code == 0 and (tmp_path / "scene4-occlusion.png").is_file(), err
    # FCOS is beyond torch.fx, so occlusion says in one line that it runs in full (no file, line or source).
    assert err.strip().splitlines() == [line for line in err.strip().splitlines() if line.startswith("cnnviz explain: ")]
    assert "warning: occlusion runs in full" in err
