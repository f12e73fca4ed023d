"""Evaluation over many images: batched records, maps from files, and gloo shards that equal one process."""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
from PIL import Image

from cnnviz import interpret
from cnnviz import zoo
from cnnviz.interpret.evaluate.scoring import (
    EvaluationOptions,
    Record,
    evaluate_images,
    file_maker,
    method_maker,
    random_maker,
    summary_rows,
)
from tests.conftest import TinyCNN
from tests.interpret.inside.test_atlas_distributed import free_port, run_processes
from cnnviz.zoo.core import CnnvizError

METRICS = ("deletion_black", "deletion_blur", "deletion_mean", "insertion", "road", "infidelity", "sensitivity", "randomization", "gini", "entropy")
OPTIONS = EvaluationOptions(steps=4, fractions=(0.3, 0.6), samples=2, randomize=2, batch_size=64)


def tiny_handle() -> zoo.ModelHandle:
    torch.manual_seed(0)
    return zoo.wrap(TinyCNN(), input_size=16, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3))


def image_folder(root: Path, count: int = 7) -> Path:
    folder = root / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(folder / f"img{i:02d}.png")
    return folder


def makers() -> dict:
    return {"random": random_maker(), "saliency": method_maker(interpret.attribution.saliency)}


def test_batches_do_not_change_the_records(tmp_path):
    folder = image_folder(tmp_path)
    handle = tiny_handle()
    before = torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()
    small = evaluate_images(handle, [folder], makers(), metrics=METRICS, options=OPTIONS, batch_size=2, progress=False)
    assert torch.equal(before[0], torch.get_rng_state()) and np.array_equal(before[1], np.random.get_state()[1])
    assert before[2] == random.getstate()  # every metric draws from its own generators
    whole = evaluate_images(handle, [folder], makers(), metrics=METRICS, options=OPTIONS, batch_size=7, progress=False)
    assert [(r.index, r.method) for r in small] == [(i, m) for i in range(7) for m in ("random", "saliency")]
    for a, b in zip(small, whole):  # the per-image draws (random maps) do not depend on the batching
        assert a.scores["deletion_black"] == pytest.approx(b.scores["deletion_black"], abs=1e-6)
        assert a.scores["gini"] == pytest.approx(b.scores["gini"], abs=1e-6)  # float32 maps, other batches
    assert all(math.isnan(r.scores["spearman_top"]) and "random map" in r.notes["spearman_top"]
               for r in small if r.method == "random")
    rows = summary_rows(small, resamples=200)
    deletion = next(r for r in rows if r["method"] == "saliency" and r["metric"] == "deletion_black")
    assert deletion["count"] == 7 and deletion["low"] <= deletion["mean"] <= deletion["high"]
    assert deletion["vs_baseline_low"] <= deletion["vs_baseline_mean"] <= deletion["vs_baseline_high"]


def test_maps_from_files_score_like_the_method(tmp_path):
    folder = image_folder(tmp_path, 3)
    handle = tiny_handle()
    images = handle.prepare([image for _, image in zoo.load_images(folder)])
    maps = interpret.saliency(handle, images)
    paths = [zoo.save_array(tmp_path / f"map{i}.npy", maps[i]) for i in range(3)]
    chosen = ("deletion_black", "road", "gini", "sensitivity")
    computed = evaluate_images(handle, [folder], {"saliency": method_maker(interpret.attribution.saliency)}, metrics=chosen,
                               options=OPTIONS, progress=False)
    read = evaluate_images(handle, [folder], {"files": file_maker(paths)}, metrics=chosen, options=OPTIONS,
                           progress=False)
    for a, b in zip(computed, read):
        for name in ("deletion_black", "road", "gini"):
            assert a.scores[name] == pytest.approx(b.scores[name], abs=1e-6)
        assert math.isnan(b.scores["sensitivity"]) and "files" in b.notes["sensitivity"]


def test_the_summary_pairs_each_image_with_the_baseline_and_reads_the_better_side():
    base = np.random.default_rng(4).uniform(0.3, 0.7, size=12)
    shift = np.linspace(0.05, 0.15, 12)  # the method lowers every curve: a better deletion, a worse insertion
    records = [Record(i, f"im{i}", method, 0, 1.0, {"deletion_black": value, "insertion": value, "gini": value})
               for method, values in (("random", base), ("method", base - shift)) for i, value in enumerate(values)]
    records[-1].scores["gini"] = math.nan  # an undefined score is counted, not averaged
    rows = {(r["method"], r["metric"]): r for r in summary_rows(records, resamples=500)}
    for metric in ("deletion_black", "insertion"):
        row = rows["method", metric]
        scores = base - shift
        assert row["mean"] == pytest.approx(scores.mean()) and row["std"] == pytest.approx(scores.std(ddof=1))
        assert row["vs_baseline_mean"] == pytest.approx(-shift.mean())  # paired: the mean of the differences
        assert -0.15 <= row["vs_baseline_low"] <= -shift.mean() <= row["vs_baseline_high"] <= -0.05
    assert rows["method", "deletion_black"]["beats_baseline"] is True  # lower deletion is better
    assert rows["method", "insertion"]["beats_baseline"] is False  # lower insertion is worse
    assert rows["method", "gini"]["beats_baseline"] is None and rows["method", "gini"]["undefined"] == 1
    assert "vs_baseline_mean" not in rows["random", "deletion_black"]


def test_unknown_metric_and_options_out_of_range_are_refused(tmp_path):
    with pytest.raises(CnnvizError, match="unknown metric 'rod'"):
        evaluate_images(tiny_handle(), [image_folder(tmp_path, 1)], makers(), metrics=("rod",), progress=False)
    with pytest.raises(CnnvizError, match="samples must be at least 1, got 0"):
        EvaluationOptions(samples=0)
    with pytest.raises(CnnvizError, match="steps must be at least 2"):
        EvaluationOptions(steps=1)


def _rank(rank: int, world: int, port: int, folder: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        records = evaluate_images(tiny_handle(), [folder], makers(), metrics=METRICS, options=OPTIONS, batch_size=2,
                                  progress=False)
        torch.save([(r.index, r.method, r.scores, r.curves) for r in records], Path(out) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs gloo")
def test_three_gloo_processes_equal_one(tmp_path):
    folder = image_folder(tmp_path)
    single = evaluate_images(tiny_handle(), [folder], makers(), metrics=METRICS, options=OPTIONS, batch_size=2,
                             progress=False)
    expected = [(r.index, r.method, r.scores, r.curves) for r in single]
    run_processes(_rank, (3, free_port(), str(folder), str(tmp_path)), 3)
    for rank in range(3):  # 7 images in batches of 2: 4 batches over 3 ranks, merged on every rank
        merged = torch.load(tmp_path / f"rank{rank}.pt")
        assert [m[:2] for m in merged] == [e[:2] for e in expected]
        for got, want in zip(merged, expected):
            assert got[2].keys() == want[2].keys()
            for name, value in want[2].items():
                assert (math.isnan(value) and math.isnan(got[2][name])) or got[2][name] == value, (got[:2], name)
            assert got[3] == want[3]
