"""`omnivideo-r1 train --config RECIPE [key=value ...] [--resume]`: one GSPO stage from a YAML recipe.

Multi-process: `accelerate launch --config_file omnivideo_r1/recipes/accelerate/ddp_cpu_2proc.yaml -m omnivideo_r1.cli
train --config qi_tiny`.
"""

from __future__ import annotations

import argparse
import os


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="recipe YAML path or shipped recipe name (e.g. qi_tiny)")
    parser.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in run.out_dir")
    parser.add_argument("overrides", nargs="*", help="key=value overrides, e.g. rollout.rollouts_per_prompt=8")


def run(args: argparse.Namespace) -> int:
    # Errors (a bad recipe, a malformed record, unusable media, a missing checkpoint) are reported as one line by
    # the CLI's error boundary (omnivideo_r1/cli.py).
    from ..config import load_config
    from ..errors import UsageError
    from .config import TrainConfig

    cfg = load_config(TrainConfig, args.config, args.overrides)
    if not cfg.data.train_path:
        raise UsageError("data.train_path is empty; give a JSONL (e.g. `omnivideo-r1 synth --out world` then "
                         "data.train_path=world/train.jsonl)")
    if not os.path.exists(cfg.data.train_path):
        raise UsageError(f"data.train_path={cfg.data.train_path!r} does not exist; create data with `omnivideo-r1 "
                         "synth --out world` or `omnivideo-r1 curate`, or pass data.train_path=PATH")
    from .gspo_train import train

    summary = train(cfg, resume=args.resume)
    print(f"done: {summary['steps']} steps, policy saved to {summary['final_dir']}")
    return 0
