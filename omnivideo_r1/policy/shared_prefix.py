"""Group sampling with one prefill per prompt: encode the media and run the prompt once, copy the KV cache G times.

`generate(num_return_sequences=G)` (or G repeated rows) runs the vision and audio encoders and the whole prompt
prefill G times for identical rows; for omni prompts of thousands of tokens that prefill dominates a rollout. Here
the P distinct prompts are prefilled once (batch P), the last-position logits are repeated G times along the batch
(row order p0 x G, p1 x G, ... as the plain path), and decoding continues token by token. The prompt's keys and
values stay once per prompt: decode attention reads them once for its G rows (policy/prefix_attention.py); only
where a layer is not plain full attention (sliding window, linear attention) is the cache copied to every row.

Faithfulness to `generate`: the logits processors are built by the model's own `_get_logits_processor` from the same
GenerationConfig (suppressed ids, temperature, top-p, in generate's order), the draw is the same
`torch.multinomial(softmax(scores), 1)` on the same (P*G, V) batch under the same seed, finished rows are padded
the same way and the loop stops under the same rules. Positions follow generate's decode rule for Qwen-Omni:
text position = number of non-pad tokens so far, rope (t, h, w) position = text position + rope delta, where the
delta (max multimodal position + 1 - prompt length) comes from the prefill's rope index and is repeated G times.
Only floating-point rounding can differ (a batch of 1 instead of G identical rows in the prefill matmuls), so a
draw exactly at a CDF boundary may flip; teacher-forced log-probs of the sampled tokens match the plain path.

Several prompts can be sampled in one batch, each with its own seed: its G rows are drawn from its own generator, so
what a prompt gets does not depend on which prompts share its batch (up to float rounding), and equals sampling it
alone under that seed. The rows' key/value buffers are reserved for the whole rollout after the prefill (here
`ReservedKVLayer` on the copied path, `PrefixSharedKVLayer` otherwise): a decode step writes its token in place;
`DynamicCache` would copy the whole cache at every step, which costs more than the step's own compute once P*G rows
share a batch. Finished rows leave the decode batch once they are a quarter of it (`FINISHED_SHARE_TO_LEAVE`): the
loop runs until the longest completion ends, and without this every row would be computed to the end on padding.
Draws and processors still see all rows (a finished row's logits are its last ones and its draw is discarded), so
every generator draws the same random numbers as with all rows in the batch.

Every model call goes through the prepared `PolicyForward` (policy/forward.py). Only the sampled token's log-prob is
kept per step, not the (B, V) logits. Under a sharded engine (`lockstep`) a rank whose rows have all finished keeps
stepping (on padding) until every rank has, as `generate(synced_gpus=True)` does, so all ranks run the same number of
forwards.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch

from ..algo.logprobs import selective_logprobs
from .forward import all_ranks_done, as_policy_forward, is_lockstep, next_token_logits, thinker_of
from .prefix_attention import prefix_shared_decoding, reserve_kv_cache, share_prefix_cache

FINISHED_SHARE_TO_LEAVE = 0.25
"""Finished rows leave the decode batch once they are this share of it. Each leave copies the rows' cache, so
leaving at every finish would cost more than it saves; at a quarter the batch shrinks geometrically."""


@torch.no_grad()
def generate_shared_prefix(forward, batch: dict, use_audio_in_video: bool, repeats: int, config,
                           eos_token_ids: list[int], pad_token_id: int, temperature: float = 1.0, on_step=None,
                           seeds_P: list[int] | None = None, finished_leave: bool = True):
    """Sample `repeats` continuations of each prompt row of `batch` -> (new_tokens_BT, sampler_logp_BT).

    `forward` is the (prepared) PolicyForward, or a thinker to wrap in one; `config` the GenerationConfig.
    sampler_logp_BT: log-prob of each sampled token under softmax(raw logits / temperature), before suppression and
    top-p (as `Completion.logp`). on_step(raw_logits_BV, next_B), if given, sees each step's raw float32 logits (a
    caller that needs more than the sampled token's log-prob, e.g. top-k alternatives, takes it there).
    seeds_P: one seed per prompt row; its `repeats` rows are drawn from a generator of their own, as the default
    generator seeded with it would draw them for that prompt alone. None: every draw from the default generator.
    finished_leave: finished rows leave the decode batch (`FINISHED_SHARE_TO_LEAVE`); the same tokens up to float
    rounding. False keeps every row to the end (for comparisons).
    """
    from transformers import LogitsProcessorList

    ids_PL, mask_PL = batch["input_ids"], batch["attention_mask"]
    if seeds_P is not None and len(seeds_P) != ids_PL.shape[0]:
        raise ValueError(f"{len(seeds_P)} seeds for {ids_PL.shape[0]} prompts; give one per prompt")
    device = ids_PL.device
    forward = as_policy_forward(forward)
    lockstep = is_lockstep(forward)
    thinker = thinker_of(forward)
    processors = thinker._get_logits_processor(
        generation_config=config, input_ids_seq_length=ids_PL.shape[1], encoder_input_ids=ids_PL,
        prefix_allowed_tokens_fn=None, logits_processor=LogitsProcessorList(), device=device, model_kwargs={})

    # ---- one prefill per distinct prompt (media encoders included) ----
    thinker.model.rope_deltas = None  # a stale delta from an earlier forward must not be reused
    logits_BV, cache, deltas_P1 = forward(next_token_logits, **batch, use_audio_in_video=use_audio_in_video)
    if deltas_P1 is None:
        raise RuntimeError("the prefill did not set rope_deltas; this thinker class is not supported by "
                           "the shared-prefix sampler (use share_prefix=False)")
    # ---- rows p0 x G, p1 x G, ...: the prompt's keys and values are read once for its G rows (decode attention in
    # policy/prefix_attention.py), or copied G times where a layer is not a plain full-attention one ----
    prompt_B = torch.arange(ids_PL.shape[0], device=device).repeat_interleave(repeats)
    # One row per prompt (greedy evaluation) has nothing to share: its cache is used as it is.
    prefix_shared = repeats > 1 and share_prefix_cache(cache, mask_PL, prompt_B, config.max_new_tokens)
    if not prefix_shared:
        cache.batch_repeat_interleave(repeats)
        # Room for every token still to come: decode steps write in place instead of concatenating.
        reserve_kv_cache(cache, config.max_new_tokens)
    logits_BV = logits_BV.repeat_interleave(repeats, dim=0)
    mask_BL = mask_PL.repeat_interleave(repeats, dim=0)
    deltas_B1 = deltas_P1.to(device).repeat_interleave(repeats, dim=0)
    seq_BL = ids_PL.repeat_interleave(repeats, dim=0)  # processors may read the ids so far
    text_pos_B1 = mask_BL.sum(dim=1, keepdim=True) - 1

    generators = None if seeds_P is None else [torch.Generator(device).manual_seed(s) for s in seeds_P]

    eos = torch.as_tensor(eos_token_ids, device=device)
    unfinished_B = torch.ones(seq_BL.shape[0], dtype=torch.long, device=device)
    # The decode batch: rows_R[r] is the row of batch row r. `_R` tensors follow it, `_B` ones keep every row.
    rows_R = torch.arange(seq_BL.shape[0], device=device)
    mask_RL, text_pos_R1, deltas_R1 = mask_BL, text_pos_B1, deltas_B1
    new_tokens, logps = [], []
    for step in range(config.max_new_tokens):
        scores_BV = processors(seq_BL, logits_BV)
        next_B = _draw(scores_BV, repeats, generators) if config.do_sample else scores_BV.argmax(dim=-1)
        next_B = next_B * unfinished_B + pad_token_id * (1 - unfinished_B)
        new_tokens.append(next_B)
        logps.append(selective_logprobs(logits_BV, next_B, temperature))
        if on_step is not None:
            on_step(logits_BV, next_B)
        seq_BL = torch.cat([seq_BL, next_B[:, None]], dim=1)
        unfinished_B = unfinished_B * (~torch.isin(next_B, eos)).long()
        if step + 1 == config.max_new_tokens or all_ranks_done(not unfinished_B.any(), lockstep, device):
            break
        # ---- finished rows leave the decode batch once they are a quarter of it (a rank under lockstep whose rows
        # have all finished keeps them: it must still run every forward) ----
        live_R = unfinished_B[rows_R].bool()
        n_live = int(live_R.sum())
        if finished_leave and 0 < n_live <= (1 - FINISHED_SHARE_TO_LEAVE) * len(rows_R):
            keep_R = live_R.nonzero().squeeze(1)
            cache.batch_select_indices(keep_R)
            rows_R, mask_RL, text_pos_R1, deltas_R1 = (t[keep_R] for t in (rows_R, mask_RL, text_pos_R1, deltas_R1))
        # ---- one decode step for the rows in the batch ----
        mask_RL = torch.cat([mask_RL, torch.ones_like(mask_RL[:, :1])], dim=1)
        text_pos_R1 = text_pos_R1 + 1
        rope_R1 = text_pos_R1 + deltas_R1
        position_ids = torch.stack([text_pos_R1, rope_R1, rope_R1, rope_R1])  # (4, R, 1): text, t, h, w
        with prefix_shared_decoding(thinker.model) if prefix_shared else nullcontext():
            logits_RV, cache, _ = forward(next_token_logits, input_ids=next_B[rows_R][:, None],
                                          attention_mask=mask_RL, position_ids=position_ids, past_key_values=cache,
                                          use_audio_in_video=use_audio_in_video)
        # Rows that left keep their last logits: their draws are replaced by padding.
        logits_BV = logits_RV if len(rows_R) == len(logits_BV) else logits_BV.index_copy(0, rows_R, logits_RV)
    return torch.stack(new_tokens, dim=1), torch.stack(logps, dim=1)


def _draw(scores_BV: torch.Tensor, repeats: int, generators: list[torch.Generator] | None) -> torch.Tensor:
    """One token per row from softmax(scores): all rows from the default generator, or each prompt's block of
    `repeats` rows from its own generator."""
    probs_BV = torch.softmax(scores_BV, dim=-1)
    if generators is None:
        return torch.multinomial(probs_BV, num_samples=1).squeeze(1)
    return torch.cat([torch.multinomial(probs_BV[p * repeats: (p + 1) * repeats], num_samples=1, generator=g)
                      for p, g in enumerate(generators)]).squeeze(1)


def suffix_logits_shared(model, batch: dict, use_audio_in_video: bool, row_prompt: list[int],
                         suffix_BS: torch.Tensor, suffix_mask_BS: torch.Tensor) -> torch.Tensor:
    """float32 logits (B, V) after each row's prompt + right-padded suffix, each distinct prompt prefilled once.

    Runs inside PolicyForward.forward. `batch` holds the P distinct prompts (left-padded); row b of the suffixes
    continues prompt `row_prompt[b]`. The logits are those predicting the token after the suffix (after the prompt
    for an empty suffix). Positions follow the same decode rule as sampling.
    """
    thinker = thinker_of(model)
    thinker.model.rope_deltas = None
    out = thinker.model(**batch, use_audio_in_video=use_audio_in_video, use_cache=True)
    deltas_P1 = thinker.model.rope_deltas
    if deltas_P1 is None:
        raise RuntimeError("the prefill did not set rope_deltas; use share_prefix=False for this thinker class")
    device = suffix_BS.device
    index = torch.as_tensor(row_prompt, dtype=torch.long, device=device)
    cache = out.past_key_values
    cache.batch_select_indices(index)  # copies prompt rows; a prompt may feed several rows
    prompt_last_BH = out.last_hidden_state[:, -1][index]
    mask_PL = batch["attention_mask"]
    mask_BL = torch.cat([mask_PL[index], suffix_mask_BS.to(mask_PL.dtype)], dim=1)
    text_BS = mask_PL.sum(dim=1)[index][:, None] + torch.arange(suffix_BS.shape[1], device=device)
    rope_BS = text_BS + deltas_P1.to(device)[index]
    position_ids = torch.stack([text_BS, rope_BS, rope_BS, rope_BS])  # (4, B, S)
    hidden_BSH = thinker.model(input_ids=suffix_BS, attention_mask=mask_BL, position_ids=position_ids,
                               past_key_values=cache, use_cache=True,
                               use_audio_in_video=use_audio_in_video).last_hidden_state
    n_B = suffix_mask_BS.sum(dim=1)
    # An empty suffix: the prompt's last position predicts the next token; else the suffix's last token does.
    picked_BH = hidden_BSH[torch.arange(len(row_prompt), device=device), (n_B - 1).clamp(min=0)]
    picked_BH = torch.where((n_B > 0)[:, None], picked_BH, prompt_last_BH)
    return thinker.lm_head(picked_BH).float()


@torch.no_grad()
def option_logits_shared(policy, prompts, prefixes: list[list[int]], model=None) -> torch.Tensor:
    """Logits (B, V) after each prompt + prefix, for `OmniPolicy.option_probs(share_prefix=True)`."""
    order = list({id(p): p for p in prompts}.values())
    slot = {id(p): k for k, p in enumerate(order)}
    batch, flag = policy.encode(order)
    suffix_BS, mask_BS = policy.right_padded(prefixes)
    return policy.forward_module_for(model)(suffix_logits_shared, dict(batch), flag, [slot[id(p)] for p in prompts],
                                            suffix_BS, mask_BS)
