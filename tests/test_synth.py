"""The synthetic world: determinism, real media with the events really in the pixels and audio, schema, splits,
and the answerability guarantee behind each question's modality_needs."""

from __future__ import annotations

import copy
import json
import os
from collections import Counter

import av
import numpy as np
import pytest

from omnivideo_r1.cli import main as cli_main
from omnivideo_r1.schema import LETTERS, AVSample, read_samples
from omnivideo_r1.synth.questions import NO_SHAPE, QUERY_TYPES, answerability_problems, candidate_answers
from omnivideo_r1.synth.scene import COLOUR_RGB, POSITION_X, SOUND_HZ, Timeline, VisualEvent
from omnivideo_r1.synth.world import SPLITS, WorldConfig, generate_world, make_clip

N_CLIPS = 16


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("world")
    summary = generate_world(str(out), N_CLIPS, seed=7)
    samples = {name: read_samples(str(out / f"{name}.jsonl")) for name in SPLITS}
    return out, summary, samples


def _all(samples):
    return [s for name in SPLITS for s in samples[name]]


def _decode(path):
    """Frames (T, H, W, 3) and 16 kHz mono audio of a written clip, via PyAV directly."""
    with av.open(path) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    resampler = av.AudioResampler(format="flt", layout="mono", rate=16_000)
    chunks = []
    with av.open(path) as container:
        for frame in container.decode(audio=0):
            chunks += [r.to_ndarray().reshape(-1) for r in resampler.resample(frame)]
        chunks += [r.to_ndarray().reshape(-1) for r in resampler.resample(None)]
    return np.stack(frames), np.concatenate(chunks)


def _nearest_colour(rgb):
    table = dict(COLOUR_RGB, background=WorldConfig().background_rgb)
    return min(table, key=lambda name: float(np.sum((np.asarray(table[name], float) - rgb) ** 2)))


def _region_colour(frame, position, cfg):
    cx, cy = int(POSITION_X[position] * cfg.width), cfg.height // 2
    patch = frame[cy - 3:cy + 3, cx - 3:cx + 3].reshape(-1, 3).astype(float)
    return _nearest_colour(patch.mean(axis=0))


# ---- determinism ------------------------------------------------------------------------------------------------

def test_same_seed_same_world_bytes_and_arrays(tmp_path):
    a, b, c = (generate_world(str(tmp_path / name), 4, seed=s) for name, s in (("a", 3), ("b", 3), ("c", 4)))
    assert a == b
    for name in SPLITS + ("world",):
        ext = "json" if name == "world" else "jsonl"
        assert (tmp_path / "a" / f"{name}.{ext}").read_bytes() == (tmp_path / "b" / f"{name}.{ext}").read_bytes()
    texts = lambda d: "".join((tmp_path / d / f"{n}.jsonl").read_text() for n in SPLITS)  # noqa: E731
    assert texts("a") != texts("c")

    one, two, other = make_clip(3, 1), make_clip(3, 1), make_clip(4, 1)
    assert np.array_equal(one.frames_THWC, two.frames_THWC) and np.array_equal(one.audio, two.audio)
    assert one.timeline == two.timeline
    assert not np.array_equal(one.audio, other.audio)
    assert one.timeline != other.timeline


# ---- real media ---------------------------------------------------------------------------------------------------

def test_clips_are_real_mp4_with_video_and_audio(world):
    out, _, samples = world
    cfg = WorldConfig()
    paths = sorted({s.video for s in _all(samples)})
    assert len(paths) == N_CLIPS and all(p.startswith(str(out)) for p in paths)
    with av.open(paths[0]) as container:
        assert len(container.streams.video) == 1 and len(container.streams.audio) == 1
        assert container.duration / 1e6 == pytest.approx(cfg.duration_s, abs=0.15)
        assert container.streams.video[0].codec_context.width == cfg.width
    frames, audio = _decode(paths[0])
    assert frames.shape == (int(cfg.duration_s * cfg.fps), cfg.height, cfg.width, 3)
    assert len(audio) / 16_000 == pytest.approx(cfg.duration_s, abs=0.1)


