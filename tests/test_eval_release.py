"""Benchmarks read as released (records copied in the official shapes, real media), each benchmark's own answer
extraction and aggregation reproduced as its script does it, and each benchmark's own prompt."""

from __future__ import annotations

import json
import os

import pytest

from eval_fixtures import VIDEOMME_ROWS, WRITERS, FakePolicy, write_clip, write_omnivideobench
from omnivideo_r1.eval.benchmarks import BenchmarkFormatError, load_benchmark
from omnivideo_r1.eval.official_prompts import official_prompt
from omnivideo_r1.eval.official_scoring import official_score, official_summary
from omnivideo_r1.eval.report import write_report
from omnivideo_r1.eval.runner import EvalConfig, evaluate, with_official_prompt
from omnivideo_r1.policy.prompting import conversation, make_prompt
from omnivideo_r1.schema import AVSample

# ---------------------------------------------------------------- loaders on release shapes


def test_omnivideobench_release_example_layout_and_labels(tmp_path):
    ann = write_omnivideobench(str(tmp_path), folder="video")  # the release's data_example keeps clips in video/
    samples, report = load_benchmark("omnivideobench", str(tmp_path))
    by_id = {s.id: s for s in samples}
    assert len(samples) == 5 and len(report) == 0 and os.path.dirname(ann) == str(tmp_path)
    abab = by_id["omnivideobench-video_81-q0"]  # labelled A, B, A, B; correct_option D = the 4th option
    assert abab.options == ["confident", "awkward", "curious", "surprised"] and abab.answer_text == "surprised"
    girl = by_id["omnivideobench-video_81-q1"]
    assert girl.options[1] == "The girl wearing pink clothes" and girl.answer_text == girl.extra["answer_text"]
    assert abab.video.endswith(os.path.join("video", "video_81.mp4")) and abab.duration == 602.0
    assert dict(report.notes) == {"relabelled_options": 1}


def test_videomme_parquet_discovery_and_json_exports(tmp_path):
    root = tmp_path / "Video-MME"
    parquet = WRITERS["video-mme"](str(root))
    for path in (str(root), parquet, os.path.dirname(parquet)):  # root, the parquet, its videomme/ folder
        samples, report = load_benchmark("video-mme", path)
        assert [s.id for s in samples] == ["videomme-001-1", "videomme-001-2"] and len(report) == 0
        assert samples[0].options == ["Apples.", "Candles.", "Berries.", "Same."] and samples[0].answer == "C"
        assert os.path.isfile(samples[0].video)
    renamed = root / "videomme.json"  # a parquet under a JSON name is still a parquet
    renamed.write_bytes(open(parquet, "rb").read())
    assert len(load_benchmark("video-mme", str(renamed))[0]) == 2
    flat = tmp_path / "flat" / "videomme.json"  # a JSON export of the rows, clips beside it in data/
    write_clip(str(tmp_path / "flat" / "data" / "fFjv93ACGo8.mp4"), "silent")
    flat.write_text(json.dumps(VIDEOMME_ROWS))
    assert [s.category for s in load_benchmark("video-mme", str(flat))[0]] == ["Counting Problem",
                                                                              "Object Recognition"]
    (root / "videomme" / "test-00000-of-00001.parquet").write_bytes(b"PAR1 this is not a parquet body")
    with pytest.raises(BenchmarkFormatError, match=r"test-00000-of-00001.parquet: not a readable parquet file .*"
                                                   r"expected Video-MME's annotation"):
        load_benchmark("video-mme", str(root))


def test_intentbench_video_or_path_and_type(tmp_path):
    ann = WRITERS["intentbench"](str(tmp_path))
    samples, report = load_benchmark("intentbench", ann)
    assert [s.category for s in samples] == ["Social", "Emotion", "Deception"] and len(report) == 0
    assert samples[0].extra["path"] == "social/clip1.mp4"  # read from `video`
    assert samples[0].video == str(tmp_path / "videos" / "social" / "clip1.mp4")
    with open(ann) as fh:
        records = json.load(fh)
    records[2].pop("path")
    with open(ann, "w") as fh:
        json.dump(records, fh)
    samples, report = load_benchmark("intentbench", ann)
    assert len(samples) == 2 and "record 2: no clip; official records name it in 'video' or 'path'" in \
        report.items[0]["detail"]


