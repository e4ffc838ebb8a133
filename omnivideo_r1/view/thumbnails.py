"""Media thumbnails for the viewer: a strip of frames, a log-mel spectrogram and a waveform envelope per clip window.

Decoding goes through the project's PyAV loader (`media.decode.load_clip`), so the frames are the ones the policy
would sample from the same window. Each clip window is made once: files are named by a hash of the file's real path,
mtime, size and the window, and a later run of `omnivideo-r1 view` into the same folder reuses them.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..media.types import AUDIO_SAMPLE_RATE, MediaError

THUMB_VERSION = 2
"""Bump when the thumbnail format changes, so cached files are remade."""
STRIP_FPS = 4.0
"""Frames per second of clip time in the strip (then clamped to STRIP_FRAMES)."""
STRIP_FRAMES = (8, 16)
"""Fewest and most frames in a strip."""
FRAME_MAX_PIXELS = 160 * 90
"""Pixel cap per strip frame (a 16:9 source becomes 160x90; the 64x64 synthetic frames stay as they are)."""
SPEC_COLUMNS = 480
"""Time columns of the spectrogram image."""
SPEC_MELS = 64
"""Mel bands (rows) of the spectrogram image."""
ENVELOPE_POINTS = 240
"""Peak-amplitude points of the waveform envelope."""


@dataclass(frozen=True)
class ClipWindow:
    video: str
    """Media file (video, or audio only)."""
    audio: str | None = None
    """Separate audio file, if the sample has one."""
    start: float | None = None
    """Window start in seconds (None: file start)."""
    end: float | None = None
    """Window end in seconds (None: file end)."""


def media_key(window: ClipWindow) -> str:
    """Cache key of a window: changes when either file is rewritten."""
    parts: list[Any] = [THUMB_VERSION, window.start, window.end]
    for path in (window.video, window.audio):
        if path is None:
            parts.append(None)
            continue
        real = os.path.realpath(path)
        try:
            st = os.stat(real)
            parts.append((real, st.st_mtime_ns, st.st_size))
        except OSError:
            parts.append((real, "missing"))
    return hashlib.sha1(json.dumps(parts).encode()).hexdigest()[:16]


def make_thumbnails(window: ClipWindow, media_dir: str) -> dict[str, Any]:
    """Write (or reuse) the window's thumbnails under `media_dir`; returns their description for the site.

    Keys: frames (file name or None), frame_size ([height, width] of one frame), frame_times (s from window start), spectrogram, envelope, duration, has_audio,
    error (a MediaError message when the clip could not be decoded: the page shows it instead of the media).
    """
    key = media_key(window)
    meta_path = os.path.join(media_dir, f"{key}.json")
    if os.path.exists(meta_path):
        with open(meta_path, encoding="utf-8") as fh:
            return json.load(fh)
    os.makedirs(media_dir, exist_ok=True)
    from ..media.decode import load_clip  # PyAV only when something must be decoded

    try:
        clip = load_clip(window.video, fps=STRIP_FPS, min_frames=STRIP_FRAMES[0], max_frames=STRIP_FRAMES[1],
                         max_pixels=FRAME_MAX_PIXELS, start=window.start, end=window.end, audio_path=window.audio)
    except MediaError as exc:
        meta = {"frames": None, "frame_times": [], "spectrogram": None, "envelope": [], "duration": None,
                "has_audio": False, "error": str(exc)}
    else:
        meta = {"frames": None, "frame_times": [round(float(t), 3) for t in clip.frame_times_T],
                "spectrogram": None, "envelope": [], "duration": round(float(clip.duration), 3),
                "has_audio": clip.has_audio, "error": None}
        if clip.frames_THWC is not None and len(clip.frames_THWC):
            meta["frames"] = f"{key}.frames.jpg"
            meta["frame_size"] = [int(clip.frames_THWC.shape[1]), int(clip.frames_THWC.shape[2])]
            _save_strip(clip.frames_THWC, os.path.join(media_dir, meta["frames"]))
        if clip.audio is not None and len(clip.audio):
            meta["spectrogram"] = f"{key}.spec.png"
            _save_spectrogram(clip.audio, os.path.join(media_dir, meta["spectrogram"]))
            meta["envelope"] = envelope(clip.audio)
    tmp = f"{meta_path}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(meta, fh)
    os.replace(tmp, meta_path)  # the json is written last: a half-made entry is remade next time
    return meta


def _save_strip(frames_THWC: np.ndarray, path: str) -> None:
    from PIL import Image

    strip = np.concatenate(list(frames_THWC), axis=1)  # (H, T*W, 3)
    Image.fromarray(np.ascontiguousarray(strip)).save(path, quality=85)


def envelope(audio: np.ndarray, points: int = ENVELOPE_POINTS) -> list[float]:
    """Peak |amplitude| in `points` equal slices of the waveform, rounded to 3 decimals."""
    n = len(audio)
    edges = np.linspace(0, n, min(points, n) + 1).astype(int)
    return [round(float(np.abs(audio[a:b]).max()), 3) for a, b in zip(edges[:-1], edges[1:])]


def log_mel_spectrogram(audio: np.ndarray, columns: int = SPEC_COLUMNS, mels: int = SPEC_MELS,
                        n_fft: int = 512) -> np.ndarray:
    """(mels, columns) log-power mel spectrogram in dB, low frequencies in row 0; windows centred on `columns`
    equally spaced times, so column j shows time (j + 0.5) / columns of the window."""
    padded = np.pad(audio.astype(np.float32), (n_fft // 2, n_fft // 2))
    centres = ((np.arange(columns) + 0.5) * len(audio) / columns).astype(int)
    frames = np.stack([padded[c: c + n_fft] for c in centres]) * np.hanning(n_fft).astype(np.float32)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2  # (columns, n_fft/2+1)
    mel = power @ _mel_filterbank(mels, n_fft, AUDIO_SAMPLE_RATE).T  # (columns, mels)
    return (10.0 * np.log10(mel + 1e-10)).T


def _mel_filterbank(mels: int, n_fft: int, sample_rate: int) -> np.ndarray:
    """Triangular filters equally spaced on the HTK mel scale from 0 to Nyquist, (mels, n_fft/2+1)."""
    def to_mel(hz):
        return 2595.0 * np.log10(1.0 + np.asarray(hz) / 700.0)

    def to_hz(mel):
        return 700.0 * (10.0 ** (np.asarray(mel) / 2595.0) - 1.0)

    bins_hz = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    edges = to_hz(np.linspace(0, to_mel(sample_rate / 2), mels + 2))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins_hz[None] - lower) / np.maximum(centre - lower, 1e-9)
    falling = (upper - bins_hz[None]) / np.maximum(upper - centre, 1e-9)
    return np.clip(np.minimum(rising, falling), 0.0, None)


# A perceptual dark-to-bright ramp (close to matplotlib's "magma"), so loud bands read as bright.
_RAMP = np.array([[0, 0, 4], [40, 11, 84], [101, 21, 110], [159, 42, 99], [212, 72, 66], [245, 125, 21],
                  [250, 193, 39], [252, 253, 191]], dtype=np.float32)


def _save_spectrogram(audio: np.ndarray, path: str, dynamic_range_db: float = 55.0) -> None:
    from PIL import Image

    db = log_mel_spectrogram(audio)
    level = np.clip((db - (db.max() - dynamic_range_db)) / dynamic_range_db, 0.0, 1.0)
    pos = level * (len(_RAMP) - 1)
    lo = np.floor(pos).astype(int).clip(0, len(_RAMP) - 2)
    frac = (pos - lo)[..., None]
    rgb = _RAMP[lo] * (1 - frac) + _RAMP[lo + 1] * frac
    Image.fromarray(rgb[::-1].round().astype(np.uint8)).save(path, optimize=True)  # high frequencies on top
