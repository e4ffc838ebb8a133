"""`omnivideo-r1 demo`: the whole method in miniature, offline, on a laptop CPU.

1. Generate the synthetic audio-visual world (real .mp4 clips with audio, three kinds of questions).
2. Build a tiny random Qwen3-Omni thinker (real transformers class) and warm-start it on the output format.
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
import sys
import time
from dataclasses import dataclass, field

ARMS = ("base", "qi", "ma", "qi_ma")
ARM_LABELS = {"base": "base (warm start)", "qi": "QI only", "ma": "MA only", "qi_ma": "QI + MA"}


@dataclass
class DemoConfig:
    out_dir: str = "runs/demo"
    """Everything goes here: world/, base/, qi/, ma/, qi_ma/, eval/, ablation.md, ablation.png."""
    seed: int = 0
    """Seeds the world, the model init, data order and sampling."""
    n_clips: int = 160
    """Synthetic clips (each carries several questions)."""
    splits: list[float] = field(default_factory=lambda: [0.7, 0.05, 0.25])
    """train / val / test fractions of clips."""
    family: str = "qwen3_omni"
    """Tiny model class: qwen3_omni or qwen2_5_omni."""
    sft_steps: int = 150
    """Warm-start steps on the output format."""
    sft_lr: float = 3e-3
    """Warm-start learning rate."""
    rl_steps_qi: int = 24
    """Stage-QI optimizer steps."""
    rl_steps_ma: int = 24
    """Stage-MA optimizer steps."""
    rl_lr: float = 2e-4
    """RL learning rate for the tiny model."""
    prompts_per_step: int = 4
    """Prompts per RL step."""
    rollouts_per_prompt: int = 4
    """G, completions per prompt."""
    max_new_tokens: int = 80
    """Completion length cap in RL and evaluation."""
    ma_mode: str = "confidence"
    """Modality-attention reward mode (see rewards/modality.py)."""
    eval_limit: int = 0
    """Evaluate at most this many test questions (0: all)."""
    modalities: list[str] = field(default_factory=lambda: ["av", "video"])
    """Evaluation conditions: av (with audio) and video (silent: audio removed)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("overrides", nargs="*", help="key=value overrides of DemoConfig, e.g. rl_steps_qi=10")


def run(args: argparse.Namespace) -> int:
    from ..config import ConfigError, load_config

    try:
        cfg = load_config(DemoConfig, None, args.overrides)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    run_demo(cfg)
    return 0


