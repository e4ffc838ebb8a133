"""`omnivideo-r1 demo`: the whole method in miniature, offline, on a laptop CPU.

1. Generate the synthetic audio-visual world (real .mp4 clips with audio, three kinds of questions).
2. The base: by default the packaged perception base (a small Qwen3-Omni thinker of the real transformers class,
   trained on perception only by `--preset perceive`; omnivideo_r1/assets/demo_perception_base/provenance.json),
   the stand-in for a pretrained checkpoint. Or built here: perception pretraining, or a format-only warm start.
3. From that base: stage QI alone, stage MA alone, and QI then MA (the paper's ablation arms).
4. Evaluate base, QI, MA and QI+MA on the held-out test split with audio (AV) and with the audio removed (silent).
5. Print the ablation table and write it as markdown, plus a PNG with training curves and accuracies.

The numbers are whatever this run measures: a tiny model trained for minutes is not expected to reproduce the
paper's margins, and the report states the confidence intervals so noise is not read as an effect.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Literal

from ..errors import UsageError
from ..synth.scene import WorldConfig
from ..synth.world import split_counts
from .perception import PerceptionConfig

from ..eval.demo_report import ablation_summary, plot_demo, render_markdown

PACKAGED_BASE = "packaged"
"""`base_model` value that names the perception base shipped with the package (PACKAGED_BASE_DIR)."""
PACKAGED_BASE_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "assets",
                                 "demo_perception_base")


def packaged_base_perception() -> PerceptionConfig:
    """The perception settings the packaged base was built with (its provenance.json), the demo's default."""
    return PerceptionConfig(steps=1500, question_evidence="input", time_question_share=0.5, readout_drill_rows=32)


