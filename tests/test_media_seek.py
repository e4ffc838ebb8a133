"""Sparse frame picking (seek to the keyframe before each target) gives exactly the frames of a linear decode.

Streams written here with PyAV cover what makes seeking hard: B-frames (decode times before presentation times,
so an mp4 index points before the frame), open GOPs (frames decoded after a keyframe but shown before it),
variable frame rate, VP9 hidden frames, MPEG-TS (no index, a late start time) and files cut short.
"""

from __future__ import annotations

import functools
import json
import warnings
from fractions import Fraction

import av
import numpy as np
import pytest

from omnivideo_r1 import cli
from omnivideo_r1.media import decode as decode_mod
from omnivideo_r1.media import frames as frames_mod
from omnivideo_r1.media.cache import ClipCache
from omnivideo_r1.media.decode import load_clip, target_times
from omnivideo_r1.media.encode import write_av_file
from omnivideo_r1.media.frames import pick_frames
from omnivideo_r1.media.types import AUDIO_SAMPLE_RATE as SR
from omnivideo_r1.media.types import MediaError

H, W, FPS = 48, 64, 10
X264_B_OPEN_GOP = {"preset": "veryfast", "x264-params": "keyint=10:min-keyint=10:scenecut=0:bframes=3:b-adapt=0:"
                                                        "b-pyramid=normal:open-gop=1"}
X264_PLAIN = {"preset": "ultrafast", "x264-params": "keyint=10:min-keyint=10:scenecut=0"}
VP9 = {"g": "10", "deadline": "good", "cpu-used": "8", "lag-in-frames": "10", "auto-alt-ref": "1"}


