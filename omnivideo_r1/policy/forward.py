"""The one module the trainer prepares, and the computations that run inside its forward.

DDP, FSDP2 and DeepSpeed ZeRO-3 act through the prepared module's `__call__`: FSDP2's root pre-forward hook gathers
the parameters that sit outside the wrapped decoder layers (embeddings, final norm, LM head, vision and audio
encoders), ZeRO-3 gathers each submodule's parameters when it runs, DDP prepares gradient synchronisation. A call to
`thinker.model(...)` or `thinker.lm_head(...)` from outside bypasses the root hooks (under FSDP2 it fails with "mixed
torch.Tensor and DTensor"). So every model computation of the policy (a sampling step, completion log-probs, logits
at chosen positions, `generate`) is a function `fn(model, ...)` that `PolicyForward.forward` runs: the engine wraps
`PolicyForward(thinker)` once and each call is `prepared(fn, ...)`.

Under sharded engines every rank must run the same number of forwards (each one gathers parameters with
collectives): `PolicyForward.lockstep` tells the samplers to keep stepping until all ranks are done.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from ..algo.logprobs import chunked_token_logprobs, tokens_per_chunk

MAX_LOGIT_ELEMENTS = 1 << 24
"""Logits held at once when scoring completions (64 MiB in float32): chunks of this // vocabulary size positions,
110 for Qwen-Omni's 152k vocabulary."""


class PolicyForward(torch.nn.Module):
    """Runs `fn(model, *args, **kwargs)` as its forward; `model` is the thinker, possibly PEFT-wrapped."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model
        self.lockstep = False
        """True under a sharded engine with several processes: samplers step until every rank has finished."""

    def forward(self, fn: Callable[..., Any], *args, **kwargs):
        return fn(self.model, *args, **kwargs)


def unwrap_engine(module):
    """The module inside DDP / DeepSpeed wrappers (`.module`); FSDP2 modules are their own root."""
    return module.module if isinstance(getattr(module, "module", None), torch.nn.Module) else module


def as_policy_forward(model) -> torch.nn.Module:
    """`model` itself when it is a (prepared) PolicyForward, else a PolicyForward around it (unprepared use)."""
    return model if isinstance(unwrap_engine(model), PolicyForward) else PolicyForward(model)


def thinker_of(model):
    """The thinker under PolicyForward, engine and PEFT wrappers (its `.model` holds the rope deltas)."""
    model = unwrap_engine(model)
    if isinstance(model, PolicyForward):
        model = model.model
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def is_lockstep(prepared) -> bool:
    return bool(getattr(unwrap_engine(prepared), "lockstep", False))


def all_ranks_done(done: bool, lockstep: bool, device) -> bool:
    """`done` on this rank; under lockstep, whether every rank is done (one all-reduce)."""
    if not lockstep:
        return done
    flag = torch.tensor([0.0 if done else 1.0], device=device)
    torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
    return flag.item() == 0.0


# ---------------------------------------------------------------- computations run inside PolicyForward.forward
def completion_logprobs(model, batch: dict, use_audio_in_video: bool, prompt_len: int, suffix_BS: torch.Tensor,
                        suffix_mask_BS: torch.Tensor, temperature: float, with_entropy: bool,
                        max_logit_elements: int = MAX_LOGIT_ELEMENTS):
    """Teacher-forced log-probs (and entropies) of right-padded suffixes after left-padded prompts -> (B, S) each.

    `batch` holds prompt + suffix tokens. The one place where completions are scored for training: the hidden states
    at the completion positions go through the LM head in chunks (algo.logprobs.chunked_token_logprobs).
    """
    thinker = thinker_of(model)
    hidden = thinker.model(**batch, use_audio_in_video=use_audio_in_video, use_cache=False).last_hidden_state
    # Output at position p predicts token p + 1: the last prompt position predicts suffix token 0.
    hidden_BSH = hidden[:, prompt_len - 1: prompt_len - 1 + suffix_BS.shape[1]]
    chunk = tokens_per_chunk(thinker.config.get_text_config().vocab_size, max_logit_elements)
    return chunked_token_logprobs(hidden_BSH, suffix_BS, thinker.lm_head, suffix_mask_BS.bool(), temperature,
                                  chunk, with_entropy)


def logits_at(model, batch: dict, use_audio_in_video: bool, position_B: torch.Tensor) -> torch.Tensor:
    """float32 logits (B, V) at one position per row (e.g. the one predicting an option letter)."""
    thinker = thinker_of(model)
    hidden = thinker.model(**batch, use_audio_in_video=use_audio_in_video, use_cache=False).last_hidden_state
    picked_BH = hidden[torch.arange(hidden.shape[0], device=hidden.device), position_B]
    return thinker.lm_head(picked_BH).float()


def next_token_logits(model, **model_kwargs):
    """One prefill or decode step -> (float32 logits (B, V) of the last position, KV cache, rope deltas).

    Only the last position goes through the LM head (the HF forward would compute logits for the whole prompt).
    """
    thinker = thinker_of(model)
    out = thinker.model(use_cache=True, **model_kwargs)
    logits_BV = thinker.lm_head(out.last_hidden_state[:, -1]).float()
    return logits_BV, out.past_key_values, thinker.model.rope_deltas


def generate(model, **generate_kwargs):
    """`generate` of the thinker (or its PEFT wrapper), run inside the root forward."""
    return model.generate(**generate_kwargs)
