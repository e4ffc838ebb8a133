"""Curation sources read as released: a LLaVA-Video-178K subset folder (mc / oe / caption files sharing video-key
ids), VideoVista records whose `Type` is a task name, and each input's own media root (real clips)."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from curation_fixtures import CountingJudge, make_media
from omnivideo_r1.config import load_config
from omnivideo_r1.curation import cli as curate_cli
from omnivideo_r1.curation.pipeline import CurationConfig, run_curation
from omnivideo_r1.curation.sources import read_source, read_sources, type_kind

CLOSE_A = "Answer with the option's letter from the given choices directly."
CLOSE_B = "Please respond with only the letter of the correct answer."


def _dump(path, records):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(records, fh)
    return path


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """A LLaVA-Video-178K subset folder and a VideoVista train file with its clips in their own folder."""
    root = tmp_path_factory.mktemp("release")
    media = make_media(str(root / "scratch"))
    subset = root / "LLaVA-Video-178K" / "0_30_s_academic_v0_1"
    clip = subset / "academic_source" / "Charades" / "RW587.mp4"  # `video` is relative to the subset folder
    os.makedirs(clip.parent)
    shutil.copy(root / "scratch" / media["good_a"], clip)
    rel = "academic_source/Charades/RW587.mp4"
    mc_turns = [
        {"from": "human", "value": "<image>\nWhat does the narrator say about the car shown on screen?\n"
                                   f"A. it is fast\nB. it is slow\nC. nothing\n{CLOSE_A}"},
        {"from": "gpt", "value": "A. it is fast"},
        {"from": "human", "value": "How many times does the bell ring while the door is visible?\nOptions:\n"
                                   f"(A) one\n(B) two\n(C) three\n{CLOSE_B}"},
        {"from": "gpt", "value": "C"},
    ]
    files = {
        "mc": _dump(str(subset / "0_30_s_academic_mc_v0_1_qa_processed.json"),
                    [{"id": "RW587", "video": rel, "conversations": mc_turns, "data_source": "0_30_s_academic_v0_1"}]),
        "oe": _dump(str(subset / "0_30_s_academic_oe_v0_1_qa_processed.json"),
                    [{"id": "RW587", "video": rel, "data_source": "0_30_s_academic_v0_1", "conversations": [
                        {"from": "human", "value": "<image>\nWhat is the person doing?"},
                        {"from": "gpt", "value": "The person is opening a door."},
                        {"from": "human", "value": "Where is the person?"},
                        {"from": "gpt", "value": "In a kitchen."}]}]),
        "cap": _dump(str(subset / "0_30_s_academic_v0_1_cap_processed.json"),
                     [{"id": "RW587", "video": rel, "data_source": "0_30_s_academic_v0_1", "conversations": [
                         {"from": "human", "value": "<image>\nDescribe the video in detail."},
                         {"from": "gpt", "value": "A person walks into a kitchen and opens a door."}]}]),
    }
    vv_videos = root / "VideoVista_Train" / "VideoVista-Train-videos"
    os.makedirs(vv_videos)
    shutil.copy(root / "scratch" / media["good_b"], vv_videos / "Rl0M4-VNpe4.120t300.0.mp4")
    vv = [
        {"id": "vv-count", "video": "Rl0M4-VNpe4.120t300.0.mp4", "Type": "Objects Count", "conversations": [
            {"from": "human", "value": "<video>\nQuestion: How many times does the bell ring while the clock is "
                                       "visible?\n(A) one\n(B) two\n(C) three"},
            {"from": "gpt", "value": "(C) three"}]},
        {"id": "vv-brief", "video": "Rl0M4-VNpe4.120t300.0.mp4", "Type": "Brief Description", "conversations": [
            {"from": "human", "value": "<video>\nBriefly describe the video."},
            {"from": "gpt", "value": "A clock and a bell."}]},
        {"id": "vv-broken", "video": "Rl0M4-VNpe4.120t300.0.mp4", "Type": "Objects Count", "conversations": [
            {"from": "human", "value": "<video>\nHow many bells?\n(A) one\n(C) three"},
            {"from": "gpt", "value": "(A) one"}]},
    ]
    files["vv"] = _dump(str(root / "VideoVista_Train" / "VideoVista_Train.json"), vv)
    return {"files": files, "vv_videos": str(vv_videos), "root": root}


def _outcome(items):
    return sorted((u.uid, u.reason) for u in items)


def test_file_name_is_the_llava_type_signal(release):
    files = release["files"]
    assert [type_kind(os.path.basename(files[k])) for k in ("mc", "oe", "cap", "vv")] == ["mc", "oe", "cap", None]
    oe = read_source(files["oe"])
    assert [(u.uid, u.reason) for u in oe] == [("RW587-t0", "not_multiple_choice"), ("RW587-t1", "not_multiple_choice")]
    mc = {u.uid: u for u in read_source(files["mc"])}
    assert mc["RW587-t0"].sample.options == ["it is fast", "it is slow", "nothing"]  # both closing lines dropped
    assert mc["RW587-t1"].sample.question.startswith("How many times") and mc["RW587-t1"].sample.answer == "C"
    assert os.path.isfile(mc["RW587-t0"].sample.video)  # relative to the subset folder


@pytest.mark.parametrize("order", [("oe", "cap", "mc"), ("mc", "oe", "cap"), ("cap", "mc", "oe")])
def test_shared_record_ids_never_cost_mc_units(release, order):
    items = read_sources([release["files"][k] for k in order])
    usable = sorted(u.uid for u in items if u.sample is not None)
    assert usable == ["RW587-t0", "RW587-t1"]
    assert _outcome(items) == [
        ("RW587-t0", None), ("RW587-t0@0_30_s_academic_oe_v0_1_qa_processed.json", "not_multiple_choice"),
        ("RW587-t0@0_30_s_academic_v0_1_cap_processed.json", "not_multiple_choice"), ("RW587-t1", None),
        ("RW587-t1@0_30_s_academic_oe_v0_1_qa_processed.json", "not_multiple_choice")]


def test_same_file_twice_and_same_id_with_other_content(release, tmp_path):
    mc = release["files"]["mc"]
    twice = read_sources([mc, mc])
    assert [u.reason for u in twice] == [None, None, "duplicate_id", "duplicate_id"]
    assert len({u.uid for u in twice}) == 4
    other = json.load(open(mc))
    other[0]["conversations"][1]["value"] = "B. it is slow"  # another answer under the same id: both kept
    other[0]["video"] = os.path.join(os.path.dirname(mc), other[0]["video"])
    other_path = _dump(str(tmp_path / "1_2_m_academic_mc_v0_1_qa_processed.json"), other)
    items = read_sources([mc, other_path])
    t0 = sorted(u.uid for u in items if u.uid.startswith("RW587-t0"))
    assert t0 == ["RW587-t0@0_30_s_academic_mc_v0_1_qa_processed.json", "RW587-t0@1_2_m_academic_mc_v0_1_qa_processed.json"]
    assert all(u.reason is None for u in items if u.uid.startswith("RW587-t0"))
    assert all(u.sample.id == u.uid for u in items if u.sample is not None)


def test_videovista_multiple_choice_is_decided_by_the_record(release):
    units = {u.uid: u for u in read_source(release["files"]["vv"], video_root=release["vv_videos"])}
    assert units["vv-count-t0"].sample.options == ["one", "two", "three"]
    assert units["vv-count-t0"].sample.answer == "C" and os.path.isfile(units["vv-count-t0"].sample.video)
    assert units["vv-count-t0"].sample.extra["type"] == "Objects Count"
    assert units["vv-brief-t0"].reason == "not_multiple_choice"
    assert units["vv-broken-t0"].reason == "unparseable_options"


def test_each_input_has_its_own_media_root(release, tmp_path, capsys):
    files = release["files"]
    inputs = [files["oe"], files["mc"], files["vv"]]
    cfg = load_config(CurationConfig, None, ["require_audio=false"])
    cfg.video_roots = {files["vv"]: release["vv_videos"]}
    result = run_curation(inputs, str(tmp_path / "a"), cfg, CountingJudge())
    stages = {r["id"]: (r["stage"], r["reason"]) for r in result.rejected}
    kept = {s.id for s in result.kept}
    for uid in ("RW587-t0", "RW587-t1", "vv-count-t0"):  # past the source and media checks: clips found
        assert uid in kept or stages[uid][0] not in ("source", "media"), stages.get(uid)
    assert stages["vv-brief-t0"] == ("source", "not_multiple_choice")
    # The same through the command line, and what happens without the VideoVista root.
    code = curate_cli.run(_curate_args(inputs, tmp_path / "b", [f"{files['vv']}={release['vv_videos']}"]))
    assert code == 0
    code = curate_cli.run(_curate_args(inputs, tmp_path / "c", []))
    assert code == 0
    rejected = [json.loads(line) for line in open(tmp_path / "c" / "rejected.jsonl")]
    assert {r["id"]: r["reason"] for r in rejected}["vv-count-t0"] == "missing_media"
    from omnivideo_r1 import cli

    argv = [a for path in inputs for a in ("--input", path)] + ["--out", str(tmp_path / "d"), "require_audio=false"]
    assert cli.main(["curate", *argv, "--video-root", "/no/such/dir"]) == 2
    assert "--video-root /no/such/dir: not a folder" in capsys.readouterr().err


def _curate_args(inputs, out, roots):
    import argparse

    parser = argparse.ArgumentParser()
    curate_cli.add_arguments(parser)
    argv = [a for path in inputs for a in ("--input", path)] + ["--out", str(out), "require_audio=false"]
    for root in roots:
        argv += ["--video-root", root]
    return parser.parse_args(argv)


def test_unreadable_input_is_one_line(tmp_path):
    bad = tmp_path / "0_30_s_academic_mc_v0_1_qa_processed.json"
    bad.write_bytes(b"\xff\xfe binary")
    with pytest.raises(ValueError, match=r"qa_processed.json: not UTF-8 text \(offset 0\); expected a JSON list"):
        read_source(str(bad))
    (tmp_path / "samples.jsonl").write_bytes(b'{"id": 1}\n\xff\n')
    with pytest.raises(ValueError, match=r"samples.jsonl: not UTF-8 text \(offset \d+\); expected our JSONL"):
        read_source(str(tmp_path / "samples.jsonl"))
