"""A demo-shaped folder for the viewer tests, built without a model: a 3-clip synthetic world, a QI run and an MA
run whose rollouts are scored by the real reward functions and recorded by the trainer's RolloutLog, and an eval
folder with two checkpoints x two input conditions scored by the eval runner's own scorer.

The completions are hand-made variants of the ideal reply (well grounded, shifted in time, wrong answer, malformed),
so the page has segments that hit, miss and overrun their reference events.
"""

from __future__ import annotations

import json
import os

import torch

from omnivideo_r1.algo.advantages import group_advantages
from omnivideo_r1.config import load_config
from omnivideo_r1.eval.runner import EvalConfig, evaluate
from omnivideo_r1.judges.embedded import EmbeddedJudge
from omnivideo_r1.rewards import compute_rewards
from omnivideo_r1.rewards.combine import combine_rewards
from omnivideo_r1.rewards.types import RolloutRecord
from omnivideo_r1.prompts import question_text
from omnivideo_r1.schema import LETTERS, AVSample, read_samples, write_jsonl
from omnivideo_r1.synth.world import generate_world
from omnivideo_r1.train.config import STAGE_DEFAULT_REWARDS, TrainConfig
from omnivideo_r1.train.metrics_log import MetricsLogger
from omnivideo_r1.train.rollout_log import RolloutLog

from eval_fixtures import FakePolicy, FakePrompt

G = 4
STEPS = 6
OPTIONS = {"format": {"partial_credit": True}, "modality_attention": {"mode": "accuracy", "accuracy_rule": "at_least"}}


def _segments(sample: AVSample, shift: float = 0.0, stretch: float = 0.0, keep: int = 3) -> str:
    pairs = sorted(sample.time_captions, key=lambda t: t.start)[:keep]
    return "".join(f"<time>{max(0.0, t.start + shift):.1f}-{t.end + shift + stretch:.1f}</time><caption>{t.caption}</caption>"
                   for t in pairs)


def _wrong(sample: AVSample) -> str:
    return next(ch for ch in LETTERS[: len(sample.options)] if ch not in sample.answer)


def completions(sample: AVSample, variant: int) -> list[str]:
    """G replies of different quality; `variant` rotates them so steps differ."""
    good = f"{_segments(sample)}<thinking>The clues point to {sample.answer_text}.</thinking><answer>{sample.answer}</answer>"
    shifted = f"{_segments(sample, shift=0.6, keep=2)}<thinking>Probably this.</thinking><answer>{sample.answer}</answer>"
    wrong = f"{_segments(sample, stretch=1.5, keep=1)}<thinking>Not sure.</thinking><answer>{_wrong(sample)}</answer>"
    broken = f"<time>2.0-1.0</time><caption>{sample.question}</caption><answer>{_wrong(sample)}"
    replies = [good, shifted, wrong, broken]
    return replies[variant % G:] + replies[: variant % G]


def write_run(root: str, world: str, stage: str) -> str:
    """A run folder with metrics.jsonl, rollouts.jsonl and config_<stage>.yaml; returns its path."""
    out = os.path.join(root, stage)
    samples = read_samples(os.path.join(world, "train.jsonl"))
    cfg = load_config(TrainConfig, None, [f"run.stage={stage}", f"run.out_dir={out}", f"run.steps={STEPS}",
                                         "run.log_rollouts_every=3", "run.log_rollouts_groups=2",
                                         f"rollout.rollouts_per_prompt={G}", "run.tensorboard=false"])
    cfg.reward_options = OPTIONS
    os.makedirs(out, exist_ok=True)
    from omnivideo_r1.config import save_config

    save_config(cfg, os.path.join(out, f"config_{stage}.yaml"))
    weights = STAGE_DEFAULT_REWARDS[stage]
    judge = EmbeddedJudge()
    log = RolloutLog(cfg.run)
    metrics = MetricsLogger(out, tensorboard=False)
    for step in range(1, STEPS + 1):
        group_samples = [samples[(step + k) % len(samples)] for k in range(2)]
        records = []
        for k, sample in enumerate(group_samples):
            for text in completions(sample, step + k):
                variants = {}
                if stage == "ma":  # audio-only right on odd steps, video-only always wrong
                    variants = {"audio": f"<answer>{sample.answer if step % 2 else _wrong(sample)}</answer>",
                                "video": f"<answer>{_wrong(sample)}</answer>"}
                records.append(RolloutRecord(sample=sample, completion=text, clip_duration=sample.duration,
                                             variant_answers=variants))
        outputs = compute_rewards(records, weights, OPTIONS, judge)
        totals, reward_metrics = combine_rewards(outputs, weights)
        adv, adv_metrics = group_advantages(torch.tensor(totals, dtype=torch.float32), G)
        log.record(step, records, outputs, weights, totals, adv, G, slots=[0, 1])
        metrics.log(step, {**{f"reward/{k}": v for k, v in reward_metrics.items()},
                           **{f"adv/{k}": v for k, v in adv_metrics.items()}, "loss": 0.01 / step, "lr": 1e-3})
    metrics.close()
    return out


MODELS = ("base", "tuned")


class _ScriptedPolicy(FakePolicy):
    def make_prompt(self, sample, clip, modality, reasoning=True):
        prompt = FakePrompt(sample, clip, modality)
        prompt.text = question_text(sample, reasoning)  # what a real policy's user turn holds
        return prompt


def write_eval(root: str, world: str) -> str:
    """An eval folder: results.jsonl from the eval runner for two checkpoints x (av, video) on the test questions."""
    out = os.path.join(root, "eval")
    samples = read_samples(os.path.join(world, "test.jsonl"))
    for i, sample in enumerate(samples):  # a benchmark-style breakdown field, as Video-MME's duration
        sample.extra["groups"] = {"duration": "short" if i % 2 else "long"}
    rows = []
    for m, model in enumerate(MODELS):
        for modality in ("av", "video"):
            script = {}
            for i, sample in enumerate(samples):
                # base is right on even questions, tuned on questions not divisible by 3; silent video flips one more
                right = (i % 2 == 0) if model == "base" else (i % 3 != 0)
                if modality == "video" and i == 1:
                    right = not right
                letter = sample.answer if right else _wrong(sample)
                script[sample.id] = f"{_segments(sample, shift=0.3 * m)}<thinking>...</thinking><answer>{letter}</answer>"
            for row in evaluate(_ScriptedPolicy(script), samples, modality, EvalConfig(max_frames=4, max_pixels=4096)):
                rows.append({"model": model, **row})
    write_jsonl(os.path.join(out, "results.jsonl"), rows)
    return out


def build_demo_folder(root: str) -> dict[str, str]:
    world = os.path.join(root, "world")
    generate_world(world, 3, seed=0, splits=(0.67, 0.0, 0.33))
    return {"root": root, "world": world, "qi": write_run(root, world, "qi"), "ma": write_run(root, world, "ma"),
            "eval": write_eval(root, world)}


def read_jsonl(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]
