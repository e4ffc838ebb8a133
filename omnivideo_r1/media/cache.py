"""A thread-safe LRU cache of decoded clips, bounded by the bytes of the arrays it holds.

RL training decodes the same clip once per rollout group and again for the modality-ablated rollouts; caching the
decoded arrays avoids re-decoding. The key includes the file's mtime and size, so a re-encoded file is reloaded.
"""

from __future__ import annotations

import inspect
import os
import threading
from collections import OrderedDict
from typing import Any, Hashable

from omnivideo_r1.media.decode import load_clip
from omnivideo_r1.media.types import Clip, MediaError

_LOAD_PARAMS = inspect.signature(load_clip)


def clip_nbytes(clip: Clip) -> int:
    """Bytes held by a clip's numpy arrays (frames, frame times, audio)."""
    total = clip.frame_times_T.nbytes
    if clip.frames_THWC is not None:
        total += clip.frames_THWC.nbytes
    if clip.audio is not None:
        total += clip.audio.nbytes
    return int(total)


class ClipCache:
    """LRU of `load_clip` results keyed by (realpath, mtime, size, every load_clip parameter).

    Cached arrays are made read-only: every caller shares them, so an in-place edit would corrupt later hits.
    Two threads missing on the same key may both decode it; that wastes time but is correct, and holding the
    lock while decoding would serialise all loads.
    """

    def __init__(self, max_bytes: int = 2 << 30):
        if max_bytes < 0:
            raise ValueError(f"ClipCache: max_bytes must be >= 0, got {max_bytes}")
        self.max_bytes = int(max_bytes)
        self.hits = 0
        self.misses = 0
        self._bytes = 0
        self._items: OrderedDict[Hashable, tuple[Clip, int]] = OrderedDict()
        self._lock = threading.Lock()

    def _key(self, path: str, kwargs: dict[str, Any]) -> Hashable:
        try:
            bound = _LOAD_PARAMS.bind(path, **kwargs)
        except TypeError as exc:
            raise TypeError(f"ClipCache.get_or_load({path!r}): {exc}") from exc
        bound.apply_defaults()
        params = dict(bound.arguments)
        real = os.path.realpath(os.fspath(params.pop("path")))
        try:
            st = os.stat(real)
        except OSError as exc:
            raise MediaError(f"{path}: file not found; check the path") from exc
        audio_path = params.get("audio_path")
        if audio_path is not None:  # a re-encoded separate audio file must also invalidate the entry
            real_audio = os.path.realpath(os.fspath(audio_path))
            params["audio_path"] = real_audio
            if os.path.exists(real_audio):
                ast = os.stat(real_audio)
                params["audio_stat"] = (ast.st_mtime_ns, ast.st_size)
        return (real, st.st_mtime_ns, st.st_size, tuple(sorted(params.items())))

    def get_or_load(self, path: str, **load_clip_kwargs: Any) -> Clip:
        """The cached clip for these arguments, or `load_clip(path, **load_clip_kwargs)` stored for next time."""
        key = self._key(path, load_clip_kwargs)
        with self._lock:
            entry = self._items.get(key)
            if entry is not None:
                self._items.move_to_end(key)
                self.hits += 1
                return entry[0]
            self.misses += 1
        clip = load_clip(path, **load_clip_kwargs)
        for arr in (clip.frames_THWC, clip.frame_times_T, clip.audio):
            if arr is not None:
                arr.flags.writeable = False
        size = clip_nbytes(clip)
        if size > self.max_bytes:
            return clip  # too big to keep: storing it would evict everything else
        with self._lock:
            if key not in self._items:
                self._items[key] = (clip, size)
                self._bytes += size
            while self._bytes > self.max_bytes:
                _, (_, old) = self._items.popitem(last=False)
                self._bytes -= old
        return clip

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