@dataclass
class DemoConfig:
    """Settings of `omnivideo-r1 demo` (override any as key=value). The defaults start the RL arms from the
    packaged perception base and take about 10 minutes on 2 CPU cores (9.6 measured with two worker processes;
    20.7 with one, on the previous base) and 18-20 (21-23 with set-up) on a 2-core machine whose RL steps run ~2.3x
    slower (docs/performance.md); docs/demo-results.md has the measured timings, results and the reasons behind each
    lever that differs from the paper's recipe (perception base, learning rates, format partial credit, one thread
    per process, MA accuracy mode).
    Nothing here looks at the test split: it is only evaluated, once per arm and condition.
    """

    out_dir: str = "runs/demo"
    """Everything goes here: world/, base/, qi/, ma/, qi_ma/, eval/, ablation.md, ablation.json, ablation.png."""
    seed: int = 0
    """Seeds the world, the model init, data order and sampling."""
    n_clips: int = 400
    """Synthetic clips (each carries three questions)."""
    splits: list[float] = field(default_factory=lambda: [0.35, 0.05, 0.6])
    """train / val / test fractions of clips. The defaults hold out 240 clips, 720 questions of which ~170 are
    cross-modal ("both"; 164-180 over world seeds 0-2), so the "both" intervals mean something, and train on 140
    clips (420 questions)."""
    family: str = "qwen3_omni"
    """Tiny model class: qwen3_omni or qwen2_5_omni."""
    model_size: Literal["tiny", "demo", "small"] = "demo"
    """Size of the random thinker (policy/tiny.py): "tiny" (~0.4M parameters), "demo" (~1.4M) or "small" (~20M)."""
    world: WorldConfig = field(default_factory=lambda: WorldConfig(width=96, height=64))
    """The synthetic world's settings (frame size, events per clip, questions per clip). 96x64 frames put the
    three screen positions on the merged vision tokens' three columns."""
    base_model: str = PACKAGED_BASE
    """Where the RL arms start: "packaged" (the perception base shipped in omnivideo_r1/assets/, built by
    `--preset perceive` with this config's model and media settings, which must then stay as they are), a model
    directory, or "" to build the base in this run (perception_pretraining, else the format warm start)."""
    perception_pretraining: bool = False
    """Instead of the format-only warm start, train the random model on perception (train/perception.py: captions
    of each sense's events and single-modality questions answered in the grounded format, on fresh clips of
    another seed, never a cross-modal question), the stand-in for a real checkpoint's pretraining. Its replies
    list the events before answering: set max_new_tokens >= 128 (>= 208 with perception.question_evidence=input).
    Results: docs/demo-results.md."""
    perception: PerceptionConfig = field(default_factory=packaged_base_perception)
    """Perception pretraining settings (those the packaged base was built with); its media settings (frames,
    pixels) are taken from this config's. Other values are refused unless perception_pretraining is true: they
    would not apply to a base taken as it is."""
    threads: int = 1
    """torch CPU threads per process (0: leave torch's default). See the class docstring."""
    workers: int = 2
    """Processes that run the RL arms and evaluations side by side (QI next to MA, then QI -> MA next to the
    evaluations; train/demo_jobs.py), at most one per CPU this process may use. The results do not depend on it
    (every job seeds itself); 1 runs everything in this process, one job after another."""
    max_frames: int = 8
    """Frames per clip (2 fps over the 4-second clips) in warm start, RL and evaluation."""
    max_pixels: int = 96 * 64
    """Cap on H*W of each frame before the processor, in warm start, RL and evaluation."""
    sft_steps: int = 200
    """Warm-start steps on the output format (the sft_* settings apply only when the base is built here without
    perception pretraining: base_model= perception_pretraining=false, as in --preset smoke)."""
    sft_lr: float = 1e-2
    """Warm-start peak learning rate (cosine-decayed to sft_lr * sft_min_lr_fraction)."""
    sft_min_lr_fraction: float = 0.1
    """Final warm-start rate as a fraction of sft_lr."""
    sft_batch_size: int = 8
    """Samples per warm-start step."""
    sft_target: str = "compact"
    """Warm-start target style: "compact" (~40 tokens) or "full" (restates the question, ~80-135 tokens; see
    train/sft.py)."""
    rl_steps_qi: int = 40
    """Stage-QI optimizer steps (~7 s each for the demo size on one thread)."""
    rl_steps_ma: int = 20
    """Stage-MA optimizer steps (~12 s each in accuracy mode: two extra single-sense generations per prompt)."""
    rl_lr: float = 1e-4
    """RL peak learning rate (cosine to rl_lr / 10). 5e-4 broke the perception base's format within 5 QI steps,
    1e-4 kept it; the format-warm-started tiny model needs ~5e-4 (2e-4 barely moved it in 20 steps)."""
    prompts_per_step: int = 4
    """Prompts per RL step."""
    rollouts_per_prompt: int = 8
    """G, completions per prompt."""
    minibatches_per_rollout: int = 2
    """GSPO policy updates per rollout batch (>1 makes the clip act); must divide prompts_per_step."""
    max_new_tokens: int = 208
    """Completion length cap in RL and evaluation: a perception base lists every event of its input before
    answering (the longest listings are ~175 tokens); the compact warm-start target is ~40 tokens."""
    rl_temperature: float = 0.7
    """Sampling temperature of the RL rollouts (log-probs are taken at it too). Below 1 keeps a small model's long
    grounded replies closer to what it writes greedily, which is how it is evaluated."""
    rl_rewards_qi: dict[str, float] = field(default_factory=lambda: {"answer": 2.0, "format": 0.5, "intent": 0.5})
    """Reward weights of the QI arm by name (empty: the paper's equal weights, train/config.py
    STAGE_DEFAULT_REWARDS). Answer-weighted QI raised "both" accuracy on fresh worlds over three perception bases
    (docs/demo-results.md)."""
    rl_rewards_ma: dict[str, float] = field(default_factory=dict)
    """Reward weights of the MA arms (MA only and QI -> MA) by name (empty: the paper's equal weights)."""
    rl_questions: Literal["all", "both"] = "all"
    """Training questions of the RL arms: "all" of the train split, or only the cross-modal ("both") ones, which is
    what the paper's curation keeps (samples that depend on the video and on the audio)."""
    rl_single_share: float = 0.0
    """rl_questions=both only: this share of the RL training questions is drawn from the train split's
    single-sense questions (asked with both senses unless rl_single_input=own), the rest are the cross-modal ones. On
    cross-modal questions alone the arms learned to answer video questions with one word of an option ("blue"),
    which no reward ever saw; a share keeps the answer reward on every kind of question. Measured with the full
    preset at 0.25: single-sense skills kept and QI + MA separated from the base on AV as a whole, but "both" +6.0
    points within noise instead of the preset's +14.0; at 0.1 QI alone keeps silent video with "both" +8.0 instead
    of +12.7 (docs/demo-results.md); --preset full takes 0.1 with rl_single_input=own, the other presets 0."""
    rl_single_share_stages: list[Literal["qi", "ma"]] = field(default_factory=lambda: ["qi", "ma"])
    """The stages whose RL questions take `rl_single_share`: "qi" (the QI arm) and / or "ma" (MA only and QI -> MA);
    the others train on the cross-modal questions alone. Measured with the full preset and ["ma"]: QI -> MA keeps
    the preset's "both" gain, but QI's cost on video-only questions on silent video stays (docs/demo-results.md)."""
    rl_single_input: Literal["av", "own", "mixed"] = "av"
    """How the RL arms show their single-sense questions (train/config.py DataConfig.single_sense_input): "av",
    with both senses like every RL prompt, "own", with the one sense the question needs (silent video, audio
    alone), so the answer reward reaches the skills that "silent video" and "audio alone" measure, or "mixed", half
    of them (by question id) each way. Measured with the full preset at rl_single_share=0.1: QI alone lifts "both"
    +14.0 points with silent video and audio alone kept (docs/demo-results.md); --preset full uses "own" for QI. In
    the default demo (all questions, 40 / 20 steps) it kept silent video but gained nothing on seeds 0 and 1."""
    rl_single_input_ma: Literal["", "av", "own", "mixed"] = ""
    """The MA arms' (MA only and QI -> MA) rl_single_input where it differs from QI's; empty: the same as QI's.
    Measured from the full preset's seed-1 QI, MA seeds 1 and 2: "av" in MA (QI "own") lifts QI + MA on AV +4.8 /
    +6.5 points over "own" and keeps "both", with silent video 5.1 points lower in one seed of two (MA alone with
    "av": -3.5); "mixed" gains nothing (docs/demo-results.md, "MA with its single-sense questions asked with both
    senses"). End to end with seed 0 it ended below "own" (QI + MA AV 55.8, "both" 53.7 against 57.8 / 55.6), so
    the preset keeps "own"."""
    format_allow_overlap: bool = True
    """Format reward pays segments that overlap in time (rewards/format.py: allow_overlap; the paper's reward does
    not). The perception base lists both senses' events, and a sound heard while a shape is on screen is two
    overlapping segments: without this the format reward failed 95% of MA's rollouts on them, and MA learned to
    list fewer of them at a cost in audio-only accuracy (docs/demo-results.md)."""
    format_partial_credit: bool = True
    """Format reward with partial credit (1/3 per check group) instead of the paper's binary one."""
    ma_mode: str = "accuracy"
    """Modality-attention reward mode (see rewards/modality.py): "accuracy" (the released code; samples answers
    under audio-only and video-only input, ~2x the MA step cost) or "confidence" (the paper's wording; probes the
    letter probability). Measured on the warm-started tiny model, the letter after `<answer>` is near-certain under
    every input, so the confidence gap is 0.000 on every rollout and the reward pays nothing; sampled single-sense
    answers do vary, so "accuracy" is the mode that gives this model a signal."""
    ma_accuracy_rule: str = "strictly_better"
    """accuracy mode only: "strictly_better" (pays AV answers that beat both single-sense ones) or "at_least"."""
    eval_limit: int = 0
    """Evaluate at most this many test questions (0: all)."""
    modalities: list[str] = field(default_factory=lambda: ["av", "video"])
    """Evaluation conditions: av (with audio) and video (silent: audio removed)."""

    def __post_init__(self) -> None:
        split_counts(self.n_clips, self.splits)  # the world generator's own check, at load time, not after the base
        if self.workers < 1:
            raise ValueError(f"workers={self.workers}: must be >= 1 (1 runs the arms one after another here)")
        if not 0.0 <= self.rl_single_share < 1.0:
            raise ValueError(f"rl_single_share={self.rl_single_share}: must be in [0, 1) (the rest are the "
                             "cross-modal questions)")
        if self.rl_single_share and self.rl_questions != "both":
            raise ValueError(f"rl_single_share={self.rl_single_share} with rl_questions={self.rl_questions}: the "
                             "share applies to rl_questions=both (\"all\" trains on every single-sense question "
                             "already); set rl_questions=both or rl_single_share=0")
        for name, shown in (("rl_single_input", self.rl_single_input), ("rl_single_input_ma", self.rl_single_input_ma)):
            if shown in ("own", "mixed") and self.rl_questions == "both" and not self.rl_single_share:
                raise ValueError(f"{name}={shown} with rl_questions=both and rl_single_share=0: the RL questions are "
                                 "all cross-modal, so none is shown with one sense; set rl_single_share > 0 or "
                                 "rl_questions=all")
        if not self.rl_single_share_stages:  # the names themselves are checked by the loader (Literal)
            raise ValueError(f"rl_single_share_stages={self.rl_single_share_stages}: name the stages that take the "
                             "single-sense share, one or both of \"qi\" and \"ma\"")
        if self.base_model and self.perception_pretraining:
            raise ValueError(f"base_model={self.base_model!r} and perception_pretraining=true: the RL arms would start "
                             "from that base, so nothing would be pretrained; set base_model= (empty) to build the "
                             "base with perception pretraining, or drop perception_pretraining")
        if self.base_model == PACKAGED_BASE:
            _check_packaged_base(self)
        elif self.base_model and not os.path.isfile(os.path.join(self.base_model, "config.json")):
            raise ValueError(f"base_model {self.base_model!r}: no model directory there (config.json missing); give "
                             "a checkpoint folder such as an earlier demo's base/ or qi/final/, \"packaged\", or \"\"")
        if not self.perception_pretraining:
            # Perception settings only shape a base built in this run; a silent no-op would let a run that sets,
            # say, perception.named_scan=true report the packaged base's numbers as the option's.
            mine = asdict(self.perception)
            differ = [f"perception.{k}={_plain(mine[k])}"
                      for k in _differing(mine, asdict(packaged_base_perception()))]
            if differ:
                raise ValueError(f"{', '.join(differ)}: perception settings apply only when this run builds its base "
                                 "with perception pretraining, and perception_pretraining is false (the base is "
                                 f"{self.base_model or 'the format warm start'}); set base_model= "
                                 "perception_pretraining=true to build one with them (~50 min for 1500 steps), or "
                                 "drop them")
        if self.perception_pretraining and self.perception.seed == self.seed:
            raise ValueError(f"perception.seed {self.perception.seed} equals seed {self.seed}: perception "
                             "pretraining would train on the clips of the world the demo evaluates on; pick another")
        # The RL arms' settings (rl_lr, rl_temperature, batch sizes, steps) meet TrainConfig's own load-time checks
        # here, before the world and the base are built, not when the first arm starts.
        for stage, steps in (("qi", self.rl_steps_qi), ("ma", self.rl_steps_ma)):
            try:
                arm_config(self, stage, "arm", "base", "train.jsonl", steps)
            except ValueError as err:
                raise ValueError(f"the {stage.upper()} arm built from these settings: {err}") from None


