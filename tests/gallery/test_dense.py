"""The gallery's segmentation and detection page: fashion_seg and fashion_det explained on held-out scenes, the
predicted mask and boxes beside each map, and no classifier section for them."""

from __future__ import annotations

import json
from dataclasses import replace

from cnnviz.gallery import Budget, Settings, build, plan
from cnnviz.zoo.data import DATASETS
from tests.conftest import needs_fashion


TINY = Budget(images=1, attribution={}, curve_steps=2, layers=1, atlas_images=8, atlas_channels=1, atlas_top=1,
              classes=1, actmax_steps=1, inversion_steps=1, dream_steps=1, attack_steps=1, fooling_steps=1,
              fooling_classes=1, style_steps=1, style_size=32)


@needs_fashion
def test_dense_models_get_the_dense_page_only():
    result = plan(Settings(models=["fashion_seg", "fashion_det"], budget=TINY))
    assert [p.slug for p in result.pages] == ["dense"]
    assert sorted(c.id for c in result.cards) == sorted(f"{m}-{model}" for m in ("gradcam", "occlusion", "gradient")
                                                        for model in ("fashion_seg", "fashion_det"))


@needs_fashion
def test_the_dense_page_draws_masks_and_boxes_beside_the_maps(tmp_path):
    report = build(tmp_path, Settings(models=["fashion_seg", "fashion_det"], budget=replace(TINY, images=2),
                                      device="cpu"), progress=False, log=lambda _: None)
    assert not report.failed and len(report.computed) == 6, report.failed
    seg = json.loads((tmp_path / "cards" / "dense" / "gradcam-fashion_seg.json").read_text())
    det = json.loads((tmp_path / "cards" / "dense" / "occlusion-fashion_det.json").read_text())
    assert [i["label"] for i in seg["images"]][:3] == ["held-out scene 1: predicted mask",
                                                       "held-out scene 1: explained region",
                                                       "held-out scene 1: gradcam over the image"]
    assert [i["label"] for i in det["images"]][:2] == ["held-out scene 1: detections",
                                                       "held-out scene 1: occlusion over the image"]
    assert " over " in seg["scores"]["held-out scene 1"] and "box [" in det["scores"]["held-out scene 1"]
    html = (tmp_path / "dense.html").read_text()
    assert "gradcam on fashion_seg" in html and "occlusion on fashion_det" in html
    assert "Segmentation and detection" in (tmp_path / "index.html").read_text()


def test_without_fashion_mnist_the_dense_page_shows_the_shipped_scenes(tmp_path, monkeypatch):
    spec = DATASETS["fashion-mnist"]
    monkeypatch.setitem(DATASETS, "fashion-mnist", replace(spec, default_dir=tmp_path / "no-such-folder"))
    report = build(tmp_path / "site", Settings(models=["fashion_seg"], budget=replace(TINY, images=2), device="cpu"),
                   progress=False, log=lambda _: None)
    assert not report.failed and len(report.computed) == 3, report.failed
    card = json.loads((tmp_path / "site" / "cards" / "dense" / "gradcam-fashion_seg.json").read_text())
    assert [i["label"] for i in card["images"]][0] == "scene1: predicted mask"
    assert set(card["scores"]) == {"scene1", "scene2"}
