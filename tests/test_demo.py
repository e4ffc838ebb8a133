"""`omnivideo-r1 demo` end to end at toy size: every stage runs and the report agrees with the raw eval rows."""

from __future__ import annotations

import json
import os
from dataclasses import asdict

import pytest
import yaml

from omnivideo_r1.eval.demo_report import (ARM_LABELS, ARMS, answer_entropy_bits, answer_spread, demo_targets,
                                           paired_vs_base, paper_shape, trailing_mean)
from omnivideo_r1.eval.listing_quality import listing_quality
from omnivideo_r1.eval.report import mcnemar_exact_p
from omnivideo_r1.errors import UsageError
from omnivideo_r1.train.demo import DemoConfig, arm_config, run_demo
from omnivideo_r1.train.demo_fresh import parse_checkpoint_overrides
from omnivideo_r1.config import load_config
from omnivideo_r1.schema import read_samples


@pytest.mark.slow
@pytest.mark.parametrize("base", ["warm_start", "perception", "packaged"])
def test_demo_smoke_writes_a_consistent_ablation(tmp_path, monkeypatch, base):
    import omnivideo_r1.train.sft as sft

    supervised = []
    real_warm_start = sft.warm_start

    def recording_warm_start(policy, samples, *args, **kwargs):
        supervised.extend(samples)
        return real_warm_start(policy, samples, *args, **kwargs)

    monkeypatch.setattr(sft, "warm_start", recording_warm_start)
    out = tmp_path / "demo"
    perceive = base != "warm_start"
    overrides = [f"out_dir={out}", f"perception_pretraining={str(base == 'perception').lower()}"]
    if base == "perception":
        overrides += ["perception.steps=2", "perception.batch_size=2", "perception.log_every=0"]
    if base == "packaged":  # the default demo's base, with the media settings it was built with
        overrides += ["base_model=packaged", "model_size=demo", "world.width=96", "max_pixels=6144", "max_frames=8"]
    if perceive:  # the paper's RL data: cross-modal questions only
        overrides += ["rl_questions=both"]
    if base == "perception":  # ... and, for MA only, a share of single-sense ones
        overrides += ["rl_single_share=0.25", "rl_single_share_stages=[ma]"]
    cfg = load_config(DemoConfig, "demo_smoke", overrides)  # the shipped smoke preset: a handful of steps
    result = run_demo(cfg)

    # Supervised training never sees the cross-modal questions the RL arms are judged on (perception pretraining
    # builds its own single-modality questions: tests/test_perception.py).
    if not perceive:
        assert supervised and {s.modality_needs for s in supervised} <= {"video", "audio"}
    else:
        assert not supervised  # the format warm start is replaced, not run on top
    for name in ("ablation.md", "ablation.json", "ablation.png", "eval/results.jsonl", "viewer/index.html"):
        assert (out / name).is_file() and os.path.getsize(out / name) > 0, name
    assert result["viewer"] == str(out / "viewer" / "index.html")
    for arm in ("qi", "ma", "qi_ma"):
        assert (out / arm / "final" / "config.json").is_file()
        assert (out / arm / "rollouts.jsonl").is_file()  # what the viewer shows per step
        assert (out / arm / "metrics.jsonl").is_file()
        if perceive:  # rl_questions=both: the arm trained on the train split's cross-modal questions, all of them
            stage = "qi" if arm == "qi" else "ma"
            train_path = yaml.safe_load((out / arm / f"config_{stage}.yaml").read_text())["data"]["train_path"]
            trained_on = [s.modality_needs for s in read_samples(train_path)]
            in_split = [s.modality_needs for s in read_samples(str(out / "world" / "train.jsonl"))]
            assert trained_on.count("both") == in_split.count("both") and trained_on, (arm, trained_on)
            single = len(trained_on) - trained_on.count("both")
            # the share in MA only: a quarter of MA's questions are single-sense ones, none of QI's
            assert single == (round(in_split.count("both") / 3) if base == "perception" and stage == "ma" else 0)

    saved = json.loads((out / "ablation.json").read_text())
    table = saved["table"]
    assert table == result["table"]
    assert list(table) == [ARM_LABELS[a] for a in ARMS]
    for label, entry in table.items():
        for modality in ("av", "video"):
            stats = entry[modality]
            assert stats["scored"] == 4, (label, modality)
            assert 0.0 <= stats["ci_low"] <= stats["accuracy"] <= stats["ci_high"] <= 1.0
    assert saved["shape"] == paper_shape(table)
    assert saved["targets"] == demo_targets(table, saved["base_perception"], saved["answer_spread"],
                                            saved["paired_vs_base"])
    assert "The demo's targets checked on this run:" in (out / "ablation.md").read_text()
    # Every arm's final checkpoint is named, loadable by `omnivideo-r1 eval --model`.
    assert set(saved["checkpoints"]) == set(ARMS)
    for arm, path in saved["checkpoints"].items():
        assert os.path.isabs(path) and os.path.isfile(os.path.join(path, "config.json")), arm
    assert saved["checkpoints"]["qi"] == str(out / "qi" / "final")
    # One evaluation job per arm and input condition, and one for the base's perception measures.
    assert {name for name in saved["timings_s"] if name.startswith("eval_")} == {
        f"eval_{arm}_{modality}" for arm in ARMS for modality in cfg.modalities} | {"eval_base_perception"}
    # The base's perception is measured directly: video-only questions on silent video, audio-only ones on audio.
    perception = saved["base_perception"]
    silent_video = table[ARM_LABELS["base"]].get("video/video")
    assert perception["video-only questions, silent video"]["scored"] == (silent_video or {}).get("scored", 0)
    if perceive:
        assert set(perception["caption_words"]) == {"video", "audio"}
        readout = perception["listing_readout"]
        assert readout["video"]["n"] == silent_video["scored"] and "Right option ranked first when the correct " \
            "listing" in (out / "ablation.md").read_text()
        assert sum(s["n"] for s in readout["video"]["by_type"].values()) == readout["video"]["n"]
        if base == "packaged":  # copied into the run, with the loss curve it was built with
            assert (out / "base" / "model.safetensors").is_file() and "perception" not in saved["timings_s"]
            provenance = json.loads((out / "base" / "provenance.json").read_text())
            assert saved["sft_losses"] == provenance["perception_losses"] and len(saved["sft_losses"]) > 100
            _check_fresh_world_recheck(out, cfg, provenance["perception"]["seed"])
        else:
            assert saved["timings_s"]["perception"] > 0
    else:
        assert "caption_words" not in perception and saved["timings_s"]["warm_start"] > 0
    audio_only = perception["audio-only questions, audio alone"]
    assert audio_only["scored"] == (table[ARM_LABELS["base"]].get("av/audio") or {}).get("scored", 0)

    # Recompute one cell from the raw rows: QI+MA, silent video.
    rows = [json.loads(line) for line in (out / "eval" / "results.jsonl").read_text().splitlines() if line.strip()]
    mine = [r for r in rows if r["model"] == ARM_LABELS["qi_ma"] and r["modality"] == "video"]
    assert len(mine) == 4
    assert table[ARM_LABELS["qi_ma"]]["video"]["correct"] == sum(bool(r["correct"]) for r in mine)
    assert table[ARM_LABELS["qi_ma"]]["video"]["accuracy"] == pytest.approx(sum(bool(r["correct"]) for r in mine) / 4)

    md = (out / "ablation.md").read_text()
    lines = md.splitlines()
    top = lines.index(next(line for line in lines if line.startswith("| model |")))
    accuracy_table = lines[top: lines.index("", top)]
    assert "| AV |" in accuracy_table[0] and "| silent video |" in accuracy_table[0]
    assert [line.split(" | ")[0] for line in accuracy_table[2:]] == [f"| {ARM_LABELS[a]}" for a in ARMS]
    qi_ma_row = accuracy_table[2 + ARMS.index("qi_ma")].split(" | ")
    silent_cell = qi_ma_row[accuracy_table[0].split(" | ").index("silent video")]
    assert silent_cell.startswith(f"{100 * table[ARM_LABELS['qi_ma']]['video']['accuracy']:.1f} [")
    assert "Paper's shape on AV" in md and "Silent video not worse than base" in md
    assert "Most frequent parsed answer per arm" in md
    assert saved["paired_vs_base"] == paired_vs_base(rows, cfg.modalities)
    assert "exact McNemar p" in md
    # What the replies list: recomputed from the rows and the test split, one entry per arm and input condition.
    test_split = read_samples(str(out / "world" / "test.jsonl"))
    assert saved["listing"] == json.loads(json.dumps(listing_quality(rows, test_split)))
    assert set(saved["listing"]) == {ARM_LABELS[a] for a in ARMS}
    for label, per in saved["listing"].items():
        assert set(per) == set(cfg.modalities) and per["av"]["n"] == 4 and "found_audio" not in per["video"], label
    assert "What the replies list" in md


