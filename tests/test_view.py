"""The rollout log and the viewer: bounded recording, site data checked against the files it was built from, and the
page rendered by a real headless Chromium (timeline, rollout cards, flips, no console errors, a screenshot)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile

import pytest
import torch

from omnivideo_r1.algo.advantages import group_advantages
from omnivideo_r1.cli import main
from omnivideo_r1.config import load_config
from omnivideo_r1.rewards.grounded_format import parse_grounded_response
from omnivideo_r1.rewards.types import RewardOutput, RolloutRecord
from omnivideo_r1.schema import AVSample, TimeCaption
from omnivideo_r1.train.config import TrainConfig
from omnivideo_r1.train.rollout_log import RolloutLog, read_rollouts
from omnivideo_r1.view.site import build_site_data, read_site_data, write_site
from omnivideo_r1.view.sources import split_prompt

from view_fixtures import G, MODELS, build_demo_folder, read_jsonl


def _sample(i: int) -> AVSample:
    return AVSample(id=f"s{i}", video=f"/data/clip{i}.mp4", question="Which colour?", options=["red", "green"],
                    answer="B", duration=4.0, time_captions=[TimeCaption(1.0, 2.0, "A green circle appears.")],
                    extra={"timeline": {"duration": 4.0, "visual": [], "audio": []}})


def _run_config(tmp_path, **run):
    over = [f"run.out_dir={tmp_path}", "run.steps=7", "rollout.rollouts_per_prompt=2"]
    over += [f"run.{k}={v}" for k, v in run.items()]
    return load_config(TrainConfig, None, over)


def _batch():
    texts = ["<time>1.0-2.0</time><caption>green circle</caption><thinking>x</thinking><answer>B</answer>",
             "no tags at all, a long reply " * 3, "<answer>A</answer>", "<time>0.5-9.0</time><caption>c</caption>"]
    records = [RolloutRecord(sample=_sample(k // 2), completion=t, clip_duration=4.0,
                             variant_answers={"audio": "<answer>B</answer>"} if k == 0 else {},
                             variant_confidence={"av": 0.9, "video": float("nan")} if k == 0 else {})
               for k, t in enumerate(texts)]
    outputs = {"format": RewardOutput([1.0, 0.0, 0.0, 0.5]), "intent": RewardOutput([0.75, 0.0, None, 0.25])}
    return records, outputs


def test_rollout_log_records_bounded_steps_with_the_reward_outputs_as_given(tmp_path):
    cfg = _run_config(tmp_path, log_rollouts_every=3, log_rollouts_groups=1, log_rollouts_max_chars=40)
    log = RolloutLog(cfg.run)
    records, outputs = _batch()
    totals, adv = [1.75, 0.0, float("nan"), 0.75], [1.0, -1.0, 0.0, 0.0]
    written = {step: log.record(step, records, outputs, {"format": 1.0, "intent": 1.0}, totals, adv, group_size=2,
                                slots=[5, 7]) for step in range(1, 8)}
    assert [s for s, n in written.items() if n] == [1, 3, 6, 7]  # first, every 3rd, last
    groups, note = read_rollouts(str(tmp_path / "rollouts.jsonl"))
    assert note is None and [g["step"] for g in groups] == [1, 3, 6, 7]
    g = groups[0]
    assert g["slot"] == 5 and len(g["completions"]) == 2  # only the first group, all of its completions
    assert g["prompt"]["reference"] == [{"start": 1.0, "end": 2.0, "caption": "A green circle appears."}]
    assert g["prompt"]["timeline"]["duration"] == 4.0
    first, second = g["completions"]
    assert first["rewards"] == {"format": 1.0, "intent": 0.75} and first["total"] == 1.75 and first["advantage"] == 1.0
    assert first["segments"] == [{"start": 1.0, "end": 2.0, "caption": "green circle"}]
    assert first["parsed"] == "B" and first["variants"]["audio"]["parsed"] == "B"
    assert first["confidence"] == {"av": 0.9, "video": None}  # NaN is not JSON: written as null
    assert second["truncated"] and len(second["text"]) == 40 and second["parsed"] is None
    assert second["problems"] and "no_segments" in second["problems"]

    # resuming from step 3 drops what the killed run wrote after its checkpoint
    RolloutLog(_run_config(tmp_path, log_rollouts_every=3).run, resume_step=3)
    assert [g["step"] for g in read_rollouts(str(tmp_path / "rollouts.jsonl"))[0]] == [1, 3]
    # a fresh run starts a fresh file; the size cap stops recording and says so
    tiny = RolloutLog(_run_config(tmp_path, log_rollouts_every=1, log_rollouts_max_mb=0.003).run)
    for step in range(1, 8):
        tiny.record(step, records, outputs, {"format": 1.0, "intent": 1.0}, totals, adv, group_size=2)
    groups, note = read_rollouts(str(tmp_path / "rollouts.jsonl"))
    assert note and "log_rollouts_max_mb" in note and 0 < len(groups) < 7
    assert os.path.getsize(tmp_path / "rollouts.jsonl") < 0.003 * 2**20 + 200
    off = RolloutLog(_run_config(tmp_path / "off", log_rollouts_every=0).run)
    assert off.record(1, records, outputs, {}, totals, adv, group_size=2) == 0
    assert not (tmp_path / "off" / "rollouts.jsonl").exists()


@pytest.mark.parametrize("prompt,expected", [
    ("What colour?\nA. red\nB. green\nFirst, extract ...", ("What colour?", ["red", "green"])),
    ("Two lines\nof question\nA. x\nB. y\nC. z", ("Two lines\nof question", ["x", "y", "z"])),
    ("No options here", ("No options here", [])),
    ("A. starts with an option\nB. y", ("A. starts with an option\nB. y", [])),
    (None, ("", [])),
])
def test_split_prompt(prompt, expected):
    assert split_prompt(prompt) == expected


@pytest.fixture(scope="module")
def demo_site(tmp_path_factory):
    root = tmp_path_factory.mktemp("view_demo")
    paths = build_demo_folder(str(root))
    result = write_site(paths["root"])
    return paths, result, read_site_data(result["index"])


def _flips(rows, a, b):
    """(fixed, broke) question ids between conditions a and b, straight from results.jsonl."""
    by = {}
    for r in rows:
        by.setdefault(r["id"], {})[(r["model"], r["modality"])] = r
    fixed = {q for q, c in by.items() if a in c and b in c and not c[a]["correct"] and c[b]["correct"]}
    broke = {q for q, c in by.items() if a in c and b in c and c[a]["correct"] and not c[b]["correct"]}
    return fixed, broke


def test_site_data_matches_the_run_and_eval_files(demo_site):
    paths, result, site = demo_site
    assert site["kind"] == "collection" and [r["name"] for r in site["runs"]] == ["qi", "ma"]
    for run in site["runs"]:
        source = read_jsonl(os.path.join(paths[run["name"]], "rollouts.jsonl"))
        assert len(run["groups"]) == len(source) == 6  # steps 1, 3, 6 x 2 groups
        for group, line in zip(run["groups"], source):
            assert (group["step"], group["slot"]) == (line["step"], line["slot"])
            totals = [c["total"] for c in line["completions"]]
            expected_adv, _ = group_advantages(torch.tensor(totals, dtype=torch.float32), G)
            for comp, src, adv in zip(group["completions"], line["completions"], expected_adv.tolist()):
                segs = parse_grounded_response(src["text"]).segments
                assert comp["segments"] == [{"start": s.start, "end": s.end, "caption": s.caption} for s in segs]
                assert comp["rewards"] == src["rewards"] and comp["total"] == src["total"]
                assert comp["total"] == pytest.approx(sum(src["rewards"].values()))  # all weights are 1
                assert comp["advantage"] == pytest.approx(adv, abs=1e-6)
            assert group["prompt"]["media"] in site["media"]
        metrics = read_jsonl(os.path.join(paths[run["name"]], "metrics.jsonl"))
        assert run["metrics"]["steps"] == [m["step"] for m in metrics]
        assert run["metrics"]["series"]["reward/total/mean"] == pytest.approx([m["reward/total/mean"] for m in metrics])
    assert set(site["runs"][1]["groups"][0]["completions"][0]["rewards"]) == {"format", "answer", "modality_attention"}

    rows = read_jsonl(os.path.join(paths["eval"], "results.jsonl"))
    ev = site["eval"]
    conds = [(c["model"], c["modality"]) for c in ev["conditions"]]
    assert conds == [(m, mod) for m in MODELS for mod in ("av", "video")]
    for row in rows:
        q = next(q for q in ev["questions"] if q["id"] == row["id"])
        got = q["results"][conds.index((row["model"], row["modality"]))]
        assert (got["parsed"], got["correct"], got["media_error"]) == (row["parsed"], row["correct"], row["media_error"])
        assert got["segments"] == [{"start": s.start, "end": s.end, "caption": s.caption}
                                   for s in parse_grounded_response(row["output"]).segments]
        assert q["media"] in site["media"] and q["timeline"]  # joined with the world's samples
        assert q["groups"] == row["groups"] and q["groups"]["duration"] in ("short", "long")
    for flip in ev["flips"]:
        fixed, broke = _flips(rows, conds[flip["a"]], conds[flip["b"]])
        assert {ev["questions"][i]["id"] for i in flip["b_fixed"]} == fixed
        assert {ev["questions"][i]["id"] for i in flip["b_broke"]} == broke
    assert any(f["b_fixed"] or f["b_broke"] for f in ev["flips"])  # the fixture does flip questions


def test_thumbnails_match_the_clip_and_are_made_once(demo_site):
    from PIL import Image

    paths, result, site = demo_site
    media_dir = os.path.join(os.path.dirname(result["index"]), "media")
    for meta in site["media"].values():
        assert meta["error"] is None and meta["has_audio"]
        assert meta["duration"] == pytest.approx(4.0)
        assert meta["frame_times"] == pytest.approx([0.25 * i for i in range(16)])  # 4 fps over 4 s
        h, w = meta["frame_size"]
        assert Image.open(os.path.join(os.path.dirname(result["index"]), meta["frames"])).size == (16 * w, h)
        assert Image.open(os.path.join(os.path.dirname(result["index"]), meta["spectrogram"])).size == (480, 64)
        assert max(meta["envelope"]) > 0.3  # the clips' tones peak at 0.5
    before = {f: os.path.getmtime(os.path.join(media_dir, f)) for f in os.listdir(media_dir)}
    again = write_site(paths["root"])
    assert again["media_files"] == len(before)
    assert before == {f: os.path.getmtime(os.path.join(media_dir, f)) for f in os.listdir(media_dir)}


def test_eval_folder_alone_and_with_data(demo_site, tmp_path):
    paths, _, _ = demo_site
    alone = build_site_data(paths["eval"], media_dir=str(tmp_path / "m1"))
    assert alone["kind"] == "eval" and not alone["runs"] and not alone["media"]
    assert any("No question media" in n for n in alone["notes"])
    q = alone["eval"]["questions"][0]
    assert q["question"] and len(q["options"]) == 4 and q["media"] is None  # read back from the prompt text
    joined = build_site_data(paths["eval"], data=os.path.join(paths["world"], "test.jsonl"), max_media=1,
                             media_dir=str(tmp_path / "m2"))
    assert len(joined["media"]) == 1 and all(q["media"] == "m0" for q in joined["eval"]["questions"])
    capped = build_site_data(paths["eval"], max_questions=2)
    assert len(capped["eval"]["questions"]) == 2 and any("first 2 of 3" in n for n in capped["notes"])


def test_a_thousand_question_eval_stays_small_and_says_what_it_cut(tmp_path):
    from omnivideo_r1.view.site import render_html

    reply = "<time>1.0-2.5</time><caption>" + "a dog barks while a man speaks " * 8 + "</caption>"
    reply = reply * 3 + "<thinking>" + "because " * 400 + "</thinking><answer>B</answer>"  # ~4 KB
    with open(tmp_path / "results.jsonl", "w") as fh:
        for model in ("base", "qi", "ma", "qi_ma"):
            for modality in ("av", "video"):
                for i in range(1000):
                    fh.write(json.dumps({"id": f"q{i}", "benchmark": "b", "category": f"c{i % 15}", "modality": modality,
                                         "prompt": f"Q{i}?\nA. x\nB. y", "output": reply, "parsed": "B", "answer": "AB"[i % 2],
                                         "correct": i % 2 == 1, "unparseable": False, "media_error": None,
                                         "model": model}) + "\n")
    site = build_site_data(str(tmp_path))
    page = render_html(site)
    assert len(site["eval"]["questions"]) == 1000
    assert len(page.encode()) < 6 * 2**20  # the rows themselves are ~33 MB
    assert any("cut to 250 characters" in n for n in site["notes"])
    assert all(len(r["output"]) == 250 and r["truncated"] for q in site["eval"]["questions"] for r in q["results"])
    assert len(site["eval"]["questions"][0]["results"][0]["segments"]) == 3  # parsed from the full text


def test_view_cli_reports_bad_folders_in_one_line(tmp_path, capsys):
    assert main(["view", str(tmp_path / "missing")]) == 2
    assert "not a folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["view", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert "no metrics.jsonl" in err and "Traceback" not in err
    run = tmp_path / "run"
    run.mkdir()
    (run / "rollouts.jsonl").write_text('{"step": 1, "slot": 0, "prompt": {}, "completions": []}\n{"step": 2, "sl\n')
    assert main(["view", str(run)]) == 0  # a run still writing (or killed mid-line) can be viewed
    assert "1 unreadable line(s) skipped" in capsys.readouterr().err
    (run / "rollouts.jsonl").write_text('{"step": 1, "slot": 0}\n')
    assert main(["view", str(run)]) == 2
    assert "rollouts.jsonl:1: not a recorded rollout group" in capsys.readouterr().err


# ---------------------------------------------------------------- the page in a real browser

def _browser() -> str | None:
    for name in ("chromium", "chromium-headless-shell", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    return None


def _chromium(url: str, *args: str) -> subprocess.CompletedProcess:
    profile = tempfile.mkdtemp(prefix="viewer-chromium-")
    try:
        return subprocess.run([_browser(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                               "--disable-background-networking", "--disable-component-update", "--disable-sync",
                               f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
                               "--virtual-time-budget=5000", *args, url],
                              capture_output=True, text=True, timeout=120)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def _console_messages(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


@pytest.mark.skipif(_browser() is None, reason="no Chromium on PATH (Debian: apt-get install chromium; .ci/run "
                                                "installs it when it runs as root)")
def test_page_renders_in_headless_chromium(demo_site, tmp_path):
    paths, result, site = demo_site
    url = "file://" + result["index"]
    run = site["runs"][0]
    last = max(g["step"] for g in run["groups"])
    shown = [g for g in run["groups"] if g["step"] == last]

    page = _chromium(url + "#run-0", "--dump-dom")
    dom = page.stdout
    assert 'data-ready="1"' in dom, page.stderr[-2000:]
    errors = re.search(r'<pre id="viewer-errors"[^>]*>(.*?)</pre>', dom, re.S)
    assert errors and not errors.group(1).strip() and "hidden" in errors.group(0), errors and errors.group(1)
    assert not _console_messages(page.stderr), _console_messages(page.stderr)
    assert dom.count('<article class="group"') == len(shown) * len(site["runs"])  # the last step of every run
    assert dom.count('class="completion"') == sum(len(g["completions"]) for g in shown) * len(site["runs"])
    assert dom.count('class="timeline"') >= len(shown) * len(site["runs"])
    starts = sorted(float(x) for x in re.findall(r'class="seg pred"[^>]*data-start="([0-9.]+)"', dom))
    expected = sorted(s["start"] for r in site["runs"] for g in r["groups"] if g["step"] == last
                      for c in g["completions"] for s in c["segments"])
    assert starts == pytest.approx(expected) and expected

    compare = _chromium(url + "#compare", "--dump-dom")
    m = re.search(r'class="contingency" data-fixed="(\d+)" data-broke="(\d+)" data-n="(\d+)"', compare.stdout)
    rows = read_jsonl(os.path.join(paths["eval"], "results.jsonl"))
    fixed, broke = _flips(rows, (MODELS[0], "av"), (MODELS[-1], "av"))  # the default pair: first -> last checkpoint
    assert m and (int(m.group(1)), int(m.group(2))) == (len(fixed), len(broke))
    assert set(re.findall(r'class="flip" data-qid="([^"]+)"', compare.stdout)) == fixed | broke
    assert not _console_messages(compare.stderr)

    for name, fragment, size in (("viewer-rollouts.png", "#run-0", "1400,1800"), ("viewer-questions.png", "#eval/q1", "1400,1200")):
        shot = tmp_path / name
        out = _chromium(url + fragment, f"--screenshot={shot}", f"--window-size={size}", "--hide-scrollbars")
        assert shot.is_file() and shot.stat().st_size > 20_000, out.stderr[-2000:]
        assert not _console_messages(out.stderr)
    print(f"screenshots: {tmp_path}")
