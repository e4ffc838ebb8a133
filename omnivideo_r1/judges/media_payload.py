"""Build the multimodal user turn of a judge request: the clipped video as mp4 + its audio as wav, base64-encoded.

The judge must hear the audio (the released judge only saw frames, so audio claims went unverified). Video and
audio are sent as two OpenAI-style content parts that vLLM accepts:
    {"type": "video_url", "video_url": {"url": "data:video/mp4;base64,..."}}
    {"type": "input_audio", "input_audio": {"data": "<base64 wav>", "format": "wav"}}
The mp4 is written without an audio track so a server that also extracts audio from videos does not hear it twice.
"""

from __future__ import annotations

import base64
import io
import os
import tempfile
import wave
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..media.types import AUDIO_SAMPLE_RATE, MediaError
from .base import JudgeRequest
from .rubrics import MEDIA_TASKS, user_text


@dataclass
class MediaPayloadConfig:
    """How clips are cut and encoded for the judge (small: the judge needs evidence, not full resolution)."""

    fps: float = 2.0
    """Frames per second sampled from each window."""
    max_frames: int = 32
    """Most frames per request (completeness shares them across its segments)."""
    max_pixels: int = 200_704
    """Most pixels per frame (H*W) after resizing; 200704 = 256*28*28, the released training setting."""
    with_audio: bool = True
    """Send the window's audio as an input_audio part (False: frames only, the released judge's behaviour)."""


def _even_crop(frames_THWC: np.ndarray) -> np.ndarray:
    # yuv420p needs even width and height.
    _, H, W, _ = frames_THWC.shape
    return frames_THWC[:, : H - H % 2, : W - W % 2]


def encode_mp4_base64(frames_THWC: np.ndarray, fps: float) -> str:
    """Frames (T, H, W, 3) uint8 -> base64 of a video-only mp4 (H.264 where available)."""
    from ..media.encode import write_av_file  # PyAV import only when media is actually sent

    frames = np.ascontiguousarray(_even_crop(frames_THWC))
    if frames.shape[1] < 2 or frames.shape[2] < 2:
        raise MediaError(f"frames of shape {frames_THWC.shape} are too small to encode")
    with tempfile.TemporaryDirectory(prefix="ovr1-judge-") as tmp:
        path = os.path.join(tmp, "clip.mp4")
        write_av_file(path, frames, fps=max(fps, 1e-3))
        with open(path, "rb") as fh:
            return base64.b64encode(fh.read()).decode("ascii")


def encode_wav_base64(audio: np.ndarray, sample_rate: int = AUDIO_SAMPLE_RATE) -> str:
    """Mono float waveform in [-1, 1] -> base64 of a 16-bit PCM wav (stdlib `wave`: no codec needed)."""
    pcm = (np.clip(np.asarray(audio, np.float32), -1.0, 1.0) * 32767.0).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        wav.writeframes(pcm.tobytes())
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _windows(req: JudgeRequest) -> list[tuple[float | None, float | None]]:
    if req.task == "caption":
        return [(req.start, req.end)]
    if req.task == "completeness":
        return [(s.start, s.end) for s in req.segments]
    return [(req.start, req.end)]  # curation: the sample's window, or the whole clip when both are None


def _load_windows(req: JudgeRequest, cfg: MediaPayloadConfig) -> tuple[list[Any], list[str]]:
    """Decode each window; a window that cannot be cut (outside the video) is skipped with a note."""
    from ..media.decode import load_clip  # lazy: PyAV only when media is actually sent

    windows = _windows(req)
    per_window = max(1, cfg.max_frames // max(1, len(windows)))
    clips, notes = [], []
    for i, (start, end) in enumerate(windows):
        try:
            clips.append(load_clip(req.video, fps=cfg.fps, max_frames=per_window, max_pixels=cfg.max_pixels,
                                   start=start, end=end, with_audio=cfg.with_audio, audio_path=req.audio))
        except MediaError as exc:
            if len(windows) == 1:
                raise
            notes.append(f"segment {i + 1} has no footage ({str(exc).split(': ', 1)[-1][:120]})")
    if not clips:
        raise MediaError(f"{req.video}: none of the {len(windows)} segments could be cut: {'; '.join(notes)}")
    return clips, notes


def _concat_frames(clips: list[Any]) -> np.ndarray | None:
    frames = [c.frames_THWC for c in clips if c.frames_THWC is not None]
    if not frames:
        return None
    # Windows of one file share a size; crop to the smallest in case a resize rounded differently.
    H = min(f.shape[1] for f in frames)
    W = min(f.shape[2] for f in frames)
    return np.concatenate([f[:, :H, :W] for f in frames], axis=0)


def _concat_audio(clips: list[Any]) -> np.ndarray | None:
    if not any(c.audio is not None for c in clips):
        return None
    # A window without audio keeps its place in time as silence, so sounds stay aligned with frames.
    parts = [c.audio if c.audio is not None else np.zeros(int(round(c.duration * AUDIO_SAMPLE_RATE)), np.float32)
             for c in clips]
    return np.concatenate(parts).astype(np.float32)


def media_parts(req: JudgeRequest, cfg: MediaPayloadConfig) -> tuple[list[dict[str, Any]], bool, list[str]]:
    """(content parts, has_audio, notes) for the request's window(s); raises MediaError for an unusable clip."""
    if not req.video:
        return [], False, []
    clips, notes = _load_windows(req, cfg)
    parts: list[dict[str, Any]] = []
    frames = _concat_frames(clips)
    if frames is not None:
        # Concatenated windows are played back at the sampling rate actually used, so each keeps its length.
        total = sum(c.duration for c in clips)
        fps = len(frames) / total if total > 0 else cfg.fps
        parts.append({"type": "video_url",
                      "video_url": {"url": "data:video/mp4;base64," + encode_mp4_base64(frames, fps)}})
    audio = _concat_audio(clips) if cfg.with_audio else None
    if audio is not None and len(audio):
        parts.append({"type": "input_audio", "input_audio": {"data": encode_wav_base64(audio), "format": "wav"}})
    return parts, audio is not None and len(audio) > 0, notes


def build_user_content(req: JudgeRequest, cfg: MediaPayloadConfig, send_media: bool) -> str | list[dict[str, Any]]:
    """The user turn's content: plain text, or media parts followed by the text part.

    Media is sent only for tasks that grade the clip itself (caption, completeness, curation) and only when the
    request names a video; otherwise the text-only prompt (with reference pairs, when present) is used.
    Raises MediaError when the clip cannot be decoded (the caller turns that into a failed result).
    """
    if not (send_media and req.video and req.task in MEDIA_TASKS):
        return user_text(req, has_media=False)
    parts, has_audio, notes = media_parts(req, cfg)
    if not parts:
        return user_text(req, has_media=False)
    text = user_text(req, has_media=True, has_audio=has_audio)
    if notes:
        text += "\n\nNote: " + "; ".join(notes) + "."
    return [*parts, {"type": "text", "text": text}]