def _check_fresh_world_recheck(out, cfg: DemoConfig, base_world_seed: int) -> None:
    """`omnivideo-r1 fresh-world` on the finished run: the same report, on a world of another seed."""
    from omnivideo_r1.cli import main
    from omnivideo_r1.eval.report import accuracy_stats

    for seen in (cfg.seed, base_world_seed):  # the run's world and the base's perception clips are not fresh
        assert main(["fresh-world", "--run", str(out), "--seed", str(seen)]) == 2
    assert not (out / f"fresh_world_{cfg.seed}").exists()
    seed = cfg.seed + 7
    assert main(["fresh-world", "--run", str(out), "--seed", str(seed), "--clips", "2", "--workers", "1"]) == 0
    fresh = out / f"fresh_world_{seed}"
    saved = json.loads((fresh / "ablation.json").read_text())
    assert saved["world_seed"] == seed and saved["checkpoints"] == json.loads((out / "ablation.json").read_text())[
        "checkpoints"]
    world = read_samples(str(fresh / "world" / "test.jsonl"))
    assert len(world) == 2 * cfg.world.questions_per_clip  # every clip held out
    own = {s.id: s.extra.get("timeline") for s in read_samples(str(out / "world" / "test.jsonl"))}
    assert any(s.extra.get("timeline") != own.get(s.id) for s in world)  # other clips, not the run's again
    rows = [json.loads(line) for line in (fresh / "eval" / "results.jsonl").read_text().splitlines() if line]
    for arm in ARMS:
        for modality in cfg.modalities:
            mine = [r for r in rows if r["model"] == ARM_LABELS[arm] and r["modality"] == modality]
            assert len(mine) == len(world), (arm, modality)
            assert saved["table"][ARM_LABELS[arm]][modality] == accuracy_stats(mine)
    assert saved["paired_vs_base"] == paired_vs_base(rows, cfg.modalities)
    assert saved["listing"] == json.loads(json.dumps(listing_quality(rows, world)))
    assert saved["base_perception"]["audio-only questions, audio alone"]["scored"] == sum(
        s.modality_needs == "audio" for s in world)
    md = (fresh / "ablation.md").read_text()
    assert f"on fresh world {seed}" in md.splitlines()[0] and "The demo's targets checked on this run:" in md
    assert (fresh / "ablation.png").is_file()

    # Another checkpoint in an arm's place: here MA's final in QI's, so QI's greedy answers must be MA's.
    stand_in = str(out / "ma" / "final")
    assert main(["fresh-world", "--run", str(out), "--seed", str(seed), "--checkpoint", f"qi={stand_in}"]) == 2
    variant = out / "variant"
    assert main(["fresh-world", "--run", str(out), "--seed", str(seed), "--clips", "1", "--workers", "1",
                 "--checkpoint", f"qi={stand_in}", "--out", str(variant)]) == 0
    saved = json.loads((variant / "ablation.json").read_text())
    assert saved["checkpoints"] == {**json.loads((out / "ablation.json").read_text())["checkpoints"], "qi": stand_in}
    assert saved["replaced"] == ["qi"]
    rows = [json.loads(line) for line in (variant / "eval" / "results.jsonl").read_text().splitlines() if line]
    for modality in cfg.modalities:
        def answers(arm):
            return [(r["id"], r["output"]) for r in rows if r["model"] == ARM_LABELS[arm] and r["modality"] == modality]
        assert answers("qi") == answers("ma") and answers("qi"), modality
    assert {r["checkpoint"] for r in rows if r["model"] == ARM_LABELS["qi"]} == {stand_in}
    assert f"in place of the run's qi: {stand_in}" in (variant / "ablation.md").read_text().splitlines()[0]


