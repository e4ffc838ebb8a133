"""`omnivideo-r1 view PATH [--out DIR]`: a static site to look inside a training run, the demo or an evaluation.

    omnivideo-r1 view runs/qi_tiny            # reward/metric curves, recorded rollouts on the clip's timeline
    omnivideo-r1 view runs/eval-daily         # per-question browser, checkpoint and modality flips
    omnivideo-r1 view runs/demo --out /tmp/demo-site

Writes DIR/index.html (default PATH/viewer/) and DIR/media/ (thumbnails, made once and reused by later runs).
Open index.html in a browser: no server, no network.
"""

from __future__ import annotations

import argparse
import sys

from .site import MAX_MEDIA, MAX_QUESTIONS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", metavar="PATH", help="a run folder, the demo's folder or an eval output folder")
    parser.add_argument("--out", default=None, metavar="DIR", help="where to write the site (default PATH/viewer)")
    parser.add_argument("--data", default=None, metavar="PATH",
                        help="the evaluated questions (JSONL or benchmark root), for clip media and reference "
                             "timelines; found automatically for omnivideo-r1 eval output and the demo")
    parser.add_argument("--benchmark", default=None, metavar="NAME", help="loader for --data (default synthetic)")
    parser.add_argument("--max-media", type=int, default=MAX_MEDIA, metavar="N",
                        help=f"clips given frame strips and spectrograms (default {MAX_MEDIA})")
    parser.add_argument("--max-questions", type=int, default=MAX_QUESTIONS, metavar="N",
                        help=f"eval questions put in the page (default {MAX_QUESTIONS})")


def run(args: argparse.Namespace) -> int:
    # An unreadable folder or file raises a user error (ViewError, SchemaError, ...): one line via omnivideo_r1/cli.py.
    from ..errors import UsageError
    from .site import write_site

    if args.max_media < 0 or args.max_questions < 1:
        raise UsageError(f"--max-media {args.max_media}, --max-questions {args.max_questions}: --max-media must be "
                         ">= 0 and --max-questions >= 1")
    result = write_site(args.path, args.out, args.data, args.benchmark, args.max_media, args.max_questions,
                        log=lambda msg: print(f"[view] {msg}", file=sys.stderr))
    for note in result["notes"]:
        print(f"[view] note: {note}", file=sys.stderr)
    print(f"[view] {result['index_bytes'] / 2**20:.2f} MiB page, {result['media_files']} media files "
          f"({result['media_bytes'] / 2**20:.2f} MiB)", file=sys.stderr)
    print(result["index"])
    return 0
