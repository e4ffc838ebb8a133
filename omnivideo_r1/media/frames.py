"""Pick the video frame on screen at each target time: the last frame with pts <= t.

Two ways to the same frames:
- sparse (the default): for each target, or run of close targets, seek to the keyframe before it and decode
  forward to it. A seek is made only when it skips video: the keyframe before the next target (from the
  container's index, or the keyframe interval seen so far when there is none) must lie well past what is already
  decoded; otherwise decoding simply continues, so dense targets cost what a linear decode costs.
- linear: decode every frame from the keyframe before the window start (or the file start) to the window end.

After a seek, decoding starts at the first keyframe packet and frames with pts below it are dropped: in an open
GOP those leading frames reference the previous GOP, which was not decoded. A seek that lands past its target
(the index holds decode times, B-frames reorder) is retried from further back. Anything seeking cannot be trusted
with (no pts, frames out of order, a decode error, a seek that keeps overshooting) falls back to decoding
linearly from the file start, which also reports errors and truncation exactly as it always has.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import av
import numpy as np
from PIL import Image

from omnivideo_r1.media.container import open_media, stream_fps, time_origin

SEEK_MIN_S = 1.0
"""Targets earlier than this are reached by decoding from the file start instead of seeking."""
SEEK_SAVES_MIN_S = 0.5
"""Seek only when it skips at least this much video: a seek flushes the decoder and its threads."""
GOP_GUESS_S = 1.0
"""Keyframe interval assumed for a file without an index until decoding has shown a longer one."""
SEEK_TRIES = 6
"""Seeks that land past their target (or past the last keyframe) are retried from twice as far back, this many
times in all; then we decode linearly."""
TRUNCATION_TOL_S = 0.25
"""Decoding that stops this much before the declared end means a truncated file (tracks differ by a few ms)."""


@dataclass
class PickedFrames:
    """Frames picked for the targets of one window, and what decoding found on the way."""

    frames_THWC: np.ndarray | None
    """One RGB frame per target, uint8 (T, H, W, 3); None when no frame decodes."""
    pts: list[float]
    """Presentation time (s, file timeline) of each picked frame."""
    decoded_end: float | None
    """End time of the last decoded frame; reaches the window end unless the file stops early."""
    error: str | None
    """Why decoding stopped early, if an FFmpeg error stopped it."""
    frames_decoded: int
    """Frames the decoder produced (the work done)."""
    seeks: int
    """Seeks made (retries included)."""
    sparse: bool
    """True if the seeking path produced these frames, False if they came from a linear decode from 0."""


class _Unreliable(Exception):
    """Seeking gave something we cannot trust; decode linearly from the file start instead."""


def resize_frame(rgb_HWC: np.ndarray, max_pixels: int | None) -> np.ndarray:
    h, w = rgb_HWC.shape[:2]
    if max_pixels is None or h * w <= max_pixels:
        return rgb_HWC
    scale = math.sqrt(max_pixels / (h * w))
    # Even sizes: video encoders and Qwen's 2x2 patch merge both want them.
    nh, nw = max(2, int(h * scale) // 2 * 2), max(2, int(w * scale) // 2 * 2)
    return np.asarray(Image.fromarray(rgb_HWC).resize((nw, nh), Image.BICUBIC))


class _Picks:
    """Fills one preallocated (T, H, W, 3) array: memory is the frames kept, with no stacking copy."""

    def __init__(self, n: int, max_pixels: int | None):
        self.n, self.max_pixels = n, max_pixels
        self.out: np.ndarray | None = None
        self.pts: list[float] = []
        self._last = None

    def add(self, frame: av.VideoFrame, t: float) -> None:
        j = len(self.pts)
        if frame is self._last:  # several targets on one frame: convert it once
            self.out[j] = self.out[j - 1]
        else:
            img = resize_frame(frame.to_ndarray(format="rgb24"), self.max_pixels)
            if self.out is None:
                self.out = np.empty((self.n, *img.shape), np.uint8)
            self.out[j] = img
            self._last = frame
        self.pts.append(t)

    def fill(self, frame: av.VideoFrame, t: float) -> None:
        while len(self.pts) < self.n:
            self.add(frame, t)


def _pick_linear(path: str, end: float, times: np.ndarray, max_pixels: int | None) -> PickedFrames:
    """Decode from the file start to `end`, keeping for each target the last frame with pts <= t."""
    with open_media(path) as container:
        origin = time_origin(container)
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        default_dur = 1.0 / (stream_fps(stream) or 25.0)
        picks = _Picks(len(times), max_pixels)
        prev = prev_t = None
        decoded_end, error, j, count = None, None, 0, 0
        try:
            for frame in container.decode(stream):
                count += 1
                t = float(frame.time) - origin if frame.time is not None else \
                    (prev_t + default_dur if prev_t is not None else 0.0)
                dur = float(frame.duration * frame.time_base) if frame.duration and frame.time_base else default_dur
                decoded_end = max(decoded_end or 0.0, t + dur)
                while j < len(times) and prev is not None and t > times[j]:
                    picks.add(prev, prev_t)
                    j += 1
                prev, prev_t = frame, t
                if t >= end:  # reaching `end` also tells the caller the file is not truncated here
                    break
        except av.FFmpegError as exc:
            error = f"video decoding stopped with an error ({exc})"
        if prev is not None:  # targets after the last frame see the last frame (it stays on screen)
            picks.fill(prev, prev_t)
        return PickedFrames(picks.out, picks.pts, decoded_end, error, count, 0, False)


class _Reader:
    """Decoded frames of one video stream from the file start or from a seek, with the seeking decisions."""

    def __init__(self, container: av.container.InputContainer):
        self.container = container
        self.stream = stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        self.tb = stream.time_base
        if not self.tb:
            raise _Unreliable("the stream has no time base to seek in")
        self.origin = time_origin(container)
        self.default_dur = 1.0 / (stream_fps(stream) or 25.0)
        self.frames = iter(())
        self.decoded = self.seeks = 0
        self.decoded_end: float | None = None
        self.gop = GOP_GUESS_S
        self._last_key: float | None = None

    def _time(self, pts: int) -> float:
        return float(pts * self.tb) - self.origin

    def from_start(self) -> None:
        self.frames = self._decode(self.container.demux(self.stream), None)

    def seek(self, target: float, overshoot_ok: bool = False) -> None:
        """Continue from the keyframe before `target` (raises _Unreliable if seeking cannot get there)."""
        back = 0.0
        for attempt in range(SEEK_TRIES):
            ts = max(target - back, 0.0)
            try:
                self.container.seek(math.floor((ts + self.origin) / self.tb), stream=self.stream, backward=True)
                self.seeks += 1
                packets = self.container.demux(self.stream)
                key = next((p for p in packets if p.size == 0 or (p.is_keyframe and p.pts is not None)), None)
            except av.FFmpegError as exc:
                raise _Unreliable(str(exc)) from exc
            if key is None or key.size == 0:  # landed after the last keyframe: go back one interval
                back = max(2.0 * back, self.gop)
            else:
                key_t = self._time(key.pts)
                if key_t <= target or overshoot_ok:
                    if attempt == 0 and key_t <= target:
                        self.gop = max(self.gop, target - key_t)  # the next keyframe lies past the target
                    self._last_key = None
                    self.frames = self._decode(itertools.chain([key], packets), key.pts)
                    return
                back = max(2.0 * back, key_t - target + self.gop)
            if ts <= 0.0:
                break
        raise _Unreliable("seeking keeps landing past the target")

    def _decode(self, packets, key_pts: int | None):
        last_t = -math.inf
        try:
            for packet in packets:
                if packet.is_keyframe and packet.pts is not None and packet.size:
                    kt = self._time(packet.pts)
                    if self._last_key is not None and kt > self._last_key:
                        self.gop = max(self.gop, kt - self._last_key)
                    self._last_key = kt
                for frame in packet.decode():
                    self.decoded += 1
                    if frame.pts is None:
                        raise _Unreliable("a frame without pts")
                    if key_pts is not None and frame.pts < key_pts:
                        continue  # a leading frame of an open GOP: its references precede the seek point
                    t = float(frame.time) - self.origin
                    if t < last_t:
                        raise _Unreliable("frames out of presentation order")
                    last_t = t
                    dur = float(frame.duration * frame.time_base) if frame.duration and frame.time_base \
                        else self.default_dur
                    self.decoded_end = max(self.decoded_end or 0.0, t + dur)
                    yield frame, t
        except av.FFmpegError as exc:
            raise _Unreliable(str(exc)) from exc

    def _index_key_before(self, target: float) -> float | None:
        """Time of the indexed keyframe before `target` (mp4 indexes hold decode times), None without an index."""
        entries = self.stream.index_entries
        if len(entries) < 2:
            return None
        i = entries.search_timestamp(math.floor((target + self.origin) / self.tb), backward=True)
        return self._time(entries[i].timestamp) if i >= 0 else None

    def worth_seeking(self, target: float, pos: float) -> bool:
        """Whether seeking to the keyframe before `target` skips video beyond `pos` (what is decoded already)."""
        if target - pos <= SEEK_SAVES_MIN_S:
            return False
        key = self._index_key_before(target)
        if key is not None:
            return key - pos > SEEK_SAVES_MIN_S
        return target - pos > self.gop


def _pick_seeking(container, end: float, times: np.ndarray, max_pixels: int | None, reseek: bool,
                  need_end: bool) -> PickedFrames:
    reader = _Reader(container)
    picks = _Picks(len(times), max_pixels)
    last = ahead = None  # (frame, t): the latest frame at or before the current target / the first one past it
    from_start = times[0] <= SEEK_MIN_S  # then targets before the first frame see the first frame, as when linear
    if from_start:
        reader.from_start()
    else:
        reader.seek(float(times[0]))
    eof = False
    for target in times:
        if ahead is not None and ahead[1] > target:  # the same frame as the previous target
            picks.add(*(last or ahead))
            continue
        pos = (ahead or last)[1] if (ahead or last) else None
        if reseek and not eof and pos is not None and reader.worth_seeking(float(target), pos):
            reader.seek(float(target))
            last = ahead = None
            from_start = False
        if ahead is not None:
            last, ahead = ahead, None
        if not eof:
            for frame, t in reader.frames:
                if t > target:
                    ahead = (frame, t)
                    break
                last = (frame, t)
            else:
                eof = True  # the stream ended: later targets see its last frame, as in the linear decode
        if last is None and not (from_start and ahead):
            raise _Unreliable("no frame at or before the target")
        picks.add(*(last or ahead))
    goal = end - TRUNCATION_TOL_S
    if need_end and not eof and (reader.decoded_end or 0.0) < goal:
        # Show that the stream reaches the window end (else it is truncated) without decoding the gap to it.
        pos = (ahead or last)[1]
        if reseek and reader.worth_seeking(goal, pos):
            reader.seek(goal, overshoot_ok=True)
        for _, t in reader.frames:
            if reader.decoded_end >= goal or t >= end:
                break
    return PickedFrames(picks.out, picks.pts, reader.decoded_end, None, reader.decoded, reader.seeks, True)


def pick_frames(path: str, start: float, end: float, times: np.ndarray, max_pixels: int | None = None,
                sparse: bool = True, need_end: bool = True,
                container: av.container.InputContainer | None = None) -> PickedFrames:
    """For each target time (seconds, increasing, within [start, end)) the last frame with pts <= t.

    `sparse=False` decodes every frame of the window. `need_end=False` skips checking that the stream reaches
    `end` (the caller knows the file is complete, e.g. from its audio track). Frames are resized under
    `max_pixels`. The file must have a video stream. `container`: `path` already open and not yet read (saves
    parsing a long file's index again); it is left open.
    """
    if len(times) and (sparse or start > SEEK_MIN_S):
        try:
            if container is not None:
                return _pick_seeking(container, end, times, max_pixels, sparse, need_end)
            with open_media(path) as opened:
                return _pick_seeking(opened, end, times, max_pixels, sparse, need_end)
        except _Unreliable:
            pass
    return _pick_linear(path, end, times, max_pixels)
