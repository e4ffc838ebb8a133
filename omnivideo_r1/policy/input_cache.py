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
from typing import Any, Callable, Hashable

import torch

from ..lru import ByteBoundedLRU
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


class ProcessedInputCache(ByteBoundedLRU):
    """LRU of `_encode_one` outputs bounded by `max_bytes` (tensors + the clip arrays it keeps alive)."""

    def __init__(self, max_bytes: int = 1 << 30):
        super().__init__(max_bytes, name="ProcessedInputCache")

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

    def get_or_compute_for(self, key: Hashable | None, clip, compute: Callable[[], dict]) -> dict:
        """The processor output for `key`; uncacheable (None) keys are computed every time. The entry also holds
        the clip, so the ids in the key cannot be reused by other arrays while it lives."""
        if key is None or self.max_bytes == 0:
            return compute()
        def size_of(pair) -> int:
            return _tensor_bytes(pair[0]) + (clip_nbytes(pair[1]) if pair[1] is not None else 0)

        return self.get_or_compute(key, lambda: (compute(), clip), size_of)[0]
