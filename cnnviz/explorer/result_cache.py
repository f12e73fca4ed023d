"""A size-limited, thread-safe result cache: least recently used entries go first once the bytes exceed
the limit, so memory stays bounded however many different requests arrive.

Example:
    >>> cache = ResultCache(max_bytes=10)
    >>> cache.put("a", b"123456"); cache.put("b", b"7890")
    >>> cache.get("a")
    b'123456'
    >>> cache.put("c", b"xyz")  # over 10 bytes: "b", the least recently used, goes
    >>> cache.get("b") is None, cache.size
    (True, 9)
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import torch


def size_of(value: Any) -> int:
    """Bytes a cached value holds (bytes, strings, arrays, tensors, objects with ``nbytes``, and dicts/lists of
    them)."""
    if isinstance(value, (bytes, bytearray, str)):
        return len(value)
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if hasattr(value, "nbytes"):
        return int(value.nbytes)
    if isinstance(value, dict):
        return sum(size_of(k) + size_of(v) for k, v in value.items()) + 64
    if isinstance(value, (list, tuple)):
        return sum(size_of(v) for v in value) + 16
    return 32


class ResultCache:
    """``key -> value`` with at most ``max_bytes`` held; a value larger than that is not kept."""

    def __init__(self, max_bytes: int = 256 * 2**20) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._items: OrderedDict[str, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> Any | None:
        """The value of ``key`` (now the most recently used), or None."""
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            self._items.move_to_end(key)
            return item[0]

    def put(self, key: str, value: Any) -> None:
        """Keep ``value``, dropping the least recently used entries past the limit."""
        nbytes = size_of(value)
        with self._lock:
            if key in self._items:
                self.size -= self._items.pop(key)[1]
            if nbytes > self.max_bytes:
                return
            self._items[key] = (value, nbytes)
            self.size += nbytes
            while self.size > self.max_bytes:
                self.size -= self._items.popitem(last=False)[1][1]

    def __len__(self) -> int:
        return len(self._items)
