"""Tiny benchmark folders in each benchmark's official on-disk format, with real (1 s, 32x32) media files.

Each writer returns the annotation file's path; the media sits where the official release puts it. Encoding is
the slow part, so one clip is encoded per process and copied.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile

import numpy as np

from omnivideo_r1.media.encode import write_av_file

_TEMPLATES: dict[str, str] = {}


def _template(kind: str) -> str:
    """Encode one mp4 (frames + audio), one silent mp4 or one wav per process; later calls copy it."""
    path = _TEMPLATES.get(kind)
    if path and os.path.exists(path):
        return path
    folder = tempfile.mkdtemp(prefix="eval-fixture-")
    t = np.arange(16_000, dtype=np.float32) / 16_000
    audio = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    frames = np.zeros((4, 32, 32, 3), np.uint8)
    for i in range(4):
        frames[i, :, :, i % 3] = 60 * (i + 1)  # distinct frames so a decoder bug shows up as equal frames
    if kind == "wav":
        path = write_av_file(os.path.join(folder, "a.wav"), None, 4.0, audio)
    elif kind == "silent":
        path = write_av_file(os.path.join(folder, "s.mp4"), frames, 4.0, None)
    else:
        path = write_av_file(os.path.join(folder, "v.mp4"), frames, 4.0, audio)
    _TEMPLATES[kind] = path
    return path


def write_clip(path: str, kind: str = "av") -> str:
    """A real 1 s clip at `path`: kind "av" (frames + audio), "silent" (no audio track) or "wav" (audio only)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    shutil.copyfile(_template(kind), path)
    return path