@pytest.mark.slow
def test_demo_results_do_not_depend_on_the_worker_processes(tmp_path):
    """Two worker processes (the default) and one process give the same checkpoints and the same answers."""
    runs = {}
    for workers in (1, 2):
        out = tmp_path / f"workers{workers}"
        run_demo(load_config(DemoConfig, "demo_smoke", [f"out_dir={out}", f"workers={workers}"]))
        rows = [json.loads(line) for line in (out / "eval" / "results.jsonl").read_text().splitlines() if line]
        weights = {arm: (out / arm / "final" / "model.safetensors").read_bytes() for arm in ("qi", "ma", "qi_ma")}
        runs[workers] = ([(r["model"], r["modality"], r["id"], r["output"]) for r in rows], weights,
                         json.loads((out / "ablation.json").read_text())["table"])
    assert runs[1][0] and runs[1][0] == runs[2][0]
    assert runs[1][1] == runs[2][1]
    assert runs[1][2] == runs[2][2]


def test_paper_shape_reads_point_estimates():
    def entry(av, silent):
        return {"av": {"accuracy": av}, "video": {"accuracy": silent}}

    table = {ARM_LABELS["base"]: entry(0.3, 0.4), ARM_LABELS["qi"]: entry(0.4, 0.4),
             ARM_LABELS["ma"]: entry(0.35, 0.5), ARM_LABELS["qi_ma"]: entry(0.5, 0.4)}
    assert paper_shape(table) == {"av_shape": True, "silent_not_worse": True, "silent_worse_arms": []}
    table[ARM_LABELS["ma"]] = entry(0.3, 0.39)  # MA no better than base on AV, worse silent
    got = paper_shape(table)
    assert got["av_shape"] is False and got["silent_not_worse"] is False
    assert got["silent_worse_arms"] == [ARM_LABELS["ma"]]


