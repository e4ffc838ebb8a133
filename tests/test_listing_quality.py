"""What the replies list against the synthetic world's true timelines (eval/listing_quality.py)."""

import pytest

from helpers import answer, listing
from omnivideo_r1.eval.listing_quality import listing_lines, listing_quality, reply_listing
from omnivideo_r1.eval.report import MODALITY_NAMES
from omnivideo_r1.schema import AVSample
from omnivideo_r1.synth.scene import AudioEvent, Timeline, VisualEvent

# A green circle then a red square; a high beep during the circle, noise during the square.
CIRCLE, SQUARE = VisualEvent("circle", "green", "left", 0.0, 2.0), VisualEvent("square", "red", "right", 2.0, 4.0)
HIGH, NOISE = AudioEvent("high", 0.5, 1.0), AudioEvent("noise", 2.5, 3.0)
CLIP = Timeline(4.0, [CIRCLE, SQUARE], [HIGH, NOISE], 0.5)
BOTH = AVSample(id="both", video="clip.mp4", question="Which sound was heard while the red square was on screen?",
                options=["a high-pitched beep", "a noise burst", "a low-pitched beep", "a mid-pitched beep"],
                answer="B", modality_needs="both",
                extra={"timeline": CLIP.to_dict(), "query": {"type": "sound_during_object", "colour": "red",
                                                              "shape": "square"}})


MOVED = VisualEvent("square", "red", "center", 2.0, 4.0)  # another screen position: still the red square
NOISE_AT_CIRCLE = AudioEvent("noise", 0.5, 1.0)  # the noise listed during the circle, not the square
CASES = [
    # (name, reply, (video found, video listed), (audio found, audio listed), implies right, follows)
    ("the true listing, its answer", listing(*CLIP.events()) + answer("a noise burst"), (2, 2), (2, 2), True, True),
    ("the true listing, another answer", listing(*CLIP.events()) + answer("a high-pitched beep"), (2, 2), (2, 2),
     True, False),
    ("a position the world did not show", listing(CIRCLE, MOVED, HIGH, NOISE) + answer("a noise burst"), (2, 2),
     (2, 2), True, True),
    ("the sounds left out", listing(CIRCLE, SQUARE) + answer("a noise burst"), (2, 2), (0, 0), False, False),
    ("the noise at the wrong time", listing(CIRCLE, SQUARE, HIGH, NOISE_AT_CIRCLE) + answer("a noise burst"), (2, 2),
     (1, 2), False, False),
    ("a wrong colour", listing(VisualEvent("square", "blue", "right", 2.0, 4.0), HIGH, NOISE) + answer("a noise burst"),
     (0, 1), (2, 2), False, False),
    ("no listing", answer("a noise burst"), (0, 0), (0, 0), False, False),
    ("captions not the world's", "<time>2.5-3.0</time><caption>Static.</caption>" + answer("a noise burst"), (0, 0),
     (0, 0), False, False),
]


@pytest.mark.parametrize("name,reply,video,audio,implies_right,follows", CASES, ids=[c[0] for c in CASES])
def test_reply_listing_table(name, reply, video, audio, implies_right, follows):
    counts = reply_listing(reply, BOTH)
    assert (counts["video"]["found"], counts["video"]["listed"], counts["video"]["true"]) == (*video, 2)
    assert (counts["audio"]["found"], counts["audio"]["listed"], counts["audio"]["true"]) == (*audio, 2)
    assert (counts["both"]["implies_right"], counts["both"]["follows"]) == (implies_right, follows)


def test_precise_counts_listed_events_that_name_a_true_one():
    counts = reply_listing(listing(CIRCLE, SQUARE, HIGH, NOISE_AT_CIRCLE, AudioEvent("low", 3.5, 4.0)), BOTH)
    assert counts["audio"] == {"true": 2, "listed": 3, "found": 1, "precise": 1}


def test_a_sample_the_world_did_not_write_has_no_listing_counts():
    plain = AVSample(id="real", video="v.mp4", question="q?", options=["a", "b"], answer="A")
    assert reply_listing(listing(*CLIP.events()), plain) is None


def row(model: str, modality: str, sample_id: str, output: str, **kw) -> dict:
    return {"model": model, "modality": modality, "id": sample_id, "output": output, **kw}