def _check_packaged_base(cfg: DemoConfig) -> None:
    """The packaged base only perceives the world and media it was trained on, and it has seen the clips of world
    seed perception.seed: refuse settings that would silently make it blind or evaluate it on its training clips."""
    with open(os.path.join(PACKAGED_BASE_DIR, "provenance.json"), encoding="utf-8") as fh:
        built = json.load(fh)
    mine = {"family": cfg.family, "model_size": cfg.model_size, "max_frames": cfg.max_frames,
            "max_pixels": cfg.max_pixels, **{f"world.{k}": v for k, v in asdict(cfg.world).items()}}
    theirs = {"family": built["family"], "model_size": built["model_size"], **built["media"],
              **{f"world.{k}": v for k, v in built["world"].items()}}
    differ = [f"{k}={_plain(mine[k])} (the base: {_plain(theirs.get(k))})" for k in _differing(mine, theirs)]
    if differ:
        raise ValueError(f"base_model=packaged was trained with other settings than these: {'; '.join(differ)}. Keep "
                         "the defaults for those, or set base_model= (empty) to build a base for your settings "
                         "(perception_pretraining=true, ~50 min for 1500 steps)")
    if cfg.seed == built["perception"]["seed"]:
        raise ValueError(f"seed {cfg.seed}: the packaged base was trained on the clips of world seed "
                         f"{built['perception']['seed']}, so the demo would evaluate it on them; pick another seed")


