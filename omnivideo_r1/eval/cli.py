"""`omnivideo-r1 eval`: answer a benchmark with one or more checkpoints under one or more modalities.

    omnivideo-r1 eval --model ckpt/ --benchmark daily-omni --data /data/Daily-Omni \
        --modality av video audio --out runs/eval-daily [--model ckpt2/ ...] [--limit 50]
    omnivideo-r1 eval --backend vllm --base-url http://127.0.0.1:8100/v1 --model Qwen3-Omni-30B-A3B-Instruct \
        --model my-adapter --benchmark daily-omni --data /data/Daily-Omni --batch-size 64

Writes results.jsonl (one row per question, model and modality), summary.json, report.md and accuracy.png under
--out and prints the markdown report. Run it with `accelerate launch ... -m omnivideo_r1.cli eval ...` to shard the
questions across GPUs; only the main process writes.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
from typing import Any

from ..errors import InputError, UsageError
from .benchmarks import BENCHMARKS
from ..schema import MODALITIES
from .runner import EvalConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", action="append", required=True, metavar="DIR",
                        help="checkpoint folder (with --backend vllm: a served model or LoRA adapter name); repeat "
                             "to compare several in one table")
    parser.add_argument("--backend", default="hf", choices=["hf", "vllm"],
                        help="hf: load each checkpoint here; vllm: ask an OpenAI-compatible vLLM server")
    parser.add_argument("--base-url", default=None, metavar="URL", help="vLLM server up to /v1 (--backend vllm)")
    parser.add_argument("--api-key-env", default="OMNIVIDEO_VLLM_API_KEY", metavar="VAR",
                        help="environment variable holding the server's API key (never logged)")
    parser.add_argument("--max-retries", type=int, default=3, metavar="N",
                        help="retries of a failed server request, with exponential backoff (default 3)")
    parser.add_argument("--benchmark", required=True, metavar="NAME", help=f"one of {sorted(BENCHMARKS)}")
    parser.add_argument("--data", required=True, metavar="PATH",
                        help="the benchmark's annotation file or its root folder (media found from there)")
    parser.add_argument("--modality", nargs="+", default=["av"], metavar="M",
                        help=f"conditions to run, any of {list(MODALITIES)} (video = silent video); default av")
    parser.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N questions")
    parser.add_argument("--out", default="eval_results", metavar="DIR", help="output folder (default eval_results)")
    parser.add_argument("--recipe", default=None, metavar="YAML", help="EvalConfig recipe (fps, max_frames, ...)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="EvalConfig override, e.g. --set max_new_tokens=256 (repeatable)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="prompts per generate call (with --backend vllm: requests in flight at once)")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="generation budget per answer")
    parser.add_argument("--direct", action="store_true",
                        help="ask for the option letter directly instead of the <time>/<thinking>/<answer> format")
    parser.add_argument("--official-prompt", action="store_true",
                        help="ask with each benchmark's own prompt template (as its released evaluation does)")
    parser.add_argument("--dtype", default="auto", choices=["auto", "bfloat16", "float16", "float32"],
                        help="model weights dtype; auto = bfloat16 on GPU, float32 on CPU")
    parser.add_argument("--title", default=None, help="report title (default: the benchmark name)")


def _check_args(args: argparse.Namespace) -> str:
    name = args.benchmark.lower().replace("_", "-")
    if name not in BENCHMARKS:
        raise UsageError(f"unknown benchmark {args.benchmark!r}; choose from {sorted(BENCHMARKS)}")
    bad = [m for m in args.modality if m not in MODALITIES]
    if bad:
        raise UsageError(f"unknown modality {bad}; choose from {list(MODALITIES)} (video = silent video)")
    if not os.path.exists(args.data):
        raise UsageError(f"--data {args.data}: no such file or folder; pass the benchmark's annotation file or root")
    if args.backend == "vllm":
        if not args.base_url or not args.base_url.startswith(("http://", "https://")):
            raise UsageError("--backend vllm needs --base-url http(s)://HOST:PORT/v1 (the `vllm serve` endpoint)")
    else:
        if args.base_url:
            raise UsageError("--base-url is for --backend vllm; add --backend vllm or drop it")
        for model in args.model:
            if not os.path.isdir(model):
                raise UsageError(f"--model {model}: not a folder; pass a checkpoint directory (config.json + weights)")
    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit {args.limit}: give a positive number of questions")
    return name


def _config(args: argparse.Namespace) -> EvalConfig:
    from ..config import load_config

    overrides = list(args.overrides)
    if args.limit is not None:
        overrides.append(f"limit={args.limit}")
    if args.batch_size is not None:
        overrides.append(f"batch_size={args.batch_size}")
    if args.max_new_tokens is not None:
        overrides.append(f"max_new_tokens={args.max_new_tokens}")
    if args.direct:
        overrides.append("reasoning=false")
    if args.official_prompt:
        overrides.append("official_prompt=true")
    return load_config(EvalConfig, args.recipe, overrides)


def model_labels(paths: list[str]) -> list[str]:
    """Short names for the report columns: folder names, or full paths when two folders share a name."""
    names = [os.path.basename(os.path.normpath(p)) or p for p in paths]
    return names if len(set(names)) == len(names) else [os.path.normpath(p) for p in paths]


def load_policy(path: str, dtype: str = "auto") -> Any:
    """The OmniPolicy at `path` on this process's device (the runner builds its prompts with omni.make_prompt).

    dtype "auto" is bfloat16 on a GPU (the released checkpoints' dtype) and float32 on CPU (bf16 matmuls are slow
    there and the tiny test models are float32).
    """
    import torch

    from ..policy import omni
    from .runner import process_state

    device = process_state().device
    if dtype == "auto":
        dtype = "bfloat16" if device.type == "cuda" else "float32"
    return omni.OmniPolicy.from_pretrained(path, dtype=getattr(torch, dtype), device=device)


def server_policy(args: argparse.Namespace, model: str) -> Any:
    """The served `model` (base model or LoRA adapter name) behind the vLLM server at --base-url."""
    from ..policy.vllm_client import VLLMClient, VLLMEvalPolicy

    return VLLMEvalPolicy(VLLMClient(args.base_url, args.api_key_env, max_retries=args.max_retries), model)


def run(args: argparse.Namespace) -> int:
    from .benchmarks import load_benchmark
    from .report import EVAL_INPUTS, markdown_report, summarize, write_report
    from .runner import evaluate

    from ..schema import write_jsonl

    # Bad arguments, recipes, annotation files and checkpoints raise user errors (errors.py): the CLI's error
    # boundary prints them as one line.
    name = _check_args(args)
    cfg = _config(args)
    samples, skipped = load_benchmark(name, args.data)
    if not samples:
        example = skipped.items[0]["detail"] if len(skipped) else "the file holds no questions"
        raise InputError(f"{args.data}: no usable {name} questions ({len(skipped)} skipped: "
                         f"{skipped.by_reason()}; first: {example}); check the media layout")

    from .runner import process_state

    main = process_state().is_main_process
    if main and len(skipped):
        print(f"skipped {len(skipped)} question(s) at load time: {skipped.by_reason()} "
              f"(details in {os.path.join(args.out, 'skipped.jsonl')})", file=sys.stderr)
    if main and skipped.notes:
        print(f"load notes: {dict(skipped.notes)}", file=sys.stderr)
    rows = []
    labels = list(args.model) if args.backend == "vllm" else model_labels(args.model)
    for path, label in zip(args.model, labels):
        policy = load_policy(path, args.dtype) if args.backend == "hf" else server_policy(args, path)
        for modality in dict.fromkeys(args.modality):
            # A server that stays unreachable raises VLLMServerError, a user error: one line from the CLI.
            rows += [{"model": label, **row} for row in evaluate(policy, samples, modality, cfg)]
        del policy
        gc.collect()
    if not main:
        return 0
    title = args.title or f"{name} evaluation"
    paths = write_report(rows, args.out, title, skipped.by_reason(), dict(skipped.notes))
    with open(os.path.join(args.out, EVAL_INPUTS), "w", encoding="utf-8") as fh:
        json.dump({"benchmark": name, "data": os.path.abspath(args.data),
                   "models": [m if args.backend == "vllm" else os.path.abspath(m) for m in args.model],
                   "modalities": list(args.modality)}, fh, indent=2)
    if len(skipped):
        write_jsonl(os.path.join(args.out, "skipped.jsonl"), skipped.items)
    print(markdown_report(summarize(rows), title, skipped.by_reason(), dict(skipped.notes)))
    print(f"wrote {', '.join(paths.values())}", file=sys.stderr)
    return 0
