"""Decode media files with PyAV into sampled, aligned `Clip`s (frames at a requested fps + 16 kHz mono audio).

Frame sampling follows qwen-omni-utils: T = clamp(round(duration * fps), min_frames, max_frames) frames at times
uniform over the window; when max_frames caps T the effective fps drops and is reported in `Clip.fps`. Each target
time t takes the last decoded frame with pts <= t (what a viewer sees at t), so variable-frame-rate files are right.
Only what is sampled is decoded: frames are reached by seeking to the keyframe before each target
(`media/frames.py`), and audio by seeking to the window start, so a minute-long window of an hour-long file costs
about what the window costs.

All times are on the file's timeline with the container's start_time as 0, so audio and video stay in sync even
for containers that do not start at 0 (MPEG-TS).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import av
import numpy as np

from omnivideo_r1.media.container import open_media, stream_fps, time_origin
from omnivideo_r1.media.frames import SEEK_MIN_S, TRUNCATION_TOL_S, pick_frames
from omnivideo_r1.media.types import AUDIO_SAMPLE_RATE, Clip, MediaError

AUDIO_SEEK_MARGIN_S = 0.5
"""Audio seeks this far before `start`: audio frames carry a codec delay, so we land before and cut exactly."""
AUDIO_GAP_TOL_S = 0.1
"""Audio frame timestamps that jump by more than this are a real gap (filled with silence), not jitter."""


@dataclass
class _Info:
    """What the container declares, read without decoding."""

    duration: float | None
    origin: float
    video: av.video.stream.VideoStream | None
    audio: av.audio.stream.AudioStream | None


def _info(container: av.container.InputContainer) -> _Info:
    origin = time_origin(container)
    duration = container.duration / 1e6 if container.duration is not None else None
    video = container.streams.video[0] if container.streams.video else None
    audio = container.streams.audio[0] if container.streams.audio else None
    if duration is None:  # some containers only declare per-stream durations
        ends = [float(s.duration * s.time_base) for s in (video, audio)
                if s is not None and s.duration is not None and s.time_base is not None]
        duration = max(ends) if ends else None
    return _Info(duration, origin, video, audio)


def _demux_end(path: str, stream_type: str) -> tuple[float | None, int]:
    """(end time, packet count) of the first stream of a type by reading packets (no decoding)."""
    with open_media(path) as container:
        origin = time_origin(container)
        streams = container.streams.video if stream_type == "video" else container.streams.audio
        stream = streams[0]
        end, count = None, 0
        try:
            for packet in container.demux(stream):
                if packet.size == 0 or packet.pts is None:
                    continue
                count += 1
                t = float((packet.pts + (packet.duration or 0)) * packet.time_base) - origin
                end = t if end is None else max(end, t)
        except av.FFmpegError:
            pass  # a truncated tail: what was read so far is the answer
        return end, count


def _decoded_audio_seconds(path: str) -> float | None:
    """Seconds of audio by decoding, for containers whose packets carry no durations."""
    with open_media(path) as container:
        total = 0.0
        try:
            for frame in container.decode(container.streams.audio[0]):
                total += frame.samples / frame.sample_rate
        except av.FFmpegError:
            pass
        return total or None


def probe_media(path: str) -> dict:
    """Describe a media file: duration (s), video codec/size/fps/frames and audio codec/rate/channels/seconds.

    Reads container headers; only when the container lacks durations or frame counts does it read packets
    (and, if packets lack durations too, decode the audio).
    """
    path = os.fspath(path)
    with open_media(path) as container:
        info = _info(container)
        if info.video is None and info.audio is None:
            raise MediaError(f"{path}: no video or audio stream; this is not a usable clip, drop the sample")
        video = audio = None
        v, a = info.video, info.audio
        if v is not None:
            video = {"codec": v.codec_context.name, "width": v.codec_context.width,
                     "height": v.codec_context.height, "fps": stream_fps(v), "frames": v.frames or None}
        if a is not None:
            seconds = float(a.duration * a.time_base) if a.duration is not None and a.time_base else None
            audio = {"codec": a.codec_context.name, "sample_rate": a.codec_context.sample_rate,
                     "channels": a.codec_context.channels, "seconds": seconds}
        duration = info.duration
    if video is not None and not video["frames"]:
        end, count = _demux_end(path, "video")
        video["frames"] = count
        if duration is None:
            duration = end
    if audio is not None and audio["seconds"] is None:
        end, _ = _demux_end(path, "audio")
        audio["seconds"] = end if end else _decoded_audio_seconds(path)
    if duration is None:
        ends = [x for x in ((audio or {}).get("seconds"),) if x]
        duration = max(ends) if ends else None
    if video is not None and video["fps"] is None and duration:
        video["fps"] = video["frames"] / duration
    return {"path": path, "duration": duration, "video": video, "audio": audio}


def target_times(start: float, end: float, fps: float, min_frames: int = 1, max_frames: int = 64) -> np.ndarray:
    """Sample times in [start, end): T = clamp(round((end-start)*fps), min_frames, max_frames), uniform spacing."""
    if fps <= 0 or min_frames < 1 or max_frames < min_frames:
        raise ValueError(f"need fps > 0 and 1 <= min_frames <= max_frames, got {fps}, {min_frames}, {max_frames}")
    n = int(min(max(round((end - start) * fps), min_frames), max_frames))
    return start + np.arange(n, dtype=np.float64) * ((end - start) / n)


def _decode_audio(path: str, start: float, end: float, allow_seek: bool = True
                  ) -> tuple[np.ndarray | None, float | None, str | None]:
    """16 kHz mono float32 samples of [start, end) (shorter if the track ends first); (audio, track end, error).

    A window starting after SEEK_MIN_S seeks to just before `start` and stops decoding after `end`, so only the
    window is decoded; if the seek lands past `start`, it decodes from the track start instead.
    """
    sr = AUDIO_SAMPLE_RATE
    for seek in ((True, False) if start > SEEK_MIN_S and allow_seek else (False,)):
        with open_media(path) as container:
            if not container.streams.audio:
                return None, None, None
            origin = time_origin(container)
            stream = container.streams.audio[0]
            if seek:
                target = max(0.0, start - AUDIO_SEEK_MARGIN_S) + origin
                container.seek(int(target / stream.time_base), stream=stream, backward=True)
            resampler = av.AudioResampler(format="flt", layout="mono", rate=sr)
            chunks: list[np.ndarray] = []
            anchor = pos = None
            error = None
            try:
                for frame in container.decode(stream):
                    t = float(frame.time) - origin if frame.time is not None else (pos or 0.0)
                    if anchor is None:
                        if seek and t > start:
                            break  # the demuxer seeked past start: decode from 0 instead
                        anchor = pos = t
                    elif t - pos > AUDIO_GAP_TOL_S:
                        chunks.append(np.zeros(int(round((t - pos) * sr)), np.float32))  # a gap in the track
                        pos = t
                    for out in resampler.resample(frame):
                        chunks.append(out.to_ndarray().reshape(-1))
                    pos += frame.samples / frame.sample_rate
                    if pos >= end + AUDIO_SEEK_MARGIN_S:
                        break
            except av.FFmpegError as exc:
                error = f"audio decoding stopped with an error ({exc})"
            if anchor is None and seek and error is None:
                continue
            if anchor is None:
                return None, None, error
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
            wave = np.concatenate(chunks).astype(np.float32, copy=False) if chunks else np.zeros(0, np.float32)
            track_end = anchor + len(wave) / sr
            offset = int(round((start - anchor) * sr))
            wave = wave[offset:] if offset >= 0 else np.concatenate([np.zeros(-offset, np.float32), wave])
            wave = np.clip(wave[: int(round((end - start) * sr))], -1.0, 1.0)
            return np.ascontiguousarray(wave), track_end, error
    raise AssertionError("unreachable")


def load_clip(
    path: str,
    fps: float = 2.0,
    max_frames: int = 64,
    min_frames: int = 1,
    max_pixels: int | None = None,
    start: float | None = None,
    end: float | None = None,
    with_audio: bool = True,
    audio_path: str | None = None,
) -> Clip:
    """Decode the window [start, end) of `path`: frames sampled at `fps`, audio at 16 kHz mono (see module doc).

    `audio_path` reads the audio from a separate file; `with_audio=False` gives the silent-video condition.
    Raises MediaError (message starts with the path) for unusable files; a truncated file yields what decodes,
    with a note in `Clip.warnings`.
    """
    path = os.fspath(path)
    with open_media(path) as container:  # kept open for the video: a long mp4's index is parsed once
        return _load_clip(container, path, fps, max_frames, min_frames, max_pixels, start, end, with_audio,
                          audio_path)


def _load_clip(container, path, fps, max_frames, min_frames, max_pixels, start, end, with_audio, audio_path
               ) -> Clip:
    info = _info(container)
    has_video, has_audio = info.video is not None, info.audio is not None
    source_fps = stream_fps(info.video) if has_video else None
    source_size = (info.video.codec_context.height, info.video.codec_context.width) if has_video else None
    if not has_video and not has_audio:
        raise MediaError(f"{path}: no video or audio stream; this is not a usable clip, drop the sample")
    if not has_video and not with_audio:
        raise MediaError(f"{path}: audio-only file loaded with with_audio=False leaves nothing; load it with audio")
    duration = info.duration
    if duration is None:
        duration = probe_media(path)["duration"]
        if duration is None:
            raise MediaError(f"{path}: no decodable stream (duration unknown, no packets); re-encode the clip")
    notes: list[str] = []
    t0 = 0.0 if start is None else float(start)
    t1 = duration if end is None else float(end)
    if t0 < 0:
        raise MediaError(f"{path}: start={t0} is negative; give start >= 0")
    if t0 >= t1:
        raise MediaError(f"{path}: empty window start={t0} >= end={t1}; give start < end")
    if t0 >= duration:
        raise MediaError(f"{path}: start={t0}s is beyond the duration {duration:.3f}s; fix the sample's start/end")
    if t1 > duration + TRUNCATION_TOL_S:
        notes.append(f"{path}: end={t1}s is past the duration {duration:.3f}s; clamped to the duration")
        t1 = duration

    frames_THWC = None
    times_T = np.zeros(0, np.float64)
    eff_fps = 0.0
    audio = None
    decoded_end = None
    src_audio = audio_path if audio_path is not None else path
    if with_audio and (audio_path is not None or has_audio):
        audio, audio_end, err = _decode_audio(src_audio, t0, t1)
        if err:
            notes.append(f"{src_audio}: {err}")
        if audio_path is None:
            decoded_end = audio_end
    if has_video:
        times = target_times(t0, t1, fps, min_frames, max_frames)
        # The audio track, when it reaches the window end, already shows the file is not truncated there.
        complete = decoded_end is not None and decoded_end >= t1 - TRUNCATION_TOL_S
        picked = pick_frames(path, t0, t1, times, max_pixels, need_end=not complete, container=container)
        err = picked.error
        if err:
            notes.append(f"{path}: {err}")
        decoded_end = max(x for x in (decoded_end, picked.decoded_end, 0.0) if x is not None)
        if decoded_end <= t0:
            raise MediaError(f"{path}: nothing decodes in [{t0:.3f}, {t1:.3f}): decoding stops at {decoded_end:.3f}s "
                             f"({err or 'file truncated?'}); re-encode the clip or drop the sample")
        if decoded_end < t1 - TRUNCATION_TOL_S:
            # Truncated: re-sample over what exists so frames are not all copies of the last one.
            notes.append(f"{path}: only decoded up to {decoded_end:.3f}s of the declared {t1:.3f}s (file "
                         f"truncated?); using [{t0:.3f}, {decoded_end:.3f})")
            t1 = decoded_end
            times = target_times(t0, t1, fps, min_frames, max_frames)
            picked = pick_frames(path, t0, t1, times, max_pixels, need_end=False)
            if audio is not None and audio_path is None:
                audio = audio[: int(round((t1 - t0) * AUDIO_SAMPLE_RATE))]
        if picked.frames_THWC is None:
            raise MediaError(f"{path}: no video frame decodes in [{t0:.3f}, {t1:.3f}) ({err or 'no frames'}); "
                             "the file is corrupt or truncated, re-encode or drop the sample")
        frames_THWC = picked.frames_THWC
        # A frame that began before the window is shown from the window start.
        times_T = np.maximum(np.asarray(picked.pts, np.float64) - t0, 0.0)
        eff_fps = len(picked.pts) / (t1 - t0)
    else:
        if audio is None or len(audio) == 0:
            raise MediaError(f"{path}: no audio decodes in [{t0:.3f}, {t1:.3f}); the file is corrupt or truncated")
        if decoded_end is not None and decoded_end < t1 - TRUNCATION_TOL_S:
            notes.append(f"{path}: only decoded up to {decoded_end:.3f}s of the declared {t1:.3f}s (file truncated?)")
            t1 = max(decoded_end, t0 + len(audio) / AUDIO_SAMPLE_RATE)
    if audio is not None and len(audio) == 0:
        notes.append(f"{src_audio}: the audio track does not reach [{t0:.3f}, {t1:.3f}); treated as silent")
        audio = None
    for note in notes:
        warnings.warn(note, stacklevel=3)  # point at load_clip's caller
    return Clip(path=path, frames_THWC=frames_THWC, frame_times_T=times_T, fps=eff_fps, audio=audio, start=t0,
                end=t1, source_fps=source_fps, source_size=source_size, warnings=notes)
