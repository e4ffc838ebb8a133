"""A thread-safe LRU bounded by the bytes of what it holds (the clip cache and the processed-input cache use it)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Callable, Hashable


class ByteBoundedLRU:
    """`get_or_compute(key, compute, size_of)`: the stored value for `key`, or `compute()` stored for next time.

    A value larger than the whole bound is returned but not stored (storing it would evict everything else). Two
    threads missing on the same key may both compute it; that wastes time but is correct, and holding the lock while
    computing would serialise all loads.
    """

    def __init__(self, max_bytes: int, name: str = "cache"):
        if max_bytes < 0:
            raise ValueError(f"{name}: max_bytes must be >= 0, got {max_bytes}")
        self.max_bytes = int(max_bytes)
        self.hits = 0
        self.misses = 0
        self._bytes = 0
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()

    def get_or_compute(self, key: Hashable, compute: Callable[[], Any], size_of: Callable[[Any], int]) -> Any:
        with self._lock:
            entry = self._items.get(key)
            if entry is not None:
                self._items.move_to_end(key)
                self.hits += 1
                return entry[0]
            self.misses += 1
        value = compute()
        size = int(size_of(value))
        if size > self.max_bytes:
            return value
        with self._lock:
            if key not in self._items:
                self._items[key] = (value, size)
                self._bytes += size
            while self._bytes > self.max_bytes:
                _, (_, old) = self._items.popitem(last=False)
                self._bytes -= old
        return value

    @property
    def nbytes(self) -> int:
        """Bytes currently held."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        """Drop every entry (hit/miss counters are kept)."""
        with self._lock:
            self._items.clear()
            self._bytes = 0
