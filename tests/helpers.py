"""Plain helpers shared by several test files (conftest.py holds only fixtures; import these by module name)."""

from __future__ import annotations

import numpy as np

from omnivideo_r1.media.types import AUDIO_SAMPLE_RATE, Clip

FAMILIES = ("qwen3_omni", "qwen2_5_omni")
"""The two real Qwen-Omni thinker classes every policy test runs on."""


def clip_from_arrays(frames_THWC: np.ndarray | None, audio: np.ndarray | None, fps: float, path: str = "<memory>",
                     start: float = 0.0) -> Clip:
    """A Clip from in-memory arrays (no decoder); frame times assume uniform sampling at `fps`."""
    count = 0 if frames_THWC is None else len(frames_THWC)
    times = start + np.arange(count, dtype=np.float64) / fps
    dur = max(count / fps if count else 0.0, 0.0 if audio is None else len(audio) / AUDIO_SAMPLE_RATE)
    return Clip(path, frames_THWC, times, fps, audio, start, start + dur)


def listing(*events) -> str:
    """A reply's listing of synthetic-world events (synth/scene.py), in the grounded format the rewards read."""
    return "".join(f"<time>{e.start:.1f}-{e.end:.1f}</time><caption>{e.caption}</caption>" for e in events)


def answer(text: str) -> str:
    """The end of a grounded reply that answers `text`."""
    return f"<thinking> {text}</thinking><answer> {text}</answer>"
