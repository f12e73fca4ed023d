"""Relevance maximization: the atlas ranked by each channel's relevance share equals a brute-force ranking built from
concept_relevance image by image, differs from the activation ranking, and shards like the activation atlas."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from cnnviz import interpret
from cnnviz import zoo
from tests.conftest import assert_unchanged, state_snapshot
from tests.interpret.inside.test_receptive_field import one_thread  # noqa: F401  (autouse: one intra-op thread)
from cnnviz.zoo.core import CnnvizError

LAYER = "features.block2"  # 64 channels at 7 x 7
TOP = 3


@pytest.fixture(scope="module")
def garments(fashion_mnist) -> torch.Tensor:
    """A few Fashion-MNIST test images (the model's own data, so its predictions vary)."""
    from cnnviz.zoo.data import open_dataset

    dataset = open_dataset(fashion_mnist)
    return torch.stack([dataset[i] for i in range(12)])


def brute_force(handle: zoo.ModelHandle, images: torch.Tensor, backend: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Each image alone through concept_relevance with every channel listed; then per channel the top-k images."""
    shares = torch.cat([interpret.concept_relevance(handle, image[None], None, layer=LAYER, channels=range(64),
                                                    backend=backend).shares for image in images])  # (N, 64)
    best = shares.T.topk(TOP, dim=1)
    return best.values, best.indices


@pytest.mark.parametrize("backend", ["lrp", "gradient"])
def test_the_atlas_by_relevance_equals_concept_relevance_image_by_image(fashion, garments, backend):
    before = state_snapshot(fashion)
    atlas = interpret.neuron_atlas(fashion, LAYER, garments, top=TOP, bottom=0, batch_size=5, progress=False,
                                   score=interpret.relevance_ranking(fashion, LAYER, backend=backend),
                                   ranked_by="relevance")
    assert_unchanged(before, fashion)
    values, indices = brute_force(fashion, garments, backend)
    torch.testing.assert_close(atlas.top_values, values, atol=1e-6, rtol=1e-4)
    assert torch.equal(atlas.top_indices, indices)
    assert atlas.ranked_by == "relevance" and atlas.to_dict()["channels"][0]["top"][0]["relevance"] == \
        pytest.approx(float(values[0, 0]))
    assert ((atlas.top_positions >= 0) & (atlas.top_positions < 7)).all()

    by_activation = interpret.neuron_atlas(fashion, LAYER, garments, top=TOP, bottom=0, progress=False)
    assert by_activation.ranked_by == "activation"
    assert not torch.equal(by_activation.top_indices, atlas.top_indices)  # used is not the same as excited


def test_the_ranked_unit_is_the_one_receiving_the_most_relevance(fashion, garments):
    units = interpret.layer_relevance(fashion, garments[:4], layer=LAYER)  # (4, 64, 7, 7)
    shares, positions = interpret.relevance_ranking(fashion, LAYER)(garments[:4])
    assert torch.equal(positions, units.flatten(2).argmax(-1))
    torch.testing.assert_close(shares.abs().sum(1), torch.ones(4))


def test_bad_choices_are_refused_before_any_data_is_read(fashion):
    for options, message in [({"backend": "shap"}, "unknown concept backend 'shap'"),
                              ({"composite": "zplus"}, "unknown LRP composite 'zplus'")]:
        with pytest.raises(CnnvizError, match=message):
            interpret.relevance_ranking(fashion, LAYER, **options)
    with pytest.raises(CnnvizError, match="features.block2"):
        interpret.relevance_ranking(fashion, "features.blok2")


def _rank(rank: int, world: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        handle = zoo.load("fashion_cnn", device="cpu")
        images = torch.rand(10, 1, 28, 28, generator=torch.Generator().manual_seed(4))
        atlas = interpret.neuron_atlas(handle, LAYER, images, top=TOP, bottom=2, batch_size=2, progress=False,
                                       score=interpret.relevance_ranking(handle, LAYER), ranked_by="relevance")
        torch.save({"top": atlas.top_indices, "values": atlas.top_values, "bottom": atlas.bottom_indices},
                   Path(out) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="no gloo")
def test_two_gloo_processes_rank_by_relevance_exactly_as_one(fashion, tmp_path):
    from tests.interpret.inside.test_atlas_distributed import free_port, run_processes

    run_processes(_rank, (2, free_port(), str(tmp_path)), nprocs=2)
    images = torch.rand(10, 1, 28, 28, generator=torch.Generator().manual_seed(4))
    single = interpret.neuron_atlas(fashion, LAYER, images, top=TOP, bottom=2, batch_size=2, progress=False,
                                    score=interpret.relevance_ranking(fashion, LAYER), ranked_by="relevance")
    for rank in range(2):
        shard = torch.load(tmp_path / f"rank{rank}.pt")
        assert torch.equal(shard["top"], single.top_indices) and torch.equal(shard["bottom"], single.bottom_indices)
        torch.testing.assert_close(shard["values"], single.top_values, atol=1e-6, rtol=1e-5)


def test_cnnviz_atlas_by_relevance_writes_the_same_ranking(fashion, garments, tmp_path, capsys):
    import json

    from PIL import Image

    from cnnviz.cli.main import main

    folder = tmp_path / "garments"
    folder.mkdir()
    for i, image in enumerate(garments[:8]):
        Image.fromarray((image[0] * 255).round().byte().numpy()).save(folder / f"g{i}.png")
    assert main(["atlas", "--model", "fashion_cnn", "--layer", LAYER, "--data", str(folder), "--by", "relevance",
                 "--target", "Coat", "--top", "2", "--no-images", "--device", "cpu", "--out", str(tmp_path / "out")]) == 0
    assert "by relevance" in capsys.readouterr().out
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    from cnnviz.zoo.data import open_dataset

    images = torch.stack([open_dataset(str(folder))[i] for i in range(8)])
    expected = interpret.neuron_atlas(fashion, LAYER, images, top=2, progress=False, ranked_by="relevance",
                                      score=interpret.relevance_ranking(fashion, LAYER, interpret.class_index(
                                          fashion, "Coat")))
    assert index["ranked_by"] == "relevance"
    assert [[e["index"] for e in c["top"]] for c in index["channels"]] == expected.top_indices.tolist()
