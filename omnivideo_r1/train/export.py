"""`omnivideo-r1 export RUN_CHECKPOINT --out DIR [--merge-lora] [--base BASE]`: a trained policy for other tools.

RUN_CHECKPOINT is a run directory (its `final/`, else its latest step checkpoint), a `final/` directory, or a step
checkpoint (`checkpoints/step_N`, written by accelerate: one `model.safetensors`, or FSDP's sharded
`pytorch_model_fsdp_0/`). The base is the checkpoint the run started from (`model.path` of the run's saved config,
followed back through earlier runs to a released checkpoint; `--base` overrides).

With --merge-lora (or for a run without LoRA): DIR is a checkpoint in the base's layout that transformers loads as
the original model class (and so vLLM and lmms-eval): the trained thinker (adapters merged) under its original
tensor names, the base's talker / code2wav tensors, config, tokenizer and processor files.
Without --merge-lora, for a LoRA run: DIR is the adapter in peft's standard layout (adapter_config.json +
adapter_model.safetensors, for the base's thinker) plus the base's tokenizer and processor files.
"""

from __future__ import annotations

import argparse
import glob
import os

from ..errors import CheckpointError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_checkpoint", metavar="RUN_CHECKPOINT",
                        help="run directory, its final/ directory, or a step checkpoint (checkpoints/step_N)")
    parser.add_argument("--out", required=True, help="output directory (created; must be empty if it exists)")
    parser.add_argument("--merge-lora", action="store_true",
                        help="fold LoRA adapters into the thinker (a standalone checkpoint); without it a LoRA "
                             "run's adapter is exported alone")
    parser.add_argument("--base", default="", help="released checkpoint whose layout, talker/code2wav and processor "
                        "files the export takes (default: followed back from the run's model.path)")
    parser.add_argument("--max-shard-gib", type=float, default=5.0, help="size cap of each safetensors shard")


def run(args: argparse.Namespace) -> int:
    # A missing or unfit run/checkpoint, or a non-empty --out, raises a user error: one line via omnivideo_r1/cli.py.
    summary = export(args.run_checkpoint, args.out, merge_lora=args.merge_lora, base=args.base or None,
                     max_shard_bytes=int(args.max_shard_gib * 2**30))
    print(summary["message"])
    return 0


def locate(path: str) -> tuple[str, str, str]:
    """(kind, directory, run directory) for RUN_CHECKPOINT; kind is "final" or "step"."""
    from .checkpoint import TRAINER_STATE, latest_checkpoint

    path = os.path.normpath(path)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"{path} is not a directory; give a run directory, its final/ or a step checkpoint")
    if os.path.exists(os.path.join(path, TRAINER_STATE)):
        return "step", path, os.path.dirname(os.path.dirname(path))
    if os.path.exists(os.path.join(path, "final", "config.json")):
        return "final", os.path.join(path, "final"), path
    if os.path.exists(os.path.join(path, "config.json")) and _run_configs(os.path.dirname(path)):
        return "final", path, os.path.dirname(path)
    step = latest_checkpoint(path)
    if step:
        return "step", step, path
    raise FileNotFoundError(f"{path}: no final/ policy and no complete step checkpoint; give a run directory "
                            "written by `omnivideo-r1 train`, its final/ or one of its checkpoints/step_N")


def _run_configs(run_dir: str) -> list[str]:
    return sorted(glob.glob(os.path.join(run_dir, "config_*.yaml")), key=os.path.getmtime)


def run_config(run_dir: str, stage: str | None = None):
    """The TrainConfig a run saved (config_<stage>.yaml; the newest if the stage is not known)."""
    from ..config import load_config
    from .config import TrainConfig

    configs = _run_configs(run_dir)
    if stage:
        configs = [c for c in configs if os.path.basename(c) == f"config_{stage}.yaml"]
    if not configs:
        raise FileNotFoundError(f"{run_dir}: no config_<stage>.yaml; is this a run directory of `omnivideo-r1 train`?")
    return load_config(TrainConfig, configs[-1])


def start_checkpoint(cfg, run_dir: str) -> str:
    """The checkpoint a run started from: model.path, or the tiny random model it built in its run directory."""
    return cfg.model.path or os.path.join(run_dir, "init_policy")


def release_base(path: str) -> str:
    """Follow a chain of our runs (stage MA started from stage QI's final/, ...) back to the first checkpoint."""
    from ..policy.loading import checkpoint_family

    seen = set()
    while os.path.normpath(path) not in seen:
        seen.add(os.path.normpath(path))
        _, full = checkpoint_family(path)
        parent = os.path.dirname(os.path.normpath(path))
        if full or os.path.basename(os.path.normpath(path)) != "final" or not _run_configs(parent):
            return path
        path = start_checkpoint(run_config(parent), parent)
    return path


