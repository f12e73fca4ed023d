"""Feeding a dataset to a model: batches prepared as ``handle.prepare`` would, built ahead in a thread
or in loader processes while the model computes."""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from cnnviz.zoo.core import CnnvizError
from cnnviz.zoo.handle import ModelHandle, match_channels
from cnnviz.zoo.data import TensorImages, as_image


class Preparer:
    """Turns dataset items into a model-ready CPU batch; a picklable DataLoader ``collate_fn``.

    Images already at the model's input size are used as they are (a
    dataset made for the model, like Fashion-MNIST for a 28 px CNN); others
    go through a CPU copy of the handle's own preprocessing (a handle around
    ``nn.Identity`` with the same input and resize sizes), so loader workers
    resize exactly as ``handle.prepare`` does: with ``crop=False`` the whole image is resized to the square
    (network dissection then maps the layer's maps back onto the whole image's masks).
    """

    def __init__(self, handle: ModelHandle, *, crop: bool = True) -> None:
        channels = handle.in_channels
        self.crop = crop
        self.shape = (channels, handle.input_size, handle.input_size)
        self.resizer = ModelHandle(nn.Identity(), name="prepare", input_size=handle.input_size,
                                   mean=[0.0] * channels, std=[1.0] * channels, resize_size=handle.resize_size)

    def __call__(self, items: torch.Tensor | list[Any]) -> torch.Tensor:
        if isinstance(items, torch.Tensor) and tuple(items.shape[1:]) == self.shape:
            return items.float()  # a ready batch: nothing to do, in one piece
        images = [match_channels(im.float(), self.shape[0]) for im in items] if isinstance(items, torch.Tensor) \
            else [match_channels(as_image(item), self.shape[0]) for item in items]
        return torch.stack([im if tuple(im.shape) == self.shape else self.resizer.prepare(im, crop=self.crop)[0]
                            for im in images])


def prefetch(items: Iterable[Any], depth: int = 2) -> Iterator[Any]:
    """``items``, produced by a background thread up to ``depth`` ahead.

    Decoding and collating release the GIL for long stretches, so the next
    batch is built while the model computes on this one. An error in the
    thread is raised here; leaving the loop early stops the thread.
    """
    buffer: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        buffer.put(("item", item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            buffer.put(("end", None))
        except BaseException as exc:  # handed to the consumer, which re-raises it
            buffer.put(("error", exc))

    thread = threading.Thread(target=produce, name="atlas-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            kind, item = buffer.get()
            if kind == "end":
                return
            if kind == "error":
                raise worker_error(item)
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                buffer.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.1)


def worker_error(exc: BaseException) -> BaseException:
    """A :class:`CnnvizError` raised in a DataLoader worker as its own one line, without the worker's traceback.

    Example:
        >>> str(worker_error(CnnvizError("Caught CnnvizError in DataLoader worker process 0.\\n"
        ...                              "Original Traceback (most recent call last):\\n"
        ...                              "cnnviz.zoo.core.errors.CnnvizError: bad.png is not an image")))
        'bad.png is not an image'
    """
    text = str(exc)
    if isinstance(exc, CnnvizError) and "DataLoader worker" in text:
        last = text.strip().splitlines()[-1]
        return CnnvizError(last.split("CnnvizError: ", 1)[-1])
    return exc


def default_workers(dataset: Dataset) -> int:
    """Loader processes: none for data in memory (a :class:`TensorImages` or a dataset saying ``in_memory``),
    else up to 4, leaving a core for the model."""
    if isinstance(dataset, TensorImages) or getattr(dataset, "in_memory", False):
        return 0
    return max(0, min(4, (os.cpu_count() or 1) - 1))
