"""Plain containers passed between the media decoder and the model's processor."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import UserError

AUDIO_SAMPLE_RATE = 16_000
"""Qwen-Omni's audio encoders (Whisper features) expect 16 kHz mono."""


class MediaError(UserError, RuntimeError):
    """A media file that cannot be used (missing, empty, truncated, garbage, no video stream).

    The message always starts with the file path, so a skipped sample can be traced back to its clip.
    """


@dataclass
class Clip:
    """Decoded, sampled media for one sample (one time window of one file)."""

    path: str
    """The source file."""
    frames_THWC: np.ndarray | None
    """Sampled RGB frames, uint8, (T, H, W, 3); None for audio-only files."""
    frame_times_T: np.ndarray
    """Presentation time in seconds (from the window start) of each sampled frame, float64 (T,)."""
    fps: float
    """The sampling rate actually used for `frames_THWC` (frames per second of clip time)."""
    audio: np.ndarray | None
    """Mono float32 waveform in [-1, 1] at AUDIO_SAMPLE_RATE, aligned to the same window; None if silent."""
    start: float
    """Window start in seconds (0 when the whole file)."""
    end: float
    """Window end in seconds (the decoded duration when the whole file)."""
    source_fps: float | None = None
    """Average frame rate of the source stream, when it declares one."""
    source_size: tuple[int, int] | None = None
    """(height, width) of the source frames before any resizing."""
    warnings: list[str] = field(default_factory=list)
    """Non-fatal problems (e.g. the file is truncated and only part of it decoded)."""

    @property
    def duration(self) -> float:
        return self.end - self.start

    @property
    def has_audio(self) -> bool:
        return self.audio is not None

    @property
    def audio_seconds(self) -> float | None:
        return None if self.audio is None else len(self.audio) / AUDIO_SAMPLE_RATE

    def silent(self) -> "Clip":
        """The same clip with its audio removed (the silent-video condition)."""
        return Clip(self.path, self.frames_THWC, self.frame_times_T, self.fps, None, self.start, self.end,
                    self.source_fps, self.source_size, list(self.warnings))
