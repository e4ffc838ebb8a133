"""`omnivideo-r1 plan --config RECIPE [key=value ...] [--gpus N] [--gpu-mem-gib G] [--json]`: will it fit?

Builds the thinker of `model.path` on the meta device (a directory with only config.json is enough), applies the
recipe's frozen encoders and LoRA exactly as training does (policy/lora.py), reads the sharding from an accelerate
config (default: the shipped FSDP2 config), and estimates the per-GPU memory of a GSPO step by component
(train/memory_model.py; formulas and sources in docs/memory-planning.md): persistent state, plus the larger of the
policy update (activations + chunked logits for one forward of `micro_batch` sequences) and the rollout (KV cache
of the G completions of rollout.hf_prompts_per_batch prompts, one under FSDP / ZeRO-3; none with
rollout.backend=vllm, whose server has its own GPUs). It also searches the largest micro-batch that fits.
"""

from __future__ import annotations

import argparse
import json
import os

from ..config import RECIPE_DIR

DEFAULT_ACCELERATE_CONFIG = os.path.join(RECIPE_DIR, "accelerate", "fsdp.yaml")
PROMPT_TEXT_TOKENS = 512
"""Allowance for the prompt's text (system prompt, instructions, question, options, chat and media markers)."""
AUDIO_TOKENS_PER_SECOND = {"qwen3_omni": 13, "qwen2_5_omni": 25}
"""Audio encoder output rate: Qwen3-Omni 13 tokens per 100 mel frames (1 s), Qwen2.5-Omni 100 / 4 per second."""
OVERHEAD_GIB = 3.0
"""Fixed allowance for the CUDA context, NCCL buffers and allocator fragmentation."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="recipe YAML path or shipped recipe name")
    parser.add_argument("overrides", nargs="*", help="key=value overrides, e.g. model.path=/ckpt/Qwen3-Omni-30B-A3B")
    parser.add_argument("--gpus", type=int, default=8, help="GPUs the model is sharded over")
    parser.add_argument("--gpu-mem-gib", type=float, default=80.0, help="memory of one GPU")
    parser.add_argument("--accelerate-config", default=DEFAULT_ACCELERATE_CONFIG,
                        help="accelerate launch config giving the engine and its wrap unit (default: fsdp.yaml)")
    parser.add_argument("--prompt-tokens", type=int, default=0,
                        help="prompt length in tokens (default: estimated from the data.* media settings)")
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")


def run(args: argparse.Namespace) -> int:
    from ..config import load_config
    from ..errors import UsageError
    from .config import TrainConfig

    # A bad recipe, model path or argument raises a user error: one line via omnivideo_r1/cli.py.
    if args.gpus < 1 or args.gpu_mem_gib <= 0:
        raise UsageError(f"--gpus must be >= 1 and --gpu-mem-gib > 0 (got {args.gpus}, {args.gpu_mem_gib})")
    cfg = load_config(TrainConfig, args.config, args.overrides)
    if not cfg.model.path:
        raise UsageError("model.path is empty: give the checkpoint (or a directory with its config.json)")
    result = plan(cfg, args.gpus, args.gpu_mem_gib, args.accelerate_config, args.prompt_tokens or None)
    print(json.dumps(result, indent=2) if args.json else describe(result))
    return 0


def engine_settings(path: str) -> dict:
    """{"engine": "fsdp" | "zero3" | "ddp", "wrap": [class names], "checkpointing": bool} from an accelerate config."""
    import yaml

    with open(path, encoding="utf-8") as fh:
        conf = yaml.safe_load(fh) or {}
    kind = conf.get("distributed_type", "NO")
    fsdp = conf.get("fsdp_config") or {}
    if kind == "FSDP":
        wrap = [c.strip() for c in str(fsdp.get("fsdp_transformer_layer_cls_to_wrap", "")).split(",") if c.strip()]
        return {"engine": "fsdp", "wrap": wrap, "checkpointing": bool(fsdp.get("fsdp_activation_checkpointing"))}
    if kind == "DEEPSPEED" and (conf.get("deepspeed_config") or {}).get("zero_stage") == 3:
        return {"engine": "zero3", "wrap": [], "checkpointing": False}
    return {"engine": "ddp", "wrap": [], "checkpointing": False}


def text_shape(thinker_config):
    from .memory_model import TextShape

    t = thinker_config.get_text_config()
    experts = int(getattr(t, "num_experts", 0) or 0)
    return TextShape(layers=t.num_hidden_layers, hidden=t.hidden_size, heads=t.num_attention_heads,
                     kv_heads=t.num_key_value_heads, head_dim=getattr(t, "head_dim", None) or
                     t.hidden_size // t.num_attention_heads, vocab=t.vocab_size,
                     ffn=t.moe_intermediate_size if experts else t.intermediate_size, experts=experts,
                     experts_per_token=int(getattr(t, "num_experts_per_tok", 0) or 0) if experts else 0,
                     qk_norm=experts > 0 or "qwen3" in t.model_type)


def prompt_tokens_estimate(cfg, thinker_config, family: str) -> int:
    """Video + audio + text tokens of a clip long enough to give data.max_frames frames at data.fps."""
    vision = thinker_config.vision_config
    per_frame_pair = cfg.data.max_pixels // (vision.patch_size * vision.spatial_merge_size) ** 2
    video = -(-cfg.data.max_frames // vision.temporal_patch_size) * per_frame_pair
    audio = int(cfg.data.max_frames / cfg.data.fps * AUDIO_TOKENS_PER_SECOND[family])
    return video + audio + PROMPT_TEXT_TOKENS


def _param_bytes(module, element_size: int) -> int:
    return sum(p.numel() for p in module.parameters()) * element_size


def sharding_units(model, engine: dict, element_size: int) -> tuple[int, int, list[str]]:
    """(largest wrap unit, parameters outside any wrap unit, warnings), in bytes of the compute dtype (the
    engine gathers parameters in it, fp32 LoRA weights included, under the mixed-precision policy).

    FSDP2 as accelerate applies it: each module of a wrap class is a unit; the input embedding is its own unit; the
    final norm and LM head form a unit kept gathered from the forward through the backward; everything else
    (the vision and audio encoders, unless wrapped) is the root unit, also kept gathered. ZeRO-3 gathers module by
    module: its largest unit is the largest decoder layer and nothing stays gathered.
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    layers = list(base.get_decoder().layers)
    if engine["engine"] != "fsdp":
        return max(_param_bytes(m, element_size) for m in layers), 0, []
    wrapped = [m for m in base.modules() if type(m).__name__ in engine["wrap"]]
    warnings = []
    if not wrapped:
        warnings.append(f"no module of the wrap class(es) {engine['wrap']} in this model: FSDP would keep all its "
                        f"layers in one unit; set fsdp_transformer_layer_cls_to_wrap: {type(layers[0]).__name__}")
    embed = _param_bytes(base.get_input_embeddings(), element_size)
    largest = max((_param_bytes(m, element_size) for m in wrapped), default=0)
    rest = _param_bytes(base, element_size) - sum(_param_bytes(m, element_size) for m in wrapped) - embed
    return largest, rest, warnings