def test_events_are_in_the_decoded_pixels_and_audio(world):
    _, _, samples = world
    cfg = WorldConfig()
    checked_tone = checked_shape = 0
    for path in sorted({s.video for s in _all(samples)})[:4]:
        sample = next(s for s in _all(samples) if s.video == path)
        tl = Timeline.from_dict(sample.extra["timeline"])
        frames, audio = _decode(path)
        for ev in tl.visual:
            mid = int(((ev.start + ev.end) / 2) * cfg.fps)
            assert _region_colour(frames[mid], ev.position, cfg) == ev.colour, (path, ev)
            checked_shape += 1
        for t in (0.0, *[e.end for e in tl.visual]):  # a frame in each gap (or right after an event) is dark
            i = int(round(t * cfg.fps))
            if i < len(frames) and not any(e.start <= i / cfg.fps < e.end for e in tl.visual):
                assert all(_region_colour(frames[i], p, cfg) == "background" for p in cfg.positions)
        for ev in tl.audio:
            s0, s1 = int((ev.start + 0.1) * 16_000), int((ev.end - 0.1) * 16_000)
            seg = audio[s0:s1]
            spectrum = np.abs(np.fft.rfft(seg * np.hanning(len(seg))))
            freqs = np.fft.rfftfreq(len(seg), 1 / 16_000)
            if ev.sound == "noise":
                assert np.sqrt(np.mean(seg ** 2)) > 5 * cfg.background_noise
                assert spectrum.max() < 20 * np.median(spectrum)  # broadband: no single dominant line
            else:
                assert abs(freqs[int(np.argmax(spectrum))] - SOUND_HZ[ev.sound]) < 20, (path, ev)
                checked_tone += 1
    assert checked_shape >= 8 and checked_tone >= 2


def test_binding_answers_match_the_rendered_clip(world):
    """For av_binding_colour questions the frame at the sound's midpoint shows the answer colour (no solver used)."""
    _, _, samples = world
    cfg = WorldConfig()
    seen = 0
    for s in _all(samples):
        if s.category != "av_binding_colour":
            continue
        clip = make_clip(7, int(s.extra["clip_id"]), cfg)
        sound = next(a for a in clip.timeline.audio if a.sound == s.extra["query"]["sound"])
        frame = clip.frames_THWC[int((sound.start + sound.end) / 2 * cfg.fps)]
        found = {_region_colour(frame, p, cfg) for p in cfg.positions} - {"background"}
        assert found == {s.answer_text}, s.id
        seen += 1
    assert seen >= 1


# ---- records and splits -------------------------------------------------------------------------------------------

def test_records_schema_splits_and_summary(world):
    out, summary, samples = world
    everything = _all(samples)
    assert len({s.id for s in everything}) == len(everything)
    clips_by_split = {name: {s.extra["clip_id"] for s in samples[name]} for name in SPLITS}
    for i, a in enumerate(SPLITS):
        for b in SPLITS[i + 1:]:
            assert not clips_by_split[a] & clips_by_split[b], (a, b)
    assert sum(len(v) for v in clips_by_split.values()) == N_CLIPS
    assert summary["clips"] == {"train": 13, "val": 1, "test": 2}  # rounded cumulative fractions
    on_disk = json.loads((out / "world.json").read_text())
    assert on_disk["questions"] == {name: len(samples[name]) for name in SPLITS}
    assert sum(on_disk["category"].values()) == len(everything)
    assert on_disk["config"]["duration_s"] == 4.0 and on_disk["seed"] == 7
    raw = json.loads((out / "train.jsonl").read_text().splitlines()[0])
    assert raw["video"].startswith("clips/")  # stored relative to the JSONL
    for s in everything:
        assert s.source == "synthetic" and len(s.options) == 4 and len(set(s.options)) == 4
        assert (s.modality_needs, s.category) == QUERY_TYPES[s.extra["query"]["type"]]
        assert s.time_captions and all(c.end > c.start for c in s.time_captions)
        assert os.path.exists(s.video)
        captions = {(c.start, c.end, c.caption) for c in s.time_captions}
        assert s.extra["evidence"] and all((e["start"], e["end"], e["caption"]) in captions
                                           for e in s.extra["evidence"])
        if s.modality_needs == "both":  # binding questions cite a sound and a shape
            kinds = {"sounds" in e["caption"] for e in s.extra["evidence"]}
            assert kinds == {True, False} or s.answer_text == NO_SHAPE, s.id
    assert {s.modality_needs for s in everything} == {"video", "audio", "both"}