def export(run_checkpoint: str, out_dir: str, merge_lora: bool = False, base: str | None = None,
           max_shard_bytes: int = 5 * 2**30) -> dict:
    """Write the export (see module docstring); returns {"kind", "base", "out", "message"}."""
    from ..policy.release_format import copy_side_files, write_release_checkpoint
    from .checkpoint import read_trainer_state

    kind, source, run_dir = locate(run_checkpoint)
    stage = read_trainer_state(source).get("stage") if kind == "step" else None
    cfg = run_config(run_dir, stage)
    start = start_checkpoint(cfg, run_dir)
    base = base or release_base(start)
    if os.path.exists(out_dir) and os.listdir(out_dir):
        raise FileExistsError(f"--out {out_dir} exists and is not empty; give a new directory")
    lora = cfg.model.lora_rank > 0
    if lora and not merge_lora:
        # The adapter applies to the thinker the run started from (for stage MA: stage QI's merged final/).
        os.makedirs(out_dir, exist_ok=True)
        _write_adapter(kind, source, start, cfg, out_dir)
        copy_side_files(start, out_dir, skip={"config.json", "generation_config.json", "omnivideo_r1.json"})
        return {"kind": kind, "base": start, "out": out_dir,
                "message": f"wrote the LoRA adapter of {source} to {out_dir} (peft layout, for the thinker of "
                           f"{start}); pass --merge-lora for a standalone checkpoint"}
    thinker = _merged_thinker(kind, source, start, cfg)
    index = write_release_checkpoint(thinker, base, out_dir, max_shard_bytes)
    shards = len(set(index["weight_map"].values()))
    return {"kind": kind, "base": base, "out": out_dir,
            "message": f"wrote {out_dir}: {len(index['weight_map'])} tensors in {shards} shard(s) in the layout of "
                       f"{base}{' (LoRA merged)' if lora else ''}"}


def _merged_thinker(kind: str, source: str, start: str, cfg):
    """The trained thinker with any LoRA merged, on CPU."""
    if kind == "final":
        from ..policy.loading import load_thinker

        return load_thinker(source, dtype="auto")[0]  # final/ is saved with the adapters already merged
    model = _trained_model(source, start, cfg)
    return model.merge_and_unload() if hasattr(model, "merge_and_unload") else model


def _write_adapter(kind: str, source: str, start: str, cfg, out_dir: str) -> None:
    """The run's trained adapter in peft's standard layout, its base_model_name_or_path naming `start`."""
    import json
    import shutil

    if kind == "step":
        model = _trained_model(source, start, cfg)
        model.peft_config[model.active_adapter].base_model_name_or_path = os.path.abspath(start)
        model.save_pretrained(out_dir)
        return
    adapter_dir = os.path.join(source, "adapter")  # final/ keeps the unmerged adapter next to the merged weights
    if not os.path.exists(os.path.join(adapter_dir, "adapter_config.json")):
        raise FileNotFoundError(f"{source}: no adapter/ (written by runs with LoRA); pass --merge-lora to export the "
                                "merged weights")
    for name in os.listdir(adapter_dir):
        if os.path.isfile(os.path.join(adapter_dir, name)):
            shutil.copy2(os.path.join(adapter_dir, name), os.path.join(out_dir, name))
    with open(os.path.join(out_dir, "adapter_config.json"), encoding="utf-8") as fh:
        adapter_config = json.load(fh)
    adapter_config["base_model_name_or_path"] = os.path.abspath(start)
    with open(os.path.join(out_dir, "adapter_config.json"), "w", encoding="utf-8") as fh:
        json.dump(adapter_config, fh, indent=2)


def _trained_model(step_dir: str, start: str, cfg):
    """The policy model of a step checkpoint: the run's thinker skeleton (with its LoRA) given the saved tensors."""
    from ..policy.loading import empty_thinker
    from ..policy.lora import prepare_trainable
    from .policy_setup import DTYPES

    skeleton = prepare_trainable(empty_thinker(start, DTYPES[cfg.model.dtype], cfg.model.attn_implementation)[0],
                                 cfg.model)
    saved = _step_tensors(step_dir)
    wanted = list(skeleton.state_dict())
    # accelerate saves the prepared module: engine wrappers may add a prefix ("model.", "module.") to every name.
    prefixes = sorted({k[: len(k) - len(wanted[0])] for k in saved if k.endswith(wanted[0])}, key=len)
    prefix = next((p for p in prefixes if all(p + k in saved for k in wanted)), None)
    if prefix is None:
        missing = sorted(k for k in wanted if not any(p + k in saved for p in prefixes or [""]))[:3]
        raise CheckpointError(f"{step_dir}: the saved model does not match the run's policy (e.g. {missing} missing); "
                         "was the run's config changed after training?")
    skeleton.load_state_dict({k: saved[prefix + k] for k in wanted}, assign=True)
    return skeleton


def _step_tensors(step_dir: str) -> dict:
    """All model tensors of an accelerate checkpoint (model.safetensors, or FSDP's sharded checkpoint merged)."""
    from safetensors.torch import load_file

    single = os.path.join(step_dir, "model.safetensors")
    if os.path.exists(single):
        return load_file(single)
    fsdp = os.path.join(step_dir, "pytorch_model_fsdp_0")
    if os.path.isdir(fsdp):
        import tempfile

        from accelerate.utils import merge_fsdp_weights

        with tempfile.TemporaryDirectory(dir=step_dir) as tmp:
            merge_fsdp_weights(fsdp, tmp, safe_serialization=True)
            return load_file(os.path.join(tmp, "model.safetensors"))
    raise FileNotFoundError(f"{step_dir}: no model.safetensors or pytorch_model_fsdp_0/ (accelerate's model files)")
