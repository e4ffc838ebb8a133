"""`omnivideo-r1 curate`: judge-score, filter, categorise and balance training data.

    omnivideo-r1 curate --input llava_mc.json --input videovista.json --out curated/ \
        --config curation_released --judge http --judge-url http://127.0.0.1:8000/v1 --judge-model M \
        balance.min_per_category=20

Inputs: LLaVA-Video-178K JSON (the subset files as released: mc, oe, cap), VideoVista JSON, or our JSONL (detected
per file). Each input may have its own media root: --video-root INPUT=DIR (or one DIR for all).
Outputs under --out: kept.jsonl, rejected.jsonl, report.json, report.md, categories.png, judge_cache/.
"""

from __future__ import annotations

import argparse
import os

from ..errors import UsageError


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
    parser.add_argument("--video-root", action="append", default=[], metavar="[INPUT=]DIR",
                        help="folder relative video paths resolve against: DIR for every input, or INPUT=DIR for "
                             "one input (repeatable; e.g. --video-root VideoVista_Train.json=/data/vv/videos)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. rules.min_composite=7")


def video_roots(values: list[str], inputs: list[str]) -> tuple[str | None, dict[str, str]]:
    """(root for every input, {input: its own root}) from the --video-root values.

    "INPUT=DIR" applies to the input given exactly as INPUT; a value whose part before "=" is not an input is a
    plain folder (paths may contain "=")."""
    default, per_input = None, {}
    for value in values:
        name, sep, folder = value.partition("=")
        if sep and name in inputs:
            per_input[name] = folder
        elif default is None:
            default = value
        else:
            raise UsageError(f"--video-root {value}: a second root for every input; write INPUT=DIR to give one "
                             f"input its own root (inputs: {inputs})")
    for folder in [default, *per_input.values()]:
        if folder is not None and not os.path.isdir(folder):
            raise UsageError(f"--video-root {folder}: not a folder; give the folder the input's clips are under")
    return default, per_input


def run(args: argparse.Namespace) -> int:
    # A bad recipe or an unreadable --input raises a user error, reported as one line by omnivideo_r1/cli.py.
    from ..config import load_config, save_config
    from .pipeline import CurationConfig, run_curation

    overrides = list(args.overrides)
    for key, value in (("judge.kind", args.judge), ("judge.base_url", args.judge_url),
                       ("judge.model", args.judge_model)):
        if value is not None:
            overrides.append(f"{key}={value}")
    cfg = load_config(CurationConfig, args.config, overrides)
    default_root, per_input = video_roots(args.video_root, args.input)
    if default_root is not None:
        cfg.video_root = default_root
    cfg.video_roots.update(per_input)
    save_config(cfg, os.path.join(args.out, "config.yaml"))
    result = run_curation(args.input, args.out, cfg)
    rep = result.report
    print(f"curate: {rep['input_questions']} questions from {rep['input_records']} records -> kept {rep['kept']}, "
          f"rejected {rep['rejected']} ({cfg.rules.name} rules, judge {rep['judge']}); "
          f"judge requests sent {result.judge_stats['misses']}, cached {result.judge_stats['hits']}")
    for flow in rep["flow"]:
        print(f"  {flow['stage']:<9} in {flow['in']:>6}  rejected {flow['rejected']:>6}  out {flow['out']:>6}")
    print(f"curate: outputs in {args.out}")
    return 0