def _differing(mine: dict, theirs: dict) -> list[str]:
    """The keys of `mine` whose values differ from `theirs` (a key `theirs` lacks differs)."""
    return [k for k in mine if _plain(mine[k]) != _plain(theirs.get(k))]


def _plain(value):
    """Tuples and lists compare equal (a JSON round trip turns one into the other)."""
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value


PRESETS = ("smoke", "perceive", "full")
"""Shipped demo recipes (omnivideo_r1/recipes/demo_<name>.yaml): "smoke" runs every stage for a handful of steps on a
format-warm-started tiny model (about a minute); "perceive" builds the perception base (the packaged one) in the run
and trains the RL arms longer; "full" starts from the packaged base with "perceive"'s rates and MA rewards (QI pays
the intent reward as much as the answer), QI 300 and MA 150 steps of 8 prompts on the cross-modal train questions of
a 1900-clip world, a third of it held out for intervals about 0.6x as wide as the default's."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=PRESETS, help="start from a shipped demo recipe (overrides still apply)")
    parser.add_argument("overrides", nargs="*", help="key=value overrides of DemoConfig, e.g. rl_steps_qi=10")


def run(args: argparse.Namespace) -> int:
    from ..config import load_config

    recipe = f"demo_{args.preset}" if args.preset else None
    cfg = load_config(DemoConfig, recipe, args.overrides)  # errors: one line via omnivideo_r1/cli.py
    run_demo(cfg)
    return 0


def run_demo(cfg: DemoConfig) -> dict:
    import torch

    from ..eval.report import write_report
    from ..schema import read_samples, write_samples
    from ..synth.world import generate_world
    from .demo_jobs import (Job, demo_eval_config, evaluation_jobs, evaluation_rows, run_jobs, setup_process,
                            train_arm)

    setup_process(cfg.threads)  # the same set-up as each worker process's
    torch.manual_seed(cfg.seed)
    t_start = time.perf_counter()
    timings = {}
    out = cfg.out_dir
    os.makedirs(out, exist_ok=True)

    # 1. the world
    world = os.path.join(out, "world")
    t0 = time.perf_counter()
    summary = generate_world(world, cfg.n_clips, seed=cfg.seed, splits=tuple(cfg.splits), config=cfg.world)
    timings["world"] = time.perf_counter() - t0
    print(f"[demo] world: clips {summary['clips']}, questions {summary['questions']} ({timings['world']:.0f}s)")
    train_samples = read_samples(os.path.join(world, "train.jsonl"))
    test_samples = read_samples(os.path.join(world, "test.jsonl"))
    cross_modal = [s for s in train_samples if s.modality_needs == "both"]
    if cfg.rl_questions == "both" and not cross_modal:
        raise UsageError(f"rl_questions=both: the train split of {world} has no cross-modal question; raise n_clips "
                         "or the train share of splits, or set rl_questions=all")
    if cfg.eval_limit:
        test_samples = test_samples[: cfg.eval_limit]

    # 2. the base. Packaged (or given): copied into the run, so every arm's checkpoint lives under out_dir. Built:
    # a random real-class policy, then supervised training: perception pretraining (which also teaches the grounded
    # reply format) or the format-only warm start. Supervision never sees a cross-modal ("both") question: those
    # are what the RL stages are judged on.
    t0 = time.perf_counter()
    init_dir, base_dir = os.path.join(out, "init"), os.path.join(out, "base")
    perceiving_base = cfg.perception_pretraining or cfg.base_model == PACKAGED_BASE
    if cfg.base_model:
        source = PACKAGED_BASE_DIR if cfg.base_model == PACKAGED_BASE else cfg.base_model
        shutil.copytree(source, base_dir, dirs_exist_ok=True)
        sft_losses = []
        if cfg.base_model == PACKAGED_BASE:  # its perception training's loss curve, recorded when it was built
            with open(os.path.join(source, "provenance.json"), encoding="utf-8") as fh:
                sft_losses = json.load(fh)["perception_losses"]
        timings["base"] = time.perf_counter() - t0
        print(f"[demo] base: {source} (copied to {base_dir})")
    else:
        sft_losses = _build_base(cfg, init_dir, base_dir, train_samples, timings)

    # 3-4. the ablation arms (QI, MA, QI -> MA, all from the same base), then every arm x (AV, silent) on the held-out
    # test split, as jobs: side by side in `workers` processes where the arms allow it (train/demo_jobs.py).
    model_dirs = {"base": base_dir, **{arm: os.path.join(out, arm, "final") for arm in ("qi", "ma", "qi_ma")}}
    rl_train = dict.fromkeys(("qi", "ma"), os.path.join(world, "train.jsonl"))  # each stage's RL questions
    if cfg.rl_questions == "both":
        for stage, questions in rl_questions_by_stage(train_samples, cfg.rl_single_share, cfg.rl_single_share_stages,
                                                      cfg.seed).items():
            rl_train[stage] = os.path.join(world, f"train_rl_{stage}.jsonl")
            write_samples(rl_train[stage], questions)
    ecfg = demo_eval_config(cfg.max_frames, cfg.max_pixels, cfg.max_new_tokens)
    jobs = []
    for arm, stage, init in (("qi", "qi", base_dir), ("ma", "ma", base_dir), ("qi_ma", "ma", model_dirs["qi"])):
        steps = cfg.rl_steps_qi if stage == "qi" else cfg.rl_steps_ma
        jobs.append(Job(f"train_{arm}", train_arm, {"config": arm_config(cfg, stage, os.path.join(out, arm), init,
                                                                          rl_train[stage], steps)},
                        after=("train_qi",) if arm == "qi_ma" else ()))
    # After the training jobs, so the longest chain (QI, then QI -> MA) starts first.
    jobs += evaluation_jobs(model_dirs, test_samples, cfg.modalities, ecfg, perceiving_base,
                            after=lambda arm: () if arm == "base" else (f"train_{arm}",))
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    workers = min(cfg.workers, cpus)
    t0 = time.perf_counter()
    print(f"[demo] RL arms and evaluations: {len(jobs)} jobs in {workers} process(es)")
    results = run_jobs(jobs, workers, cfg.threads, on_done=_report_job)
    timings["rl_and_eval"] = time.perf_counter() - t0  # wall clock; the jobs' own times below overlap
    curves = {arm: results[f"train_{arm}"]["curves"] for arm in ("qi", "ma", "qi_ma")}
    timings.update({job.name: results[job.name]["seconds"] for job in jobs})  # each job's own time
    rows, perception = evaluation_rows(results, test_samples, cfg.modalities)
    write_report(rows, os.path.join(out, "eval"), title="OmniVideo-R1 demo: synthetic world, test split")

    # 5. the ablation table
    summary = ablation_summary(rows, cfg.modalities, perception, test_samples)
    table = summary["table"]
    timings["total"] = time.perf_counter() - t_start
    md = render_markdown(table, cfg.modalities, config=asdict(cfg), timings=timings, sft_losses=sft_losses,
                         curves=curves, rows=rows, perception=perception, listing=summary["listing"])
    with open(os.path.join(out, "ablation.md"), "w", encoding="utf-8") as fh:
        fh.write(md)
    with open(os.path.join(out, "ablation.json"), "w", encoding="utf-8") as fh:
        json.dump({**summary, "checkpoints": {arm: os.path.abspath(d) for arm, d in model_dirs.items()},
                   "timings_s": timings, "config": asdict(cfg), "train_curves": curves, "sft_losses": sft_losses},
                  fh, indent=2)
    plot_demo(os.path.join(out, "ablation.png"), curves, sft_losses, table, cfg.modalities, perception)
    print(md)
    print(f"[demo] wrote {os.path.join(out, 'ablation.md')} and {os.path.join(out, 'ablation.png')}")
    from ..view.site import write_site

    viewer = write_site(out)["index"]
    print(f"[demo] viewer (rollouts on each clip's timeline, curves, per-question flips): open {viewer}")
    print(f"[demo] the same checkpoints on a world generated now: omnivideo-r1 fresh-world --run {out} --seed N "
          "(a seed the run has not used)")
    return {"table": table, "timings": timings, "viewer": viewer, "checkpoints": model_dirs}


def rl_training_questions(train_samples: list, single_share: float, seed: int) -> list:
    """The cross-modal ("both") questions of the train split, plus single-sense ones drawn (seeded) so that they
    make `single_share` of the result, as many as the split has; file order interleaves them (the trainer walks
    the file in a seeded order, or as written with shuffle off)."""
    cross_modal = [s for s in train_samples if s.modality_needs == "both"]
    if not single_share:
        return cross_modal
    single = [s for s in train_samples if s.modality_needs in ("video", "audio")]  # never an "unknown" one
    wanted = round(len(cross_modal) * single_share / (1.0 - single_share))
    rng = random.Random(seed)
    picked = cross_modal + rng.sample(single, min(wanted, len(single)))
    rng.shuffle(picked)
    return picked


def rl_questions_by_stage(train_samples: list, single_share: float, share_stages: list[str], seed: int) -> dict:
    """rl_questions=both: each stage's RL training questions ("qi", "ma"), the cross-modal ones plus, for the stages
    in `share_stages`, the seeded single-sense share (the same draw for each)."""
    cross_modal = rl_training_questions(train_samples, 0.0, seed)
    mixed = rl_training_questions(train_samples, single_share, seed) if single_share else cross_modal
    return {stage: mixed if stage in share_stages else cross_modal for stage in ("qi", "ma")}


def _build_base(cfg: DemoConfig, init_dir: str, base_dir: str, train_samples: list, timings: dict) -> list[float]:
    """A random real-class policy, trained on perception or warm-started on the format, saved to `base_dir`;
    returns the supervised losses per step."""
    from ..media.cache import ClipCache
    from ..media.types import MediaError
    from ..policy.omni import OmniPolicy
    from ..policy.tiny import TinyOmniSpec, build_tiny_policy_files
    from .perception import train_perception
    from .sft import SFTConfig, warm_start

    t0 = time.perf_counter()
    build_tiny_policy_files(init_dir, TinyOmniSpec(family=cfg.family, size=cfg.model_size, seed=cfg.seed))
    policy = OmniPolicy.from_pretrained(init_dir)
    if cfg.perception_pretraining:
        pcfg = replace(cfg.perception, fps=2.0, max_frames=cfg.max_frames, max_pixels=cfg.max_pixels)
        history = train_perception(policy, cfg.world, pcfg, log=lambda line: print(f"[demo] {line}"))
        sft_losses = [h["loss"] for h in history]
    else:
        clip_cache = ClipCache(512 * 2**20)  # the warm start visits every training clip many times

        def clip_for(sample):
            try:
                return clip_cache.get_or_load(sample.video, fps=2.0, max_frames=cfg.max_frames,
                                              max_pixels=cfg.max_pixels, start=sample.start, end=sample.end,
                                              audio_path=sample.audio)
            except MediaError as exc:
                print(f"[demo] skipping {sample.id}: {exc}")
                return None

        sft_cfg = SFTConfig(steps=cfg.sft_steps, lr=cfg.sft_lr, batch_size=cfg.sft_batch_size, seed=cfg.seed,
                            target_style=cfg.sft_target, min_lr_fraction=cfg.sft_min_lr_fraction)
        sft_losses = warm_start(policy, [s for s in train_samples if s.modality_needs != "both"], clip_for, sft_cfg)
        clip_cache.clear()  # free the decoded clips before the RL arms load their own
    policy.save_pretrained(base_dir)
    del policy
    timings["perception" if cfg.perception_pretraining else "warm_start"] = time.perf_counter() - t0
    print(f"[demo] base: supervised loss {sft_losses[0]:.2f} -> {sft_losses[-1]:.2f} "
          f"({time.perf_counter() - t0:.0f}s)")

    return sft_losses


def arm_config(cfg: DemoConfig, stage: str, out_dir: str, init_dir: str, train_path: str, steps: int):
    """The TrainConfig of one RL arm: the stage's rewards on the demo's batch sizes, learning rate and media
    settings, starting from `init_dir`. The tiny model is fully trained (encoders unfrozen, no LoRA)."""
    from .config import DataConfig, GSPOConfig, ModelConfig, OptimConfig, RolloutConfig, RunConfig, TrainConfig

    options: dict = {"format": {"partial_credit": cfg.format_partial_credit, "allow_overlap": cfg.format_allow_overlap}}
    if stage == "ma":
        options["modality_attention"] = {"mode": cfg.ma_mode, "accuracy_rule": cfg.ma_accuracy_rule}
    return TrainConfig(
        run=RunConfig(stage=stage, out_dir=out_dir, steps=steps, seed=cfg.seed, progress=False),
        model=ModelConfig(path=init_dir, freeze_vision=False, freeze_audio=False),
        data=DataConfig(train_path=train_path, max_frames=cfg.max_frames, max_pixels=cfg.max_pixels,
                        single_sense_input=(stage == "ma" and cfg.rl_single_input_ma) or cfg.rl_single_input),
        rollout=RolloutConfig(prompts_per_step=cfg.prompts_per_step, rollouts_per_prompt=cfg.rollouts_per_prompt,
                              max_new_tokens=cfg.max_new_tokens, temperature=cfg.rl_temperature,
                              # A tiny model on CPU: a decode step costs little per row, so all groups at once.
                              hf_prompts_per_batch=cfg.prompts_per_step),
        gspo=GSPOConfig(minibatches_per_rollout=cfg.minibatches_per_rollout),
        optim=OptimConfig(lr=cfg.rl_lr, min_lr=cfg.rl_lr / 10),
        rewards=dict(cfg.rl_rewards_qi if stage == "qi" else cfg.rl_rewards_ma),
        reward_options=options,
    )


def _report_job(name: str, result: dict) -> None:
    """The demo's progress line for a finished job."""
    if name.startswith("train_"):
        total = result["curves"].get("total", [])
        print(f"[demo] {name[len('train_'):]}: trained in {result['seconds']:.0f}s, reward "
              f"{_fmt(total[0][1] if total else None)} -> {_fmt(total[-1][1] if total else None)}")
    else:
        print(f"[demo] {name[len('eval_'):]}: evaluated in {result['seconds']:.0f}s")


def _fmt(x) -> str:
    return "n/a" if x is None else f"{x:.3f}"
