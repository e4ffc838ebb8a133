"""The listing-follows reward (rewards/listing.py) and the caption reader it rests on (synth/scene.py)."""

import numpy as np
import pytest

from helpers import answer, listing
from omnivideo_r1.rewards import compute_rewards
from omnivideo_r1.rewards.listing import listed_timeline
from omnivideo_r1.rewards.types import RolloutRecord
from omnivideo_r1.schema import AVSample
from omnivideo_r1.synth.scene import AudioEvent, Timeline, VisualEvent, WorldConfig, event_from_caption, sample_timeline


def test_event_from_caption_reads_back_every_caption():
    rng = np.random.default_rng(0)
    for _ in range(50):
        timeline = sample_timeline(rng, WorldConfig())
        for event in timeline.events():
            assert event_from_caption(event.start, event.end, f" {event.caption} ") == event
    assert event_from_caption(0.0, 1.0, "A red circle appears on the top.") is None
    assert event_from_caption(0.0, 1.0, "A red circle appears on the left") is None  # no full stop: not a caption


# A high beep during a green shape, a low beep during a red one.
CLIP = Timeline(4.0, [VisualEvent("circle", "green", "left", 0.0, 2.0), VisualEvent("square", "red", "right", 2.0, 4.0)],
                [AudioEvent("high", 0.5, 1.0), AudioEvent("low", 2.5, 3.0)], 0.5)
SAMPLE = AVSample(id="q1", video="clip.mp4", question="Which colour was on screen when the high-pitched beep sounded?",
                  options=["red", "green", "blue", "yellow"], answer="B", modality_needs="both",
                  extra={"timeline": CLIP.to_dict(), "query": {"type": "colour_during_sound", "sound": "high"}})


TRUE = listing(*CLIP.events())
# The beep listed during the red shape: this listing implies "red".
SWAPPED = listing(VisualEvent("circle", "green", "left", 0.0, 2.0), VisualEvent("square", "red", "right", 2.0, 4.0),
                  AudioEvent("high", 2.5, 3.0))
# Two high beeps, one per shape: "green" and "red" both fit.
AMBIGUOUS = listing(VisualEvent("circle", "green", "left", 0.0, 2.0), AudioEvent("high", 0.5, 1.0),
                    VisualEvent("square", "red", "right", 2.0, 4.0), AudioEvent("high", 2.5, 3.0))


FOLLOWS_CASES = [
    # (name, completion, score)
    ("true listing, its answer", TRUE + answer("green"), 1.0),
    ("true listing, another answer", TRUE + answer("red"), 0.0),
    ("wrong listing, the answer it implies", SWAPPED + answer("red"), 1.0),
    ("wrong listing, the right answer", SWAPPED + answer("green"), 0.0),
    ("ambiguous listing", AMBIGUOUS + answer("green"), 0.0),
    ("no listing", answer("green"), 0.0),
    ("listing, no answer", TRUE, 0.0),
    ("captions not the world's", "<time>0.5-1.0</time><caption>A beep.</caption>" + answer("green"), 0.0),
    ("answered by letter", TRUE + "<thinking>x</thinking><answer>B</answer>", 1.0),
]


@pytest.mark.parametrize("name,completion,score", FOLLOWS_CASES, ids=[c[0] for c in FOLLOWS_CASES])
def test_follows_listing_table(name, completion, score):
    out = compute_rewards([RolloutRecord(SAMPLE, completion)], {"follows_listing": 1.0}, {})["follows_listing"]
    assert out.scores == [score]


def test_follows_listing_is_none_on_samples_the_world_did_not_write():
    plain = AVSample(id="real", video="v.mp4", question="q?", options=["a", "b"], answer="A")
    out = compute_rewards([RolloutRecord(plain, TRUE + answer("a")), RolloutRecord(SAMPLE, TRUE + answer("green"))],
                          {"follows_listing": 1.0}, {})["follows_listing"]
    assert out.scores == [None, 1.0]
    assert out.metrics["not_synthetic"] == 1.0 and out.metrics["n_none"] == 1.0


def test_listed_timeline_keeps_the_clip_duration_and_drops_garbled_segments():
    tl = listed_timeline(TRUE + "<time>1.0-2.0</time><caption>Something else.</caption>", CLIP)
    assert (tl.duration, tl.visual, tl.audio, tl.audio_event_min_s) == (4.0, CLIP.visual, CLIP.audio, 0.5)