def test_listing_quality_aggregates_per_model_and_input_condition():
    video_only = AVSample(id="v", video="clip.mp4", question="What colour was the square?",
                          options=["red", "green", "blue", "yellow"], answer="A", modality_needs="video",
                          extra={"timeline": CLIP.to_dict(), "query": {"type": "colour_of_shape", "shape": "square"}})
    true, no_sounds = listing(*CLIP.events()), listing(CIRCLE, SQUARE)
    rows = [row("base", "av", "both", true + answer("a noise burst")),
            row("base", "av", "v", no_sounds + answer("red")),
            row("base", "video", "both", listing(CIRCLE) + answer("a noise burst")),
            row("base", "video", "v", true + answer("red")),  # sounds listed from silent video: not counted
            row("QI", "av", "both", no_sounds + answer("a noise burst")),
            row("QI", "av", "gone", true),  # no such sample
            row("QI", "av", "v", true, media_error="unreadable clip")]
    quality = listing_quality(rows, [BOTH, video_only])
    av = quality["base"]["av"]
    assert av["n"] == 2 and av["found_video"] == 1.0 and av["listed_video"] == 1.0
    assert (av["found_audio"], av["listed_audio"], av["precise_audio"]) == (0.5, 0.5, 1.0)
    assert av["both"] == {"n": 1, "implies_right": 1.0, "n_implies_one": 1, "follows": 1.0}
    silent = quality["base"]["video"]
    assert (silent["found_video"], silent["listed_video"]) == (0.75, 0.75)
    assert "found_audio" not in silent and "both" not in silent  # nothing to hear: no sounds, no cross-modal read
    qi = quality["QI"]["av"]
    assert qi["n"] == 1 and qi["found_audio"] == 0.0 and qi["precise_audio"] is None
    assert qi["both"] == {"n": 1, "implies_right": 0.0, "n_implies_one": 0, "follows": None}
    assert quality["_skipped_rows"] == 2

    md = "\n".join(listing_lines(quality, MODALITY_NAMES))
    assert "| base | AV | 100.0 | 1.00 | 50.0 | 0.50 | 100.0 | 100.0 (of 1) |" in md
    assert "| base | silent video | 75.0 | 0.75 | - | - | - | - |" in md
    assert "| QI | AV | 100.0 | 1.00 | 0.0 | 0.00 | 0.0 | - (of 0) |" in md
    assert "(2 rows without a synthetic-world timeline or with a media error were left out.)" in md


def test_no_rows_no_lines():
    assert listing_lines(listing_quality([], []), MODALITY_NAMES) == []


def test_the_demo_reports_the_base_listing_sounds_from_audio_alone():
    from omnivideo_r1.eval.demo_report import render_markdown
    from omnivideo_r1.train.demo_jobs import evaluation_rows

    audio_q = AVSample(id="a", video="clip.mp4", question="What was the first sound heard?",
                       options=["a high-pitched beep", "a noise burst", "a low-pitched beep", "a mid-pitched beep"],
                       answer="A", modality_needs="audio",
                       extra={"timeline": CLIP.to_dict(), "query": {"type": "nth_sound", "index": 0}})

    def scored(sample_id, modality, output):
        return {"id": sample_id, "modality": modality, "output": output, "correct": True, "parsed": "A"}

    arm_rows = {f"eval_{arm}_{m}": {"rows": [scored("a", m, listing(*CLIP.events()))], "model_dir": f"runs/{arm}"}
                for arm in ("base", "qi", "ma", "qi_ma") for m in ("av", "video")}
    results = {**arm_rows, "eval_base_perception": {"audio_rows": [scored("a", "audio", listing(HIGH))]}}
    rows, perception = evaluation_rows(results, [audio_q], ["av", "video"])
    assert [(r["model"], r["checkpoint"]) for r in rows if r["modality"] == "av"] == [
        ("base", "runs/base"), ("QI only", "runs/qi"), ("MA only", "runs/ma"), ("QI + MA", "runs/qi_ma")]
    assert perception["audio_listing_audio_alone"] == {"n": 1, "found_audio": 0.5, "listed_audio": 0.5,
                                                       "precise_audio": 1.0}
    md = render_markdown({}, ["av", "video"], config={}, timings={}, sft_losses=[], rows=rows, perception=perception,
                         listing=listing_quality(rows, [audio_q]))
    assert "Sounds the base's replies list from audio alone" in md and "50.0% found, 0.50 listed per sound" in md
    assert "| QI + MA | AV | 100.0 | 1.00 | 100.0 | 1.00 | - | - |" in md