def run_demo(cfg: DemoConfig) -> dict:
    import torch

    from ..eval.report import write_report
    from ..eval.runner import EvalConfig, evaluate
    from ..media.decode import load_clip
    from ..media.types import MediaError
    from ..policy.omni import OmniPolicy
    from ..policy.tiny import TinyOmniSpec, build_tiny_policy_files
    from ..schema import read_samples
    from ..synth.world import generate_world
    from .config import TrainConfig
    from .gspo_train import train
    from .sft import SFTConfig, warm_start

    torch.manual_seed(cfg.seed)
    t_start = time.perf_counter()
    timings = {}
    out = cfg.out_dir
    os.makedirs(out, exist_ok=True)

    # 1. the world
    world = os.path.join(out, "world")
    t0 = time.perf_counter()
    summary = generate_world(world, cfg.n_clips, seed=cfg.seed, splits=tuple(cfg.splits))
    timings["world"] = time.perf_counter() - t0
    print(f"[demo] world: {summary.get('counts', summary)} ({timings['world']:.0f}s)")
    train_samples = read_samples(os.path.join(world, "train.jsonl"))
    test_samples = read_samples(os.path.join(world, "test.jsonl"))
    if cfg.eval_limit:
        test_samples = test_samples[: cfg.eval_limit]

    # 2. tiny real-class policy + warm start on the format
    t0 = time.perf_counter()
    init_dir, base_dir = os.path.join(out, "init"), os.path.join(out, "base")
    build_tiny_policy_files(init_dir, TinyOmniSpec(family=cfg.family, seed=cfg.seed))
    policy = OmniPolicy.from_pretrained(init_dir)

    def clip_for(sample):
        try:
            return load_clip(sample.video, fps=2.0, max_frames=8, max_pixels=64 * 64, start=sample.start,
                             end=sample.end, audio_path=sample.audio)
        except MediaError as exc:
            print(f"[demo] skipping {sample.id}: {exc}")
            return None

    sft_losses = warm_start(policy, train_samples, clip_for, SFTConfig(steps=cfg.sft_steps, lr=cfg.sft_lr,
                                                                        seed=cfg.seed))
    policy.save_pretrained(base_dir)
    del policy
    timings["warm_start"] = time.perf_counter() - t0

    # 3. the ablation arms: QI, MA, QI -> MA, all from the same warm-started base
    model_dirs = {"base": base_dir}
    curves = {}
    for arm, stage, init in (("qi", "qi", base_dir), ("ma", "ma", base_dir), ("qi_ma", "ma", None)):
        t0 = time.perf_counter()
        init = init or os.path.join(out, "qi", "final")
        steps = cfg.rl_steps_qi if stage == "qi" else cfg.rl_steps_ma
        overrides = [f"run.stage={stage}", f"run.out_dir={os.path.join(out, arm)}", f"run.steps={steps}",
                     f"run.seed={cfg.seed}", f"model.path={init}", f"data.train_path={os.path.join(world, 'train.jsonl')}",
                     f"rollout.prompts_per_step={cfg.prompts_per_step}",
                     f"rollout.rollouts_per_prompt={cfg.rollouts_per_prompt}",
                     f"rollout.max_new_tokens={cfg.max_new_tokens}", f"optim.lr={cfg.rl_lr}",
                     f"optim.min_lr={cfg.rl_lr / 10}", "model.freeze_vision=false", "model.freeze_audio=false",
                     "run.progress=false"]
        if stage == "ma":
            overrides.append(f"reward_options={{modality_attention: {{mode: {cfg.ma_mode}}}}}")
        from ..config import load_config

        train(load_config(TrainConfig, None, overrides))
        model_dirs[arm] = os.path.join(out, arm, "final")
        curves[arm] = _read_curve(os.path.join(out, arm, "metrics.jsonl"))
        timings[f"train_{arm}"] = time.perf_counter() - t0
        print(f"[demo] {arm}: {steps} steps in {timings[f'train_{arm}']:.0f}s, reward "
              f"{_fmt(curves[arm][0][1] if curves[arm] else None)} -> {_fmt(curves[arm][-1][1] if curves[arm] else None)}")

    # 4. evaluation: every arm x (AV, silent) on the held-out test split
    t0 = time.perf_counter()
    ecfg = EvalConfig(fps=2.0, max_frames=8, max_pixels=64 * 64, max_new_tokens=cfg.max_new_tokens, batch_size=8)
    rows = []
    needs_by_id = {s.id: s.modality_needs for s in test_samples}
    for arm in ARMS:
        policy = OmniPolicy.from_pretrained(model_dirs[arm])
        for modality in cfg.modalities:
            for row in evaluate(policy, test_samples, modality, ecfg):
                row["model"] = ARM_LABELS[arm]
                row["benchmark"] = "synthetic-test"
                row["modality_needs"] = needs_by_id.get(row["id"], "unknown")
                rows.append(row)
        del policy
    write_report(rows, os.path.join(out, "eval"), title="OmniVideo-R1 demo: synthetic world, test split")
    timings["eval"] = time.perf_counter() - t0

    # 5. the ablation table
    table = ablation_table(rows, cfg.modalities)
    timings["total"] = time.perf_counter() - t_start
    md = render_markdown(table, cfg, timings, sft_losses)
    with open(os.path.join(out, "ablation.md"), "w", encoding="utf-8") as fh:
        fh.write(md)
    with open(os.path.join(out, "ablation.json"), "w", encoding="utf-8") as fh:
        json.dump({"table": table, "timings_s": timings, "config": cfg.__dict__}, fh, indent=2)
    plot_demo(os.path.join(out, "ablation.png"), curves, sft_losses, table, cfg.modalities)
    print(md)
    print(f"[demo] wrote {os.path.join(out, 'ablation.md')} and {os.path.join(out, 'ablation.png')}")
    return {"table": table, "timings": timings}


def ablation_table(rows: list[dict], modalities: list[str]) -> dict:
    """{arm label: {modality: stats, modality/needs: stats}} with Wilson 95% intervals."""
    from ..eval.report import accuracy_stats

    table: dict[str, dict] = {}
    for arm in ARMS:
        label = ARM_LABELS[arm]
        entry = {}
        for modality in modalities:
            subset = [r for r in rows if r["model"] == label and r["modality"] == modality]
            entry[modality] = accuracy_stats(subset)
            for needs in ("video", "audio", "both"):
                part = [r for r in subset if r.get("modality_needs") == needs]
                if part:
                    entry[f"{modality}/{needs}"] = accuracy_stats(part)
        table[label] = entry
    return table


