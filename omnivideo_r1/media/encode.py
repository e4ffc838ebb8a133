"""Write real media files with PyAV: frames + an optional audio track, in any container/codec FFmpeg has.

Used by the synthetic world (mp4: H.264 + AAC) and by tests that need webm/avi/mkv/wav fixtures.
"""

from __future__ import annotations

import os
from fractions import Fraction

import av
import numpy as np

# Container -> (video codec, audio codec, video pixel format). The first codec the local FFmpeg has is used.
DEFAULT_CODECS = {
    ".mp4": (("libx264", "h264", "mpeg4"), ("aac",), "yuv420p"),
    ".mov": (("libx264", "h264", "mpeg4"), ("aac",), "yuv420p"),
    ".webm": (("libvpx-vp9", "libvpx"), ("libopus", "opus", "libvorbis"), "yuv420p"),
    ".avi": (("mpeg4",), ("libmp3lame", "mp3"), "yuv420p"),
    ".mkv": (("libx264", "h264", "mpeg4"), ("pcm_s16le",), "yuv420p"),
}
AUDIO_ONLY_CODECS = {".wav": ("pcm_s16le",), ".mp3": ("libmp3lame", "mp3"), ".m4a": ("aac",), ".flac": ("flac",)}


def _first_available(names: tuple[str, ...], kind: str, path: str) -> str:
    for name in names:
        try:
            av.codec.Codec(name, "w")
            return name
        except Exception:  # noqa: BLE001 - codec absent from this FFmpeg build
            continue
    raise RuntimeError(f"{path}: none of the {kind} encoders {names} is available in this FFmpeg build")


def _write_audio(container, stream, audio: np.ndarray, sample_rate: int) -> None:
    """Encode a mono float waveform; the encoder's own sample format and frame size are respected."""
    pcm = (np.clip(audio, -1.0, 1.0) * 32767.0).astype(np.int16)
    resampler = av.AudioResampler(format=stream.format.name, layout="mono", rate=stream.rate)
    chunk = stream.frame_size or 1024
    pts = 0
    for i in range(0, len(pcm), chunk):
        piece = pcm[i:i + chunk]
        frame = av.AudioFrame.from_ndarray(piece[None, :], format="s16", layout="mono")
        frame.sample_rate = sample_rate
        frame.pts = pts
        frame.time_base = Fraction(1, sample_rate)
        pts += len(piece)
        for out in resampler.resample(frame):
            for packet in stream.encode(out):
                container.mux(packet)
    for out in resampler.resample(None):
        for packet in stream.encode(out):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)


def write_av_file(
    path: str,
    frames_THWC: np.ndarray | None,
    fps: float,
    audio: np.ndarray | None = None,
    sample_rate: int = 16_000,
    video_codec: str | None = None,
    audio_codec: str | None = None,
    frame_times: np.ndarray | None = None,
) -> str:
    """Write RGB uint8 frames (T, H, W, 3) and/or a mono waveform to `path`; the extension picks the container.

    `frame_times` (seconds, increasing) writes a variable-frame-rate stream; otherwise frames are 1/fps apart.
    H and W must be even for yuv420p codecs. Returns the path.
    """
    ext = os.path.splitext(path)[1].lower()
    os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
    if frames_THWC is None:
        if audio is None:
            raise ValueError(f"{path}: nothing to write (no frames and no audio)")
        codec = audio_codec or _first_available(AUDIO_ONLY_CODECS.get(ext, ("pcm_s16le",)), "audio", path)
        with av.open(path, "w") as container:
            stream = container.add_stream(codec, rate=sample_rate, layout="mono")
            _write_audio(container, stream, audio, sample_rate)
        return path

    if ext not in DEFAULT_CODECS:
        raise ValueError(f"{path}: unsupported container {ext!r}; use one of {sorted(DEFAULT_CODECS)}")
    vnames, anames, pix_fmt = DEFAULT_CODECS[ext]
    vcodec = video_codec or _first_available(vnames, "video", path)
    T, H, W, _ = frames_THWC.shape
    # A fine time base lets variable-frame-rate timestamps be exact.
    time_base = Fraction(1, 1000) if frame_times is not None else Fraction(1, int(round(fps)) or 1)
    with av.open(path, "w") as container:
        vstream = container.add_stream(vcodec, rate=Fraction(fps).limit_denominator(1000))
        vstream.width, vstream.height, vstream.pix_fmt = W, H, pix_fmt
        vstream.time_base = time_base
        vstream.codec_context.time_base = time_base
        if vcodec in ("libx264", "h264"):
            vstream.options = {"preset": "ultrafast", "crf": "23"}
        astream = None
        if audio is not None:
            acodec = audio_codec or _first_available(anames, "audio", path)
            rate = 48_000 if acodec in ("libopus", "opus") else sample_rate
            astream = container.add_stream(acodec, rate=rate, layout="mono")
        for i in range(T):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frames_THWC[i]), format="rgb24")
            if frame_times is not None:
                frame.pts = int(round(float(frame_times[i]) * 1000))
            else:
                frame.pts = i if time_base == Fraction(1, int(round(fps)) or 1) else int(round(i / fps / time_base))
            frame.time_base = time_base
            for packet in vstream.encode(frame):
                container.mux(packet)
        for packet in vstream.encode(None):
            container.mux(packet)
        if astream is not None:
            if astream.rate != sample_rate:
                audio = _resample_linear(audio, sample_rate, astream.rate)
            _write_audio(container, astream, audio, astream.rate)
    return path


def _resample_linear(audio: np.ndarray, src: int, dst: int) -> np.ndarray:
    n = int(round(len(audio) * dst / src))
    return np.interp(np.linspace(0, len(audio) - 1, n), np.arange(len(audio)), audio).astype(np.float32)
