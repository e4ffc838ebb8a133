"""Plumbing the training driver calls: policy loading (tiny or real, frozen encoders, LoRA), judge, optimizer and
schedule, reference log-probs."""

from __future__ import annotations

import copy
import os

import torch

from ..algo.schedule import warmup_cosine
from ..judges.config import JudgeConfig, build_judge
from .config import ModelConfig, OptimConfig, TrainConfig

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def load_policy(cfg: TrainConfig, accelerator):
    """The policy to train: cfg.model.path, or a tiny random real-class model built once into the run directory.

    Encoders frozen, LoRA on the language model (policy/lora.py), trainable parameters per component printed.
    Under FSDP with `fsdp_cpu_ram_efficient_loading`, only the main process reads the weights (on CPU); the others
    build the thinker on the meta device and receive their shards when accelerate prepares the model.
    """
    from ..policy.lora import prepare_trainable
    from ..policy.omni import OmniPolicy
    from ..policy.tiny import TinyOmniSpec, build_tiny_policy_files

    mcfg: ModelConfig = cfg.model
    path = mcfg.path
    if not path:
        path = os.path.join(cfg.run.out_dir, "init_policy")
        if accelerator.is_main_process and not os.path.exists(os.path.join(path, "config.json")):
            build_tiny_policy_files(path, TinyOmniSpec(family=mcfg.tiny_family, size=mcfg.tiny_size, seed=cfg.run.seed))
        accelerator.wait_for_everyone()
    if not os.path.isdir(path):
        raise FileNotFoundError(f"model.path={path!r} is not a directory; give a checkpoint directory or leave it "
                                "empty for a tiny random model")
    placement = weight_placement(accelerator)
    if placement == "main_process_only" and cfg.gspo.beta > 0 and mcfg.lora_rank == 0:
        raise ValueError("gspo.beta > 0 without LoRA keeps a full reference copy of the thinker on every process, "
                         "which FSDP's cpu_ram_efficient_loading cannot shard; use model.lora_rank > 0 (the "
                         "reference is the adapter switched off) or fsdp_cpu_ram_efficient_loading: false")
    policy = OmniPolicy.from_pretrained(
        path, dtype=DTYPES[mcfg.dtype], attn_implementation=mcfg.attn_implementation,
        device=str(accelerator.device) if placement == "device" else None,
        load_weights=placement != "main_process_only" or accelerator.is_main_process)
    policy.model = prepare_trainable(policy.model, mcfg, log=accelerator.print)
    if mcfg.gradient_checkpointing:
        policy.model.gradient_checkpointing_enable()
    if cfg.gspo.beta > 0 and mcfg.lora_rank == 0:
        # Without LoRA the reference is a frozen copy of the initial weights (with LoRA: the adapter switched off).
        policy.reference_model = copy.deepcopy(policy.model).eval().requires_grad_(False)
    return policy


def weight_placement(accelerator) -> str:
    """Where the thinker's weights go before `accelerator.prepare`:
    "device": every process loads them onto its device (single process, DDP);
    "cpu": every process loads them on CPU and the engine places them (DeepSpeed ZeRO-3 partitions while loading);
    "main_process_only": FSDP with cpu_ram_efficient_loading, where accelerate broadcasts the main process's
    weights shard by shard, so the other processes hold none."""
    from accelerate.utils import DistributedType

    if accelerator.distributed_type == DistributedType.FSDP:
        plugin = accelerator.state.fsdp_plugin
        return "main_process_only" if plugin is not None and plugin.cpu_ram_efficient_loading else "cpu"
    if accelerator.distributed_type == DistributedType.DEEPSPEED:
        return "cpu"
    return "device"


def save_policy(policy, out_dir: str, state_dict: dict[str, torch.Tensor] | None = None) -> None:
    """Save a loadable checkpoint; LoRA adapters are merged so the result loads like the base model, and also kept
    unmerged in `out_dir/adapter` (peft's standard layout: adapter_config.json + adapter_model.safetensors).

    state_dict: full weights under `policy.model`'s names (train/distributed.py: full_state_dict), required when the
    live parameters are sharded (FSDP2, ZeRO-3); they are saved instead of the module's own tensors.
    """
    model = policy.model
    if hasattr(model, "merge_and_unload"):
        model.save_pretrained(os.path.join(out_dir, "adapter"), state_dict=state_dict)
        policy.model = _merged_lora_copy(model, state_dict)
        state_dict = None
    try:
        policy.save_pretrained(out_dir, state_dict=state_dict)
    finally:
        policy.model = model


def _merged_lora_copy(peft_model, state_dict: dict[str, torch.Tensor] | None):
    """A plain thinker with the adapters merged in, from the live model or from a full PEFT state dict."""
    if state_dict is None:
        return copy.deepcopy(peft_model).merge_and_unload()
    from peft import get_peft_model

    base = peft_model.get_base_model()
    # The skeleton is built on the meta device and takes the gathered tensors as its parameters (no second copy).
    with torch.device("meta"):
        clone = get_peft_model(type(base)(base.config), peft_model.peft_config[peft_model.active_adapter])
    clone.load_state_dict(state_dict, assign=True)
    return clone.merge_and_unload()


def freeze_encoders(model, mcfg: ModelConfig) -> list[str]:
    """Freeze the encoders that mcfg.freeze_vision / freeze_audio name (see policy.lora.freeze_encoders)."""
    from ..policy.lora import freeze_encoders as freeze

    return freeze(model, mcfg.freeze_vision, mcfg.freeze_audio)


def reference_logprobs(policy, cfg: TrainConfig, prompts, completions):
    ids = [c.token_ids for c in completions]
    kw = dict(temperature=cfg.rollout.temperature, share_prefix=cfg.gspo.shared_prefix)
    with torch.no_grad():
        if cfg.model.lora_rank > 0:
            with policy.model.disable_adapter():
                return policy.logprobs(prompts, ids, **kw)[0]
        return policy.logprobs(prompts, ids, model=policy.reference_model, **kw)[0]


def judge_for_rewards(jcfg: JudgeConfig, weights: dict[str, float]):
    """The judge for the intent reward (and a soft answer score); None when no selected reward needs one."""
    if "intent" not in weights and "answer" not in weights:
        return None
    return build_judge(jcfg)


def build_optimizer_and_schedule(model, ocfg: OptimConfig, total_steps: int):
    """AdamW over trainable parameters; linear warm-up then cosine decay from lr to min_lr, stepped once per rollout step."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("no trainable parameters: check model.lora_* and model.freeze_* settings")
    optimizer = torch.optim.AdamW(params, lr=ocfg.lr, betas=tuple(ocfg.adam_betas), weight_decay=ocfg.weight_decay)
    warmup = max(1, int(round(ocfg.warmup_fraction * total_steps))) if ocfg.warmup_fraction > 0 else 0
    floor = ocfg.min_lr / ocfg.lr if ocfg.lr > 0 else 0.0

    return optimizer, torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_cosine(step, warmup, total_steps - warmup, floor))
