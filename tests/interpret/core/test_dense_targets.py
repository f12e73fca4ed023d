"""Segmentation and detection: dense targets against pytorch-grad-cam and captum (the oracles), the
detector left as found (train/eval mode included), and the one-line refusals.

The models are torchvision's, seeded with random weights (no weights can be had offline); the oracle
compares two computations on the same network, so the weights need not be trained. The inputs are a real
photo, shrunk so each test takes about a second.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from captum.attr import Occlusion, Saliency
from pytorch_grad_cam import GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM, XGradCAM
from pytorch_grad_cam.utils.model_targets import FasterRCNNBoxScoreTarget, SemanticSegmentationTarget

from cnnviz import interpret
from cnnviz import zoo
from cnnviz.interpret.attribution.cam.core import min_max, upsample
from cnnviz.interpret.evaluate import deletion_insertion
from cnnviz.zoo.core import CnnvizError

CAMS = {"gradcam": GradCAM, "gradcam_plusplus": GradCAMPlusPlus, "xgradcam": XGradCAM, "hirescam": HiResCAM,
        "layercam": LayerCAM}
TOL = {"atol": 2e-3, "rtol": 1e-3}  # of each min-max scaled map's range, as in test_cam.py
CAT = 8  # "cat" in torchvision's VOC categories


def photo(size):
    return F.interpolate(zoo.load_image("chelsea")[None], size=size, mode="bilinear", antialias=True).clamp(0, 1)


@pytest.fixture(scope="module")
def segmenters(device):
    class Built(dict):
        def __missing__(self, name):
            torch.manual_seed(0)
            self[name] = zoo.load(f"torchvision:{name}", weights=None, device=device)
            return self[name]
    return Built()


@pytest.fixture(scope="module")
def detector(device):
    torch.manual_seed(0)
    # Random weights score every class near 1/91: keep all detections, so there are some to explain.
    # The detector resizes its inputs to 192 px and keeps few proposals, so a forward pass is quick.
    return zoo.load("torchvision:fasterrcnn_mobilenet_v3_large_320_fpn", weights=None, device=device,
                    model_args={"box_score_thresh": 0.0, "box_detections_per_img": 20, "min_size": 192,
                                "max_size": 256, "rpn_pre_nms_top_n_test": 100, "rpn_post_nms_top_n_test": 50})


def reference_scales(ours, size):
    return min_max(upsample(min_max(ours), size))[:, 0].cpu()


@pytest.mark.parametrize("model_name,name", [("deeplabv3_mobilenet_v3_large", name) for name in CAMS] + [
    ("fcn_resnet50", "gradcam"), *[pytest.param("fcn_resnet50", name, marks=pytest.mark.slow) for name in CAMS][1:]])
def test_segmentation_cams_equal_pytorch_grad_cam(segmenters, model_name, name, device):
    handle = segmenters[model_name]
    images = photo((64, 96)).to(device)
    target = interpret.region_target(handle, images, "cat", region=(10, 8, 70, 56))
    layer = handle.config.default_layer
    ours = interpret.get_method(name).fn(handle, images, target, layer=layer, upsample=False)
    with CAMS[name](handle, [handle.layer(layer)]) as cam:  # the handle returns "out", as the tutorial's wrapper
        theirs = cam(images, [SemanticSegmentationTarget(CAT, target.mask.numpy())])
    torch.testing.assert_close(reference_scales(ours, (64, 96)), torch.from_numpy(theirs), **TOL)


def test_predicted_region_is_where_the_model_predicts_the_class(segmenters, device):
    handle = segmenters["fcn_resnet50"]
    images = photo((48, 48)).to(device)
    predicted = handle(images).argmax(1)[0]
    label = int(predicted.flatten().mode().values)
    target = interpret.region_target(handle, images, label)
    assert torch.equal(target.mask.bool(), (predicted == label).cpu())


@pytest.mark.parametrize("name", ["gradcam", pytest.param("xgradcam", marks=pytest.mark.slow)])
def test_box_cams_equal_pytorch_grad_cam(detector, name, device):
    images = photo((96, 128)).to(device)
    target = interpret.detection_target(detector, images, 0)
    layer = detector.config.default_layer
    ours = interpret.get_method(name).fn(detector, images, target, layer=layer, upsample=False)
    with CAMS[name](detector.model, [detector.layer(layer)]) as cam:  # the raw detector: a list of dicts
        theirs = cam(images, [FasterRCNNBoxScoreTarget([target.label], [target.box.numpy()])])
    assert ours.amax() > 0  # the box was found again: a real map, not zeros
    torch.testing.assert_close(reference_scales(ours, (96, 128)), torch.from_numpy(theirs), **TOL)


def test_box_score_rules_read_the_matched_detection():
    detections = torch.tensor([[[0.0, 0.0, 10.0, 10.0, 0.8, 3.0], [0.0, 0.0, 5.0, 10.0, 0.9, 3.0],
                                [0.0, 0.0, 0.0, 0.0, 0.0, -1.0]]])
    box = (0, 0, 10, 8)  # IoU 0.8 with the first detection, 0.4 with the second
    assert torch.allclose(interpret.BoxScore(box, 3)(detections), torch.tensor([1.6]))
    assert torch.allclose(interpret.BoxScore(box, 3, rule="iou*score")(detections), torch.tensor([0.64]))
    assert torch.allclose(interpret.BoxScore(box, 3, rule="score")(detections), torch.tensor([0.8]))
    assert interpret.BoxScore(box, 4)(detections).item() == 0  # the class changed: no match
    assert interpret.BoxScore(box, 3, iou_threshold=0.9)(detections).item() == 0


def test_segmentation_occlusion_equals_captum(segmenters, device):
    handle = segmenters["deeplabv3_mobilenet_v3_large"]
    images = photo((48, 64)).to(device)
    target = interpret.region_target(handle, images, CAT, region=(16, 8, 48, 40))
    ours = interpret.occlusion(handle, images, target, window=16, stride=16, fill="black", score="logit")
    region_sum = lambda x: target(handle(x))[:, None]  # noqa: E731 - the model wrapped into a per-class region sum
    theirs = Occlusion(region_sum).attribute(images, sliding_window_shapes=(3, 16, 16), strides=(3, 16, 16),
                                             baselines=0.0, target=0)
    torch.testing.assert_close(ours.expand_as(theirs), theirs, rtol=1e-4, atol=1e-4)


def test_segmentation_gradients_equal_captums_tutorial_wrapper(segmenters, device):
    handle = segmenters["deeplabv3_mobilenet_v3_large"]
    images = photo((48, 64)).to(device)
    predicted = handle(images).argmax(1)[0]
    label = int(predicted.flatten().mode().values)

    def per_class_sum(x):  # captum's segmentation tutorial: each class summed where the model predicts it
        out = handle(x)
        chosen = torch.zeros_like(out).scatter_(1, out.argmax(1, keepdim=True), 1)
        return (out * chosen).sum(dim=(2, 3))

    ours = interpret.saliency(handle, images, interpret.region_target(handle, images, label))
    theirs = Saliency(per_class_sum).attribute(images, target=label, abs=True).amax(1, keepdim=True)
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-6)


def state_of(model):
    return ({k: v.clone() for k, v in model.state_dict().items()}, [m.training for m in model.modules()],
            [p.requires_grad for p in model.parameters()])


@pytest.mark.parametrize("name,mode", [("gradcam", "train"), ("gradcam", "eval"), ("gradient", "train"),
                                       ("occlusion", "train"), ("rise", "train")])
def test_methods_leave_the_detector_as_found(detector, device, name, mode):
    images = photo((64, 64)).to(device)
    target = interpret.detection_target(detector, images, 0)
    options = {"occlusion": {"window": 32, "stride": 32}, "rise": {"masks": 8}}.get(name, {})
    model = detector.model.train(mode == "train")
    before, rng = state_of(model), torch.get_rng_state()
    try:
        result = interpret.get_method(name).fn(detector, images, target, **options)
        assert result.shape[-2:] == images.shape[-2:] and torch.isfinite(result).all()
        after = state_of(model)
        assert after[1:] == before[1:]
        assert all(torch.equal(before[0][k], v) for k, v in after[0].items())
        assert interpret.hook_counts(model) == interpret.hook_counts(model)  # noqa: PLR0124
        assert sum(interpret.hook_counts(model).values()) == 0
        if name != "rise":  # RISE draws its masks from a generator of its own seed
            assert torch.equal(rng, torch.get_rng_state())
    finally:
        model.eval()


def test_bad_dense_input_is_refused_in_one_line(segmenters, detector, device):
    seg, images = segmenters["deeplabv3_mobilenet_v3_large"], photo((32, 48)).to(device)
    cases = [
        (lambda: interpret.region_target(seg, images, CAT, region=(0, 0, 60, 20)), "not inside the 48 x 32"),
        (lambda: interpret.region_target(seg, images, "unicorn"), "no class named 'unicorn'"),
        (lambda: interpret.region_target(seg, images, CAT, mask=torch.zeros(32, 48)), "has no pixels"),
        (lambda: interpret.detection_target(detector, images, 500), "detection 501 was asked for"),
        (lambda: interpret.detection_target(detector, images, box=(0, 0, 10, 99), label=1), "not inside"),
        (lambda: interpret.gradcam(seg, images, CAT), "is a segmentation model"),
        (lambda: interpret.occlusion(detector, images, 1, window=16), "is a detection model"),
    ]
    resnet = zoo.load("resnet18", weights=None, device=device)
    dense = interpret.region_target(seg, images, CAT, region=(0, 0, 8, 8))
    cases.append((lambda: interpret.saliency(resnet, photo((32, 48)).to(device), dense), "needs per-pixel class"))
    box = interpret.BoxScore((0, 0, 8, 8), 1)
    cases.append((lambda: interpret.saliency(resnet, photo((32, 48)).to(device), box), "needs a detector's"))
    for call, words in cases:
        with pytest.raises(CnnvizError, match=words) as error:
            call()
        assert "\n" not in str(error.value)


def test_dense_sources_say_their_task_and_config_without_building():
    assert zoo.model_config("torchvision:fcn_resnet50").task == "segmentation"
    det = zoo.model_config("torchvision:retinanet_resnet50_fpn")
    assert det.task == "detection" and det.classes[18] == "dog" and det.mean == (0.0, 0.0, 0.0)
    assert zoo.model_config("torchvision:resnet18").task == "classification"
    with pytest.raises(CnnvizError, match="not on this machine"):
        zoo.load("torchvision:ssdlite320_mobilenet_v3_large", device="cpu")
    np.testing.assert_equal(zoo.model_config("torchvision:lraspp_mobilenet_v3_large").input_size, 520)


SEGMENTER = ["--model", "torchvision:lraspp_mobilenet_v3_large", "--weights", "random", "--input-size", "96",
             "--image", "chelsea", "--device", "cpu"]
DETECTOR = ["--model", "torchvision:fasterrcnn_mobilenet_v3_large_320_fpn", "--weights", "random", "--image", "chelsea",
            "--device", "cpu", "--input-size", "96", "--compile", "off", "--model-args",
            '{"box_score_thresh": 0.0, "min_size": 96, "max_size": 96, "box_detections_per_img": 5}']


@pytest.mark.slow  # three CLI runs, about 15 s
def test_cli_explains_a_region_and_a_box_and_draws_predictions(cli, tmp_path):
    code, out, err = cli("explain", "gradcam", *SEGMENTER, "--target", "cat", "--region", "8,8,60,50",
                         "--out", tmp_path, "--npy")
    assert code == 0, err
    record = __import__("json").loads((tmp_path / "chelsea-gradcam.json").read_text())
    assert record["explained"] == "cat over 2184 px" and record["task"] == "segmentation"  # 52 x 42 pixels
    assert np.load(tmp_path / "chelsea-gradcam.npy").shape == (1, 96, 96)
    code, out, err = cli("predict", *DETECTOR, "--out", tmp_path)
    assert code == 0 and "  5. " in out and (tmp_path / "chelsea-detections.png").is_file(), err
    code, out, err = cli("explain", "occlusion", *DETECTOR, "--box", "2", "--window", "32", "--out", tmp_path)
    assert code == 0 and "chelsea-occlusion.png" in out, err


@pytest.mark.parametrize("argv,words", [
    ([*SEGMENTER, "--target", "cat", "--region", "0,0,200,20"], "not inside the 96 x 96 image"),
    ([*SEGMENTER, "--target", "unicorn"], "no class named 'unicorn'"),
    ([*SEGMENTER], "say which class to explain with --target"),
    ([*DETECTOR, "--box", "9"], "detection 9 was asked for, but"),
    (["--model", "resnet18", "--weights", "random", "--image", "chelsea", "--device", "cpu", "--region",
      "0,0,20,20", "--target", "1"], "needs per-pixel class scores"),
])
def test_cli_refuses_bad_dense_input_with_exit_code_2(cli, tmp_path, argv, words):
    code, out, err = cli("explain", "gradient", *argv, "--out", tmp_path)
    assert code == 2 and words in err and len(err.strip().splitlines()) == 1, err


def test_deletion_of_a_region_score_follows_the_hand_computed_curve(device):
    torch.manual_seed(0)
    net = torch.nn.Conv2d(3, 3, 5, padding=2).to(device)  # a tiny segmenter: per-pixel scores of 3 classes
    handle = zoo.ModelHandle(net, name="tiny", config=zoo.ModelConfig(input_size=16, resize_size=16,
                                                                       classes=("bg", "a", "b"), task="segmentation"))
    images = torch.rand(1, 3, 16, 16, device=device)
    target = interpret.region_target(handle, images, "a", region=(4, 4, 12, 12))
    maps = torch.rand(1, 1, 16, 16, device=device)
    curves = deletion_insertion(handle, images, maps, target, steps=4)
    order = maps.flatten().argsort(descending=True)
    expected = []
    for count in (0, 64, 128, 192, 256):
        deleted = images.clone().flatten(2)
        deleted[..., order[:count]] = 0.0
        expected.append(target(handle(deleted.view_as(images)).softmax(1)))
    torch.testing.assert_close(curves.deletion[0], torch.cat(expected), rtol=1e-5, atol=1e-5)
    region_first = deletion_insertion(handle, images, target.mask[None, None], target, steps=8)
    region_last = deletion_insertion(handle, images, 1 - target.mask[None, None], target, steps=8)
    assert region_first.deletion_auc < region_last.deletion_auc  # deleting the region first hurts its score first


def tiny_segmenter():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 3, 3, padding=1))
    return zoo.ModelHandle(net, name="tiny", config=zoo.ModelConfig(
        input_size=16, resize_size=16, classes=("bg", "a", "b"), task="segmentation", default_layer="1"))


REFUSES_DENSE = {"finercam": "builds its own score from a class"}  # its score contrasts classes of a (B, K) output


@pytest.mark.parametrize("name", [m.name for m in interpret.methods("attribution")])  # captum's catalog included
def test_every_method_takes_a_region_target_or_says_why_in_one_line(name):
    handle = tiny_segmenter()
    images = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    target = interpret.region_target(handle, images, "a", region=(4, 4, 12, 12))
    before = state_of(handle)
    if name in REFUSES_DENSE:
        with pytest.raises(CnnvizError, match=REFUSES_DENSE[name]) as error:
            interpret.get_method(name).fn(handle, images, target)
        assert "\n" not in str(error.value)
    else:
        maps = interpret.get_method(name).fn(handle, images, target)
        assert maps.shape[-2:] == (16, 16) and torch.isfinite(maps).all()
        assert name == "extremal" or maps.abs().sum() > 0  # extremal's mask comes out empty on this tiny net
    after = state_of(handle)
    assert after[1:] == before[1:] and all(torch.equal(before[0][k], v) for k, v in after[0].items())


@settings(max_examples=40, deadline=None)
@given(counts=st.lists(st.integers(0, 5), min_size=1, max_size=4), seed=st.integers(0, 2**16))
def test_unpack_detections_inverts_pack_detections(counts, seed):
    generator = torch.Generator().manual_seed(seed)
    output = [{"boxes": torch.rand(n, 4, generator=generator) * 50, "scores": torch.rand(n, generator=generator),
               "labels": torch.randint(0, 91, (n,), generator=generator)} for n in counts]
    packed = zoo.pack_detections(output)
    assert packed.shape == (len(counts), max(counts), 6)
    for rows, detections in zip(zoo.unpack_detections(packed), output):
        assert torch.equal(rows[:, :4], detections["boxes"]) and torch.equal(rows[:, 4], detections["scores"])
        assert torch.equal(rows[:, 5].long(), detections["labels"])


def test_unpack_detections_refuses_what_is_not_packed_detections():
    with pytest.raises(CnnvizError, match=r"\(B, N, 6\) tensor"):
        zoo.unpack_detections(torch.zeros(2, 5))
