"""Training pages: the charts of a model's shipped training log."""

from __future__ import annotations

import importlib

from cnnviz.gallery.cards import Card, Output, Page, slug
from cnnviz.gallery.context import Context

TRAINING_LOGS = {"fashion_cnn": "cnnviz.zoo.catalog:fashion_log_path"}  # models that ship a training log


def training_page(model: str) -> Page:
    """The page of a model's training log."""
    return Page(slug(f"training-{model}"), f"training {model}", "training",
                f"How {model} was trained: curves per epoch, the confusion matrix on the test set, gradient "
                "norms per layer and activation sparsity, from the training log that ships with it.")


def training_cards(ctx: Context, model: str) -> list[Card]:
    """Curves and diagnostics from a shipped training log (only models in ``TRAINING_LOGS``)."""
    if model not in TRAINING_LOGS:
        return []
    module_name, function = TRAINING_LOGS[model].split(":")
    path = getattr(importlib.import_module(module_name), function)()
    from cnnviz.interpret.views import to_array, training_report
    from cnnviz.zoo.train import TrainingLog

    log = TrainingLog.read(path)
    page = training_page(model).slug
    params = {"model": model, "log": path.name, "command": log.command}
    figures = training_report(log, title=f"{model} on {log.dataset.name}")

    def curves() -> Output:
        return Output([("loss and accuracy per epoch", to_array(figures["curves"]))],
                      {"epochs": len(log.history), "best epoch": log.best_epoch,
                       "test accuracy": f"{log.test.accuracy:.2%}", "training seconds": log.train_seconds,
                       "trained on": log.environment.get("device", "?")},
                      "Training against validation; a shaded region would mark overfitting.")

    def confusion() -> Output:
        return Output([("test set", to_array(figures["confusion"]))],
                      {"test images": int(sum(map(sum, log.confusion_matrix)))},
                      "Rows: true class; columns: predicted class.")

    def gradients() -> Output:
        return Output([("last epoch", to_array(figures["gradients"]))], {},
                      "Gradient norm of each layer's parameters: vanishing or exploding gradients show here.")

    def activations() -> Output:
        return Output([("activations", to_array(figures["activations"]))], {},
                      "Share of zero outputs and of units never active on the test set (dead ReLUs).")

    drawn = {"curves": (curves, "training curves", "Training"), "confusion": (confusion, "confusion matrix", "Diagnostics"),
             "gradients": (gradients, "gradient norms", "Diagnostics"),
             "activations": (activations, "activation sparsity", "Diagnostics")}
    return [Card(page, kind, drawn[kind][1], "training_report", {**params, "chart": kind}, drawn[kind][0],
                 drawn[kind][2]) for kind in figures]
