"""Per-GPU memory of a GSPO step, component by component, from the model's shape (arithmetic on plain numbers).

The formulas and their sources are explained in docs/memory-planning.md. Activation memory counts, per token and
per decoder layer, the tensors autograd keeps for the backward pass (the method of Korthikanti et al. 2022,
"Reducing Activation Recomputation in Large Transformer Models", sec. 4), itemised for the Qwen-Omni decoder layer
as transformers 5 runs it: RMSNorm keeps its float32 input, a memory-efficient attention kernel (FlashAttention,
Dao et al. 2022) keeps q, k, v, its output and the log-sum-exp instead of the (T x T) scores, frozen linear layers
keep nothing, LoRA keeps its input, and an MoE layer keeps per routed (token, expert) pair the gate/up output, the
SiLU output and the down-projection output. tests/test_plan.py measures the saved tensors of a real (small) layer
and checks these counts.
"""

from __future__ import annotations

from dataclasses import dataclass

GIB = 2**30
ACT = 2
"""Bytes per activation element: bf16 compute (FSDP's mixed-precision policy casts LoRA weights to bf16 too)."""


@dataclass
class TextShape:
    """The language model's dimensions (from the thinker's text config)."""

    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    ffn: int
    """Intermediate size of the dense MLP, or of one expert in an MoE layer."""
    experts: int = 0
    """Routed experts per MoE layer (0: dense MLP)."""
    experts_per_token: int = 0
    qk_norm: bool = False
    """Qwen3-style RMSNorm on q and k before the rotary embedding."""


def saved_bytes_per_token(s: TextShape, lora_attention: bool, lora_experts: bool, full_finetune: bool = False) -> int:
    """Bytes one decoder layer keeps for backward per token (bf16 compute, frozen base weights unless full_finetune).

    Itemised (elements x bytes): both RMSNorms keep their float32 input (4h each, + 4 for the 1/rms); q/k norm the
    same for q and k; attention keeps rotated q, k, v and its output (2 bytes each) and the float32 log-sum-exp per
    head (o_proj's input is the attention output itself); LoRA on q/k/v/o keeps the normed input once (2h) and its
    rank-r intermediates (ignored: r << h); the router keeps its float32 softmax (4E) and top-k bookkeeping; each
    routed (token, expert) pair keeps the gate/up output (2I), SiLU output (I) and down output (h), a dense MLP the
    gate/up output and SiLU output (3I). Expert LoRA adds the gathered expert input (h) and the down input (I).
    Full fine-tuning keeps every linear layer's input (attention input 2h, o_proj input already kept, MLP input h
    per routed pair or once, down input I).
    """
    h, q, kv = s.hidden, s.heads * s.head_dim, s.kv_heads * s.head_dim
    norms = 2 * (4 * h + 4)
    qk_norm = (4 * (q + kv) + 4 * (s.heads + s.kv_heads)) if s.qk_norm else 0
    attention = ACT * (q + 2 * kv) + ACT * q + 4 * s.heads
    attention_inputs = ACT * h if (lora_attention or full_finetune) else 0
    if s.experts:
        k = s.experts_per_token
        router = 4 * s.experts + k * (8 + 4) + 4 + 3 * 8 * k
        mlp = router + k * ACT * (3 * s.ffn + h)
        if lora_experts or full_finetune:
            mlp += k * ACT * (h + s.ffn)
    else:
        mlp = ACT * 3 * s.ffn + (ACT * (h + s.ffn) if full_finetune else 0)
    return norms + qk_norm + attention + attention_inputs + mlp


def saved_bytes_per_layer_fixed(s: TextShape, lora_experts: bool) -> int:
    """Bytes a layer keeps independently of the tokens: with LoRA on the fused experts, peft builds W + BA for all
    experts of the layer in the forward and the grouped matmul keeps that copy for the backward."""
    return ACT * s.experts * 3 * s.ffn * s.hidden if (lora_experts and s.experts) else 0


def shared_prefix_extra_bytes(s: TextShape, completions: int, prompt: int, completion: int) -> int:
    """Bytes one decoder layer keeps beyond the per-token count of its prompt + G x C tokens under the shared-prefix
    layout (policy/grouped_prefix.py, gspo.shared_prefix): the completion piece attends over [prompt | own completion]
    with a mask, so transformers' SDPA function repeats the key/value heads and the kernel keeps, per completion,
    the prompt's and its own keys and values with all q heads (in place of its own kv-head keys and values); the two
    pieces' outputs are kept besides their concatenation (o_proj's input); and the (C, L + C) 16-bit mask."""
    q, kv = s.heads * s.head_dim, s.kv_heads * s.head_dim
    G, L, C = completions, prompt, completion
    return ACT * (2 * q * G * (L + C) - 2 * kv * G * C + q * (L + G * C) + C * (L + C))


def routing_transient_bytes_per_token(s: TextShape) -> int:
    """The MoE layer's one-hot expert mask (int64, (tokens, k, E + 1)), built and freed inside the layer."""
    return 8 * s.experts_per_token * (s.experts + 1) if s.experts else 0


def activation_bytes(s: TextShape, sequences: int, tokens: int, checkpointing: bool, lora_attention: bool,
                     lora_experts: bool, full_finetune: bool = False, extra_per_layer: int = 0) -> int:
    """Activations of one forward/backward of `sequences` x `tokens` through the language model.

    Without checkpointing every layer keeps its saved tensors. With (transformers' per-decoder-layer) checkpointing
    each layer keeps only its input (h x 2 bytes per token) and one layer's saved tensors exist again while it is
    recomputed in the backward. Both add the routing mask of the layer being run and the final norm's input.
    extra_per_layer: bytes each layer keeps besides the per-token count (shared_prefix_extra_bytes).
    """
    n = sequences * tokens
    per_layer = saved_bytes_per_token(s, lora_attention, lora_experts, full_finetune) * n
    per_layer += saved_bytes_per_layer_fixed(s, lora_experts) + extra_per_layer
    working = routing_transient_bytes_per_token(s) * n + (4 * s.hidden + 4) * n
    if checkpointing:
        return s.layers * ACT * s.hidden * n + per_layer + working
    return s.layers * per_layer + working


def logits_bytes(vocab: int, chunk_tokens: int, completion_positions: int, hidden: int) -> int:
    """Peak of the chunked log-probs (policy/forward.py): the completion positions' hidden states (kept as the
    checkpointed chunks' inputs, bf16) plus one chunk of logits while it is recomputed in the backward: bf16 logits,
    their float32 copy, the log-sum-exp's exp and the float32 and bf16 gradients (2 + 4 + 4 + 4 + 2 bytes)."""
    return completion_positions * hidden * ACT + min(chunk_tokens, completion_positions) * vocab * 16


def kv_cache_bytes(s: TextShape, sequences: int, tokens: int) -> int:
    """Key/value cache of a rollout: 2 (K and V) x kv_heads x head_dim per token and layer, bf16."""
    return s.layers * 2 * s.kv_heads * s.head_dim * ACT * sequences * tokens


def gib(n_bytes: float) -> float:
    return round(n_bytes / GIB, 2)
