"""Small curation inputs in both source formats, with real media: tiny clips with/without audio, a garbage file,
a missing file. `build_inputs(tmp)` writes everything and returns the paths and the expected outcomes.

Category sizes are chosen so balancing has work to do with `balance.min_per_category=2` and
`balance.max_ratio=1.5` (median cap): speech_content 6 (2 over the cap of 4), music 3, counting 3, sound_source 1
(long tail).
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any, Sequence

import numpy as np

from omnivideo_r1.judges.heuristics import heuristic_judgement
from omnivideo_r1.judges.base import JudgeRequest, JudgeResult
from omnivideo_r1.media.encode import write_av_file

INSTRUCTION = "Answer with the option's letter from the given choices directly."


def _clip(path: str, audio: bool, colour: int) -> str:
    frames = np.zeros((8, 32, 32, 3), dtype=np.uint8)
    frames[..., colour % 3] = 200
    t = np.arange(16_000, dtype=np.float32) / 16_000
    wave = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32) if audio else None
    return write_av_file(path, frames, 8.0, wave)


def make_media(root: str) -> dict[str, str]:
    """Relative names (under root/videos) of: two good clips, a silent clip, a garbage file, a missing file."""
    vdir = os.path.join(root, "videos")
    os.makedirs(vdir, exist_ok=True)
    _clip(os.path.join(vdir, "good_a.mp4"), True, 0)
    _clip(os.path.join(vdir, "good_b.mp4"), True, 1)
    _clip(os.path.join(vdir, "silent.mp4"), False, 2)
    with open(os.path.join(vdir, "garbage.mp4"), "wb") as fh:
        fh.write(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return {k: f"videos/{k}.mp4" for k in ("good_a", "good_b", "silent", "garbage", "missing")}


def human(question: str, options: Sequence[str], style: str = "dot") -> str:
    lines = [f"{chr(65 + i)}. {o}" if style == "dot" else f"({chr(65 + i)}) {o}" for i, o in enumerate(options)]
    return "<image>\n" + question + "\n" + "\n".join(lines) + "\n" + INSTRUCTION


# (question, options, answer letter, category the heuristic should give). Every one cues sight and sound.
SPEECH = [
    (f"What does the narrator say about the {thing} shown on screen?", [f"it is {a}", f"it is {b}", "nothing"], "A")
    for thing, a, b in [("car", "fast", "slow"), ("house", "old", "new"), ("dog", "hungry", "tired"),
                        ("tree", "tall", "short"), ("boat", "leaking", "sinking"), ("lamp", "broken", "bright")]
]
MUSIC = [
    (f"Which instrument plays the melody while the {who} dances on screen?", ["piano", "guitar", "drum"], "B")
    for who in ("girl", "boy", "robot")
]
COUNTING = [
    (f"How many times does the bell ring while the {what} is visible?", ["one", "two", "three"], "C")
    for what in ("clock", "door", "window")
]
SOURCE = [("What is the source of the beeping sound you hear on screen?", ["the phone", "the kettle"], "A")]


def llava_records(media: dict[str, str]) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """LLaVA-Video-178K multiple-choice records, and the expected (stage, reason) of the special units."""
    recs: list[dict[str, Any]] = []
    # One multi-turn record carrying three speech questions (split into three units).
    turns = []
    for q, opts, ans in SPEECH[:3]:
        turns += [{"from": "human", "value": human(q, opts)},
                  {"from": "gpt", "value": f"{ans}. {opts[ord(ans) - 65]}"}]
    recs.append({"id": "llava-multi", "video": media["good_a"], "conversations": turns,
                 "data_source": "0_30_s_academic_v0_1"})
    for i, (q, opts, ans) in enumerate(SPEECH[3:] + MUSIC):
        recs.append({"id": f"llava-{i}", "video": media["good_b" if i % 2 else "good_a"],
                     "conversations": [{"from": "human", "value": human(q, opts)},
                                       {"from": "gpt", "value": f"{ans}. {opts[ord(ans) - 65]}" if i % 2 else ans}]})
    q, opts, ans = SPEECH[0]
    special = [
        ("llava-noopts", "good_a", "<image>\nWhat does the narrator say?\nPlease answer briefly.", "A"),
        ("llava-noanswer", "good_a", human(q, opts), "I cannot tell from the clip."),
        ("llava-missing", "missing", human(q, opts), "A"),
        ("llava-garbage", "garbage", human(q, opts), "A"),
        ("llava-silent", "silent", human(q, opts), "A"),
        ("llava-dupes", "good_a", human("What does the man say when the screen turns red?",
                                        ["hello", "hello", "goodbye"]), "C"),
        ("llava-visualonly", "good_b", human("What is the person doing?", ["running", "cooking", "reading"]), "B"),
        ("llava-wrongtext", "good_b", human("What does the woman say to the man shown on screen?",
                                            ["yes", "no", "maybe"]), "A. no"),
    ]
    for rid, vid, hum, gpt in special:
        recs.append({"id": rid, "video": media[vid],
                     "conversations": [{"from": "human", "value": hum}, {"from": "gpt", "value": gpt}]})
    expected = {
        "llava-noopts-t0": ("source", "unparseable_options"),
        "llava-noanswer-t0": ("source", "unparseable_answer"),
        "llava-missing-t0": ("media", "missing_media"),
        "llava-garbage-t0": ("media", "corrupt_media"),
        "llava-silent-t0": ("media", "no_audio"),
        "llava-dupes-t0": ("filter", "low_question_logic"),
        "llava-visualonly-t0": ("filter", "low_audio_dependency"),
        "llava-wrongtext-t0": ("filter", "low_answer_accuracy"),
    }
    return recs, expected


def videovista_records(media: dict[str, str]) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """VideoVista train records: `Type` holds the task name, "(A) text" options; one open-ended record."""
    recs = []
    for i, (q, opts, ans) in enumerate(COUNTING + SOURCE):
        recs.append({"id": f"vv-{i}", "video": media["good_a" if i % 2 else "good_b"], "Type": "Objects Count",
                     "conversations": [{"from": "human", "value": "<video>\nQuestion: " + human(q, opts, "paren")
                                        .replace("<image>\n", "")},
                                       {"from": "gpt", "value": f"({ans}) {opts[ord(ans) - 65]}"}]})
    recs.append({"id": "vv-open", "video": media["good_a"], "Type": "Brief Description",
                 "conversations": [{"from": "human", "value": "<video>\nDescribe the clip."},
                                   {"from": "gpt", "value": "A red screen with a beep."}]})
    return recs, {"vv-open-t0": ("source", "not_multiple_choice")}


def build_inputs(root: str) -> dict[str, Any]:
    """Write media + llava.json + videovista.json under root; returns paths, expected outcomes and unit count."""
    media = make_media(root)
    llava, exp_l = llava_records(media)
    vista, exp_v = videovista_records(media)
    paths = {"llava": os.path.join(root, "llava_mc.json"), "videovista": os.path.join(root, "videovista.json")}
    with open(paths["llava"], "w", encoding="utf-8") as fh:
        json.dump(llava, fh, indent=1)
    with open(paths["videovista"], "w", encoding="utf-8") as fh:
        json.dump(vista, fh, indent=1)
    units = sum(max(1, len(r["conversations"]) // 2) for r in llava + vista)
    return {"paths": paths, "expected": {**exp_l, **exp_v}, "units": units, "records": len(llava) + len(vista)}


class CountingJudge:
    """The offline heuristic scorer behind the Judge protocol; counts every request it answers.

    `crash_after_calls`: raise on that judge() call (before answering it), like a process killed mid-run.
    """

    def __init__(self, crash_after_calls: int | None = None, judge_id: str = "test-heuristic") -> None:
        self.judge_id = judge_id
        self.crash_after_calls = crash_after_calls
        self.calls = 0
        self.answered: list[str] = []
        self._lock = threading.Lock()

    def judge(self, requests: Sequence[JudgeRequest]) -> list[JudgeResult]:
        with self._lock:
            self.calls += 1
            if self.crash_after_calls is not None and self.calls > self.crash_after_calls:
                raise RuntimeError("simulated crash in the middle of judging")
        out = [heuristic_judgement(r) for r in requests]
        self.answered += [r.cache_key(self.judge_id) for r in requests]
        return out
