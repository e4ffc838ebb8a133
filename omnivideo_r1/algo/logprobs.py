"""Per-token log-probabilities and entropies from logits (pure tensor math)."""

from __future__ import annotations

import torch


def token_logprobs(logits_BTV: torch.Tensor, ids_BT: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """log pi(ids | context) under softmax(logits / temperature); (B, T, V), (B, T) -> (B, T).

    Computed row by row over B to avoid materialising a second (B, T, V) float32 tensor (log_softmax of a large
    vocabulary is the memory peak of the policy update).
    """
    if temperature != 1.0:
        logits_BTV = logits_BTV / temperature
    out = []
    for logits_TV, ids_T in zip(logits_BTV, ids_BT):
        logp_TV = torch.log_softmax(logits_TV.float(), dim=-1)
        out.append(logp_TV.gather(-1, ids_T.unsqueeze(-1)).squeeze(-1))
    return torch.stack(out)


def entropy_from_logits(logits_BTV: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Entropy of softmax(logits / temperature) at each position; (B, T, V) -> (B, T)."""
    if temperature != 1.0:
        logits_BTV = logits_BTV / temperature
    logp_BTV = torch.log_softmax(logits_BTV.float(), dim=-1)
    return -(logp_BTV.exp() * logp_BTV).sum(-1)