def plan(cfg, gpus: int, gpu_mem_gib: float, accelerate_config: str = DEFAULT_ACCELERATE_CONFIG,
         prompt_tokens: int | None = None) -> dict:
    """The plan as a dict (keys documented in docs/memory-planning.md)."""
    from ..algo.logprobs import tokens_per_chunk
    from ..policy.forward import MAX_LOGIT_ELEMENTS
    from ..policy.loading import empty_thinker
    from ..policy.lora import prepare_trainable, trainable_by_module
    from . import memory_model as mm
    from .policy_setup import DTYPES

    model, family = empty_thinker(cfg.model.path, DTYPES[cfg.model.dtype], cfg.model.attn_implementation)
    shape, thinker_config = text_shape(model.config), model.config
    model = prepare_trainable(model, cfg.model)
    by_module = trainable_by_module(model)
    trainable = sum(by_module.values())
    total = sum(p.numel() for p in model.parameters())
    engine = engine_settings(accelerate_config)
    sharded = engine["engine"] in ("fsdp", "zero3")
    shard = gpus if sharded else 1
    largest_unit, unsharded, warnings = sharding_units(model, engine, DTYPES[cfg.model.dtype].itemsize)
    frozen_bytes = sum(p.numel() * p.element_size() for p in model.parameters() if not p.requires_grad)
    G = cfg.rollout.rollouts_per_prompt
    prompt = prompt_tokens or prompt_tokens_estimate(cfg, thinker_config, family)
    completion = cfg.rollout.max_new_tokens
    checkpointing = cfg.model.gradient_checkpointing or engine["checkpointing"]
    lora = cfg.model.lora_rank > 0
    chunk = tokens_per_chunk(shape.vocab, MAX_LOGIT_ELEMENTS)  # what policy/forward.py scores completions with
    persistent = {
        "weights_shard": frozen_bytes / shard,
        # Two units in flight: the one computing and the next one being gathered (FSDP2's prefetch).
        "gathered_layer": 2 * largest_unit,
        "unsharded_modules": unsharded,
        # fp32 master copy (accelerate upcasts trainable parameters under mixed precision) + fp32 grads + AdamW m, v.
        "lora_grads_optimizer": trainable * 16 / shard,
        "overhead": OVERHEAD_GIB * mm.GIB,
    }

    def update_bytes(micro_batch: int) -> dict:
        if cfg.gspo.shared_prefix:  # one packed row: the prompt once, then the micro-batch's completions
            rows, tokens = 1, prompt + micro_batch * completion
            extra = mm.shared_prefix_extra_bytes(shape, micro_batch, prompt, completion)
        else:
            rows, tokens, extra = micro_batch, prompt + completion, 0
        return {"activations": mm.activation_bytes(shape, rows, tokens, checkpointing, lora_attention=lora,
                                                    lora_experts=cfg.model.lora_experts, full_finetune=not lora,
                                                    extra_per_layer=extra),
                "logits": mm.logits_bytes(shape.vocab, chunk, micro_batch * completion, shape.hidden)}

    # With rollout.backend=vllm the rollouts run on the server's GPUs: the trainer's GPUs hold no KV cache.
    # backend=hf decodes hf_prompts_per_batch groups together, one under a sharded engine (rollout_backends.py);
    # each prompt's keys and values are held once for its G rows (policy/prefix_attention.py), each row's own tokens
    # apart.
    prompts_per_process = -(-cfg.rollout.prompts_per_step // gpus)
    prompts_per_batch = 1 if sharded else min(cfg.rollout.hf_prompts_per_batch, prompts_per_process)
    kv = 0 if cfg.rollout.backend == "vllm" else (mm.kv_cache_bytes(shape, prompts_per_batch, prompt)
                                                  + mm.kv_cache_bytes(shape, prompts_per_batch * G, completion))

    def total_bytes(micro_batch: int) -> float:
        return sum(persistent.values()) + max(sum(update_bytes(micro_batch).values()), kv)

    limit = gpu_mem_gib * mm.GIB
    micro_batch = G  # the trainer scores one prompt's G completions per forward/backward
    largest_fit = 0
    while largest_fit < 64 * G and total_bytes(largest_fit + 1) <= limit:
        largest_fit += 1
    memory = {k: mm.gib(v) for k, v in {**persistent, **update_bytes(micro_batch), "kv_cache": kv}.items()}
    memory["total"] = mm.gib(total_bytes(micro_batch))
    return {
        "model": cfg.model.path, "family": family, "engine": engine["engine"], "gpus": gpus,
        "gpu_mem_gib": gpu_mem_gib, "total_parameters": total, "trainable_parameters": trainable,
        "trainable_by_module": by_module, "prompt_tokens": prompt, "completion_tokens": completion,
        "rollouts_per_prompt": G, "micro_batch": micro_batch, "gradient_checkpointing": checkpointing,
        "logit_chunk_tokens": chunk, "memory_gib": memory, "fits": total_bytes(micro_batch) <= limit,
        "max_micro_batch": largest_fit, "warnings": warnings,
    }


def describe(result: dict) -> str:
    """The plan as text for a terminal."""
    lines = [f"{result['model']} ({result['family']}), {result['engine']} over {result['gpus']} GPU(s) of "
             f"{result['gpu_mem_gib']:g} GiB",
             f"parameters: {result['total_parameters']:,} total, {result['trainable_parameters']:,} trainable",
             "trainable by module: " + ", ".join(f"{k} {v:,}" for k, v in result["trainable_by_module"].items()),
             f"sequence: {result['prompt_tokens']:,} prompt + {result['completion_tokens']:,} completion tokens, "
             f"G={result['rollouts_per_prompt']}, micro-batch {result['micro_batch']} sequences, gradient "
             f"checkpointing {'on' if result['gradient_checkpointing'] else 'off'}",
             "per-GPU memory (GiB):"]
    lines += [f"  {k:<22}{v:>10.2f}" for k, v in result["memory_gib"].items()]
    verdict = "fits" if result["fits"] else "does NOT fit"
    lines.append(f"{verdict}; largest micro-batch that fits: {result['max_micro_batch']}")
    lines += [f"warning: {w}" for w in result["warnings"]]
    return "\n".join(lines)