def render_markdown(table: dict, cfg: DemoConfig, timings: dict, sft_losses: list[float]) -> str:
    names = {"av": "AV", "video": "silent video", "audio": "audio only"}
    cols = []
    for m in cfg.modalities:
        cols.append(m)
        cols += [f"{m}/{n}" for n in ("video", "audio", "both") if any(f"{m}/{n}" in e for e in table.values())]
    head = ["model"] + [names.get(c, c) if "/" not in c else f"{names[c.split('/')[0]]}: needs {c.split('/')[1]}"
                        for c in cols]
    lines = ["# OmniVideo-R1 demo: ablation on the synthetic world (test split)", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, entry in table.items():
        cells = [label]
        for c in cols:
            s = entry.get(c)
            cells.append("-" if not s or s["accuracy"] is None else
                         f"{100 * s['accuracy']:.1f} [{100 * s['ci_low']:.0f}-{100 * s['ci_high']:.0f}] (n={s['scored']})")
        lines.append("| " + " | ".join(cells) + " |")
    av = {k: v["av"]["accuracy"] for k, v in table.items() if "av" in v and v["av"]["accuracy"] is not None}
    lines += ["", "Accuracy in %, [Wilson 95% interval], chance is 25%.", ""]
    if len(av) == 4:
        base, qi, ma, both = (av[ARM_LABELS[a]] for a in ARMS)
        shape = both > qi and both > ma and qi > base and ma > base
        lines.append(f"Paper's shape on AV (QI+MA > each stage > base): {'yes' if shape else 'no'} "
                     f"(base {100 * base:.1f}, QI {100 * qi:.1f}, MA {100 * ma:.1f}, QI+MA {100 * both:.1f}).")
    if "video" in cfg.modalities:
        silent = {k: v["video"]["accuracy"] for k, v in table.items() if v.get("video", {}).get("accuracy") is not None}
        if len(silent) == 4:
            base_s = silent[ARM_LABELS["base"]]
            worse = [k for k, v in silent.items() if v < base_s]
            lines.append(f"Silent video not worse than base: {'yes' if not worse else 'no, worse: ' + ', '.join(worse)}.")
    lines += ["", "Timings (s): " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()),
              f"Warm-start loss: {sft_losses[0]:.2f} -> {sft_losses[-1]:.2f}" if sft_losses else "", ""]
    return "\n".join(lines)


def plot_demo(path: str, curves: dict, sft_losses: list[float], table: dict, modalities: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    axes[0].plot(range(1, len(sft_losses) + 1), sft_losses)
    axes[0].set(title="warm start (format SFT)", xlabel="step", ylabel="token NLL")
    for arm, curve in curves.items():
        if curve:
            axes[1].plot([s for s, _ in curve], [r for _, r in curve], label=ARM_LABELS[arm])
    axes[1].set(title="RL reward (total, mean over rollouts)", xlabel="step", ylabel="reward")
    axes[1].legend()
    labels = list(table)
    width = 0.8 / max(1, len(modalities))
    for j, m in enumerate(modalities):
        accs = [100 * (table[l][m]["accuracy"] or 0) for l in labels]
        lo = [100 * ((table[l][m]["accuracy"] or 0) - (table[l][m]["ci_low"] or 0)) for l in labels]
        hi = [100 * ((table[l][m]["ci_high"] or 0) - (table[l][m]["accuracy"] or 0)) for l in labels]
        axes[2].bar([i + j * width for i in range(len(labels))], accs, width, yerr=[lo, hi], capsize=3,
                    label={"av": "AV", "video": "silent video", "audio": "audio only"}.get(m, m))
    axes[2].axhline(25, color="grey", linestyle=":", label="chance")
    axes[2].set_xticks([i + width * (len(modalities) - 1) / 2 for i in range(len(labels))], labels, rotation=15)
    axes[2].set(title="test accuracy (95% CI)", ylabel="%")
    axes[2].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _read_curve(path: str) -> list[tuple[int, float]]:
    from .metrics_log import read_metrics

    if not os.path.exists(path):
        return []
    return [(r["step"], r["reward/total/mean"]) for r in read_metrics(path) if r.get("reward/total/mean") is not None]


def _fmt(x) -> str:
    return "n/a" if x is None else f"{x:.3f}"