def write_corrupt(path: str) -> str:
    """A file with an .mp4 name and garbage content (exists and is non-empty, so it passes the load-time check)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(b"\x00not a video\xff" * 64)
    return path


def _dump(path: str, obj) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=1)
    return path


def write_daily_omni(root: str) -> str:
    """qa.json + Videos/<id>/<id>_video.mp4 + <id>_audio.wav; two questions on vidA, one on vidB."""
    records = [
        {"Question": "What was shown after the beep?", "Choice": ["A. A red square", "B. A green circle",
         "C. A blue line", "D. Nothing"], "Answer": "B", "video_id": "vidA", "Type": "AV Event Alignment",
         "content_parent_category": "Lifestyle", "video_duration": "30s"},
        {"Question": "What came first?", "Choice": ["A. Speech", "B. Music", "C. Silence", "D. Applause"],
         "Answer": "C", "video_id": "vidA", "Type": "Event Sequence", "video_duration": "30s"},
        {"Question": "Why did they clap?", "Choice": ["A. Joy", "B. Habit", "C. Signal", "D. Cold"],
         "Answer": "A", "video_id": "vidB", "Type": "Reasoning", "video_duration": "60s",
         "Explaination": "sic"},
    ]
    for vid in ("vidA", "vidB"):
        write_clip(os.path.join(root, "Videos", vid, f"{vid}_video.mp4"))
        write_clip(os.path.join(root, "Videos", vid, f"{vid}_audio.wav"), "wav")
    return _dump(os.path.join(root, "qa.json"), records)


def write_worldsense(root: str) -> str:
    """worldsense_qa.json keyed by video, task0..taskN; videos/<video>.mp4. One question has only 3 options."""
    data = {
        "ws001": {"duration": "<1min", "video_duration": "48s", "domain": "Sports", "sub_category": "Tennis",
                  "audio_class": ["Speech"],
                  "video_caption": "A match.",
                  "task0": {"question": "Who serves?", "candidates": ["A. Left", "B. Right", "C. Both", "D. None"],
                            "answer": "D", "task_domain": "Recognition", "task_type": "Speaker Recognition"},
                  "task1": {"question": "How loud?", "candidates": ["A. Quiet", "B. Loud", "C. Silent"],
                            "answer": "B", "task_domain": "Understanding", "task_type": "Audio Counting"}},
        "ws002": {"duration": "1-2min", "domain": "Music", "audio_class": ["Music"],
                  "task0": {"question": "Which instrument?", "candidates": ["A. Piano", "B. Violin", "C. Drum",
                            "D. Flute"], "answer": "A", "task_domain": "Recognition",
                            "task_type": "Audio Recognition"}},
    }
    for vid in data:
        write_clip(os.path.join(root, "videos", f"{vid}.mp4"))
    return _dump(os.path.join(root, "worldsense_qa.json"), data)


def write_omnivideobench(root: str, folder: str = "videos") -> str:
    """data.json as released: options "A.text" (no space); video_81's A, B, A, B labels and video_145's
    "A The girl ..." (letter, space, no delimiter) copied from the release; clips in videos/ (README) or video/
    (the release's data_example)."""
    data = [
        {"video": "video_1", "video_type": "Vlog", "duration": "03:28", "questions": [
            {"question": "Which concepts fit the sign?", "question_type": "reference reasoning",
             "audio_type": "Speech", "answer": "Ancient stories",
             "options": ["A.Ancient stories", "B.Modern art", "C.Sports", "D.Cooking"], "correct_option": "A"},
            {"question": "How many cats?", "question_type": "counting", "audio_type": "Sound", "answer": "3",
             "options": ["A.1", "B.2", "C.3", "D.4"], "correct_option": "C"}]},
        {"video": "video_2", "video_type": "Film", "duration": "00:45", "questions": [
            {"question": "What mood?", "question_type": "sentiment analysis", "audio_type": "Music",
             "answer": "Sad", "options": ["A.Happy", "B.Sad", "C.Angry", "D.Calm"], "correct_option": "B"}]},
        {"video": "video_81", "video_type": "Vlog", "duration": "10:02", "questions": [
            {"question": "What attitude does the the person wearing a red apron hold towards the reasons for his "
                         "own first fame?", "question_type": "sentiment analysis", "audio_type": "Speech",
             "answer": "surprised", "options": ["A. confident", "B. awkward", "A. curious", "B. surprised"],
             "correct_option": "D"},
            {"question": "Who does the person wearing a black shirt like?", "question_type": "sentiment analysis",
             "audio_type": "Speech", "answer": "The girl wearing pink clothes",
             "options": ["A The girl wearing a red dress", "B The girl wearing pink clothes",
                         "C The girl wearing black and white clothes", "D None of these appeared in the video"],
             "correct_option": "B"}]},
    ]
    for entry in data:
        write_clip(os.path.join(root, folder, f"{entry['video']}.mp4"))
    return _dump(os.path.join(root, "data.json"), data)


def write_intentbench(root: str) -> str:
    """Video-R1 style records: multiple choice (clip under `video`), multi-label (emer_ov_mc) and yes/no judge
    (clip under `path`), categories in `Type`."""
    records = [
        {"problem": "Why does the man smile?", "options": ["A. Relief", "B. Pride", "C. Fear", "D. Boredom"],
         "problem_type": "multiple choice", "solution": "<answer>B</answer>", "video": "social/clip1.mp4",
         "data_type": "video", "problem_id": 17, "Type": "Social"},
        {"problem": "Which emotions are shown?", "options": ["A. Anger", "B. Joy", "C. Fear", "D. Calm",
         "E. Surprise"], "problem_type": "emer_ov_mc", "solution": "<answer>B,E</answer>",
         "path": "emer/clip2.mp4", "data_type": "video", "Type": "Emotion"},
        {"problem": "Is the speaker lying?", "problem_type": "judge", "solution": "<answer>no</answer>",
         "path": "mdpe/clip3.mp4", "data_type": "video", "Type": "Deception"},
    ]
    for rec in records:  # under videos/, where HumanOmniV2's evaluator joins its video root
        write_clip(os.path.join(root, "videos", rec.get("video") or rec["path"]))
    return _dump(os.path.join(root, "qa.json"), records)


def write_video_holmes(root: str) -> str:
    """test_Video-Holmes.json with 6 options A-F as an object; videos/<video ID>.mp4."""
    options = {k: f"Option text {k}" for k in "ABCDEF"}
    records = [
        {"video ID": "film1", "Question ID": "1", "Question Type": "SR", "Question": "Why did she leave?",
         "Options": options, "Answer": "F", "Explanation": "..."},
        {"video ID": "film1", "Question ID": "2", "Question Type": "TCI", "Question": "What happened first?",
         "Options": options, "Answer": "C", "Explanation": "..."},
    ]
    write_clip(os.path.join(root, "videos", "film1.mp4"))
    return _dump(os.path.join(root, "test_Video-Holmes.json"), records)


VIDEOMME_ROWS = [  # the HF dataset's flat rows (lmms-eval/Video-MME, videomme/test-00000-of-00001.parquet)
    {"video_id": "001", "duration": "short", "domain": "Knowledge", "sub_category": "Humanity & History",
     "url": "https://www.youtube.com/watch?v=fFjv93ACGo8", "videoID": "fFjv93ACGo8", "question_id": "001-1",
     "task_type": "Counting Problem", "question": "Which is most numerous?",
     "options": ["A. Apples.", "B. Candles.", "C. Berries.", "D. Same."], "answer": "C"},
    {"video_id": "001", "duration": "short", "domain": "Knowledge", "sub_category": "Humanity & History",
     "url": "https://www.youtube.com/watch?v=fFjv93ACGo8", "videoID": "fFjv93ACGo8", "question_id": "001-2",
     "task_type": "Object Recognition", "question": "What is on top?",
     "options": ["A. Star.", "B. Angel.", "C. Bow.", "D. Nothing."], "answer": "A"},
]


def write_parquet(path: str, rows: list[dict]) -> str:
    import pyarrow as pa
    import pyarrow.parquet as pq

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def write_videomme(root: str) -> str:
    """The HF dataset as downloaded: videomme/test-00000-of-00001.parquet, clips in data/<videoID>.mp4."""
    write_clip(os.path.join(root, "data", "fFjv93ACGo8.mp4"), "silent")  # Video-MME is a visual benchmark
    return write_parquet(os.path.join(root, "videomme", "test-00000-of-00001.parquet"), VIDEOMME_ROWS)


def write_synthetic(root: str, n: int = 4, corrupt: int | None = None) -> str:
    """Our JSONL schema with relative media paths; `corrupt` makes that sample's clip garbage."""
    from omnivideo_r1.schema import AVSample, write_samples

    samples = []
    for i in range(n):
        video = os.path.join(root, "clips", f"{i:03d}.mp4")
        write_corrupt(video) if i == corrupt else write_clip(video)
        samples.append(AVSample(id=f"synth-{i:03d}", video=video, question=f"Question {i}?",
                                options=["red", "green", "blue", "yellow"], answer="ABCD"[i % 4],
                                category="av_temporal_binding" if i % 2 else "audio_counting",
                                modality_needs="both", duration=1.0, source="synthetic"))
    path = os.path.join(root, "samples.jsonl")
    write_samples(path, samples)
    return path


# ---------------------------------------------------------------- a scripted policy for the runner


class FakePrompt:
    def __init__(self, sample, clip, modality):
        self.sample_id, self.modality = sample.id, modality
        self.has_audio, self.has_frames = clip.has_audio, clip.frames_THWC is not None
        self.text = f"[{modality}] {sample.question}"


class FakePolicy:
    """Returns the scripted output for each sample id and records every batch it was given."""

    def __init__(self, script: dict[str, str]):
        self.script, self.batches = script, []

    def make_prompt(self, sample, clip, modality, reasoning=True):
        return FakePrompt(sample, clip, modality)

    def generate_text(self, prompts, max_new_tokens, greedy=True):
        self.batches.append(list(prompts))
        return [self.script[p.sample_id] for p in prompts]


WRITERS = {
    "daily-omni": write_daily_omni,
    "worldsense": write_worldsense,
    "omnivideobench": write_omnivideobench,
    "intentbench": write_intentbench,
    "video-holmes": write_video_holmes,
    "video-mme": write_videomme,
    "synthetic": write_synthetic,
}