@pytest.mark.parametrize("silent, verdict", [
    ((0.40, 0.40, 0.40), "**Silent video not worse than base: yes**."),
    ((0.39, 0.40, 0.40), "(lower point estimate: QI only; all inside the base's 95% interval [30-50])."),
    ((0.39, 0.29, 0.40), "(lower point estimate: QI only, MA only; below the base's 95% interval [30-50]: MA only)."),
])
def test_silent_video_verdict_names_arms_below_the_base_and_outside_its_interval(silent, verdict):
    from omnivideo_r1.eval.demo_report import render_markdown

    def entry(acc, low=0.0, high=1.0):
        return {"av": {"accuracy": 0.5, "ci_low": 0.4, "ci_high": 0.6, "scored": 100},
                "video": {"accuracy": acc, "ci_low": low, "ci_high": high, "scored": 100}}

    table = {ARM_LABELS["base"]: entry(0.40, 0.30, 0.50),
             **{ARM_LABELS[a]: entry(acc) for a, acc in zip(("qi", "ma", "qi_ma"), silent)}}
    md = render_markdown(table, ["av", "video"], config={}, timings={}, sft_losses=[])
    assert next(line for line in md.splitlines() if line.startswith("**Silent video")).endswith(verdict)


def _target_table(both: dict, silent: dict) -> dict:
    """Each arm's AV "needs both" and silent-video "needs video" stats (Wilson-like bounds +- 0.05)."""
    def s(acc):
        return {"accuracy": acc, "ci_low": acc - 0.05, "ci_high": acc + 0.05, "scored": 400}

    return {ARM_LABELS[a]: {"av/both": s(both[a]), "video/video": s(silent[a])} for a in ARMS}


PERCEIVES = {"video-only questions, silent video": {"accuracy": 0.81},
             "audio-only questions, audio alone": {"accuracy": 0.9}}
SPREAD = {ARM_LABELS[a]: {"av": {"top_share": 0.3}} for a in ARMS}


@pytest.mark.parametrize("both, silent, perception, spread, want", [
    # every bar met: +22 points separated, each stage above the base, silent video held, no collapse
    ({"base": 0.40, "qi": 0.50, "ma": 0.45, "qi_ma": 0.62}, {"base": 0.60, "qi": 0.58, "ma": 0.60, "qi_ma": 0.61},
     PERCEIVES, SPREAD, [True, True, True, True, True, True, True]),
    # +8 points; MA below the base; QI's silent video below the base's floor (0.55); QI collapsed; video short
    ({"base": 0.40, "qi": 0.50, "ma": 0.39, "qi_ma": 0.48}, {"base": 0.60, "qi": 0.54, "ma": 0.60, "qi_ma": 0.60},
     {"video-only questions, silent video": {"accuracy": 0.64}, "audio-only questions, audio alone": {"accuracy": 0.8}},
     {**SPREAD, ARM_LABELS["qi"]: {"av": {"top_share": 0.8}}}, [False, True, False, True, False, False, False]),
    # nothing measured: perception and answer spread absent
    ({"base": 0.40, "qi": 0.40, "ma": 0.40, "qi_ma": 0.40}, {"base": 0.60, "qi": 0.60, "ma": 0.60, "qi_ma": 0.60},
     None, None, [None, None, False, False, False, True, None]),
])
def test_demo_targets_check_each_bar(both, silent, perception, spread, want):
    got = demo_targets(_target_table(both, silent), perception, spread)
    assert [t["met"] for t in got] == want
    assert all(t["target"] and t["measured"] for t in got)


