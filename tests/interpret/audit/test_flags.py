"""Shortcut flags on synthetic maps: a tag away from the object is flagged, split clusters merge, a control is not."""

import numpy as np
import pytest

from cnnviz.interpret.audit.flags import DEFAULT_THRESHOLD, shortcut_flags
from cnnviz.interpret.audit.strategies import class_strategies
from cnnviz.zoo.core import CnnvizError

SIDE = 16


def object_maps(n, rng, centre=(8, 8), sigma=3.0):
    """Relevance on a jittered object: a broad bump with noise."""
    yy, xx = np.mgrid[:SIDE, :SIDE]
    maps = []
    for _ in range(n):
        cy, cx = np.array(centre) + rng.normal(0, 1.0, 2)
        maps.append(np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma ** 2)) + rng.normal(0, 0.05, (SIDE, SIDE)))
    return np.array(maps, np.float32)


def tagged(maps, spot, rng, size=2, strength=4.0):
    out = maps.copy()
    y, x = spot
    out[:, y:y + size, x:x + size] += strength * rng.uniform(0.7, 1.3, (len(maps), 1, 1))
    return out


def audit(maps, name="class", seed=0):
    return {name: class_strategies(maps, list(range(len(maps))), seed=seed, embed=0)}


@pytest.mark.parametrize("spot", [(0, 0), (0, 14), (13, 1), (7, 14)])
def test_a_tag_on_part_of_a_class_is_flagged_with_its_members(spot):
    rng = np.random.default_rng(sum(spot))
    maps = object_maps(90, rng)
    maps[:30] = tagged(maps[:30], spot, rng)
    flags = shortcut_flags(audit(maps))
    assert flags and flags[0].score > DEFAULT_THRESHOLD
    assert sorted(flags[0].members) == list(range(30)) and flags[0].items == 30
    x0, y0, x1, y1 = flags[0].evidence["relevance_box"]
    assert x0 <= (spot[1] + 1) / SIDE <= x1 and y0 <= (spot[0] + 1) / SIDE <= y1


def test_clusters_of_one_shortcut_are_merged_under_one_flag():
    rng = np.random.default_rng(7)
    # The tagged images are of three kinds (objects at three places), so SpRAy splits the tag into clusters.
    parts = [tagged(object_maps(15, rng, centre=c, sigma=1.5), (0, 0), rng, strength=2.0)
             for c in [(12, 4), (4, 12), (12, 12)]]
    maps = np.concatenate([*parts, object_maps(60, rng)])
    result = audit(maps)
    tag_clusters = {int(result["class"].labels[i]) for i in range(45)}
    assert len(tag_clusters) >= 2  # the premise: the tag is split
    flags = shortcut_flags(result)
    assert sorted(flags[0].clusters) == sorted(tag_clusters) and sorted(flags[0].members) == list(range(45))
    assert all(not set(f.clusters) & tag_clusters for f in flags[1:])


def test_two_honest_strategies_raise_no_flag():
    rng = np.random.default_rng(3)
    maps = np.concatenate([object_maps(50, rng, centre=(6, 8)), object_maps(50, rng, centre=(10, 8))])
    assert shortcut_flags(audit(maps)) == []
    below = shortcut_flags(audit(maps), keep_below=True)
    assert below and all(f.score < DEFAULT_THRESHOLD for f in below)


def test_the_score_is_scale_free():
    rng = np.random.default_rng(11)
    maps = object_maps(60, rng)
    maps[:20] = tagged(maps[:20], (1, 13), rng)
    base = shortcut_flags(audit(maps))[0].score
    rescaled = maps * rng.uniform(0.01, 100.0, (60, 1, 1)).astype(np.float32)
    assert shortcut_flags(audit(rescaled))[0].score == pytest.approx(base, abs=1e-5)
    finer = maps.repeat(2, axis=1).repeat(2, axis=2)  # the same maps at twice the resolution
    assert shortcut_flags(audit(finer))[0].score == pytest.approx(base, abs=0.05)


def test_flags_are_ranked_across_classes_and_serialise():
    rng = np.random.default_rng(5)
    strong = object_maps(60, rng)
    strong[:20] = tagged(strong[:20], (0, 0), rng, strength=8.0)
    weak = object_maps(60, rng)
    weak[:20] = tagged(weak[:20], (14, 14), rng, strength=1.5)
    both = {**audit(strong, "strong"), **audit(weak, "weak")}
    flags = shortcut_flags(both, threshold=0.0, keep_below=True)
    assert [f.score for f in flags] == sorted((f.score for f in flags), reverse=True)
    assert flags[0].cls == "strong"
    data = flags[0].to_json()
    assert data["class"] == "strong" and data["items"] == len(data["members"]) == 20
    with pytest.raises(CnnvizError, match="threshold"):
        shortcut_flags(both, threshold=2.0)
