"""Chunked log-probs from hidden states against the plain log-softmax: values, entropy, gradients, memory kept."""

from __future__ import annotations

import pytest
import torch

from omnivideo_r1.algo.logprobs import (chunked_token_logprobs, entropy_from_logits, token_logprobs,
                                        tokens_per_chunk)


def _problem(B=3, T=7, H=5, V=11, seed=0):
    g = torch.Generator().manual_seed(seed)
    hidden_BTH = torch.randn(B, T, H, generator=g, dtype=torch.float64, requires_grad=True)
    weight_VH = torch.randn(V, H, generator=g, dtype=torch.float64, requires_grad=True)
    ids_BT = torch.randint(0, V, (B, T), generator=g)
    mask_BT = torch.rand(B, T, generator=g) > 0.3
    return hidden_BTH, weight_VH, ids_BT, mask_BT


def _plain(hidden_BTH, weight_VH, ids_BT, mask_BT, temperature):
    logits_BTV = hidden_BTH @ weight_VH.T / temperature
    logp_BTV = torch.log_softmax(logits_BTV, dim=-1)
    logp_BT = logp_BTV.gather(-1, ids_BT[..., None]).squeeze(-1) * mask_BT
    entropy_BT = -(logp_BTV.exp() * logp_BTV).sum(-1) * mask_BT
    return logp_BT, entropy_BT


@pytest.mark.parametrize("chunk_tokens", [1, 4, 1000])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_chunked_logprobs_match_plain_values_and_gradients(chunk_tokens, temperature):
    hidden, weight, ids, mask = _problem()
    coef_BT = torch.randn(ids.shape, dtype=torch.float64)  # an arbitrary downstream loss, sum(coef * logp)

    logp, entropy = chunked_token_logprobs(hidden, ids, lambda h: h @ weight.T, mask, temperature,
                                           chunk_tokens, with_entropy=True)
    (coef_BT * logp).sum().backward()
    grads = hidden.grad.clone(), weight.grad.clone()
    hidden.grad = weight.grad = None

    ref_logp, ref_entropy = _plain(hidden, weight, ids, mask, temperature)
    (coef_BT * ref_logp).sum().backward()

    # float32 inside (as on a GPU), float64 reference: agreement to float32 rounding
    torch.testing.assert_close(logp, ref_logp.float(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(entropy, ref_entropy.float(), rtol=1e-5, atol=1e-5)
    assert not entropy.requires_grad
    assert (logp[~mask] == 0).all() and (entropy[~mask] == 0).all()
    torch.testing.assert_close(grads[0], hidden.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grads[1], weight.grad, rtol=1e-5, atol=1e-5)


def test_plain_helpers_match_log_softmax():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 5, 9, generator=g)
    ids = torch.randint(0, 9, (2, 5), generator=g)
    ref = torch.log_softmax(logits / 0.5, -1).gather(-1, ids[..., None]).squeeze(-1)
    torch.testing.assert_close(token_logprobs(logits, ids, 0.5), ref)
    p = torch.softmax(logits, -1)
    torch.testing.assert_close(entropy_from_logits(logits), -(p * p.log()).sum(-1))


def test_backward_keeps_at_most_one_chunk_of_logits():
    """The tensors saved for backward scale with the hidden states, not with tokens x vocabulary."""
    B, T, H, V, chunk = 2, 64, 8, 4096, 16
    hidden = torch.randn(B, T, H, requires_grad=True)
    weight = torch.randn(V, H, requires_grad=True)
    ids = torch.randint(0, V, (B, T))
    saved_bytes = []

    def pack(t):
        saved_bytes.append(t.numel() * t.element_size())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        logp, _ = chunked_token_logprobs(hidden, ids, lambda h: h @ weight.T, chunk_tokens=chunk)
    full_logits_bytes = B * T * V * 4
    assert sum(saved_bytes) < full_logits_bytes / 8, (sum(saved_bytes), full_logits_bytes)
    logp.sum().backward()  # recomputation happens here, chunk by chunk
    assert hidden.grad is not None and weight.grad is not None


def test_tokens_per_chunk_and_bad_arguments():
    assert tokens_per_chunk(152_064, 1 << 25) == 220
    assert tokens_per_chunk(10, 5) == 1
    hidden, weight, ids, _ = _problem()
    with pytest.raises(ValueError, match="chunk_tokens"):
        chunked_token_logprobs(hidden, ids, lambda h: h @ weight.T, chunk_tokens=0)
    with pytest.raises(ValueError, match="disagree"):
        chunked_token_logprobs(hidden[:, :3], ids, lambda h: h @ weight.T)
