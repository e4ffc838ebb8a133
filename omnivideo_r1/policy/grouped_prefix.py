"""Scoring the G completions of a prompt with the prompt run once: shared-prefix forward, with gradients.

The plain scorer (`forward.completion_logprobs`) runs one row per completion, each carrying the whole prompt, so the
vision and audio encoders and every decoder layer see each prompt G times. Here each distinct prompt is one packed row

    [prompt (left-padded to L) | completion 1 (right-padded to S) | ... | completion N]

and the decoder's attention is split as in Prefix Grouper (Liu et al. 2025, arXiv 2506.05433): the prompt attends
causally to itself; completion k attends to the whole prompt and causally to itself, never to another completion.
The vision and audio encoders see each prompt's media once, and everything else (embeddings, projections, MLP / MoE,
norms, LM head) acts per position, so every token's output is the plain pass's, and so is every gradient: the
prompt's activations receive the gradients of all its completions through the attention keys and values and
accumulate them. A frozen encoder runs under no_grad (`_media_inputs`).

Positions are the plain pass's: the prompt's M-RoPE positions come from the model's own rope index (media, the
`use_audio_in_video` interleaving, left padding), and token s of every completion of prompt p sits at rope position
n_p + s + delta_p (n_p: the prompt's unpadded length, delta_p: its rope delta), which is where the rope index of the
concatenated prompt + completion puts it.

Mechanics. One call of `thinker.model` inside `PolicyForward.forward`: DDP and FSDP2 see one forward per backward and
each decoder layer runs once. The layout reaches the attention function as a keyword argument (transformers passes
the model's keyword arguments down to it). The text model's attention implementation is switched to
`shared_prefix_<base>` (registered with transformers' AttentionInterface), which runs `<base>` unchanged whenever no
layout is given (sampling, probes, evaluation), and stays switched: under gradient checkpointing the backward pass
recomputes the layers and must dispatch the same way. The packed call passes a 4-D placeholder mask, so transformers
builds no (T, T) mask; the grouped attention builds its own: none for the prompt unless a prompt row is padded, an
(S, L + S) one for the completions.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import torch

from ..algo.logprobs import chunked_token_logprobs, tokens_per_chunk
from .forward import MAX_LOGIT_ELEMENTS, thinker_of

ATTENTION_PREFIX = "shared_prefix_"
BASE_IMPLEMENTATIONS = ("sdpa", "eager")
"""Attention backends the layout can sit on: its pieces run on SDPA kernels; `eager` is kept for unpacked calls."""


@dataclass(frozen=True)
class PrefixLayout:
    """Where the prompt and the completion slots sit in a packed row (length L + N * S)."""

    prompt_len: int
    """L: the (left-padded) prompt length."""
    slots: int
    """N: completion slots per prompt (the largest number of completions any prompt has)."""
    slot_len: int
    """S: the (right-padded) completion length."""
    prompt_valid_PL: torch.Tensor | None
    """Which prompt positions are real tokens (bool); None when no prompt is padded."""


# ---------------------------------------------------------------- attention
def grouped_attention(module, query, key, value, layout: PrefixLayout, scaling: float | None, dropout: float):
    """Attention of packed rows: (P, heads, L + N*S, d) -> (P, L + N*S, heads, d), as transformers' functions return.

    Prompt piece: causal over the prompt. Completion piece: the P*N completions as a batch, each over the keys
    [its prompt's L | its own S] with the causal diagonal aligned to the end (query s sees the prompt and its own
    tokens 0..s). Both pieces go through transformers' SDPA function (GQA and kernel choice as in the plain pass).
    """
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    P, H, _, D = query.shape
    Hkv = key.shape[1]
    L, N, S = layout.prompt_len, layout.slots, layout.slot_len
    device = query.device
    valid_PL = layout.prompt_valid_PL
    kw = dict(dropout=dropout, scaling=scaling)

    # ---- prompt piece ----
    prompt_mask = None
    if valid_PL is not None:
        causal_LL = torch.ones(L, L, dtype=torch.bool, device=device).tril()
        # A padding query sees only itself: no row is fully masked (an all-masked row would give NaN).
        prompt_mask = ((causal_LL & valid_PL[:, None, :]) | torch.eye(L, dtype=torch.bool, device=device))[:, None]
    out_prompt, _ = sdpa_attention_forward(module, query[:, :, :L], key[:, :, :L], value[:, :, :L], prompt_mask, **kw)

    # ---- completion piece: batch P*N, keys [prompt | own completion] ----
    def completions(x, heads):  # (P, heads, N*S, D) -> (P, N, heads, S, D)
        return x[:, :, L:].reshape(P, heads, N, S, D).transpose(1, 2)

    def with_prompt(x):  # keys / values of each completion: its prompt's, then its own
        prompt = x[:, :, :L].unsqueeze(1).expand(P, N, Hkv, L, D)
        return torch.cat([prompt, completions(x, Hkv)], dim=3).reshape(P * N, Hkv, L + S, D)

    q_completion = completions(query, H).reshape(P * N, H, S, D)
    ahead = torch.ones(S, S, dtype=torch.bool, device=device).tril()
    mask = torch.cat([torch.ones(S, L, dtype=torch.bool, device=device), ahead], dim=1)[None, None]
    if valid_PL is not None:
        mask = mask & torch.cat([valid_PL, valid_PL.new_ones(P, S)], dim=1).repeat_interleave(N, 0)[:, None, None]
    out_completion, _ = sdpa_attention_forward(module, q_completion, with_prompt(key), with_prompt(value), mask, **kw)
    out_completion = out_completion.reshape(P, N * S, H, D)
    return torch.cat([out_prompt, out_completion], dim=1), None


def _dispatcher(base: str):
    def attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, shared_prefix_layout=None,
                  **kwargs):
        if shared_prefix_layout is None:
            return _base_function(base, module)(module, query, key, value, attention_mask, scaling=scaling,
                                                dropout=dropout, **kwargs)
        if kwargs.get("sliding_window") is not None or kwargs.get("softcap") is not None:
            raise NotImplementedError("shared-prefix scoring supports full attention without softcapping; "
                                      "set gspo.shared_prefix=false for this model")
        return grouped_attention(module, query, key, value, shared_prefix_layout, scaling, dropout)

    attention.__name__ = f"{ATTENTION_PREFIX}{base}_attention"
    return attention


def _base_function(base: str, module):
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    if base == "eager":  # each modeling file has its own eager function
        return sys.modules[type(module).__module__].eager_attention_forward
    return ALL_ATTENTION_FUNCTIONS[base]


def _register() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface

    for base in BASE_IMPLEMENTATIONS:
        name = ATTENTION_PREFIX + base
        if name not in AttentionInterface._global_mapping:
            AttentionInterface.register(name, _dispatcher(base))
            AttentionMaskInterface.register(name, ALL_MASK_ATTENTION_FUNCTIONS[base])


def use_grouped_attention(thinker) -> None:
    """Switch the thinker's text model to the dispatching attention (idempotent; other calls behave as before)."""
    text_config = thinker.config.get_text_config()
    current = text_config._attn_implementation
    if current.startswith(ATTENTION_PREFIX):
        return
    if current not in BASE_IMPLEMENTATIONS:
        raise ValueError(f"shared-prefix scoring needs model.attn_implementation in {BASE_IMPLEMENTATIONS} "
                         f"(got {current!r}); set gspo.shared_prefix=false to score with {current!r}")
    _register()
    thinker.set_attn_implementation({"text_config": ATTENTION_PREFIX + current})


