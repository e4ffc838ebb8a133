"""A thread-safe LRU cache of decoded clips, bounded by the bytes of the arrays it holds.

RL training decodes the same clip once per rollout group and again for the modality-ablated rollouts; caching the
decoded arrays avoids re-decoding. The key includes the file's mtime and size, so a re-encoded file is reloaded.
"""

from __future__ import annotations

import inspect
import os
from typing import Any, Hashable

from omnivideo_r1.media.decode import load_clip
from omnivideo_r1.media.types import Clip, MediaError
from omnivideo_r1.lru import ByteBoundedLRU

_LOAD_PARAMS = inspect.signature(load_clip)


def clip_nbytes(clip: Clip) -> int:
    """Bytes held by a clip's numpy arrays (frames, frame times, audio)."""
    total = clip.frame_times_T.nbytes
    if clip.frames_THWC is not None:
        total += clip.frames_THWC.nbytes
    if clip.audio is not None:
        total += clip.audio.nbytes
    return int(total)


class ClipCache(ByteBoundedLRU):
    """LRU of `load_clip` results keyed by (realpath, mtime, size, every load_clip parameter).

    Cached arrays are made read-only: every caller shares them, so an in-place edit would corrupt later hits.
    """

    def __init__(self, max_bytes: int = 2 << 30):
        super().__init__(max_bytes, name="ClipCache")

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
        return self.get_or_compute(self._key(path, load_clip_kwargs),
                                   lambda: _read_only(load_clip(path, **load_clip_kwargs)), clip_nbytes)


def _read_only(clip: Clip) -> Clip:
    for arr in (clip.frames_THWC, clip.frame_times_T, clip.audio):
        if arr is not None:
            arr.flags.writeable = False
    return clip