def test_demo_targets_give_a_single_stage_win_its_paired_p():
    table = _target_table({"base": 0.40, "qi": 0.45, "ma": 0.42, "qi_ma": 0.5},
                          {"base": 0.6, "qi": 0.6, "ma": 0.6, "qi_ma": 0.6})
    paired = {ARM_LABELS["qi"]: {"av/both": {"fixed": 30, "broke": 10, "p": 0.0022, "n": 400}}}
    qi, ma = demo_targets(table, paired=paired)[3:5]
    assert qi["met"] is True and qi["measured"] == "45.0 against 40.0, paired p 0.0022"
    assert ma["met"] is True and ma["measured"] == "42.0 against 40.0"  # not paired: no p to give


def test_demo_targets_need_separated_intervals_for_the_both_gain():
    table = _target_table({"base": 0.40, "qi": 0.5, "ma": 0.5, "qi_ma": 0.60},
                          {"base": 0.6, "qi": 0.6, "ma": 0.6, "qi_ma": 0.6})
    table[ARM_LABELS["qi_ma"]]["av/both"]["ci_low"] = 0.44  # +20 points, but its interval reaches the base's
    bar = demo_targets(table)[2]
    assert bar["met"] is False and bar["measured"] == "+20.0 points, intervals overlapping"
    table[ARM_LABELS["qi_ma"]]["av/both"]["ci_low"] = 0.46  # now above the base's 0.45: 20.0 points is on the bar
    assert demo_targets(table)[2]["met"] is True


def test_paired_vs_base_counts_flips_on_the_same_questions():
    def rows_of(arm, right, needs="both", modality="av"):
        return [{"model": ARM_LABELS[arm], "modality": modality, "id": f"q{i}", "modality_needs": needs,
                 "correct": i in right, "media_error": None} for i in range(12)]

    rows = rows_of("base", {0, 1, 2}) + rows_of("qi", set(range(2, 12)))  # QI fixes 3..11 (9), breaks 0, 1 (2)
    rows += rows_of("ma", {0, 1, 2})
    rows[5]["media_error"] = "q5.mp4: corrupt"  # the base could not score q5: that question is not paired
    paired = paired_vs_base(rows, ["av"])
    assert paired[ARM_LABELS["qi"]]["av"] == paired[ARM_LABELS["qi"]]["av/both"]
    qi = paired[ARM_LABELS["qi"]]["av/both"]
    assert (qi["fixed"], qi["broke"], qi["n"]) == (8, 2, 11)
    assert qi["p"] == pytest.approx(mcnemar_exact_p(8, 2))
    assert paired[ARM_LABELS["ma"]]["av/both"] == {"fixed": 0, "broke": 0, "p": 1.0, "n": 11}
    assert "av/video" not in paired[ARM_LABELS["qi"]] and ARM_LABELS["qi_ma"] not in paired


@pytest.mark.parametrize("values, window, want", [
    ([1.0, 2.0, 3.0, 4.0, 5.0], 2, [1.0, 1.5, 2.5, 3.5, 4.5]),
    ([1.0, 2.0, 3.0], 1, [1.0, 2.0, 3.0]),
    ([0.0, 3.0, 3.0, 0.0], 3, [0.0, 1.5, 2.0, 2.0]),
    ([], 4, []),
])
def test_trailing_mean(values, window, want):
    assert trailing_mean(values, window) == pytest.approx(want)


def test_trailing_mean_rejects_an_empty_window():
    with pytest.raises(ValueError, match="window"):
        trailing_mean([1.0], 0)


def test_answer_spread_flags_a_collapsed_arm():
    rows = [{"model": ARM_LABELS["qi"], "modality": "av", "parsed": p} for p in "DDDDDDDDDA"]
    rows += [{"model": ARM_LABELS["base"], "modality": "av", "parsed": p} for p in ("A", "B", None, "B")]
    spread = answer_spread(rows, ["av"])
    assert spread[ARM_LABELS["qi"]]["av"]["top"] == "D"
    assert spread[ARM_LABELS["qi"]]["av"]["top_share"] == pytest.approx(0.9)
    assert spread[ARM_LABELS["base"]]["av"]["top"] == "B"
    assert spread[ARM_LABELS["base"]]["av"]["entropy_bits"] == pytest.approx(1.5)  # B 1/2, A 1/4, none 1/4
    assert ARM_LABELS["ma"] not in spread


@pytest.mark.parametrize("answers, bits", [("ABCD", 2.0), ("AAAA", 0.0), ("AB", 1.0), ("AAAB", 0.8112781)])
def test_answer_entropy_bits(answers, bits):
    assert answer_entropy_bits(list(answers)) == pytest.approx(bits)


