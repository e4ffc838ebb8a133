"""Evaluation: benchmark loaders on official-format fixtures with real media, the runner with a scripted policy,
report math (Wilson intervals, per-category accuracy), markdown/PNG output, and the CLI."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import textwrap

import pytest

from eval_fixtures import WRITERS, FakePolicy, write_clip, write_synthetic
from omnivideo_r1.eval import cli as eval_cli
from omnivideo_r1.eval.benchmarks import (BENCHMARKS, BenchmarkFormatError, load_benchmark,
                                          normalize_options)
from omnivideo_r1.eval.report import (accuracy_stats, markdown_report, mcnemar_exact_p, summarize, wilson_interval,
                                      write_report)
from omnivideo_r1.eval.runner import EvalConfig, evaluate
from omnivideo_r1.schema import AVSample

# benchmark -> (number of samples, {id: (answer, category, first option)})
EXPECTED = {
    "daily-omni": (3, {"daily-omni-0000-vidA": ("B", "AV Event Alignment", "A red square"),
                       "daily-omni-0001-vidA": ("C", "Event Sequence", "Speech"),
                       "daily-omni-0002-vidB": ("A", "Reasoning", "Joy")}),
    "worldsense": (3, {"worldsense-ws001-task0": ("D", "Speaker Recognition", "Left"),
                       "worldsense-ws001-task1": ("B", "Audio Counting", "Quiet"),
                       "worldsense-ws002-task0": ("A", "Audio Recognition", "Piano")}),
    "omnivideobench": (5, {"omnivideobench-video_1-q0": ("A", "reference reasoning", "Ancient stories"),
                           "omnivideobench-video_1-q1": ("C", "counting", "1"),
                           "omnivideobench-video_2-q0": ("B", "sentiment analysis", "Happy"),
                           "omnivideobench-video_81-q0": ("D", "sentiment analysis", "confident"),
                           "omnivideobench-video_81-q1": ("B", "sentiment analysis", "The girl wearing a red dress")}),
    "intentbench": (3, {"intentbench-0000": ("B", "Social", "Relief"),
                        "intentbench-0001": ("BE", "Emotion", "Anger"),
                        "intentbench-0002": ("B", "Deception", "yes")}),
    "video-holmes": (2, {"video-holmes-film1-1": ("F", "SR", "Option text A"),
                         "video-holmes-film1-2": ("C", "TCI", "Option text A")}),
    "video-mme": (2, {"videomme-001-1": ("C", "Counting Problem", "Apples."),
                      "videomme-001-2": ("A", "Object Recognition", "Star.")}),
    "synthetic": (4, {"synth-000": ("A", "audio_counting", "red"), "synth-003": ("D", "av_temporal_binding", "red")}),
}


def test_every_benchmark_has_a_fixture():
    assert set(BENCHMARKS) == set(WRITERS) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_loader_reads_official_format(tmp_path, name):
    ann = WRITERS[name](str(tmp_path / name))
    n, expected = EXPECTED[name]
    for path in (ann, os.path.dirname(ann)):  # the annotation file or its root folder
        samples, skipped = load_benchmark(name, path)
        assert len(samples) == n and len(skipped) == 0
        by_id = {s.id: s for s in samples}
        assert len(by_id) == n, "ids must be unique"
        for sid, (answer, category, first) in expected.items():
            s = by_id[sid]
            assert (s.answer, s.category, s.options[0]) == (answer, category, first)
            assert os.path.isfile(s.video)
        for s in samples:
            assert s.source == name
            assert not any(o[:2] in ("A.", "B.", "(A") for o in s.options), s.options  # prefixes stripped


def test_loader_details(tmp_path):
    daily, _ = load_benchmark("daily-omni", WRITERS["daily-omni"](str(tmp_path / "d")))
    assert all(s.audio and s.audio.endswith(f"{s.extra['video_id']}_audio.wav") for s in daily)
    assert daily[0].video.endswith(os.path.join("Videos", "vidA", "vidA_video.mp4"))
    assert daily[0].duration == 30.0 and daily[2].duration == 60.0 and daily[0].extra["index"] == 0
    ws, _ = load_benchmark("worldsense", WRITERS["worldsense"](str(tmp_path / "w")))
    assert len(ws[1].options) == 3 and ws[0].extra["task_domain"] == "Recognition" and ws[0].audio is None
    assert ws[0].duration == 48.0 and ws[0].extra["duration"] == "<1min"  # seconds from video_duration
    assert ws[2].duration is None  # only the bucket "1-2min": no length in seconds
    ovb, _ = load_benchmark("omnivideobench", WRITERS["omnivideobench"](str(tmp_path / "o")))
    assert ovb[0].duration == 208.0 and ovb[0].extra["answer_text"] == "Ancient stories"
    intent, _ = load_benchmark("intentbench", WRITERS["intentbench"](str(tmp_path / "i")))
    assert intent[1].extra["multi_label"] and not intent[0].extra["multi_label"]
    assert intent[0].extra["original_id"] == "17" and intent[2].options == ["yes", "no"]
    holmes, _ = load_benchmark("video-holmes", WRITERS["video-holmes"](str(tmp_path / "h")))
    assert len(holmes[0].options) == 6
    mme, _ = load_benchmark("video-mme", WRITERS["video-mme"](str(tmp_path / "m")))
    assert mme[0].video.endswith(os.path.join("data", "fFjv93ACGo8.mp4")) and mme[0].extra["duration"] == "short"
    assert mme[0].extra["groups"] == {"duration": "short", "domain": "Knowledge",
                                      "sub_category": "Humanity & History", "task_type": "Counting Problem"}


def test_normalize_options():
    assert normalize_options(["A. x", "B.y", "(C) z", "D) w", "E: v", "[F] u"], "f") == list("xyzwvu")
    assert normalize_options(["A man runs", "Birds sing"], "f") == ["A man runs", "Birds sing"]
    assert normalize_options(["B. x", "A. y"], "f") == ["x", "y"]  # position is the letter, as official scorers
    with pytest.raises(BenchmarkFormatError, match="record 3: options must be a list"):
        normalize_options("A. x", "qa.json record 3")
    with pytest.raises(BenchmarkFormatError, match="record 3: option B is empty"):
        normalize_options(["A. x", "B. "], "qa.json record 3")


def _rewrite(path, edit):
    if path.endswith(".parquet"):
        import pyarrow.parquet as pq

        from eval_fixtures import write_parquet
        rows = pq.read_table(path).to_pylist()
        edit(rows)
        write_parquet(path, rows)
        return
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    edit(data)
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(data, fh)


BAD_RECORDS = [
    ("daily-omni", lambda d: d[1].pop("Answer"), r"qa.json record 1: missing field\(s\) \['Answer'\]"),
    ("daily-omni", lambda d: d[2].update(Answer="E"), r"record 2 \(video_id vidB\).*outside the 4 options"),
    ("worldsense", lambda d: d["ws002"].pop("task0"), r"video ws002: expected an object with task0..taskN"),
    ("worldsense", lambda d: d["ws001"]["task1"].update(answer="D"), r"ws001 task1.*outside the 3 options"),
    ("omnivideobench", lambda d: d[0]["questions"][1].update(correct_option="AB"),
     r"video_1\) question 1: answer 'AB' has several letters"),
    ("intentbench", lambda d: d[0].update(solution="B"), r"record 0: solution 'B' is not of the form"),
    ("intentbench", lambda d: d[1].update(problem_type="open"), r"record 1: problem_type 'open'"),
    ("video-holmes", lambda d: d[1].update(Options=["x", "y"]), r"Question ID 2\): Options must be an object"),
    ("video-mme", lambda d: d[0].update(options=["A. x"]),
     r"test-00000-of-00001.parquet row 0 \(question_id 001-1\): options must be a list"),
    ("synthetic", None, r"samples.jsonl:2: not valid JSON"),
]


@pytest.mark.parametrize("name,edit,pattern", BAD_RECORDS)
def test_bad_record_is_counted_and_never_hides_the_rest(tmp_path, name, edit, pattern):
    ann = WRITERS[name](str(tmp_path / name))
    if edit is None:  # the JSONL format: break its second line
        with open(ann, encoding="utf-8") as fh:
            lines = fh.readlines()
        with open(ann, "w", encoding="utf-8") as fh:
            fh.writelines([lines[0], "{not json\n", *lines[2:]])
    else:
        _rewrite(ann, edit)
    samples, report = load_benchmark(name, ann)
    assert len(samples) == EXPECTED[name][0] - 1 and report.by_reason() == {"bad_record": 1}
    assert re.search(pattern, report.items[0]["detail"]), report.items[0]["detail"]
    with pytest.raises(BenchmarkFormatError, match=pattern):  # a direct loader call, nobody counting: loud
        BENCHMARKS[name](ann)


def test_file_with_no_usable_record_is_one_error(tmp_path):
    ann = WRITERS["daily-omni"](str(tmp_path))
    _rewrite(ann, lambda d: [r.pop("Answer") for r in d])
    with pytest.raises(BenchmarkFormatError, match=r"qa.json: none of its 3 record\(s\) is usable; the first: "
                                                   r".*qa.json record 0: missing field\(s\) \['Answer'\]"):
        load_benchmark("daily-omni", ann)


def test_unreadable_annotation_and_missing_paths(tmp_path):
    (tmp_path / "qa.json").write_text("{oops")
    with pytest.raises(BenchmarkFormatError, match=r"qa.json: not valid JSON .*; expected Daily-Omni's qa.json"):
        load_benchmark("daily-omni", str(tmp_path / "qa.json"))
    (tmp_path / "qa.json").write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(BenchmarkFormatError, match=r"qa.json: not UTF-8 text \(byte 0xff at offset 0\); expected"):
        load_benchmark("daily-omni", str(tmp_path / "qa.json"))
    with pytest.raises(FileNotFoundError, match="expected one of \\['worldsense_qa.json'\\]"):
        load_benchmark("worldsense", str(tmp_path))
    with pytest.raises(KeyError, match="unknown benchmark 'mmmu'"):
        load_benchmark("mmmu", str(tmp_path))


def test_missing_media_is_a_counted_skip(tmp_path):
    ann = WRITERS["daily-omni"](str(tmp_path))
    os.remove(tmp_path / "Videos" / "vidA" / "vidA_video.mp4")
    samples, skipped = load_benchmark("daily-omni", ann)
    assert [s.id for s in samples] == ["daily-omni-0002-vidB"]
    assert skipped.by_reason() == {"missing_media": 2}
    assert all(item["detail"].endswith("vidA_video.mp4") for item in skipped.items)
    open(tmp_path / "Videos" / "vidB" / "vidB_video.mp4", "wb").close()
    samples, skipped = load_benchmark("daily-omni", ann)
    assert samples == [] and skipped.by_reason() == {"missing_media": 2, "empty_media": 1}
    with pytest.raises(FileNotFoundError, match="vidA_video.mp4: missing media for record daily-omni-0000"):
        BENCHMARKS["daily-omni"](ann)  # nobody counting skips -> loud


# ---------------------------------------------------------------- runner with a scripted policy


SCRIPT = {"synth-000": "<time>0.0-1.0</time><caption>x</caption><thinking>...</thinking><answer>A</answer>",
          "synth-001": "Based on the video, C",  # wrong (answer B) but parseable; "Based" must not read as B
          "synth-002": "asdf qwerty",  # garbage -> unparseable
          "synth-003": "unused: the clip is corrupt",
          "synth-004": "<answer>A. red</answer>",  # answer is A
          "synth-005": "The answer is (B)."}


def test_runner_scores_outputs_and_survives_a_corrupt_clip(tmp_path):
    samples, _ = load_benchmark("synthetic", write_synthetic(str(tmp_path), n=6, corrupt=3))
    policy = FakePolicy(SCRIPT)
    rows = evaluate(policy, samples, "av", EvalConfig(batch_size=2))
    assert [r["id"] for r in rows] == [s.id for s in samples]
    by_id = {r["id"]: r for r in rows}
    assert by_id["synth-000"]["correct"] and by_id["synth-000"]["parsed"] == "A"
    assert by_id["synth-001"]["parsed"] == "C" and not by_id["synth-001"]["correct"]
    assert by_id["synth-002"]["unparseable"] and not by_id["synth-002"]["correct"]
    assert by_id["synth-003"]["media_error"].startswith(samples[3].video) and by_id["synth-003"]["output"] is None
    assert by_id["synth-004"]["correct"] and by_id["synth-005"]["correct"]
    assert by_id["synth-000"]["prompt"].startswith("[av] Question 0?")
    stats = accuracy_stats(rows)
    assert (stats["scored"], stats["correct"], stats["unparseable"], stats["skipped"]) == (5, 3, 1, 1)
    assert all(len(b) <= 2 for b in policy.batches) and sum(map(len, policy.batches)) == 5


def test_modalities_and_audio_batching(tmp_path):
    samples = []
    for i in range(5):  # alternate clips with and without an audio track
        video = write_clip(str(tmp_path / f"{i}.mp4"), "av" if i % 2 == 0 else "silent")
        samples.append(AVSample(id=f"s{i}", video=video, question="q", options=["a", "b"], answer="A"))
    policy = FakePolicy({s.id: "A" for s in samples})
    rows = evaluate(policy, samples, "av", EvalConfig(batch_size=2))
    assert [r["has_audio"] for r in rows] == [True, False, True, False, True]
    for batch in policy.batches:  # never a silent prompt batched with an audible one
        assert len({p.has_audio for p in batch}) == 1 and len(batch) <= 2
    policy = FakePolicy({s.id: "A" for s in samples})
    rows = evaluate(policy, samples, "video", EvalConfig(batch_size=8))
    assert all(not p.has_audio and p.has_frames for b in policy.batches for p in b) and len(policy.batches) == 1
    policy = FakePolicy({s.id: "A" for s in samples})
    rows = evaluate(policy, samples, "audio", EvalConfig(batch_size=8, limit=4))
    assert len(rows) == 4 and all(p.has_audio and not p.has_frames for b in policy.batches for p in b)
    assert [bool(r["media_error"]) for r in rows] == [False, True, False, True]  # no track -> skipped
    assert "no audio track" in rows[1]["media_error"]
    with pytest.raises(ValueError, match="unknown modality 'silent'"):
        evaluate(policy, samples, "silent", EvalConfig())


def test_daily_omni_uses_separate_wav_and_multi_label_scoring(tmp_path):
    daily, _ = load_benchmark("daily-omni", WRITERS["daily-omni"](str(tmp_path / "d")))
    seen = []

    def loader(path, **kw):
        seen.append(kw["audio_path"])
        from omnivideo_r1.media.decode import load_clip
        return load_clip(path, **kw)

    evaluate(FakePolicy({s.id: "B" for s in daily}), daily, "av", EvalConfig(), clip_loader=loader)
    assert seen == [s.audio for s in daily]
    intent, _ = load_benchmark("intentbench", WRITERS["intentbench"](str(tmp_path / "i")))
    script = {"intentbench-0000": "<answer>B</answer>", "intentbench-0001": "<answer>B, E</answer>",
              "intentbench-0002": "No, the speaker is honest."}
    rows = evaluate(FakePolicy(script), intent, "av", EvalConfig())
    assert [r["correct"] for r in rows] == [True, True, True] and rows[1]["parsed"] == "BE"
    script["intentbench-0001"] = "<answer>B</answer>"  # half of a multi-label answer is wrong
    assert not evaluate(FakePolicy(script), intent, "av", EvalConfig())[1]["correct"]


_SHARD_SCRIPT = textwrap.dedent("""
    import json, sys
    from eval_fixtures import FakePolicy
    from omnivideo_r1.eval.benchmarks import load_benchmark
    from omnivideo_r1.eval.runner import EvalConfig, evaluate, process_state

    samples, _ = load_benchmark("synthetic", sys.argv[1])
    policy = FakePolicy({s.id: "A" for s in samples})
    rows = evaluate(policy, samples, "av", EvalConfig(batch_size=2))
    rank = process_state().process_index
    with open(f"{sys.argv[2]}/rank{rank}.json", "w") as fh:
        json.dump({"ids": [r["id"] for r in rows], "errors": [bool(r["media_error"]) for r in rows],
                   "generated": sorted(p.sample_id for b in policy.batches for p in b)}, fh)
    import torch.distributed as dist
    if dist.is_initialized():  # close gloo before exit, as the omnivideo-r1 CLI does
        dist.barrier()
        dist.destroy_process_group()
