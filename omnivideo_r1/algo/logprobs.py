"""Per-token log-probabilities and entropies (pure tensor math).

`token_logprobs` / `entropy_from_logits` take logits that already exist. `chunked_token_logprobs` starts from the
hidden states and the LM head instead and never holds more than one chunk of logits: a (B, T, V) float32 tensor is
the memory peak of a policy update for a large vocabulary (G=8, T=4096, V=152k: 20 GB), while the hidden states it is
computed from are V/H times smaller.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch.utils.checkpoint import checkpoint


def selective_logprobs(logits_NV: torch.Tensor, ids_N: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """log softmax(logits / temperature)[id] = z[id] - logsumexp(z), z = logits / temperature; (N, V), (N,) -> (N,).

    Computed in float32 without materialising the full log-softmax.
    """
    z_NV = logits_NV.float()
    if temperature != 1.0:
        z_NV = z_NV / temperature
    return z_NV.gather(-1, ids_N.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(z_NV, dim=-1)


def token_logprobs(logits_BTV: torch.Tensor, ids_BT: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """log pi(ids | context) under softmax(logits / temperature); (B, T, V), (B, T) -> (B, T).

    Row by row over B, so at most one (T, V) float32 copy exists besides the given logits.
    """
    return torch.stack([selective_logprobs(logits_TV, ids_T, temperature)
                        for logits_TV, ids_T in zip(logits_BTV, ids_BT)])


def entropy_from_logits(logits_BTV: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Entropy of softmax(logits / temperature) at each position; (..., V) -> (...).

    H = logsumexp(z) - sum_v softmax(z)_v z_v.
    """
    z = logits_BTV.float()
    if temperature != 1.0:
        z = z / temperature
    p = torch.softmax(z, dim=-1)
    # sum_v p_v z_v as a batched dot product: no second (..., V) temporary
    return torch.logsumexp(z, dim=-1) - (p.unsqueeze(-2) @ z.unsqueeze(-1)).squeeze(-1).squeeze(-1)


def tokens_per_chunk(vocab_size: int, max_logit_elements: int) -> int:
    """How many positions one chunk may hold so its (tokens, V) logits stay within max_logit_elements."""
    return max(1, max_logit_elements // max(1, vocab_size))


def chunked_token_logprobs(
    hidden_BTH: torch.Tensor,
    ids_BT: torch.Tensor,
    head: Callable[[torch.Tensor], torch.Tensor],
    mask_BT: torch.Tensor | None = None,
    temperature: float = 1.0,
    chunk_tokens: int = 256,
    with_entropy: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """log pi(ids_BT) (and the entropy) from hidden states, `chunk_tokens` positions at a time.

    head: hidden (N, H) -> logits (N, V), the LM head (called as a module, so engine hooks that gather its weight
    run). Position (b, t) of hidden predicts ids_BT[b, t]. Only positions with mask_BT true are computed; the others
    are 0. Returns (logp_BT float32 with gradient, entropy_BT float32 detached, or None).

    logp = z[id] - logsumexp(z) with z = head(h) / temperature. With autograd on, each chunk runs under activation
    checkpointing: its logits are freed after the forward and recomputed, one chunk at a time, in the backward, so
    neither pass keeps more than one chunk of (N, V) logits (the entropy, for logging only, is computed under
    no_grad from the same chunk).
    """
    B, T = ids_BT.shape
    if hidden_BTH.shape[:2] != (B, T):
        raise ValueError(f"hidden {tuple(hidden_BTH.shape)} and ids {tuple(ids_BT.shape)} disagree on (B, T)")
    if chunk_tokens < 1:
        raise ValueError(f"chunk_tokens must be >= 1, got {chunk_tokens}")
    # Advanced indexing copies the selected rows, and the outputs are scattered into fresh (B, T) tensors: no
    # output is a view (an engine's hooks on a returned view are lost by a later in-place op).
    keep_BT = torch.ones_like(ids_BT, dtype=torch.bool) if mask_BT is None else mask_BT.bool()
    b_N, t_N = keep_BT.nonzero(as_tuple=True)
    hidden_NH = hidden_BTH[b_N, t_N]
    ids_N = ids_BT[b_N, t_N]

    def one_chunk(h_CH: torch.Tensor, ids_C: torch.Tensor):
        logits_CV = head(h_CH)
        logp_C = selective_logprobs(logits_CV, ids_C, temperature)
        if not with_entropy:
            return logp_C, None
        with torch.no_grad():
            return logp_C, entropy_from_logits(logits_CV.detach(), temperature)

    recompute = torch.is_grad_enabled()
    logps, entropies = [], []
    for start in range(0, hidden_NH.shape[0], chunk_tokens):
        args = (hidden_NH[start: start + chunk_tokens], ids_N[start: start + chunk_tokens])
        logp_C, ent_C = checkpoint(one_chunk, *args, use_reentrant=False) if recompute else one_chunk(*args)
        logps.append(logp_C)
        entropies.append(ent_C)
    logp_N = torch.cat(logps) if logps else hidden_NH.new_zeros(0, dtype=torch.float32)
    logp_BT = torch.zeros(B, T, dtype=torch.float32, device=ids_BT.device).index_put((b_N, t_N), logp_N)
    entropy_BT = None
    if with_entropy:
        ent_N = torch.cat(entropies) if entropies else logp_N.detach()
        entropy_BT = torch.zeros(B, T, dtype=torch.float32, device=ids_BT.device).index_put((b_N, t_N), ent_N)
    return logp_BT, entropy_BT