def _write(path: str, times_s: np.ndarray, codec: str = "libx264", options: dict | None = None,
           fmt: str | None = None) -> str:
    """A scrolling random texture (so encoders use motion and B-frames) at the given presentation times."""
    tex = np.random.default_rng(0).integers(0, 256, (H, 4 * W, 3), dtype=np.uint8)
    time_base = Fraction(1, 1000)
    with av.open(path, "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=FPS)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.time_base = time_base
        stream.codec_context.time_base = time_base
        stream.options = options or {}
        for i, t in enumerate(times_s):
            img = np.ascontiguousarray(np.roll(tex, -5 * i, axis=1)[:, :W])
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts, frame.time_base = int(round(t * 1000)), time_base
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def _cfr(seconds: float) -> np.ndarray:
    return np.arange(int(seconds * FPS)) / FPS


def _vfr(seconds: float) -> np.ndarray:
    steps = np.random.default_rng(1).choice([0.04, 0.1, 0.25, 0.6], size=int(seconds * 4))
    times = np.concatenate([[0.0], np.cumsum(steps)])
    return np.round(times[times < seconds], 3)


@pytest.fixture(scope="module")
def streams(tmp_path_factory):
    d = tmp_path_factory.mktemp("seek")
    return {
        "cfr.mp4": _write(str(d / "cfr.mp4"), _cfr(30), options=X264_PLAIN),
        "bframes_open_gop.mp4": _write(str(d / "bog.mp4"), _cfr(30), options=X264_B_OPEN_GOP),
        "bframes_open_gop.mkv": _write(str(d / "bog.mkv"), _cfr(30), options=X264_B_OPEN_GOP),
        "vfr.mp4": _write(str(d / "vfr.mp4"), _vfr(30), options=X264_B_OPEN_GOP),
        "vp9.webm": _write(str(d / "vp9.webm"), _cfr(30), codec="libvpx-vp9", options=VP9),
        "mpegts.ts": _write(str(d / "ts.ts"), _cfr(30), options=X264_B_OPEN_GOP, fmt="mpegts"),
        "mpeg4.avi": _write(str(d / "m4.avi"), _cfr(30), codec="mpeg4", options={"g": "10", "bf": "2"}),
    }


def _all_frame_times(path: str) -> np.ndarray:
    with av.open(path) as c:
        origin = c.start_time / 1e6 if c.start_time is not None else 0.0
        return np.array([float(f.time) - origin for f in c.decode(c.streams.video[0])])


def _target_sets(path: str) -> dict[str, np.ndarray]:
    times = _all_frame_times(path)
    end = float(times[-1]) + 0.1
    with av.open(path) as c:
        origin = c.start_time / 1e6 if c.start_time is not None else 0.0
        keys = [float(p.pts * p.time_base) - origin for p in c.demux(c.streams.video[0]) if p.is_keyframe and p.size]
    near_keys = np.sort(np.concatenate([[k - 1e-3, k, k + 1e-3] for k in keys[1:]]))  # around every seek point
    rng = np.random.default_rng(2)
    return {
        "64 over the file": target_times(0.0, end, 64 / end, 1, 64),
        "sparse, 6 over the file": target_times(0.0, end, 1.0, 1, 6),
        "late window": target_times(17.3, 26.9, 1.0, 1, 5),
        "dense": target_times(3.0, 9.0, 8.0, 1, 64),
        "around keyframes": near_keys[near_keys > 0],
        "random": np.sort(rng.uniform(0.0, end, 40)),
        "past the last frame": np.array([5.0, end - 0.01, end + 3.0]),
    }


@pytest.mark.parametrize("name", ["cfr.mp4", "bframes_open_gop.mp4", "bframes_open_gop.mkv", "vfr.mp4", "vp9.webm",
                                  "mpegts.ts", "mpeg4.avi"])
def test_sparse_picks_the_frames_of_a_linear_decode(streams, name):
    path = streams[name]
    all_times = _all_frame_times(path)
    end = float(all_times[-1]) + 0.1
    for label, targets in _target_sets(path).items():
        start = float(targets[0])
        sparse = pick_frames(path, start, end + 5, targets)
        linear = pick_frames(path, 0.0, end + 5, targets, sparse=False)
        assert not linear.sparse and linear.seeks == 0
        expect = [all_times[all_times <= t + 1e-9].max(initial=all_times[0]) for t in targets]
        np.testing.assert_allclose(linear.pts, expect, atol=1e-9, err_msg=f"{name}, {label}")
        assert sparse.sparse, f"{name}, {label}: fell back to the linear decode"
        assert sparse.pts == linear.pts, f"{name}, {label}"
        assert np.array_equal(sparse.frames_THWC, linear.frames_THWC), f"{name}, {label}: pixels differ"
        assert sparse.decoded_end >= end - 0.25 - 0.1, (name, label, sparse.decoded_end)


def test_streams_have_the_hard_cases(streams):
    """Guard for the test above: the fixtures really hold B-frames, open GOPs and variable frame rate."""
    with av.open(streams["bframes_open_gop.mp4"]) as c:
        packets = [p for p in c.demux(c.streams.video[0]) if p.size]
    assert any(p.dts < p.pts for p in packets[1:])  # B-frames reorder
    key_at = [i for i, p in enumerate(packets) if p.is_keyframe]
    leading = [i for i in key_at[1:] if packets[i + 1].pts < packets[i].pts]
    assert leading, "no open GOP: no frame after a keyframe is shown before it"
    steps = np.diff(_all_frame_times(streams["vfr.mp4"]))
    assert steps.max() > 5 * steps.min()


def test_sparse_decodes_only_near_the_targets(streams):
    path = streams["bframes_open_gop.mkv"]
    targets = target_times(0.0, 30.0, 0.2, 1, 64)  # 6 frames, 5 s apart, keyframes every 1 s
    sparse = pick_frames(path, 0.0, 30.0, targets)
    linear = pick_frames(path, 0.0, 30.0, targets, sparse=False)
    assert sparse.sparse and sparse.seeks >= 5
    assert linear.frames_decoded >= 299 and sparse.frames_decoded < linear.frames_decoded / 3
    dense = pick_frames(path, 0.0, 30.0, target_times(0.0, 30.0, 4.0, 1, 120))  # 0.25 s apart: keep decoding
    assert dense.seeks == 0 and dense.frames_decoded >= 299


def test_unreliable_seeking_falls_back_to_the_linear_decode(streams, monkeypatch):
    def lost(self, target, overshoot_ok=False):
        raise frames_mod._Unreliable("simulated: the demuxer cannot seek")

    monkeypatch.setattr(frames_mod._Reader, "seek", lost)
    path = streams["cfr.mp4"]
    targets = target_times(2.0, 20.0, 0.5, 1, 64)
    got = pick_frames(path, 2.0, 20.0, targets)
    assert not got.sparse and got.pts == pick_frames(path, 2.0, 20.0, targets, sparse=False).pts


@pytest.fixture
def linear_only(monkeypatch):
    """load_clip with the linear decode only (the reference behaviour)."""
    def load(*args, **kwargs):
        monkeypatch.setattr(decode_mod, "pick_frames", functools.partial(pick_frames, sparse=False))
        try:
            return load_clip(*args, **kwargs)
        finally:
            monkeypatch.setattr(decode_mod, "pick_frames", pick_frames)
    return load


def _load_noting(load, *args, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clip = load(*args, **kwargs)
    return clip, [str(w.message) for w in caught]


@pytest.mark.parametrize("name,note", [("bframes_open_gop.mkv", "truncated?"),  # keeps the declared duration
                                       ("mpegts.ts", None)])  # TS estimates its duration from the bytes
def test_cut_files_give_the_same_partial_clip(streams, tmp_path, linear_only, name, note):
    data = open(streams[name], "rb").read()
    cut = tmp_path / f"cut_{name}"
    cut.write_bytes(data[: int(len(data) * 0.55)])
    for window in ({}, {"start": 4.0, "end": 28.0}):
        sparse, sparse_notes = _load_noting(load_clip, str(cut), fps=0.5, **window)
        linear, linear_notes = _load_noting(linear_only, str(cut), fps=0.5, **window)
        assert 10.0 < sparse.end < 25.0 and sparse.end == linear.end and sparse_notes == linear_notes
        assert note is None or any(note in n and n.startswith(str(cut)) for n in sparse_notes), sparse_notes
        assert np.array_equal(sparse.frame_times_T, linear.frame_times_T)
        assert np.array_equal(sparse.frames_THWC, linear.frames_THWC)
    with pytest.raises(MediaError, match=f"^{cut}: "):
        load_clip(str(cut), start=26.0, end=29.0)


def test_garbage_after_a_good_start_is_still_a_media_error(tmp_path):
    garbage = tmp_path / "garbage.mkv"
    garbage.write_bytes(b"\x1aE\xdf\xa3" + np.random.default_rng(3).integers(0, 256, 20000, np.uint8).tobytes())
    with pytest.raises(MediaError) as err:
        load_clip(str(garbage), start=2.0, end=10.0)
    assert str(err.value).startswith(str(garbage))


def test_clip_cache_and_inspect_take_the_sparse_path(streams, monkeypatch, capsys, linear_only):
    seeks = []
    real_seek = frames_mod._Reader.seek

    def counted(self, target, overshoot_ok=False):
        seeks.append(target)
        return real_seek(self, target, overshoot_ok)

    monkeypatch.setattr(frames_mod._Reader, "seek", counted)
    path = streams["bframes_open_gop.mp4"]
    clip = ClipCache().get_or_load(path, fps=0.2)
    assert len(seeks) >= 5 and clip.frames_THWC.shape[0] == 6
    reference = linear_only(path, fps=0.2)
    assert np.array_equal(clip.frames_THWC, reference.frames_THWC)
    seeks.clear()
    assert cli.main(["inspect", path, "--json", "--fps", "0.2"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(seeks) >= 5 and out["sampled_frames"]["times"] == [round(float(t), 4) for t in clip.frame_times_T]


@pytest.mark.parametrize("ext", ["mp4", "mkv", "wav"])
def test_late_audio_windows_seek_and_read_the_same_samples(tmp_path, monkeypatch, ext):
    seconds = 40.0
    t = np.arange(int(seconds * SR)) / SR
    wave = (0.4 * np.sin(2 * np.pi * 300 * t) * (np.floor(t * 3) % 2)).astype(np.float32)
    frames = None if ext == "wav" else np.zeros((int(seconds), H, W, 3), np.uint8)
    path = write_av_file(str(tmp_path / f"long.{ext}"), frames, 1, wave)
    resampled = []

    real_resampler = av.AudioResampler

    class CountingResampler:  # counts the decoded audio frames that reach the resampler
        def __init__(self, **kwargs):
            self.inner = real_resampler(**kwargs)

        def resample(self, frame):
            resampled.append(frame is not None)
            return self.inner.resample(frame)

    monkeypatch.setattr(av, "AudioResampler", CountingResampler)
    for start, end in ((30.3, 33.0), (37.05, 40.0)):
        resampled.clear()
        seek, _, _ = decode_mod._decode_audio(path, start, end)
        sought = sum(resampled)
        resampled.clear()
        full, _, _ = decode_mod._decode_audio(path, start, end, allow_seek=False)
        assert len(seek) == len(full) == round((end - start) * SR)
        np.testing.assert_allclose(seek, full, atol=1e-4)
        assert sought < sum(resampled) / 4, (sought, sum(resampled))  # only the window (+ a margin) was decoded