# ---------------------------------------------------------------- packed scoring (runs inside PolicyForward.forward)
def _media_inputs(model, batch: dict, packed_ids: torch.Tensor) -> dict:
    """The media keyword arguments of `model` (the thinker's inner model) for the packed rows.

    A frozen encoder runs here, under no_grad, and its output goes in as transformers' precomputed encoder outputs
    (video) or merged into the input embeddings (audio, which has no such argument). Without this it would build an
    autograd graph whenever its input requires grad, as `enable_input_require_grads` (gradient checkpointing) makes
    it, and the backward pass would run through it for nothing. Trainable encoders run inside the forward as usual.
    """
    kwargs = {k: v for k, v in batch.items() if k not in ("input_ids", "attention_mask")}

    def frozen(module) -> bool:
        return not any(p.requires_grad for p in module.parameters())

    if frozen(model.visual):
        for modality, pixels, grid in (("image", "pixel_values", "image_grid_thw"),
                                       ("video", "pixel_values_videos", "video_grid_thw")):
            if pixels in kwargs:
                encode = getattr(model, f"get_{modality}_features")
                with torch.no_grad():
                    out = encode(kwargs.pop(pixels), kwargs[grid], return_dict=True)
                kwargs.setdefault("mm_encoder_outputs", {})[modality] = out
    if "input_features" in kwargs and frozen(model.audio_tower):
        with torch.no_grad():
            audio_NH = model.get_audio_features(kwargs.pop("input_features"), kwargs.get("feature_attention_mask"),
                                                return_dict=True).last_hidden_state
        embeds = model.get_input_embeddings()(packed_ids)
        _, _, audio_mask = model.get_placeholder_mask(packed_ids, inputs_embeds=embeds)
        kwargs["inputs_embeds"] = embeds.masked_scatter(audio_mask, audio_NH.to(embeds.dtype))
    return kwargs


