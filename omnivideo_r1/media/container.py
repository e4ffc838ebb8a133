"""Opening media files with PyAV: clear errors for unusable paths, the file's time origin and frame rate."""

from __future__ import annotations

import os

import av

from omnivideo_r1.media.types import MediaError


def check_file(path: str) -> None:
    """Raise MediaError (message starting with the path) for a missing, directory or empty path."""
    if not os.path.exists(path):
        raise MediaError(f"{path}: file not found; check the path (relative paths resolve against the JSONL folder)")
    if os.path.isdir(path):
        raise MediaError(f"{path}: is a directory, not a media file; point the sample at the clip file")
    if os.path.getsize(path) == 0:
        raise MediaError(f"{path}: file is empty (0 bytes); re-download or re-encode the clip")


def open_media(path: str) -> av.container.InputContainer:
    """Open `path` for reading; anything FFmpeg cannot parse becomes a MediaError naming the file."""
    check_file(path)
    try:
        return av.open(path, "r")
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise MediaError(f"{path}: not a readable media file ({exc}); re-encode it with ffmpeg or drop the sample") \
            from exc


def time_origin(container: av.container.InputContainer) -> float:
    """The container's start time in seconds: every time we report is relative to it (MPEG-TS starts late)."""
    return container.start_time / 1e6 if container.start_time is not None else 0.0


def stream_fps(stream) -> float | None:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else None