def test_answer_letters_balanced(world):
    _, summary, samples = world
    counts = Counter(s.answer for s in _all(samples))
    assert set(counts) == set(LETTERS[:4])
    assert max(counts.values()) - min(counts.values()) <= 1  # letters are dealt from shuffled decks
    assert summary["answer_letters"] == dict(sorted(counts.items()))


# ---- answerability -------------------------------------------------------------------------------------------------

def test_every_question_has_honest_modality_needs(world):
    _, _, samples = world
    kinds = Counter()
    for s in _all(samples):
        got = {k: candidate_answers(s, k) for k in ("video", "audio", "both")}
        assert got["both"] == {s.answer}, s.id
        # Soundness: the true answer is never ruled out by a single sense.
        assert s.answer in got["video"] and s.answer in got["audio"], s.id
        if s.modality_needs in ("video", "audio"):
            assert got[s.modality_needs] == {s.answer}, s.id
        else:
            assert len(got["video"]) >= 2 and len(got["audio"]) >= 2, s.id
        assert answerability_problems(s) == []
        kinds[s.modality_needs] += 1
    assert kinds["both"] >= 5


def _hand_made(visual, audio, query, options, answer, needs="both"):
    tl = Timeline(4.0, visual, audio, 0.5)
    return AVSample(id="hand-0", video="x.mp4", question="?", options=options, answer=answer,
                    modality_needs=needs, extra={"timeline": tl.to_dict(), "query": query})


def test_ambiguous_hand_made_questions_are_caught():
    from omnivideo_r1.synth.scene import AudioEvent

    colours = ["red", "green", "blue", "yellow"]
    # Only red is ever on screen: a silent-video model answers "red" without hearing anything.
    only_red = [VisualEvent("circle", "red", "left", 0.0, 1.5), VisualEvent("square", "red", "right", 2.0, 3.5)]
    beep = [AudioEvent("high", 0.5, 1.0)]
    leaky = _hand_made(only_red, beep, {"type": "colour_during_sound", "sound": "high"}, colours, "A")
    assert candidate_answers(leaky, "video") == {"A"}
    assert any("video-only" in p for p in answerability_problems(leaky))

    # The sound straddles two shapes: even both senses cannot pick one colour.
    two = [VisualEvent("circle", "red", "left", 0.0, 1.0), VisualEvent("square", "green", "right", 1.0, 2.0)]
    straddle = _hand_made(two, [AudioEvent("high", 0.75, 1.25)],
                          {"type": "colour_during_sound", "sound": "high"}, colours, "A")
    assert candidate_answers(straddle, "both") == {"A", "B"}
    assert answerability_problems(straddle)

    # A well-formed one passes, and mislabelling an audio question as "video" is caught.
    good = _hand_made(two, [AudioEvent("high", 0.25, 0.75)],
                      {"type": "shape_during_sound", "sound": "high"}, ["circle", "square", "triangle", NO_SHAPE], "A")
    assert answerability_problems(good) == []
    assert candidate_answers(good, "video") == {"A", "B", "D"}  # the 2 s gap could have held the beep
    wrong = _hand_made(two, [AudioEvent("mid", 0.25, 0.75)], {"type": "count_beeps"}, ["0", "1", "2", "3"], "B",
                       needs="video")
    assert answerability_problems(wrong)
    bad = copy.deepcopy(good)
    bad.extra.pop("query")
    with pytest.raises(ValueError, match="hand-0"):
        candidate_answers(bad, "both")


TWO_SHAPES = [VisualEvent("circle", "red", "left", 0.0, 1.0), VisualEvent("square", "green", "right", 1.5, 2.5)]


