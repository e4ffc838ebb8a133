"""`omnivideo-r1 synth --out DIR --n N [--seed S] [--questions-per-clip K]`: write the synthetic world.

Any WorldConfig field can be set with `--set key=value` (e.g. `--set duration_s=6 --set fps=4`).
"""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output folder (clips/, train/val/test.jsonl, world.json)")
    parser.add_argument("--n", type=int, default=200, help="number of clips (default 200)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same world")
    parser.add_argument("--questions-per-clip", type=int, default=None,
                        help="questions per clip (default: WorldConfig.questions_per_clip)")
    parser.add_argument("--splits", default="0.8,0.1,0.1", help="train,val,test fractions by clip")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a WorldConfig field (repeatable)")


def run(args: argparse.Namespace) -> int:
    from ..config import load_config
    from ..errors import UsageError
    from .scene import WorldConfig
    from .world import generate_world

    overrides = list(args.set)
    if args.questions_per_clip is not None:
        overrides.append(f"questions_per_clip={args.questions_per_clip}")
    try:
        splits = tuple(float(x) for x in args.splits.split(","))
    except ValueError:
        raise UsageError(f"--splits {args.splits!r}: give three fractions, e.g. 0.8,0.1,0.1") from None
    if args.n < 1:
        raise UsageError(f"--n {args.n}: give the number of clips, >= 1")
    if len(splits) != 3 or any(f < 0 for f in splits) or abs(sum(splits) - 1.0) > 1e-6:
        raise UsageError(f"--splits {args.splits!r}: three non-negative fractions (train, val, test) summing to 1")
    config = load_config(WorldConfig, None, overrides)  # a bad --set raises ConfigError naming the key
    summary = generate_world(args.out, args.n, seed=args.seed, splits=splits, config=config)
    brief = {k: v for k, v in summary.items() if k not in ("config", "per_split")}
    print(json.dumps(brief, indent=2, sort_keys=True))
    return 0
