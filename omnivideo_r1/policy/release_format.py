"""Writing a thinker back into the layout of the released Qwen-Omni checkpoints.

A released checkpoint is the full model: sharded safetensors files with `model.safetensors.index.json`, the
thinker's tensors under `thinker.` in their original names (one tensor per MoE expert; transformers 5 fuses them
only in memory), and the speech generator's tensors (`talker.*`, `code2wav.*` / `token2wav.*`). Writing a trained
thinker into that layout, next to the base checkpoint's other tensors and files, gives a checkpoint that
transformers loads as the original model class, and so do vLLM and lmms-eval.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Iterable

import torch

INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"
THINKER_PREFIX = "thinker."
DEFAULT_SHARD_BYTES = 5 * 2**30
OWN_FILES = {"omnivideo_r1.json"}
"""Files of ours that a released checkpoint does not have (not carried into an export of one)."""


def original_thinker_tensors(thinker) -> dict[str, torch.Tensor]:
    """The thinker's weights under the names a checkpoint stores (transformers' load-time conversions reverted:
    the fused expert tensors split back into one tensor per expert)."""
    from transformers.core_model_loading import revert_weight_conversion

    state = {k: v for k, v in thinker.state_dict().items()}
    return {k: v.contiguous() for k, v in revert_weight_conversion(thinker, state).items()}


def tensor_files(path: str) -> dict[str, str]:
    """{tensor name: file name} of the safetensors checkpoint in `path` (sharded with an index, or one file)."""
    index = os.path.join(path, INDEX_FILE)
    if os.path.exists(index):
        with open(index, encoding="utf-8") as fh:
            return dict(json.load(fh)["weight_map"])
    single = os.path.join(path, SINGLE_FILE)
    if not os.path.exists(single):
        raise FileNotFoundError(f"{path}: no {INDEX_FILE} or {SINGLE_FILE}; not a safetensors checkpoint")
    from safetensors import safe_open

    with safe_open(single, "pt") as fh:
        return {name: SINGLE_FILE for name in fh.keys()}


SAFETENSORS_DTYPES = {"BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32, "F64": torch.float64,
                      "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
                      "BOOL": torch.bool}


def _dtype_and_bytes(path: str, file: str, names: list[str]) -> dict[str, tuple[torch.dtype, int]]:
    from safetensors import safe_open

    out = {}
    with safe_open(os.path.join(path, file), "pt") as fh:
        for name in names:
            part = fh.get_slice(name)
            if part.get_dtype() not in SAFETENSORS_DTYPES:
                raise ValueError(f"{os.path.join(path, file)}: tensor {name} has dtype {part.get_dtype()}, which "
                                 "export does not handle")
            dtype = SAFETENSORS_DTYPES[part.get_dtype()]
            numel = 1
            for n in part.get_shape():
                numel *= n
            out[name] = (dtype, numel * torch.empty((), dtype=dtype).element_size())
    return out


def write_sharded(sizes: list[tuple[str, int]], load, out_dir: str, max_shard_bytes: int) -> dict:
    """Write tensors (`sizes`: [(name, bytes)], `load(names) -> {name: tensor}`) into numbered shards and the index.

    Shards are planned from the sizes first (their names carry the shard count), then filled one at a time, so at
    most one shard's tensors are in memory besides what `load` keeps.
    """
    from safetensors.torch import save_file

    shards: list[list[str]] = [[]]
    used = 0
    for name, nbytes in sizes:
        if shards[-1] and used + nbytes > max_shard_bytes:
            shards.append([])
            used = 0
        shards[-1].append(name)
        used += nbytes
    weight_map = {}
    for i, names in enumerate(shards):
        file = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        save_file(load(names), os.path.join(out_dir, file), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(names, file))
    index = {"metadata": {"total_size": sum(n for _, n in sizes)}, "weight_map": weight_map}
    with open(os.path.join(out_dir, INDEX_FILE), "w", encoding="utf-8") as fh:
        json.dump(index, fh, indent=2, sort_keys=True)
    return index


def copy_side_files(base_dir: str, out_dir: str, skip: Iterable[str] = ()) -> list[str]:
    """Copy the base checkpoint's non-weight files (config, tokenizer, processor, chat template, ...); returns them."""
    weights = set(tensor_files(base_dir).values()) | {INDEX_FILE}
    copied = []
    for name in sorted(os.listdir(base_dir)):
        src = os.path.join(base_dir, name)
        if name in weights or name in set(skip) or not os.path.isfile(src):
            continue
        shutil.copy2(src, os.path.join(out_dir, name))
        copied.append(name)
    return copied


def write_release_checkpoint(thinker, base_dir: str, out_dir: str,
                             max_shard_bytes: int = DEFAULT_SHARD_BYTES) -> dict:
    """Write `thinker` into `out_dir` in `base_dir`'s layout; returns the written index.

    Full base (a released Omni checkpoint): the thinker's tensors under `thinker.` in original names and each in the
    dtype the base stores it in, the base's other tensors (talker, code2wav / token2wav) copied unchanged, and the
    base's config, tokenizer and processor files. Thinker-only base: the same without the prefix and speech
    generator. The thinker must have exactly the base thinker's tensor names and shapes.
    """
    from safetensors import safe_open

    os.makedirs(out_dir, exist_ok=True)
    base_files = tensor_files(base_dir)
    full = any(name.startswith(THINKER_PREFIX) for name in base_files)
    prefix = THINKER_PREFIX if full else ""
    trained = {prefix + k: v for k, v in original_thinker_tensors(thinker).items()}
    base_thinker = {k for k in base_files if k.startswith(prefix)} if full else set(base_files)
    if set(trained) != base_thinker:
        extra, missing = sorted(set(trained) - base_thinker), sorted(base_thinker - set(trained))
        raise ValueError(f"the trained thinker does not match the base checkpoint {base_dir}: {len(missing)} base "
                         f"tensor(s) missing (e.g. {missing[:2]}), {len(extra)} unknown (e.g. {extra[:2]}); export "
                         "against the checkpoint the run started from (--base)")
    by_file: dict[str, list[str]] = {}
    for name, file in base_files.items():
        by_file.setdefault(file, []).append(name)
    info = {}
    for file, names in by_file.items():
        info.update(_dtype_and_bytes(base_dir, file, names))
    sizes = [(name, info[name][1]) for name in sorted(base_files)]

    def load(names: list[str]) -> dict[str, torch.Tensor]:
        out = {}
        for name in names:
            if name in trained:
                out[name] = trained[name].detach().to("cpu", info[name][0]).contiguous()
            else:
                with safe_open(os.path.join(base_dir, base_files[name]), "pt") as fh:
                    out[name] = fh.get_tensor(name)
        return out

    index = write_sharded(sizes, load, out_dir, max_shard_bytes)
    copy_side_files(base_dir, out_dir, skip=OWN_FILES if full else ())
    return index