""")


@pytest.mark.slow
def test_two_processes_shard_and_gather(tmp_path):
    data = write_synthetic(str(tmp_path / "syn"), n=5, corrupt=3)
    (tmp_path / "shard.py").write_text(_SHARD_SCRIPT)
    here = os.path.dirname(os.path.abspath(__file__))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.path.dirname(here), here]), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(tmp_path / "shard.py"), data, str(tmp_path)], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    for res in results:  # every rank holds every row, in sample order, corrupt clip included
        assert res["ids"] == [f"synth-{i:03d}" for i in range(5)]
        assert res["errors"] == [False, False, False, True, False]
    assert results[0]["generated"] == ["synth-000", "synth-002", "synth-004"]  # rank striding, no duplicates
    assert results[1]["generated"] == ["synth-001"]


# ---------------------------------------------------------------- report


def test_wilson_interval_known_values():
    assert wilson_interval(50, 100) == pytest.approx((0.40383, 0.59617), abs=1e-5)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.27753), abs=1e-5)
    assert wilson_interval(10, 10) == pytest.approx((0.72247, 1.0), abs=1e-5)
    assert wilson_interval(8, 10) == pytest.approx((0.49016, 0.94332), abs=1e-5)
    with pytest.raises(ValueError):
        wilson_interval(3, 0)


@pytest.mark.parametrize("fixed, broke", [(0, 0), (5, 0), (10, 2), (2, 10), (40, 25), (61, 39), (7, 7)])
def test_mcnemar_exact_p_agrees_with_scipy_binomial_test(fixed, broke):
    from scipy.stats import binomtest

    want = 1.0 if fixed + broke == 0 else binomtest(fixed, fixed + broke, 0.5).pvalue
    assert mcnemar_exact_p(fixed, broke) == pytest.approx(want, rel=1e-9)


def test_mcnemar_exact_p_known_values():
    assert mcnemar_exact_p(10, 2) == pytest.approx(158 / 4096)  # 2 * (C(12,0) + C(12,1) + C(12,2)) / 2^12
    assert mcnemar_exact_p(3, 3) == 1.0
    with pytest.raises(ValueError, match="counts"):
        mcnemar_exact_p(-1, 2)


def _rows():
    rows = []
    for model, av_correct, silent_correct in (("base", 6, 3), ("rl", 8, 4)):
        for modality, n_correct in (("av", av_correct), ("video", silent_correct)):
            for i in range(10):
                rows.append({"model": model, "benchmark": "toy", "modality": modality, "id": f"q{i}",
                             "category": "count" if i < 4 else "order", "correct": i < n_correct,
                             "unparseable": i == 9, "media_error": None})
    rows.append({**rows[0], "id": "q10", "media_error": "x.mp4: corrupt", "correct": False})
    return rows


def test_summary_per_category_and_markdown(tmp_path):
    summary = summarize(_rows())
    base_av = next(e for e in summary if e["model"] == "base" and e["modality"] == "av")
    assert base_av["overall"]["accuracy"] == 0.6 and base_av["overall"]["skipped"] == 1
    assert base_av["overall"]["n"] == 11 and base_av["overall"]["unparseable"] == 1
    assert base_av["categories"]["count"]["accuracy"] == 1.0 and base_av["categories"]["count"]["skipped"] == 1
    assert base_av["categories"]["order"]["accuracy"] == pytest.approx(2 / 6)
    assert base_av["overall"]["ci_low"] == pytest.approx(wilson_interval(6, 10)[0])
    md = markdown_report(summary, "Toy", {"missing_media": 2})
    assert "| rl | toy | 80.0 [49.0, 94.3] | 40.0 [16.8, 68.7] | +40.0 |" in md
    assert "| base | toy | 60.0 [31.3, 83.2] | 30.0 [10.8, 60.3] | +30.0 |" in md
    assert "| base · AV | base · silent video | rl · AV | rl · silent video |" in md
    assert "| missing_media | 2 |" in md
    paths = write_report(_rows(), str(tmp_path / "out"), "Toy")
    with open(paths["accuracy.png"], "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    with open(paths["results.jsonl"]) as fh:
        assert len(fh.readlines()) == 41
    with open(paths["summary.json"]) as fh:
        assert len(json.load(fh)["results"]) == 4


# ---------------------------------------------------------------- CLI


def _args(*argv):
    parser = argparse.ArgumentParser()
    eval_cli.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_cli_one_line_errors(tmp_path, capsys):
    data = write_synthetic(str(tmp_path / "syn"), n=2)
    model = str(tmp_path)
    cases = [(("--benchmark", "mmmu", "--data", data), "unknown benchmark 'mmmu'"),
             (("--benchmark", "synthetic", "--data", str(tmp_path / "nope")), "no such file or folder"),
             (("--benchmark", "synthetic", "--data", data, "--modality", "silent"), "unknown modality"),
             (("--benchmark", "synthetic", "--data", data, "--set", "fps=-1"), "fps"),
             (("--benchmark", "worldsense", "--data", str(tmp_path / "syn")), "no WorldSense annotation file")]
    from omnivideo_r1 import cli

    for argv, message in cases:
        assert cli.main(["eval", "--model", model, *argv]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and err.startswith("omnivideo-r1 eval: error: "), err


def _tiny_policy_dir(tmp_path):
    from omnivideo_r1.policy.tiny import TinyOmniSpec, build_tiny_policy_files

    out = str(tmp_path / "tiny")
    build_tiny_policy_files(out, TinyOmniSpec())
    return out


@pytest.mark.slow
def test_cli_end_to_end_with_tiny_policy(tmp_path, capsys):
    model = _tiny_policy_dir(tmp_path)
    data = write_synthetic(str(tmp_path / "syn"), n=3, corrupt=2)
    out = str(tmp_path / "out")
    code = eval_cli.run(_args("--model", model, "--benchmark", "synthetic", "--data", data, "--modality", "av",
                              "video", "--out", out, "--max-new-tokens", "4", "--batch-size", "2"))
    assert code == 0
    printed = capsys.readouterr().out
    assert "## AV vs silent video vs audio only" in printed
    for name in ("results.jsonl", "summary.json", "report.md", "accuracy.png"):
        assert os.path.getsize(os.path.join(out, name)) > 0
    with open(os.path.join(out, "results.jsonl")) as fh:
        rows = [json.loads(line) for line in fh]
    assert len(rows) == 6 and {r["modality"] for r in rows} == {"av", "video"}
    assert [bool(r["media_error"]) for r in rows] == [False, False, True] * 2
    assert all(isinstance(r["output"], str) for r in rows if not r["media_error"])
    assert all(r["has_audio"] == (r["modality"] == "av") for r in rows if not r["media_error"])
    # the viewer joins the rows with their samples through eval_inputs.json: media for each clip, an error for the
    # corrupt one
    from omnivideo_r1.view.site import build_site_data

    site = build_site_data(out, media_dir=str(tmp_path / "media"))
    assert site["eval"]["samples_from"] == os.path.abspath(data)
    metas = [site["media"][q["media"]] for q in site["eval"]["questions"]]
    assert [m["error"] is not None for m in metas] == [False, False, True]
    # Daily-Omni: the separate wav goes to the real processor as an audio item (not interleaved in the video)
    data = WRITERS["daily-omni"](str(tmp_path / "daily"))
    code = eval_cli.run(_args("--model", model, "--benchmark", "daily-omni", "--data", data, "--modality", "av",
                              "audio", "--out", out, "--max-new-tokens", "4", "--limit", "2", "--direct"))
    assert code == 0
    with open(os.path.join(out, "results.jsonl")) as fh:
        rows = [json.loads(line) for line in fh]
    assert len(rows) == 4 and all(r["has_audio"] and not r["media_error"] for r in rows)
    assert all(r["prompt"].endswith("directly.") for r in rows)
    # The benchmark's own prompt through the real chat template (Daily-Omni's script sends no system turn)
    code = eval_cli.run(_args("--model", model, "--benchmark", "daily-omni", "--data", data, "--out", out,
                              "--max-new-tokens", "2", "--limit", "1", "--official-prompt"))
    assert code == 0
    with open(os.path.join(out, "results.jsonl")) as fh:
        rows = [json.loads(line) for line in fh]
    assert rows[0]["prompt"].startswith("Your task is to accurately answer multiple-choice questions based on the "
                                        "given video and audio together.") and rows[0]["groups"]["Type"]
    assert "## Official scoring" in open(os.path.join(out, "report.md")).read()
