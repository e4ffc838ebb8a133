"""`omnivideo-r1` command line: one subcommand per job.

Each job module exposes `add_arguments(parser)` and `run(args) -> int`, and imports heavy libraries (torch,
transformers) inside `run`, so `omnivideo-r1 --help` stays fast. Errors have one boundary, here: a user error
(errors.USER_ERRORS: a bad recipe, data file, clip or checkpoint, a missing path) is one line
`omnivideo-r1 <command>: error: ...` and exit status 2, as argparse reports a bad command line; anything else is a
bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from .errors import USER_ERRORS, one_line

# subcommand -> (module, one-line help). A dict literal, not a registry: add a line to add a job.
COMMANDS = {
    "inspect": ("omnivideo_r1.media.inspect_cmd", "describe a media file: duration, frames, size, fps, audio"),
    "synth": ("omnivideo_r1.synth.cli", "generate the synthetic audio-visual world (real .mp4 clips + JSONL)"),
    "train": ("omnivideo_r1.train.cli", "GSPO training (stage QI or MA) from a YAML recipe"),
    "demo": ("omnivideo_r1.train.demo", "offline end-to-end demo: world, warm start, QI, MA, eval, ablation"),
    "fresh-world": ("omnivideo_r1.train.demo_fresh", "a finished demo's checkpoints on a newly generated world"),
    "eval": ("omnivideo_r1.eval.cli", "multiple-choice evaluation on AV and silent-video benchmarks"),
    "view": ("omnivideo_r1.view.cli", "write a static site of a run, the demo or an eval: curves, rollouts, flips"),
    "curate": ("omnivideo_r1.curation.cli", "judge-score, filter, categorise and balance training data"),
    "export": ("omnivideo_r1.train.export", "a trained policy as a checkpoint that transformers and vLLM load"),
    "plan": ("omnivideo_r1.train.plan", "parameters and per-GPU memory of a recipe, from the model's config.json"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="omnivideo-r1", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        parser.print_help() if (not argv or argv[0] in ("-h", "--help")) else parser.error(
            f"unknown command {argv[0]!r}; choose from {list(COMMANDS)}")
        return 0
    name = argv[0]
    module = importlib.import_module(COMMANDS[name][0])
    cmd_parser = argparse.ArgumentParser(prog=f"omnivideo-r1 {name}", description=COMMANDS[name][1])
    module.add_arguments(cmd_parser)
    args = cmd_parser.parse_args(argv[1:])
    try:
        code = int(module.run(args) or 0)
    except USER_ERRORS as exc:
        print(f"omnivideo-r1 {name}: error: {one_line(exc)}", file=sys.stderr)
        return 2
    if _close_process_group():  # only after success: a failed rank exits and the launcher stops the others
        _exit_without_finalization(code)
    return code


def _close_process_group() -> bool:
    """Tear down torch.distributed before exit: a gloo group left open can abort the process at interpreter exit
    ("terminate called without an active exception") and turn a finished multi-process run into a failure.
    Returns whether there was a group to close."""
    dist = sys.modules.get("torch.distributed")
    if dist is None or not dist.is_available() or not dist.is_initialized():
        return False
    dist.barrier()
    dist.destroy_process_group()
    return True


def _exit_without_finalization(code: int) -> None:
    """End a finished multi-process rank with os._exit, skipping interpreter finalization. Even after
    destroy_process_group, objects that hold gloo work (the sharded model's FSDP2 state) can still be alive and are
    then freed while the interpreter tears down; one CI run of 2-process FSDP2 on CPU aborted rank 1 there with
    "terminate called without an active exception", after the final weights were saved. Everything is written and
    closed by now; only the standard streams need flushing."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
