"""The one explain recipe (``interpret.explain_one``): its maps are the method's own (an oracle: the method called
directly), its records hold the model's own numbers, and classifiers and dense models share one record schema."""

from __future__ import annotations

import pytest
import torch

from cnnviz import interpret, zoo
from cnnviz.interpret.core import attribution_map
from cnnviz.interpret.evaluate import entropy, gini
from tests.conftest import needs_fashion


def _images(handle: zoo.ModelHandle, names: list[str]) -> torch.Tensor:
    return handle.prepare([zoo.load_image(name, channels=handle.in_channels) for name in names])


def test_a_classifiers_maps_and_records_equal_the_method_and_the_model(fashion):
    images = _images(fashion, ["chelsea", "coffee"])
    method, options = interpret.get_method("occlusion"), {"window": 8, "stride": 4}
    found = interpret.explain_one(fashion, method, images, None, names=["cat", "cup"], options=options)
    expected = method.fn(fashion, images, None, **options)
    torch.testing.assert_close(found.maps, expected, rtol=0, atol=0)
    torch.testing.assert_close(found.flat, attribution_map(expected))
    with torch.no_grad():
        probs = fashion(images).softmax(-1)
    for i, record in enumerate(found.records):
        predicted = int(probs[i].argmax())
        assert found.targets[i] == predicted == record["target"]["index"] == record["predicted"]["index"]
        assert record["target"]["probability"] == pytest.approx(float(probs[i, predicted]), rel=1e-6)
        assert record["options"] == {**{k: s.default for k, s in method.options().items()}, **options}
        values = expected[i].double()
        assert record["map"]["mean"] == pytest.approx(float(values.mean()))
        assert record["map"]["gini"] == pytest.approx(float(gini(values)))
        assert record["map"]["entropy"] == pytest.approx(float(entropy(values)))
        assert record["images_in_call"] == 2 and record["explained"] is None and record["score"] is None
    assert [r["png"] for r in found.records] == ["cat-occlusion.png", "cup-occlusion.png"]


def test_a_class_given_by_name_is_explained_in_every_image(fashion):
    images = _images(fashion, ["chelsea", "coffee"])
    found = interpret.explain_one(fashion, interpret.get_method("gradient"), images, "Bag", npy=False)
    torch.testing.assert_close(found.maps, interpret.get_method("gradient").fn(fashion, images, "Bag"))
    assert found.targets == [8, 8] and all(r["npy"] is None and r["target"]["name"] == "Bag" for r in found.records)


def test_the_seconds_are_the_methods_call_read_from_the_clock(fashion, monkeypatch):
    from cnnviz.interpret.evaluate import explanation

    ticks = iter([10.0, 12.5])
    monkeypatch.setattr(explanation, "clock", lambda: next(ticks))
    found = interpret.explain_one(fashion, interpret.get_method("gradient"), _images(fashion, ["chelsea"]))
    assert found.records[0]["seconds"] == 2.5


def test_a_detail_method_keeps_its_full_result(fashion):
    method = next((m for m in interpret.methods("attribution") if m.detail is not None), None)
    if method is None:
        pytest.skip("no attribution method has a detailed result")
    images = _images(fashion, ["chelsea"])
    found = interpret.explain_one(fashion, method, images, None, detail=True)
    assert found.detail is not None and torch.equal(found.detail.maps, found.maps)


@needs_fashion
def test_a_segmentation_region_is_explained_as_the_method_and_target_say():
    seg = zoo.load("fashion_seg", device="cpu")
    image = _images(seg, ["chelsea"])
    method = interpret.get_method("gradient")
    found = interpret.explain_one(seg, method, image, 1, names=["chelsea"], region=(0, 0, 32, 32))
    target = interpret.dense_target(seg, image, 1, region=(0, 0, 32, 32))
    torch.testing.assert_close(found.maps, method.fn(seg, image, target), rtol=0, atol=0)
    record = found.records[0]
    with torch.no_grad():
        score = float(target(seg(image))[0])
    assert record["score"] == pytest.approx(score, rel=1e-6) and record["task"] == "segmentation"
    assert record["explained"] == f"{seg.class_name(1)} over 1024 px" and found.detections == [None]
    assert record["target"] is None and record["predicted"] is None and record["images_in_call"] == 1
    assert found.titles[0].endswith(f"explaining {record['explained']} (score {score:.3g})")


@needs_fashion
def test_a_detectors_box_is_explained_per_image_with_its_own_detections():
    from cnnviz.zoo.data import fashion_scenes

    det = zoo.load("fashion_det", device="cpu")
    scenes = fashion_scenes(2, split="test", canvas=64, items=(2, 2), seed=7).images
    method = interpret.get_method("gradient")
    found = interpret.explain_one(det, method, scenes, None, names=["a", "b"], box=1)
    for i in range(2):
        image = scenes[i:i + 1]
        target = interpret.dense_target(det, image, box=1)
        torch.testing.assert_close(found.maps[i:i + 1], method.fn(det, image, target), rtol=0, atol=0)
        assert torch.equal(found.targets[i].box, target.box) and found.targets[i].label == target.label
        with torch.no_grad():
            detections = zoo.unpack_detections(det(image))[0]
        torch.testing.assert_close(found.detections[i], detections)


@needs_fashion
def test_classifiers_and_dense_models_write_one_record_schema(fashion):
    seg = zoo.load("fashion_seg", device="cpu")
    classified = interpret.explain_one(fashion, interpret.get_method("gradient"), _images(fashion, ["chelsea"]))
    dense = interpret.explain_one(seg, interpret.get_method("gradient"), _images(seg, ["chelsea"]), 1,
                                  region=(0, 0, 8, 8))
    assert list(classified.records[0]) == list(dense.records[0])
    assert list(classified.records[0]["map"]) == list(dense.records[0]["map"])