def test_daily_omni_without_wav_uses_the_videos_audio_and_says_so(tmp_path):
    ann = WRITERS["daily-omni"](str(tmp_path / "d"))
    os.remove(tmp_path / "d" / "Videos" / "vidA" / "vidA_audio.wav")
    samples, report = load_benchmark("daily-omni", ann)
    assert len(samples) == 3 and len(report) == 0 and dict(report.notes) == {"audio_from_video": 2}
    assert [s.audio is None for s in samples] == [True, True, False]
    rows = evaluate(FakePolicy({s.id: "B" for s in samples}), samples, "av", EvalConfig())
    assert [r["audio_source"] for r in rows] == ["video_track", "video_track", "separate_file"]
    assert all(r["has_audio"] for r in rows)
    paths = write_report([{"model": "m", **r} for r in rows], str(tmp_path / "out"), "t", {}, dict(report.notes))
    assert "| audio from the video's own track (no separate wav) | 2 |" in open(paths["report.md"]).read()
    assert json.load(open(paths["summary.json"]))["load_notes"] == {"audio_from_video": 2}


def test_cli_unreadable_annotation_is_one_line(tmp_path, capsys):
    from omnivideo_r1 import cli

    (tmp_path / "data.json").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    assert cli.main(["eval", "--model", str(tmp_path), "--benchmark", "omnivideobench", "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "data.json: not UTF-8 text (byte 0x89 at offset 0); expected OmniVideoBench" \
        in err, err


# ---------------------------------------------------------------- each benchmark's own extraction


def _sample(source, answer="B", options=("w", "x", "y", "z"), **extra):
    return AVSample(id="q", video="v.mp4", question="Q?", options=list(options), answer=answer, source=source,
                    extra=extra)


OFFICIAL_CASES = [
    # (source, sample kwargs, reply, (parsed, score))
    ("omnivideobench", {}, "B", ("B", 1.0)),
    ("omnivideobench", {}, "B. x", ("B", 1.0)),
    ("omnivideobench", {}, "(b)", ("B", 1.0)),
    ("omnivideobench", {}, "\\boxed{B}", ("B", 1.0)),
    ("omnivideobench", {}, "The answer is B", (None, 0.0)),  # exact match only
    ("daily-omni", {}, "<think>A or C?</think>B", ("B", 1.0)),
    ("daily-omni", {}, "Answer: C", ("C", 0.0)),
    ("daily-omni", {}, "I pick B, not D", ("D", 0.0)),  # the last standalone letter
    ("worldsense", {}, "so the answer is B", ("B", 1.0)),
    ("worldsense", {}, "A man walks in, so B", ("A", 0.0)),  # any capital counts; the tie goes to the first
    ("worldsense", {}, "no idea", ("A", 0.0)),  # unreadable -> "A"
    ("worldsense", {"raw_options": ["A. left", "B. right", "C. both"]}, "it is clearly the right one here ok",
     ("B", 1.0)),  # option text, reply longer than five words
    ("intentbench", {"solution": "<answer>B</answer>", "problem_type": "multiple choice"},
     "<think>x</think><answer>B</answer>", ("B", 1.0)),
    ("intentbench", {"solution": "<answer>B</answer>", "problem_type": "multiple choice"}, "B", (None, 0.0)),
    ("intentbench", {"solution": "<answer>B,E</answer>", "problem_type": "emer_ov_mc"}, "<answer>B</answer>",
     ("B", pytest.approx(2 / 3))),
    ("intentbench", {"solution": "<answer>no</answer>", "problem_type": "judge"}, "<answer>No.</answer>",
     ("No.", 1.0)),
    ("video-holmes", {}, "<think>..</think><answer>B</answer>", ("B", 1.0)),
    ("video-holmes", {}, "Based on the clip, D", ("B", 1.0)),  # any "B" anywhere, first by letter order
    ("video-holmes", {}, "no letter here", (None, 0.0)),
    ("video-mme", {}, "The best answer is B.", ("B", 1.0)),
    ("video-mme", {}, "Based on the video, the answer is C", ("B", 1.0)),  # the first [ABCD]: "B"ased
    ("video-mme", {}, "i cannot tell.", (None, None)),  # not answered: not counted
]


@pytest.mark.parametrize("source,extra,reply,expected", OFFICIAL_CASES)
def test_official_extraction(source, extra, reply, expected):
    options = ("left", "right", "both") if "raw_options" in extra else ("w", "x", "y", "z")
    answer = "BE" if extra.get("problem_type") == "emer_ov_mc" else "B"
    options = ("a", "b", "c", "d", "e") if answer == "BE" else options
    got = official_score(_sample(source, answer, options, **extra), reply)
    assert (got.parsed, got.score) == expected


def test_official_summary_counts_like_the_scripts():
    rows = [{"benchmark": "video-mme", "official_score": s, "media_error": err,
             "groups": {"duration": d, "task_type": "Counting Problem"}}
            for s, err, d in ((1.0, None, "short"), (0.0, None, "short"), (None, None, "long"), (1.0, None, "long"),
                              (None, "x.mp4: corrupt", "long"))]
    got = official_summary(rows)
    assert got["overall"] == {"n": 3, "score": 2.0, "accuracy": 2 / 3, "not_counted": 2}
    assert got["axes"]["duration"]["long"]["accuracy"] == 1.0 and got["axes"]["duration"]["short"]["n"] == 2
    multi = official_summary([{"benchmark": "worldsense", "official_score": 1.0,
                               "groups": {"audio_class": ["Speech", "Music"]}}])
    assert set(multi["axes"]["audio_class"]) == {"Speech", "Music"}
    assert official_summary([{"benchmark": "synthetic", "official_score": None}]) is None


# ---------------------------------------------------------------- each benchmark's own prompt


def test_official_prompts_in_the_runner_and_the_chat(tmp_path):
    samples, _ = load_benchmark("omnivideobench", write_omnivideobench(str(tmp_path / "o")))
    policy = FakePolicy({s.id: "A" for s in samples})
    rows = evaluate(policy, samples[3:4], "av", EvalConfig(official_prompt=True))
    prompt = policy.batches[0][0]
    assert prompt.system.startswith("You are Qwen, a virtual human") and rows[0]["prompt"] == prompt.user_text
    assert "Options:\nA. confident\nB. awkward\nC. curious\nD. surprised\n\nAnswer with the option's letter " \
           "directly(e.g., A, B, C, or D).If your access" in prompt.user_text  # positional letters for A,B,A,B
    assert "Options:\nA.Ancient stories\nB.Modern art" in official_prompt(samples[0], "av")[1]  # as released

    daily, _ = load_benchmark("daily-omni", WRITERS["daily-omni"](str(tmp_path / "d")))
    system, text = official_prompt(daily[0], "video")
    assert system == "" and "based on the given video.\n" in text
    assert "Choices: ['A. A red square', 'B. A green circle', 'C. A blue line', 'D. Nothing']" in text
    clip = _Clip(str(tmp_path / "c.mp4"))
    chat = conversation(with_official_prompt(make_prompt(daily[0], clip, "av"), daily[0], "av"))
    assert [m["role"] for m in chat] == ["user"]  # the script sends no system turn
    assert "based on the given video and audio together." in chat[0]["content"][-1]["text"]

    mme, _ = load_benchmark("video-mme", WRITERS["video-mme"](str(tmp_path / "m")))
    assert official_prompt(mme[0], "video")[1].endswith("A. Apples.\nB. Candles.\nC. Berries.\nD. Same.\n"
                                                       "The best answer is:")
    intent, _ = load_benchmark("intentbench", WRITERS["intentbench"](str(tmp_path / "i")))
    assert official_prompt(intent[2], "av")[1] == ("Here is a video, with the audio from the video.\nIs the speaker "
                                                   "lying? Please answer Yes or No within the <answer> </answer> tags.")
    synthetic = _sample("synthetic")
    assert official_prompt(synthetic, "av") is None


class _Clip:
    """Just enough of media.types.Clip for make_prompt/conversation (frames and audio present)."""

    def __init__(self, path):
        import numpy as np

        self.path, self.frames_THWC, self.audio = path, np.zeros((1, 2, 2, 3), np.uint8), np.zeros(16, np.float32)
        self.has_audio = True