def test_arm_config_is_the_stage_recipe_on_demo_settings():
    cfg = DemoConfig(base_model="", rl_lr=2e-3, prompts_per_step=6, minibatches_per_rollout=3, max_frames=4,
                     ma_mode="confidence", rl_temperature=0.7,
                     rl_rewards_qi={"answer": 2.0, "format": 0.5, "intent": 0.5})
    qi = arm_config(cfg, "qi", "out/qi", "out/base", "world/train.jsonl", 7)
    assert qi.rollout.temperature == 0.7
    assert (qi.run.stage, qi.run.steps, qi.model.path, qi.data.train_path) == ("qi", 7, "out/base", "world/train.jsonl")
    assert (qi.optim.lr, qi.optim.min_lr, qi.rollout.prompts_per_step) == (2e-3, pytest.approx(2e-4), 6)
    assert qi.gspo.minibatches_per_rollout == 3 and qi.data.max_frames == 4
    assert not qi.model.freeze_audio and not qi.model.freeze_vision
    assert "modality_attention" not in qi.reward_options
    assert qi.reward_options["format"] == {"partial_credit": True, "allow_overlap": True}
    assert not arm_config(DemoConfig(format_allow_overlap=False), "qi", "o", "b", "t", 1).reward_options["format"][
        "allow_overlap"]
    ma = arm_config(cfg, "ma", "out/ma", "out/base", "world/train.jsonl", 5)
    assert ma.reward_options["modality_attention"]["mode"] == "confidence"
    assert qi.rewards == {"answer": 2.0, "format": 0.5, "intent": 0.5}
    assert ma.rewards == {}  # the stage's paper weights
    assert qi.data.single_sense_input == "av"
    assert arm_config(DemoConfig(rl_single_input="own"), "ma", "o", "b", "t", 1).data.single_sense_input == "own"
    per_stage = DemoConfig(rl_questions="both", rl_single_share=0.1, rl_single_input="own", rl_single_input_ma="mixed")
    assert arm_config(per_stage, "qi", "o", "b", "t", 1).data.single_sense_input == "own"
    assert arm_config(per_stage, "ma", "o", "b", "t", 1).data.single_sense_input == "mixed"
    with pytest.raises(ValueError, match="MA arm.*unknown reward"):
        DemoConfig(rl_rewards_ma={"answr": 1.0})


def test_compact_warm_start_target_is_a_well_formed_correct_reply(tmp_path):
    from omnivideo_r1.answers import is_correct
    from omnivideo_r1.rewards.format import format_reward
    from omnivideo_r1.rewards.types import RolloutRecord
    from omnivideo_r1.schema import read_samples
    from omnivideo_r1.synth.world import generate_world
    from omnivideo_r1.train.sft import SFTConfig, format_target

    generate_world(str(tmp_path), 2, seed=3, splits=(1.0, 0.0, 0.0))
    samples = read_samples(str(tmp_path / "train.jsonl"))
    for sample in samples:
        full, compact = format_target(sample, 3, "full"), format_target(sample, 3, "compact")
        assert len(compact) < len(full)
        record = RolloutRecord(sample=sample, completion=compact, modality="av", clip_duration=sample.duration)
        assert format_reward([record]).scores == [1.0], compact
        assert is_correct(compact, sample)
    with pytest.raises(ValueError, match="target_style"):
        SFTConfig(target_style="long")


