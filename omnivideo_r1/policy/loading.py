"""Reading a thinker from a checkpoint directory: ours (thinker only) or a released Qwen-Omni one (full model).

A released checkpoint (Qwen2.5-Omni, Qwen3-Omni) is the full model: sharded safetensors with an index, the thinker's
tensors under `thinker.` in their original (unfused, one tensor per expert) names, plus the speech generator's
(`talker.*`, `code2wav.*` / `token2wav.*`), which a thinker-only loader skips. transformers fuses the experts at load
time. Processes of a sharded run that get their weights from another process build the thinker on the meta device.
"""

from __future__ import annotations

import json
import os
from typing import Any

import torch

from ..errors import CheckpointError

# config.json model_type -> (family, is a full Omni checkpoint whose thinker is a sub-model)
MODEL_TYPES = {
    "qwen3_omni_moe_thinker": ("qwen3_omni", False),
    "qwen3_omni_moe": ("qwen3_omni", True),
    "qwen2_5_omni_thinker": ("qwen2_5_omni", False),
    "qwen2_5_omni": ("qwen2_5_omni", True),
}


def checkpoint_family(path: str) -> tuple[str, bool]:
    """(family, is a full Omni checkpoint) from `path`/config.json; a clear error for anything else."""
    config_path = os.path.join(path, "config.json")
    if not os.path.exists(config_path):
        raise FileNotFoundError(f"{config_path} is missing: give a checkpoint directory "
                                "(build a tiny one with omnivideo_r1.policy.tiny.build_tiny_policy_files)")
    try:
        with open(config_path, encoding="utf-8") as fh:
            model_type = json.load(fh).get("model_type")
    except (ValueError, AttributeError) as exc:  # not JSON, or JSON that is not an object
        raise CheckpointError(f"{config_path}: not a valid model config ({exc})") from None
    if model_type not in MODEL_TYPES:
        raise CheckpointError(f"{config_path}: model_type {model_type!r} is not a Qwen-Omni model; "
                              f"supported: {sorted(MODEL_TYPES)}")
    return MODEL_TYPES[model_type]


def thinker_class_and_config(path: str):
    """(transformers thinker class, thinker config, family, full) for the checkpoint (or bare config.json) at path."""
    family, full = checkpoint_family(path)
    if family == "qwen3_omni":
        from transformers import Qwen3OmniMoeConfig as full_cls
        from transformers import Qwen3OmniMoeThinkerConfig as thinker_config_cls
        from transformers import Qwen3OmniMoeThinkerForConditionalGeneration as thinker_cls
    else:
        from transformers import Qwen2_5OmniConfig as full_cls
        from transformers import Qwen2_5OmniThinkerConfig as thinker_config_cls
        from transformers import Qwen2_5OmniThinkerForConditionalGeneration as thinker_cls
    config = full_cls.from_pretrained(path).thinker_config if full else thinker_config_cls.from_pretrained(path)
    return thinker_cls, config, family, full


def empty_thinker(path: str, dtype: torch.dtype = torch.bfloat16, attn_implementation: str = "sdpa"):
    """The thinker described by `path`/config.json with parameters on the meta device and real buffers (rotary
    tables): no weight memory, and nothing but config.json is read."""
    from accelerate import init_empty_weights

    thinker_cls, config, family, _ = thinker_class_and_config(path)
    with init_empty_weights(include_buffers=False):
        model = thinker_cls._from_config(config, dtype=dtype, attn_implementation=attn_implementation)
    return model.eval(), family


def load_thinker(path: str, dtype: torch.dtype | str = torch.float32, attn_implementation: str = "sdpa",
                 load_weights: bool = True):
    """(thinker in eval mode on CPU, family). load_weights=False: `empty_thinker` plus the generation config.
    dtype "auto": the dtype the checkpoint stores.

    A checkpoint whose tensors do not cover the thinker exactly (missing, unknown or mis-shaped names) is an error:
    transformers would otherwise initialise the missing weights randomly and only warn.
    """
    if not load_weights:
        from transformers import GenerationConfig

        model, family = empty_thinker(path, dtype, attn_implementation)
        if os.path.exists(os.path.join(path, "generation_config.json")):
            model.generation_config = GenerationConfig.from_pretrained(path)
        return model, family
    thinker_cls, config, family, full = thinker_class_and_config(path)
    kwargs: dict[str, Any] = dict(config=config, dtype=dtype, attn_implementation=attn_implementation,
                                  output_loading_info=True)
    if full:
        # The thinker's tensors sit under "thinker."; talker / code2wav / token2wav tensors are left unread.
        kwargs["key_mapping"] = {r"^thinker\.": ""}
    from safetensors import SafetensorError

    try:
        model, info = thinker_cls.from_pretrained(path, **kwargs)
    except (OSError, SafetensorError) as exc:  # no weight files, or truncated / garbage ones
        raise CheckpointError(f"{path}: cannot load the model weights ({str(exc).splitlines()[0]}); "
                              "give a complete checkpoint folder") from exc
    problems = {k: sorted(map(str, info[k])) for k in ("missing_keys", "unexpected_keys", "mismatched_keys")
                if info.get(k)}
    if problems:
        detail = "; ".join(f"{k.replace('_', ' ')}: {len(v)} ({', '.join(v[:3])}{', ...' if len(v) > 3 else ''})"
                           for k, v in problems.items())
        raise CheckpointError(f"{path}: the checkpoint's tensors do not match the {thinker_cls.__name__} its config.json "
                         f"describes ({detail}); is the checkpoint complete and unmodified?")
    if full:
        # transformers saves by reverting the renames it applied at load time, ours included; without this the
        # thinker alone would be saved with the full model's "thinker." prefix.
        model.__dict__.pop("_weight_conversions", None)
    return model.eval(), family