@pytest.mark.parametrize("query, options, needs, expected_letters", [
    # A window inside the red circle: video alone answers, audio alone says nothing.
    ({"type": "colour_at_time", "start": 0.25, "end": 0.75}, ["red", "green", "blue", "yellow"], "video", {"A"}),
    # A window straddling both shapes is ambiguous (red and green): dropped by the answerability check.
    ({"type": "colour_at_time", "start": 0.75, "end": 1.75}, ["red", "green", "blue", "yellow"], "video",
     {"A", "B"}),
    # A window in the gap between the shapes: nothing was on screen.
    ({"type": "shape_at_time", "start": 1.0, "end": 1.5}, ["circle", "square", "triangle", NO_SHAPE], "video",
     {"D"}),
    # Half in the square, half after it: the square, or no shape for the rest of the window.
    ({"type": "shape_at_time", "start": 2.25, "end": 2.75}, ["circle", "square", "triangle", NO_SHAPE], "video",
     {"B", "D"}),
    ({"type": "sound_at_time", "start": 0.0, "end": 1.0},
     ["a high-pitched beep", "a low-pitched beep", "a mid-pitched beep", "a burst of noise"], "audio", {"A"}),
])
def test_time_window_questions_read_one_sense_over_the_window(query, options, needs, expected_letters):
    from omnivideo_r1.synth.scene import AudioEvent

    sample = _hand_made(TWO_SHAPES, [AudioEvent("high", 0.5, 1.0), AudioEvent("low", 3.0, 3.5)], query, options,
                        "A", needs=needs)
    assert candidate_answers(sample, "both") == expected_letters
    assert candidate_answers(sample, needs) == expected_letters
    other = "audio" if needs == "video" else "video"
    assert candidate_answers(sample, other) == set("ABCD")  # the other sense rules nothing out
    assert (answerability_problems(sample) == []) == (expected_letters == {"A"})


def test_time_window_questions_name_the_window_as_the_listing_writes_it():
    from dataclasses import replace

    from omnivideo_r1.synth.questions import TIME_WINDOW_TYPES, question_text, time_window_queries
    from omnivideo_r1.synth.scene import sample_timeline

    world = WorldConfig()
    rng = np.random.default_rng(3)
    seen = set()
    for _ in range(20):
        tl = sample_timeline(rng, world)
        for q in time_window_queries(tl, world, rng):
            seen.add(q["type"])
            assert 0.0 <= q["start"] < q["end"] <= tl.duration
            lo, hi = world.audio_event_s if TIME_WINDOW_TYPES[q["type"]][0] == "video" else world.visual_event_s
            assert lo - 1e-9 <= q["end"] - q["start"] <= hi + 1e-9
            # The same "1.0-1.5" digits as a <time>1.0-1.5</time> tag of the listing.
            assert f" {q['start']:.1f}-{q['end']:.1f} s?" in question_text(q)
    assert seen == set(TIME_WINDOW_TYPES)
    # A clip shorter than the longest window: every window still ends inside it.
    short = WorldConfig(duration_s=1.0, min_visual_events=1, max_visual_events=1, visual_event_s=(0.5, 0.75),
                        min_audio_events=1, max_audio_events=1, audio_event_s=(0.25, 0.25))
    tl = sample_timeline(rng, short)
    for q in time_window_queries(tl, replace(short, visual_event_s=(0.75, 1.5)), rng, per_type=20):
        assert 0.0 <= q["start"] < q["end"] <= tl.duration


# ---- config and CLI --------------------------------------------------------------------------------------------

def test_config_and_split_errors(tmp_path):
    with pytest.raises(ValueError, match="max_visual_events"):
        WorldConfig(max_visual_events=5)
    with pytest.raises(ValueError, match="time_grid_s"):
        WorldConfig(duration_s=4.1)
    with pytest.raises(ValueError, match="splits"):
        generate_world(str(tmp_path), 2, seed=0, splits=(0.5, 0.1, 0.1))


def test_cli_writes_world_and_prints_summary(tmp_path, capsys):
    rc = cli_main(["synth", "--out", str(tmp_path / "w"), "--n", "3", "--seed", "1", "--questions-per-clip", "2",
                   "--set", "duration_s=3", "--set", "max_visual_events=3"])
    assert rc == 0
    printed = json.loads(capsys.readouterr().out)
    assert sum(printed["questions"].values()) <= 6 and sum(printed["clips"].values()) == 3
    with av.open(str(tmp_path / "w" / "clips" / "000000.mp4")) as container:
        assert container.duration / 1e6 == pytest.approx(3.0, abs=0.15)
    assert cli_main(["synth", "--out", str(tmp_path / "x"), "--n", "2", "--set", "fps=fast"]) == 2
    assert cli_main(["synth", "--out", str(tmp_path / "x"), "--n", "2", "--set", "duration_s=3"]) == 2  # 4 don't fit
