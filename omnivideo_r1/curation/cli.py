"""`omnivideo-r1 curate`: judge-score, filter, categorise and balance training data.

    omnivideo-r1 curate --input llava_mc.json --input videovista.json --out curated/ \
        --config curation_released --judge http --judge-url http://127.0.0.1:8000/v1 --judge-model M \
        balance.min_per_category=20

Inputs: LLaVA-Video-178K multiple-choice JSON, VideoVista JSON, or our JSONL (detected per file).
Outputs under --out: kept.jsonl, rejected.jsonl, report.json, report.md, categories.png, judge_cache/.
"""

from __future__ import annotations

import argparse
import os
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", action="append", required=True, metavar="PATH",
                        help="input file (repeatable): LLaVA-Video-178K / VideoVista JSON or sample JSONL")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--config", default=None, metavar="RECIPE",
                        help="recipe YAML or shipped name (curation_paper, curation_released); default: paper rules")
    parser.add_argument("--judge", choices=("embedded", "http"), default=None,
                        help="judge kind (overrides judge.kind): embedded = offline heuristics")
    parser.add_argument("--judge-url", default=None, help="http judge server root up to /v1")
    parser.add_argument("--judge-model", default=None, help="model name served by the http judge")
    parser.add_argument("--video-root", default=None, help="folder relative video paths in JSON inputs resolve against")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. rules.min_composite=7")


def run(args: argparse.Namespace) -> int:
    from ..config import ConfigError, load_config, save_config
    from .pipeline import CurationConfig, run_curation

    overrides = list(args.overrides)
    for key, value in (("judge.kind", args.judge), ("judge.url", args.judge_url),
                       ("judge.model", args.judge_model), ("video_root", args.video_root)):
        if value is not None:
            overrides.append(f"{key}={value}")
    try:
        cfg = load_config(CurationConfig, args.config, overrides)
    except ConfigError as exc:
        print(f"curate: {exc}", file=sys.stderr)
        return 2
    save_config(cfg, os.path.join(args.out, "config.yaml"))
    try:
        result = run_curation(args.input, args.out, cfg)
    except ValueError as exc:  # a wrong --input / config, not a bad record: say what to fix
        print(f"curate: {exc}", file=sys.stderr)
        return 2
    rep = result.report
    print(f"curate: {rep['input_questions']} questions from {rep['input_records']} records -> kept {rep['kept']}, "
          f"rejected {rep['rejected']} ({cfg.rules.name} rules, judge {rep['judge']}); "
          f"judge requests sent {result.judge_stats['misses']}, cached {result.judge_stats['hits']}")
    for flow in rep["flow"]:
        print(f"  {flow['stage']:<9} in {flow['in']:>6}  rejected {flow['rejected']:>6}  out {flow['out']:>6}")
    print(f"curate: outputs in {args.out}")
    return 0
