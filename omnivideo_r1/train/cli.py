"""`omnivideo-r1 train --config RECIPE [key=value ...] [--resume]`: one GSPO stage from a YAML recipe.

Multi-process: `accelerate launch --config_file omnivideo_r1/recipes/accelerate/ddp_cpu_2proc.yaml -m omnivideo_r1.cli
train --config qi_tiny`.
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="recipe YAML path or shipped recipe name (e.g. qi_tiny)")
    parser.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in run.out_dir")
    parser.add_argument("overrides", nargs="*", help="key=value overrides, e.g. rollout.rollouts_per_prompt=8")


def run(args: argparse.Namespace) -> int:
    from ..config import ConfigError, load_config
    from .config import TrainConfig

    try:
        cfg = load_config(TrainConfig, args.config, args.overrides)
    except (ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not cfg.data.train_path:
        print("error: data.train_path is empty; give a JSONL (e.g. `omnivideo-r1 synth --out world` then "
              "data.train_path=world/train.jsonl)", file=sys.stderr)
        return 2
    import os

    if not os.path.exists(cfg.data.train_path):
        print(f"error: data.train_path={cfg.data.train_path!r} does not exist; create data with `omnivideo-r1 synth "
              "--out world` or `omnivideo-r1 curate`, or pass data.train_path=PATH", file=sys.stderr)
        return 2
    from .gspo_train import train

    from ..media.types import MediaError
    from ..schema import SchemaError

    try:
        summary = train(cfg, resume=args.resume)
    except (SchemaError, MediaError, FileNotFoundError) as exc:
        # Bad inputs (a malformed record, unusable media, a missing checkpoint): one line naming the file and fix.
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"done: {summary['steps']} steps, policy saved to {summary['final_dir']}")
    return 0