def test_presets_load_and_the_perceive_preset_fits_its_replies(tiny_dirs):
    from omnivideo_r1.train.demo import PRESETS

    for name in PRESETS:
        cfg = load_config(DemoConfig, f"demo_{name}", [])
        assert cfg.out_dir == f"runs/demo_{name}"
    cfg = load_config(DemoConfig, "demo_perceive", [])
    assert cfg.perception_pretraining and cfg.model_size == "demo"
    # "full" starts from the base "perceive" builds, packaged, with "perceive"'s rates and MA rewards (its
    # documented settings carry over); its world is larger, its QI and MA longer, on the cross-modal questions, and
    # its QI pays the intent reward as much as the answer.
    full = asdict(load_config(DemoConfig, "demo_full", []))
    differs = {k for k, v in asdict(cfg).items() if full[k] != v}
    assert differs == {"out_dir", "n_clips", "splits", "base_model", "perception_pretraining", "prompts_per_step",
                       "rl_questions", "rl_single_share", "rl_single_input", "rl_steps_qi", "rl_steps_ma",
                       "rl_rewards_qi"}, differs
    assert full["rl_rewards_qi"] == {**cfg.rl_rewards_qi, "intent": full["rl_rewards_qi"]["answer"]}
    assert full["rl_questions"] == "both" and full["rl_steps_qi"] * full["prompts_per_step"] >= 2000
    assert full["rl_single_input"] == "own" and 0 < full["rl_single_share"] <= 0.25
    assert full["rl_steps_ma"] * full["prompts_per_step"] >= 1000
    assert full["base_model"] == "packaged" and full["perception"] == asdict(cfg)["perception"]
    assert full["n_clips"] * full["splits"][2] >= 2.5 * cfg.n_clips * cfg.splits[2]  # >= 2.5x the held-out questions
    assert cfg.world.width * cfg.world.height <= cfg.max_pixels  # frames are not downscaled below the world's
    # The longest reply the perception targets teach (every event the input carries, then thinking and answer)
    # fits the generation budget, on clips of the preset's world.
    from transformers import AutoTokenizer

    from omnivideo_r1.synth.questions import NO_SHAPE
    from omnivideo_r1.synth.world import make_clip
    from omnivideo_r1.train.perception_data import Weights, caption_target, tokenize_pieces

    tok = AutoTokenizer.from_pretrained(tiny_dirs["qwen3_omni"])
    listed = "av" if cfg.perception.question_evidence == "input" else "video"
    tail = f"<thinking> {NO_SHAPE}</thinking><answer> {NO_SHAPE}</answer><|im_end|>"  # the longest option text
    longest = max(len(tokenize_pieces(tok, caption_target(make_clip(7, i, cfg.world).timeline, listed, Weights()))[0])
                  for i in range(60)) + len(tok.encode(tail, add_special_tokens=False))
    assert longest <= cfg.max_new_tokens


def test_rl_questions_both_without_a_cross_modal_train_question_is_a_user_error(tmp_path):
    cfg = load_config(DemoConfig, "demo_smoke", [f"out_dir={tmp_path / 'demo'}", "n_clips=2", "splits=[0.0,0.0,1.0]",
                                                 "rl_questions=both"])
    with pytest.raises(UsageError, match="rl_questions=both.*no cross-modal question"):
        run_demo(cfg)
    assert not (tmp_path / "demo" / "base").exists()  # stopped before any training


@pytest.mark.parametrize("n_both, n_single, share, expected_single", [
    (9, 20, 0.0, 0),     # cross-modal questions only
    (9, 20, 0.25, 3),    # 3 of 12 = 25%
    (9, 20, 0.5, 9),
    (9, 4, 0.5, 4),      # as many as the split has
])
def test_rl_training_questions_add_a_seeded_share_of_single_sense_ones(n_both, n_single, share, expected_single):
    from omnivideo_r1.schema import AVSample
    from omnivideo_r1.train.demo import rl_training_questions

    def sample(i, needs):
        return AVSample(id=f"{needs}{i}", video="c.mp4", question="q?", options=["x", "y"], answer="A",
                        modality_needs=needs)

    split = [sample(i, "both") for i in range(n_both)] + [sample(i, ("video", "audio")[i % 2]) for i in range(n_single)]
    split += [sample(i, "unknown") for i in range(10)]  # not known to need one sense: never drawn
    picked = rl_training_questions(split, share, seed=3)
    assert sorted(s.id for s in picked if s.modality_needs == "both") == sorted(f"both{i}" for i in range(n_both))
    assert sum(s.modality_needs in ("video", "audio") for s in picked) == expected_single
    assert all(s.modality_needs != "unknown" for s in picked)
    assert len({s.id for s in picked}) == len(picked)
    assert [s.id for s in rl_training_questions(split, share, seed=3)] == [s.id for s in picked]  # seeded


@pytest.mark.parametrize("share, stages, qi_single, ma_single", [
    (0.0, ["qi", "ma"], 0, 0),
    (0.25, ["qi", "ma"], 3, 3),
    (0.25, ["ma"], 0, 3),   # QI on the cross-modal questions alone, MA with the share
    (0.25, ["qi"], 3, 0),
])
def test_rl_questions_by_stage_give_the_share_to_the_named_stages(share, stages, qi_single, ma_single):
    from omnivideo_r1.schema import AVSample
    from omnivideo_r1.train.demo import rl_questions_by_stage

    needs = ["both"] * 9 + ["video", "audio"] * 10
    split = [AVSample(id=f"q{i}", video="c.mp4", question="q?", options=["x", "y"], answer="A", modality_needs=n)
             for i, n in enumerate(needs)]
    by_stage = rl_questions_by_stage(split, share, stages, seed=3)
    assert [sum(s.modality_needs != "both" for s in by_stage[stage]) for stage in ("qi", "ma")] == [qi_single,
                                                                                                   ma_single]
    assert all(sum(s.modality_needs == "both" for s in questions) == 9 for questions in by_stage.values())
    if stages == ["qi", "ma"]:  # one draw, so QI -> MA continues on the questions QI was trained on
        assert [s.id for s in by_stage["qi"]] == [s.id for s in by_stage["ma"]]