def grouped_completion_logprobs(model, batch: dict, use_audio_in_video: bool, row_prompt: list[int],
                                suffix_BS: torch.Tensor, suffix_mask_BS: torch.Tensor, pad_token_id: int,
                                temperature: float, with_entropy: bool, max_logit_elements: int = MAX_LOGIT_ELEMENTS):
    """Teacher-forced log-probs (and entropies) of completions, each distinct prompt run once -> (B, S) each.

    `batch` holds the P distinct prompts (left-padded); row b of the right-padded suffixes continues prompt
    `row_prompt[b]`; unused slots are filled with `pad_token_id`. Equal to `completion_logprobs` on the B expanded
    rows (module docstring).
    """
    thinker = thinker_of(model)
    use_grouped_attention(thinker)
    ids_PL, mask_PL = batch["input_ids"], batch["attention_mask"]
    P, L = ids_PL.shape
    B, S = suffix_BS.shape
    device = ids_PL.device
    prompt_B = torch.as_tensor(row_prompt, dtype=torch.long, device=device)
    slot_of, seen = [], [0] * P
    for p in row_prompt:
        slot_of.append(seen[p])
        seen[p] += 1
    slot_B = torch.as_tensor(slot_of, dtype=torch.long, device=device)
    N = max(seen)

    # ---- packed tokens: prompt, then N completion slots of S tokens ----
    slots_PNS = ids_PL.new_full((P, N, S), pad_token_id)
    slots_PNS[prompt_B, slot_B] = suffix_BS
    packed_ids = torch.cat([ids_PL, slots_PNS.reshape(P, N * S)], dim=1)

    # ---- positions: the prompt's from the rope index, each completion continuing after it ----
    features_mask = batch.get("feature_attention_mask")
    rope_3PL, delta_P1 = thinker.model.get_rope_index(
        ids_PL, batch.get("image_grid_thw"), batch.get("video_grid_thw"), mask_PL, use_audio_in_video,
        features_mask.sum(dim=1) if features_mask is not None else None, batch.get("video_second_per_grid"))
    start_P1 = mask_PL.sum(dim=1, keepdim=True) + delta_P1.to(device).long()
    slot_pos_PS = start_P1 + torch.arange(S, device=device)
    rope_3PT = torch.cat([rope_3PL.to(device, torch.long),
                          slot_pos_PS.repeat(1, N).unsqueeze(0).expand(3, P, N * S)], dim=2)

    padded = bool((mask_PL == 0).any())
    layout = PrefixLayout(L, N, S, mask_PL.bool() if padded else None)
    placeholder_mask = torch.ones(P, 1, 1, 1, dtype=torch.bool, device=device)  # see the module docstring
    hidden_PTH = thinker.model(input_ids=packed_ids, attention_mask=placeholder_mask, position_ids=rope_3PT,
                               use_audio_in_video=use_audio_in_video, use_cache=False, shared_prefix_layout=layout,
                               **_media_inputs(thinker.model, batch, packed_ids)).last_hidden_state

    # ---- the hidden state predicting each completion token ----
    # Token 0 of every completion is predicted by the prompt's last position, token s > 0 by the completion's s - 1.
    T = hidden_PTH.shape[1]
    s_S = torch.arange(S, device=device)
    source_BS = torch.where(s_S == 0, L - 1, L + slot_B[:, None] * S + s_S - 1)
    hidden_BSH = hidden_PTH.reshape(P * T, -1)[prompt_B[:, None] * T + source_BS]
    chunk = tokens_per_chunk(thinker.config.get_text_config().vocab_size, max_logit_elements)
    return chunked_token_logprobs(hidden_BSH, suffix_BS, thinker.lm_head, suffix_mask_BS.bool(), temperature,
                                  chunk, with_entropy)
