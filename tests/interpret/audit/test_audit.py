"""The audit over a tiny data set: its maps are the registered method's, it resumes after a kill to the same
audit.json, refuses another model's run folder, and leaves the model and the random generators as found."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cnnviz import interpret
from cnnviz.interpret.audit import AuditRun, Items, load
from cnnviz.zoo import CnnvizError
from tests.conftest import assert_unchanged, state_snapshot
from tests.interpret.inside.test_receptive_field import one_thread  # noqa: F401  (autouse: one intra-op thread)

SETTINGS = {"chunk": 8, "concepts": 0, "map_size": 14}


@pytest.fixture(scope="module")
def data() -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.rand(20, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    return images, torch.arange(20) % 3


@pytest.fixture(scope="module")
def finished(fashion, data, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("audit")
    before, rng, np_rng = state_snapshot(fashion.model), torch.get_rng_state(), np.random.get_state()[1].copy()
    found = interpret.audit(fashion, data, workdir=workdir, **SETTINGS)
    assert_unchanged(before, fashion.model)
    assert torch.equal(torch.get_rng_state(), rng) and np.array_equal(np.random.get_state()[1], np_rng)
    return workdir, found


def test_maps_are_the_methods_maps_for_the_true_class_downsized(fashion, data, finished):
    workdir, found = finished
    images, labels = data
    method = interpret.get_method(interpret.audit.DEFAULT_METHOD)  # input x gradient, one map channel
    direct = method.fn(fashion, images, labels.tolist())
    expected = F.adaptive_avg_pool2d(direct, (14, 14))[:, 0].numpy()
    read = load(workdir)
    assert read.maps.shape == (20, 14, 14) and read.map_size == (14, 14)
    np.testing.assert_allclose(np.asarray(read.maps), expected, rtol=1e-4, atol=1e-6)
    assert read.map(7).tolist() == np.asarray(read.maps[7]).tolist()


def test_items_and_summary_agree_with_the_model(fashion, data, finished):
    workdir, found = finished
    images, labels = data
    with torch.no_grad():
        probs = fashion(images).softmax(-1)
    items = load(workdir).items
    assert items.ids == list(range(20))
    assert items.predicted == [fashion.classes[k] for k in probs.argmax(-1).tolist()]
    assert items.label == [fashion.classes[k] for k in labels.tolist()]
    np.testing.assert_allclose(items.confidence, probs.max(-1).values.numpy(), rtol=1e-5)
    assert found.overall["accuracy"] == pytest.approx(items.correct.mean())
    assert np.asarray(found.confusion["matrix"]).sum() == 20
    assert sorted(found.classes) == sorted(fashion.classes[k] for k in range(3))
    assert found.to_json() == json.loads((workdir / "audit.json").read_text())
    assert Items.from_json(items.to_json()).ids == items.ids


def test_a_killed_audit_resumes_to_the_same_audit_json(fashion, data, finished, tmp_path, monkeypatch):
    workdir, _ = finished
    run = AuditRun(fashion, data, workdir=tmp_path / "run", **SETTINGS)
    run.step()  # chunk 0 done
    real = run.folder.write_chunk

    def killed(chunk, *args):  # the maps reach maps.npy, the kill comes before the chunk's record
        monkeypatch.setattr("cnnviz.interpret.audit.run.atomic_write", _raise)
        real(chunk, *args)

    run.folder.write_chunk = killed
    with pytest.raises(KeyboardInterrupt):
        run.step()
    monkeypatch.undo()
    resumed = AuditRun(fashion, data, workdir=tmp_path / "run", **SETTINGS)
    assert resumed.done == 1 and resumed.todo == [1, 2]
    list(resumed.steps())
    assert (tmp_path / "run" / "audit.json").read_bytes() == (workdir / "audit.json").read_bytes()
    assert np.array_equal(np.load(tmp_path / "run" / "maps.npy"), np.load(workdir / "maps.npy"))
    again = AuditRun(fashion, data, workdir=tmp_path / "run", **SETTINGS)  # finished: nothing left to do
    assert again.result is not None and again.step().finished


def _raise(*args, **kwargs):
    raise KeyboardInterrupt


def test_a_run_folder_of_another_model_or_method_is_refused(fashion, data, finished):
    workdir, _ = finished
    other = copy.deepcopy(fashion)
    with torch.no_grad():
        next(other.model.parameters()).add_(0.01)
    before = sorted((p.name, p.stat().st_mtime_ns) for p in workdir.rglob("*"))
    with pytest.raises(CnnvizError, match="another model .*other weights"):
        AuditRun(other, data, workdir=workdir, **SETTINGS)
    with pytest.raises(CnnvizError, match="method captum:InputXGradient, not gradient"):
        AuditRun(fashion, data, workdir=workdir, method="gradient", **SETTINGS)
    assert sorted((p.name, p.stat().st_mtime_ns) for p in workdir.rglob("*")) == before


@pytest.mark.parametrize("labels, message", [(torch.zeros(20, dtype=torch.long), "one class only"),
                                             (torch.arange(20) + 5, "labels from 5 to 24")])
def test_bad_labels_are_refused_before_anything_is_written(fashion, data, tmp_path, labels, message):
    with pytest.raises(CnnvizError, match=message):
        AuditRun(fashion, (data[0], labels), workdir=tmp_path / "run", **SETTINGS)
    with pytest.raises(CnnvizError, match="empty"):
        AuditRun(fashion, (data[0][:0], labels[:0]), workdir=tmp_path / "run", **SETTINGS)
    with pytest.raises(CnnvizError, match="no-such-layer"):
        AuditRun(fashion, data, workdir=tmp_path / "run", layer="no-such-layer", **SETTINGS)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("setting, words", [({"bins": 0}, "bins must be at least 1"),
                                            ({"threshold": 1.5}, "threshold must be between 0 and 1"),
                                            ({"concepts": -1}, "concepts must be at least 0"),
                                            ({"chunk": 0}, "chunk must be at least 1")])
def test_settings_out_of_range_are_one_line_before_anything_is_written(fashion, data, tmp_path, setting, words):
    with pytest.raises(CnnvizError, match=words) as caught:
        AuditRun(fashion, data, workdir=tmp_path / "run", **{**SETTINGS, **setting})
    assert len(str(caught.value).splitlines()) == 1 and not (tmp_path / "run").exists()


def test_a_folder_of_other_files_is_not_taken_for_a_run_folder(fashion, data, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(CnnvizError, match="folder of other files"):
        AuditRun(fashion, data, workdir=tmp_path, **SETTINGS)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
