"""A bounded LRU of processor outputs (patchified frames, log-mel features, token ids) per prompt.

One GSPO step runs the processor on the same clip many times: the rollout, the old log-probs, every minibatch
update and, in stage MA, the audio-only and video-only probes; across epochs the same clips come back. Resizing and
patchifying frames and computing log-mel features is pure CPU work that gives the same tensors every time.

Key: (clip identity, effective modality, use_audio_in_video, the rendered prompt text, processor settings).
Clip identity is the identity of its frame and audio arrays plus path/fps/start/end. Identity is only safe for
arrays nobody can change, so only clips whose arrays are read-only are cached (ClipCache makes every clip it
returns read-only); a writable in-memory clip is processed every time. The entry keeps a reference to the clip, so
the arrays' ids cannot be reused by other arrays while the entry lives; its bytes count towards the bound.
The processor settings are part of the key, so changing the pixel range or feature extractor invalidates entries.
Callers must not modify the returned tensors (OmniPolicy._collate copies them into the batch).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from typing import Any, Callable, Hashable

import torch

from ..media.cache import clip_nbytes


def processor_settings_key(processor) -> str:
    """A digest of every processor setting that changes its output tensors."""
    fe = {k: v for k, v in processor.feature_extractor.to_dict().items() if k != "mel_filters"}
    parts = {"video": processor.video_processor.to_dict(), "audio": fe,
             "videos_kwargs": getattr(processor, "videos_kwargs", None)}
    for name in ("position_id_per_seconds", "n_window", "seconds_per_chunk"):
        parts[name] = getattr(processor, name, None)
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _tensor_bytes(item: dict[str, Any]) -> int:
    return sum(v.numel() * v.element_size() for v in item.values() if isinstance(v, torch.Tensor))


class ProcessedInputCache:
    """LRU of `_encode_one` outputs bounded by `max_bytes` (tensors + the clip arrays it keeps alive)."""

    def __init__(self, max_bytes: int = 1 << 30):
        if max_bytes < 0:
            raise ValueError(f"ProcessedInputCache: max_bytes must be >= 0, got {max_bytes}")
        self.max_bytes = int(max_bytes)
        self.hits = 0
        self.misses = 0
        self._bytes = 0
        self._items: OrderedDict[Hashable, tuple[dict, Any, int]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(prompt, text: str, settings: str) -> Hashable | None:
        """The cache key of `prompt` rendered as `text`, or None when its clip is mutable (never cached)."""
        clip = prompt.clip
        if clip is None:
            return ("text", text, settings)
        arrays = [a for a in (clip.frames_THWC, clip.audio) if a is not None]
        if any(a.flags.writeable for a in arrays):
            return None
        return (id(clip.frames_THWC), id(clip.audio), clip.path, float(clip.fps), float(clip.start),
                float(clip.end), prompt.effective_modality, prompt.use_audio_in_video, text, settings)

    def get_or_compute(self, key: Hashable | None, clip, compute: Callable[[], dict]) -> dict:
        if key is None or self.max_bytes == 0:
            return compute()
        with self._lock:
            entry = self._items.get(key)
            if entry is not None:
                self._items.move_to_end(key)
                self.hits += 1
                return entry[0]
            self.misses += 1
        item = compute()
        size = _tensor_bytes(item) + (clip_nbytes(clip) if clip is not None else 0)
        if size > self.max_bytes:
            return item
        with self._lock:
            if key not in self._items:
                self._items[key] = (item, clip, size)
                self._bytes += size
            while self._bytes > self.max_bytes:
                _, (_, _, old) = self._items.popitem(last=False)
                self._bytes -= old
        return item

    @property
    def nbytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0
