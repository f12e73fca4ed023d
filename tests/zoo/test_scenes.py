"""Fashion-MNIST scenes: masks and boxes are exactly the pasted pixels, scenes are seeded, bad input is one line."""

import pytest
import torch

from cnnviz.zoo.core import CnnvizError
from cnnviz.zoo.data import fashion_scenes, paste_scenes
from cnnviz.zoo.data.datasets import synthetic
from tests.conftest import needs_fashion


def check_labels(scenes, threshold=0.1):
    for image, mask, boxes, labels in zip(scenes.images, scenes.masks, scenes.boxes, scenes.labels):
        assert torch.equal(mask > 0, image[0] > threshold)  # the mask is the pasted pixels, nothing else
        covered = torch.zeros_like(mask, dtype=torch.bool)
        for (x0, y0, x1, y1), label in zip(boxes.long().tolist(), labels.tolist()):
            inside = mask[y0:y1, x0:x1] == label + 1
            # tight: the item's pixels touch all four sides of its box
            assert inside[0].any() and inside[-1].any() and inside[:, 0].any() and inside[:, -1].any()
            assert not covered[y0:y1, x0:x1].any()  # boxes never overlap
            covered[y0:y1, x0:x1] = True
        assert not (mask[~covered] > 0).any()  # every item pixel lies in a box


def test_masks_and_boxes_come_from_the_pasted_pixels():
    scenes = paste_scenes(synthetic(50, classes=4, seed=1), count=20, canvas=96, items=(1, 4), seed=3)
    check_labels(scenes)
    assert {len(b) for b in scenes.boxes} <= {1, 2, 3, 4} and len({len(b) for b in scenes.boxes}) > 1


def test_a_crowded_canvas_keeps_the_items_that_fit():
    scenes = paste_scenes(synthetic(10, classes=2), count=10, canvas=40, items=(4, 4))
    assert all(1 <= len(b) < 4 for b in scenes.boxes)  # 28 px items: at most one fits across 40 px
    check_labels(scenes)


def test_scenes_are_seeded_and_leave_the_global_rng_alone():
    source = synthetic(30, classes=3, seed=0)
    state = torch.get_rng_state()
    first = paste_scenes(source, count=4, seed=7)
    assert torch.equal(state, torch.get_rng_state())
    again, other = paste_scenes(source, count=4, seed=7), paste_scenes(source, count=4, seed=8)
    assert torch.equal(first.images, again.images) and torch.equal(first.masks, again.masks)
    assert not torch.equal(first.images, other.images)


@needs_fashion
def test_fashion_scenes_hold_fashion_items_from_the_chosen_split():
    held_out = fashion_scenes(10, split="test", seed=0)
    check_labels(held_out)
    assert held_out.mask_classes[8] == "Sneaker" and int(held_out.masks.max()) <= 10
    assert not torch.equal(held_out.images, fashion_scenes(10, split="train", seed=0).images)


@pytest.mark.parametrize("kwargs,words", [
    ({"canvas": 20}, "smaller than an item"),
    ({"items": (3, 2)}, "fewest <= most"),
    ({"count": 0}, "at least 1"),
])
def test_bad_scene_requests_are_one_line(kwargs, words):
    with pytest.raises(CnnvizError, match=words) as error:
        paste_scenes(synthetic(10, classes=2), **{"count": 2, **kwargs})
    assert "\n" not in str(error.value)
