"""What the policy update trains: frozen encoders, LoRA on the language model only, and the check that proves it.

The paper (and the released recipe) adapts only the language model; the vision and audio encoders stay frozen.
Two peft behaviours make the obvious configuration wrong for the Qwen-Omni thinkers:
- bare target names (`q_proj`, `k_proj`, `v_proj`) also match the audio encoder's own `self_attn.{q,k,v}_proj`, and
  PEFT's own freezing would then train adapters inside the "frozen" encoder;
- for transformers-5 MoE models (Qwen3-Omni), peft resolves a regex `target_modules` to its leaf names, so a regex
  restricted to the language model is widened back to every module with those names.
So targets are resolved here to explicit module names under the language model, and after wrapping every trainable
parameter is checked to lie outside the frozen encoders. The MoE experts are fused 3-D parameters in transformers 5;
they get adapters only through peft's parameter targeting (`lora_experts`).
"""

from __future__ import annotations

from typing import Callable

from ..config import ConfigError

ENCODERS = {"vision": "visual", "audio": "audio_tower"}
LANGUAGE_MODEL = "language_model"
EXPERT_PARAMETERS = ("mlp.experts.gate_up_proj", "mlp.experts.down_proj")
"""The fused expert weights of the Qwen3-Omni MoE layers (transformers 5 names), targeted with lora_experts."""


def freeze_encoders(model, freeze_vision: bool, freeze_audio: bool) -> list[str]:
    """Freeze the vision/audio encoders (the released recipe trains only the language model); returns their names.

    The encoders sit at different depths across transformers versions and wrappers (thinker.visual,
    thinker.model.visual, base_model.model...), so they are found by their attribute name anywhere in the tree.
    """
    wanted = {ENCODERS["vision"]} if freeze_vision else set()
    wanted |= {ENCODERS["audio"]} if freeze_audio else set()
    frozen = []
    for name, module in model.named_modules():
        if name.rsplit(".", 1)[-1] in wanted and not any(name.startswith(f + ".") for f in frozen):
            module.requires_grad_(False)
            frozen.append(name)
    missing = wanted - {n.rsplit(".", 1)[-1] for n in frozen}
    if missing:
        raise ConfigError(f"model has no {sorted(missing)} module to freeze; set "
                          "model.freeze_vision/freeze_audio=false")
    return frozen


def language_model_targets(model, leaf_names: list[str]) -> list[str]:
    """Full names of the modules under the language model whose last name component is in `leaf_names`."""
    wanted = set(leaf_names)
    targets = [name for name, _ in model.named_modules()
               if name.rsplit(".", 1)[-1] in wanted and f".{LANGUAGE_MODEL}." in f".{name}."]
    if not targets:
        names = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules()
                        if f".{LANGUAGE_MODEL}." in f".{n}." and type(m).__name__ == "Linear"})
        raise ConfigError(f"model.lora_target_modules={list(leaf_names)} matches no module of the language model; "
                          f"its linear layers are named {names}")
    return targets


def has_fused_experts(model) -> bool:
    return any(name.endswith(EXPERT_PARAMETERS) for name, _ in model.named_parameters())


def lora_config(model, rank: int, alpha: int, dropout: float, target_modules: list[str], experts: bool):
    """The peft LoraConfig adapting the language model's `target_modules` (and its MoE experts if `experts`)."""
    from peft import LoraConfig

    targets = language_model_targets(model, target_modules)
    kwargs = {}
    if experts:
        if not has_fused_experts(model):
            raise ConfigError("model.lora_experts=true but this model has no fused MoE experts "
                              f"({', '.join(EXPERT_PARAMETERS)}); set model.lora_experts=false")
        kwargs["target_parameters"] = list(EXPERT_PARAMETERS)
    return LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets, **kwargs)


def component_of(name: str) -> str:
    """The thinker component a parameter belongs to: audio_tower, visual, language_model, lm_head, ...

    Wrapper prefixes (peft's `base_model.model.`, DDP's `module.`) and the thinker's `model.` container are skipped.
    """
    parts = name.split(".")
    for prefix in (["module"], ["base_model", "model"]):
        if parts[: len(prefix)] == prefix:
            parts = parts[len(prefix):]
    if parts[0] == "model" and len(parts) > 2:
        return parts[1]
    return parts[0]


def trainable_by_module(model) -> dict[str, int]:
    """Trainable parameter count per thinker component (every component listed, frozen ones with 0)."""
    counts: dict[str, int] = {}
    for name, param in model.named_parameters():
        key = component_of(name)
        counts[key] = counts.get(key, 0) + (param.numel() if param.requires_grad else 0)
    return counts


def check_encoders_frozen(model, encoders: list[str]) -> None:
    """Raise if any trainable parameter lives in one of `encoders` (names like "audio_tower", "visual")."""
    for name, param in model.named_parameters():
        if param.requires_grad and component_of(name) in encoders:
            raise ConfigError(
                f"parameter {name} is trainable but its encoder ({component_of(name)}) must stay frozen: LoRA "
                "targets must lie in the language model (model.lora_target_modules) and model.freeze_vision / "
                "model.freeze_audio must be true for encoders that are not trained")


def prepare_trainable(model, mcfg, log: Callable[[str], None] | None = None):
    """Freeze the encoders, add LoRA to the language model (mcfg.lora_rank > 0), check, log; returns the model.

    `mcfg` is a train.config.ModelConfig (lora_*, freeze_*). With LoRA the result is a peft model (saveable with
    peft's standard `save_pretrained`); without, the thinker itself with its encoders frozen.
    """
    freeze_encoders(model, mcfg.freeze_vision, mcfg.freeze_audio)
    if mcfg.lora_rank > 0:
        from peft import get_peft_model

        # A thinker built on the meta device (planning, or a process that receives its shard later) gets its
        # adapters on the meta device too, instead of allocating and initialising them on CPU first.
        on_meta = any(p.is_meta for p in model.parameters())
        model = get_peft_model(model, lora_config(model, mcfg.lora_rank, mcfg.lora_alpha, mcfg.lora_dropout,
                                                  mcfg.lora_target_modules, mcfg.lora_experts),
                               low_cpu_mem_usage=on_meta)
    frozen = [ENCODERS[k] for k, flag in (("vision", mcfg.freeze_vision), ("audio", mcfg.freeze_audio)) if flag]
    check_encoders_frozen(model, frozen)
    if log is not None:
        log(describe_trainable(model))
    return model


def describe_trainable(model) -> str:
    by_module = trainable_by_module(model)
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(by_module.values())
    parts = ", ".join(f"{k} {v:,}" for k, v in by_module.items())
    return f"trainable parameters: {trainable:,} of {total:,} ({100 * trainable / max(1, total):.3f}%): {parts}"