@pytest.mark.parametrize("overrides, message", [
    (["rl_single_share=1.0", "rl_questions=both"], r"rl_single_share=1.0: must be in \[0, 1\)"),
    (["rl_single_share_stages=[qi, grounding]"],
     r"rl_single_share_stages\[1\]: 'grounding' is not one of \('qi', 'ma'\)"),
    (["rl_single_share_stages=[]"], r"rl_single_share_stages=\[\]: name the stages"),
    (["rl_single_share=0.25"], r"rl_single_share=0.25 with rl_questions=all: the share applies to rl_questions=both"),
    (["rl_single_input=own", "rl_questions=both"],
     r"rl_single_input=own with rl_questions=both and rl_single_share=0: .*set rl_single_share > 0"),
    (["rl_single_input=alone"], r"rl_single_input: 'alone' is not one of \('av', 'own', 'mixed'\)"),
    (["rl_single_input_ma=mixed", "rl_questions=both"],
     r"rl_single_input_ma=mixed with rl_questions=both and rl_single_share=0: .*set rl_single_share > 0"),
])
def test_a_single_sense_share_outside_cross_modal_rl_is_a_config_error(overrides, message):
    from omnivideo_r1.config import ConfigError

    with pytest.raises(ConfigError, match=message):
        load_config(DemoConfig, None, overrides)


@pytest.mark.parametrize("overrides, message", [
    (["max_frames=4"], r"base_model=packaged was trained with other settings.*max_frames=4 \(the base: 8\)"),
    (["world.width=64", "model_size=tiny"], r"model_size=tiny \(the base: demo\).*world.width=64 \(the base: 96\)"),
    (["seed=1000"], r"trained on the clips of world seed 1000"),
    (["perception_pretraining=true"], r"nothing would be pretrained; set base_model= \(empty\)"),
    (["base_model=no/such/dir"], r"base_model 'no/such/dir': no model directory there"),
    (["perception.named_scan=true"], r"perception.named_scan=True: perception settings apply only when this run "
                                     r"builds its base .*\(the base is packaged\)"),
    (["base_model=", "perception.steps=10"], r"perception.steps=10: .*\(the base is the format warm start\)"),
])
def test_demo_refuses_settings_the_base_was_not_built_for(overrides, message):
    from omnivideo_r1.config import ConfigError

    with pytest.raises(ConfigError, match=message):
        load_config(DemoConfig, None, overrides)


def test_default_demo_settings_are_the_perceive_preset_without_building_its_base():
    """`omnivideo-r1 demo` starts from the base `--preset perceive` builds, with that preset's RL settings; only the
    base's origin and the RL steps (the 20-minute budget) differ. A nested override keeps the other defaults of its
    section (world.width=... leaves the default height)."""
    default, perceive = asdict(DemoConfig()), asdict(load_config(DemoConfig, "demo_perceive", []))
    differs = {k for k, v in default.items() if perceive[k] != v}
    assert differs == {"out_dir", "base_model", "perception_pretraining", "rl_steps_qi", "rl_steps_ma"}, differs
    rebuilt = load_config(DemoConfig, None, ["base_model=", "perception_pretraining=true", "perception.steps=1500"])
    assert asdict(rebuilt)["perception"] == perceive["perception"] and rebuilt.world == DemoConfig().world


@pytest.mark.parametrize("value, message", [
    ("qi", "give ARM=DIR with ARM one of base, qi, ma, qi_ma"),
    ("policy={dir}", "give ARM=DIR with ARM one of"),
    ("qi=", "give ARM=DIR with ARM one of"),
    ("qi={dir}/missing", "has no config.json; give a saved checkpoint folder"),
])
def test_fresh_world_checkpoint_overrides_name_an_arm_and_a_checkpoint(tmp_path, value, message):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(UsageError, match=message):
        parse_checkpoint_overrides([value.format(dir=tmp_path)])


def test_fresh_world_checkpoint_overrides_take_each_arm_once(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    assert parse_checkpoint_overrides([f"qi={tmp_path}", f"base={tmp_path}"]) == {"qi": str(tmp_path),
                                                                                   "base": str(tmp_path)}
    with pytest.raises(UsageError, match="the qi arm is already given"):
        parse_checkpoint_overrides([f"qi={tmp_path}", f"qi={tmp_path}"])
