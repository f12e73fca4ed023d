"""The training loop: optimizers, schedules, determinism, early stopping, atomic checkpoints, resume after kill -9."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from cnnviz import zoo
import cnnviz.zoo.train.loop as training
from cnnviz.cli.main import main
from tests.conftest import FASHION_DIR, REPO, assert_unchanged, state_snapshot, needs_fashion
from cnnviz.zoo.models import CnnSpec, cnn_handle
from cnnviz.zoo.data import Splits, TensorData, read_idx_split
from cnnviz.zoo.data.datasets import Augment, channel_stats, synthetic, write_idx
from cnnviz.zoo.core import CnnvizError
from cnnviz.zoo.train import (
    OPTIMIZERS, SCHEDULES, TrainConfig, evaluate, load_checkpoint, lr_range_test, make_optimizer, make_scheduler,
    save_atomic, train,
)

SMALL = {"channels": [8, 16], "dense": [32]}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These models are tiny: one thread beats two, and a busy machine hurts two far more."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def synth_splits(n_train=512, n_val=128, size=16, classes=4, augment=Augment(), labels_random=False):
    train_data = synthetic(n_train, size=size, classes=classes, seed=0)
    val_data = synthetic(n_val, size=size, classes=classes, seed=1)
    if labels_random:  # nothing to learn but memorization: validation loss must rise
        g = torch.Generator().manual_seed(0)
        train_data = TensorData(train_data.images, torch.randint(0, classes, (n_train,), generator=g))
        val_data = TensorData(val_data.images, torch.randint(0, classes, (n_val,), generator=g))
    mean, std = channel_stats(train_data.images)
    return Splits("synthetic", train_data, val_data, None, [str(i) for i in range(classes)], mean, std, augment)


def small_handle(splits, arch="tutorial_cnn", activation="relu", seed=0, device="cpu"):
    options = {"tutorial_cnn": SMALL, "small_resnet": {"widths": [8, 16, 32], "blocks": 1}}.get(arch, {})
    spec = CnnSpec(arch, activation=activation, in_channels=1, num_classes=len(splits.classes),
                   input_size=splits.input_size, options=options)
    return cnn_handle(spec, mean=splits.mean, std=splits.std, classes=splits.classes, seed=seed).to(device)


LRS = {"sgd": 0.1, "momentum": 0.03, "nesterov": 0.03, "adam": 3e-3, "adamw": 3e-3, "rmsprop": 1e-3,
       "adagrad": 0.03}


@pytest.mark.parametrize("model, labels", [
    (torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3)), (10,)),  # a classifier: a label per image
    (torch.nn.Conv2d(1, 3, 1), (10, 4, 4)),  # a segmenter: a label per pixel
])
def test_evaluate_is_the_mean_cross_entropy_and_accuracy_over_every_label(model, labels):
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (10, 1, 4, 4), dtype=torch.uint8, generator=generator)
    truth = torch.randint(0, 3, labels, generator=generator)
    result = evaluate(model, TensorData(images, truth), batch_size=4)  # batches of 4, 4 and 2
    with torch.no_grad():
        logits = model(images.float() / 255)  # the floats in [0, 1] that batches() gives
    assert result.loss == pytest.approx(torch.nn.functional.cross_entropy(logits, truth).item(), rel=1e-5)
    assert result.accuracy == pytest.approx((logits.argmax(1) == truth).double().mean().item())
    assert torch.equal(result.predictions, logits.argmax(1))


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_every_optimizer_makes_the_loss_fall(optimizer):
    splits = synth_splits()
    handle = small_handle(splits)
    before = evaluate(handle, splits.val).loss
    result = train(handle, splits, TrainConfig(epochs=2, batch_size=32, optimizer=optimizer, lr=LRS[optimizer],
                                               schedule="none"), progress=False)
    after = evaluate(handle, splits.val)
    assert after.loss < 0.7 * before and result.history[-1]["train_loss"] < result.history[0]["train_loss"] * 1.01
    assert after.accuracy > 0.6
    assert not handle.training  # handed back in eval mode


@pytest.mark.parametrize("arch", ["lenet5", "small_resnet"])
@pytest.mark.parametrize("activation", ["prelu", "gelu"])
def test_other_architectures_train(arch, activation):
    splits = synth_splits(n_train=512, size=28)
    handle = small_handle(splits, arch, activation)
    before = evaluate(handle, splits.val).loss
    train(handle, splits, TrainConfig(epochs=3, batch_size=32, lr=3e-3), progress=False)
    assert evaluate(handle, splits.val).loss < before


def _lrs(schedule, epochs=6, steps=10, **kw):
    model = torch.nn.Linear(2, 2)
    config = TrainConfig(schedule=schedule, epochs=epochs, lr=0.1, optimizer="momentum", **kw)
    opt = make_optimizer(model, config)
    sched, per_step = make_scheduler(opt, config, steps)
    rates = []
    for _ in range(epochs):
        for _ in range(steps):
            rates.append(opt.param_groups[0]["lr"])
            opt.step()
            if per_step:
                sched.step()
        if sched is not None and not per_step:
            sched.step(1.0) if schedule == "plateau" else sched.step()
    return rates


def test_schedules_shape_the_learning_rate():
    assert set(_lrs("none")) == {0.1}
    step = _lrs("step", step_size=2, gamma=0.5)
    assert step[0] == step[19] == 0.1 and step[20] == pytest.approx(0.05) and step[59] == pytest.approx(0.025)
    cosine = _lrs("cosine")
    assert cosine[0] == 0.1 and cosine[-1] < 0.001 and all(a >= b for a, b in zip(cosine, cosine[1:]))
    onecycle = _lrs("onecycle")
    peak = int(np.argmax(onecycle))
    assert onecycle[0] < 0.01 and onecycle[peak] == pytest.approx(0.1, rel=0.01) and onecycle[-1] < 1e-4
    assert 10 <= peak <= 20  # 25% of 60 steps warm-up
    plateau = _lrs("plateau", patience=1, gamma=0.5)  # a constant loss never improves
    assert plateau[0] == 0.1 and plateau[-1] < 0.1
    assert set(SCHEDULES) == {"none", "step", "cosine", "onecycle", "plateau"}


def test_weight_decay_spares_biases_and_batch_norm():
    handle = small_handle(synth_splits(n_train=64))
    opt = make_optimizer(handle.model, TrainConfig(weight_decay=0.01))
    decayed, spared = opt.param_groups
    assert decayed["weight_decay"] == 0.01 and all(p.ndim > 1 for p in decayed["params"])
    assert spared["weight_decay"] == 0.0 and all(p.ndim == 1 for p in spared["params"])


def test_bad_settings_are_one_line_errors():
    with pytest.raises(CnnvizError, match="did you mean 'adamw'"):
        TrainConfig(optimizer="adamww").validate()
    with pytest.raises(CnnvizError, match="did you mean 'cosine'"):
        TrainConfig(schedule="cosin").validate()
    with pytest.raises(CnnvizError, match="learning rate"):
        TrainConfig(lr=-1).validate()
    assert (TrainConfig().lr, TrainConfig().weight_decay) == (3e-3, 0.05)  # AdamW's usual values ...
    assert (TrainConfig(optimizer="nesterov").lr, TrainConfig(optimizer="nesterov").weight_decay) == (0.05, 5e-4)
    assert TrainConfig(optimizer="sgd", lr=0.2).lr == 0.2  # ... unless given
    splits = synth_splits(n_train=16)
    with pytest.raises(CnnvizError, match="fewer than one batch"):
        train(small_handle(splits), splits, TrainConfig(batch_size=64), progress=False)


def test_same_seed_same_run_and_history_fields():
    splits = synth_splits(augment=Augment(shift=0.1, hflip=True))
    config = TrainConfig(epochs=2, batch_size=32, lr=3e-3, label_smoothing=0.1)
    runs = []
    for _ in range(2):
        handle = small_handle(splits)
        runs.append((train(handle, splits, config, progress=False), handle))
    (a, ha), (b, hb) = runs
    assert [h["train_loss"] for h in a.history] == [h["train_loss"] for h in b.history]
    for pa, pb in zip(ha.parameters(), hb.parameters()):
        assert torch.equal(pa, pb)
    entry = a.history[-1]
    assert {"epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "grad_norm", "layer_grad_norms",
            "seconds"} <= set(entry)
    assert "features.block1.conv" in entry["layer_grad_norms"] and entry["grad_norm"] > 0


def test_early_stopping_restores_the_best_weights():
    splits = synth_splits(n_train=128, n_val=128, labels_random=True)
    handle = small_handle(splits)
    config = TrainConfig(epochs=30, batch_size=16, lr=1e-2, schedule="none", early_stopping=2, augment=False,
                         weight_decay=0.0)
    result = train(handle, splits, config, progress=False)
    assert result.stopped_early and len(result.history) < 30
    assert len(result.history) - result.best_epoch == 2
    best = result.history[result.best_epoch - 1]["val_loss"]
    assert best == min(h["val_loss"] for h in result.history)
    restored = evaluate(handle, splits.val, label_smoothing=config.label_smoothing).loss
    assert result.restored_best and restored == pytest.approx(best, rel=1e-5)


def test_checkpoint_holds_the_full_state_and_is_written_atomically(tmp_path, monkeypatch):
    splits = synth_splits(n_train=128)
    path = tmp_path / "run.pt"
    config = TrainConfig(epochs=1, batch_size=32, lr=3e-3, schedule="onecycle")
    train(small_handle(splits), splits, config, checkpoint=path, progress=False, extra={"note": "hi"})
    state = load_checkpoint(path)
    assert {"model", "optimizer", "scheduler", "scaler", "rng", "epoch", "history", "best", "config",
            "extra"} <= set(state)
    assert state["epoch"] == 1 and state["extra"] == {"note": "hi"} and len(state["history"]) == 1
    good = path.read_bytes()
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(CnnvizError, match="not a cnnviz training checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    (tmp_path / "other.pt").unlink()

    def dies_half_way(obj, handle, *args, **kwargs):
        handle.write(b"partial checkpoint bytes")
        raise OSError("disk full")

    monkeypatch.setattr(training.torch, "save", dies_half_way)
    with pytest.raises(OSError):
        save_atomic({"epoch": 2}, path)
    assert path.read_bytes() == good  # the old checkpoint is intact ...
    assert [p.name for p in tmp_path.iterdir()] == ["run.pt"]  # ... and no partial file is left
    (tmp_path / "junk.pt").write_bytes(good[:len(good) // 2])  # what a non-atomic write killed half-way leaves
    with pytest.raises(CnnvizError, match="cannot read checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")


def test_resume_after_an_interruption_equals_an_uninterrupted_run(tmp_path, monkeypatch):
    splits = synth_splits(augment=Augment(shift=0.1))
    config = TrainConfig(epochs=3, batch_size=32, lr=3e-3)
    reference = small_handle(splits)
    expected = train(reference, splits, config, progress=False)

    real_batches = training.batches
    epochs_started = [0]

    def interrupted(*args, **kwargs):
        epochs_started[0] += bool(kwargs.get("shuffle"))  # validation batches are not shuffled
        for i, batch in enumerate(real_batches(*args, **kwargs)):
            if kwargs.get("shuffle") and epochs_started[0] == 3 and i == 5:
                raise KeyboardInterrupt  # dies in the middle of the third epoch
            yield batch

    monkeypatch.setattr(training, "batches", interrupted)
    path = tmp_path / "ckpt.pt"
    with pytest.raises(KeyboardInterrupt):
        train(small_handle(splits), splits, config, checkpoint=path, progress=False)
    assert load_checkpoint(path)["epoch"] == 2
    monkeypatch.setattr(training, "batches", real_batches)
    resumed_handle = small_handle(splits, seed=99)  # whatever the fresh weights, the checkpoint replaces them
    resumed = train(resumed_handle, splits, config, checkpoint=path, resume=True, progress=False)
    assert [h["val_loss"] for h in resumed.history] == [h["val_loss"] for h in expected.history]
    for a, b in zip(reference.parameters(), resumed_handle.parameters()):
        assert torch.equal(a, b)
    with pytest.raises(CnnvizError, match="other settings"):
        train(small_handle(splits), splits, TrainConfig(epochs=4, batch_size=32, lr=3e-3), checkpoint=path,
              resume=True, progress=False)


def test_lr_range_test_leaves_the_model_alone():
    splits = synth_splits()
    handle = small_handle(splits).train()
    before = state_snapshot(handle)
    found = lr_range_test(handle, splits, TrainConfig(batch_size=32), start_lr=1e-5, end_lr=10, steps=60,
                          progress=False)
    assert_unchanged(before, handle)
    assert all(a < b for a, b in zip(found.lrs, found.lrs[1:])) and found.lrs[0] == pytest.approx(1e-5)
    assert len(found.losses) == len(found.lrs) == len(found.smoothed) >= 10
    assert 1e-5 <= found.suggestion <= found.best_lr / 9.99
    assert min(found.smoothed) < found.smoothed[0]  # the loss did fall somewhere on the way
    with pytest.raises(CnnvizError):
        lr_range_test(handle, splits, TrainConfig(), start_lr=1.0, end_lr=0.1)


def _write_synthetic_idx(directory: Path, n_train: int = 1200, n_test: int = 200) -> Path:
    for split, n, seed in (("train", n_train, 0), ("t10k", n_test, 1)):
        data = synthetic(n, size=28, classes=4, seed=seed)
        write_idx(directory / f"{split}-images-idx3-ubyte.gz", data.images[:, 0].numpy())
        write_idx(directory / f"{split}-labels-idx1-ubyte.gz", data.labels.numpy().astype(np.uint8))
    return directory


def test_cli_train_writes_weights_log_curves_and_loads_back(tmp_path, capsys):
    data = _write_synthetic_idx(tmp_path / "data", n_train=400, n_test=100)
    out = tmp_path / "out"
    code = main(["train", "--data", str(data), "--channels", "8,16", "--dense", "32", "--epochs", "2",
                 "--batch-size", "32", "--out", str(out), "--name", "toy", "--quiet", "--diagnostics",
                 "--threads", "1"])
    assert code == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["toy-activations.png", "toy-confusion.png", "toy-curves.png", "toy-gradients.png",
                     "toy-log.json", "toy.pt"]  # the checkpoint is gone after a finished run
    log = json.loads((out / "toy-log.json").read_text())
    assert log["test"]["split"] == "test" and log["test"]["accuracy"] > 0.5
    assert log["command"].startswith("cnnviz train --model tutorial_cnn") and len(log["history"]) == 2
    assert np.array(log["confusion_matrix"]).sum() == 100
    from cnnviz.zoo.train import handle_from_log
    handle = handle_from_log(log, out / "toy.pt", "toy")
    with torch.no_grad():
        assert handle(torch.rand(2, 1, 28, 28)).shape == (2, 4)
    assert "accuracy" in capsys.readouterr().out


def test_cli_bad_input_is_one_line_exit_2(tmp_path, capsys):
    assert main(["train", "--optimizer", "adamm", "--data", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "did you mean 'adam'" in err
    assert main(["train", "--model", "lenet5", "--channels", "8", "--data", str(_write_synthetic_idx(
        tmp_path / "d", 64, 16)), "--out", str(tmp_path / "o")]) == 2
    assert "tutorial_cnn only" in capsys.readouterr().err
    assert main(["train", "--resume", "--out", str(tmp_path / "nothing")]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--help"])
    assert exit_info.value.code == 0 and "examples:" in capsys.readouterr().out


def test_cli_lr_find(tmp_path, capsys):
    data = _write_synthetic_idx(tmp_path / "data", n_train=400, n_test=10)
    assert main(["lr-find", "--data", str(data), "--channels", "8,16", "--dense", "32", "--batch-size", "32",
                 "--steps", "30", "--out", str(tmp_path), "--quiet"]) == 0
    assert (tmp_path / "lr-find.png").stat().st_size > 1000
    assert "suggested --lr" in capsys.readouterr().out


def test_cli_lr_find_writes_a_vector_chart(tmp_path, capsys):
    data = _write_synthetic_idx(tmp_path / "data", n_train=200, n_test=10)
    out = tmp_path / "out"
    assert main(["lr-find", "--data", str(data), "--channels", "8", "--dense", "16", "--batch-size", "32",
                 "--steps", "8", "--out", str(out), "--quiet", "--format", "pdf"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["lr-find.pdf"]
    assert (out / "lr-find.pdf").read_bytes().startswith(b"%PDF")
    with pytest.raises(SystemExit) as refused:
        main(["lr-find", "--data", str(data), "--out", str(out), "--format", "gif"])
    assert refused.value.code == 2 and "invalid choice: 'gif'" in capsys.readouterr().err


@pytest.mark.slow
def test_kill_9_mid_epoch_then_resume_matches_an_uninterrupted_run(tmp_path):
    data = _write_synthetic_idx(tmp_path / "data", n_train=3000, n_test=400)
    common = [sys.executable, "-m", "cnnviz.cli.main", "train", "--data", str(data), "--channels", "8,16", "--dense", "32",
              "--epochs", "4", "--batch-size", "32", "--lr", "0.003", "--quiet", "--threads", "1"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    def run(out, *extra):
        subprocess.run([*common, "--out", str(out), *extra], check=True, cwd=REPO, env=env, capture_output=True)
        return json.loads((out / "tutorial_cnn-log.json").read_text())

    uninterrupted = run(tmp_path / "a")
    killed_dir = tmp_path / "b"
    process = subprocess.Popen([*common, "--out", str(killed_dir)], cwd=REPO, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = killed_dir / "tutorial_cnn-checkpoint.pt"
    deadline = time.time() + 120
    while time.time() < deadline and not checkpoint.exists():  # epoch 1 done ...
        time.sleep(0.05)
    epoch_seconds = load_checkpoint(checkpoint)["history"][0]["seconds"]
    time.sleep(epoch_seconds / 2)  # ... and half-way through epoch 2
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    assert not (killed_dir / "tutorial_cnn-log.json").exists()
    done = load_checkpoint(checkpoint)["epoch"]
    assert 1 <= done < 4
    resumed = run(killed_dir, "--resume")
    assert abs(resumed["test"]["accuracy"] - uninterrupted["test"]["accuracy"]) <= 0.005
    assert [h["val_loss"] for h in resumed["history"]] == pytest.approx(
        [h["val_loss"] for h in uninterrupted["history"]], rel=1e-6)


@needs_fashion
def test_real_fashion_mnist_subset_trains():
    from cnnviz.zoo.data import load_dataset

    full = load_dataset("fashion-mnist", val_fraction=0.1, seed=0)
    splits = Splits(full.name, full.train.subset(slice(0, 4000)), full.val.subset(slice(0, 1000)), None,
                    full.classes, full.mean, full.std, full.augment)
    spec = CnnSpec("tutorial_cnn", options={"channels": [16, 32, 64], "dense": [64]})
    handle = cnn_handle(spec, mean=splits.mean, std=splits.std, classes=splits.classes, seed=0)
    result = train(handle, splits, TrainConfig(epochs=3, batch_size=64), progress=False)
    assert result.history[-1]["val_acc"] > 0.72  # ten classes: chance is 0.1
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


@needs_fashion
def test_shipped_fashion_cnn_reaches_93_percent():
    handle = zoo.load("fashion_cnn", device="cpu")
    test = read_idx_split(FASHION_DIR, "t10k")
    result = evaluate(handle, test)
    assert result.accuracy >= 0.93
    log = json.loads((REPO / "cnnviz" / "zoo" / "weights" / "fashion_cnn-log.json").read_text())
    assert log["test"]["accuracy"] == pytest.approx(result.accuracy, abs=5e-4)  # NHWC vs NCHW rounding


@pytest.mark.gpu
def test_mixed_precision_training_on_cuda():
    splits = synth_splits()
    handle = small_handle(splits, device="cuda")
    before = evaluate(handle, splits.val).loss
    train(handle, splits, TrainConfig(epochs=2, batch_size=32, lr=3e-3, amp=True), progress=False)
    assert evaluate(handle, splits.val, amp=True).loss < before


def test_the_runner_refuses_a_resume_that_asks_for_other_settings(tmp_path):
    from cnnviz.zoo.train import CHECKPOINT_FORMAT, ClassifierRequest, RunFiles, plan_classifier

    files = RunFiles(tmp_path, "toy")
    stored = TrainConfig(epochs=2, lr=0.01)
    data = {"source": "fashion-mnist", "data_dir": None, "val_fraction": 0.1, "image_size": 32}
    save_atomic({"format": CHECKPOINT_FORMAT, "config": stored.as_dict(),
                 "extra": {"data": data, "spec": CnnSpec("tutorial_cnn").as_dict()}}, files.checkpoint)
    for asked, said in [({"config": {"epochs": 3}}, "epochs=2, not 3"),
                        ({"config": {"lr": 0.1}}, "lr=0.01, not 0.1"),
                        ({"data": {"val_fraction": 0.2}}, "val_fraction=0.1, not 0.2")]:
        with pytest.raises(CnnvizError, match=f"trained with {said}"):
            plan_classifier(ClassifierRequest(files, resume=True, **asked))
    with pytest.raises(CnnvizError, match="holds an unfinished run: add --resume"):
        plan_classifier(ClassifierRequest(files, config={"epochs": 2}))
