"""Decode attention with each prompt's keys held once (policy/prefix_attention.py) equals attention over every row's
full copy: hand-made tensors for the math, and the sampler taking that path on the tiny models."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from transformers.cache_utils import DynamicLayer

from omnivideo_r1.policy.prefix_attention import (PrefixSharedKVLayer, PrefixSplit, prefix_shared_attention,
                                                   row_layout)


class _Module(torch.nn.Module):
    is_causal = True
    training = False


def _reference(query_RH1D, prefix_k, prefix_v, suffix_k, suffix_v, prompt_R, prefix_mask_PL, scale):
    """SDPA over each row's own copy: [its prompt's keys, its generated keys], padding masked, GQA by repeat."""
    n_rep = query_RH1D.shape[1] // prefix_k.shape[1]
    k = torch.cat([prefix_k[prompt_R], suffix_k], dim=2).repeat_interleave(n_rep, dim=1)
    v = torch.cat([prefix_v[prompt_R], suffix_v], dim=2).repeat_interleave(n_rep, dim=1)
    mask = torch.cat([prefix_mask_PL[prompt_R].bool(), torch.ones(len(prompt_R), suffix_k.shape[2], dtype=torch.bool)],
                     dim=1)[:, None, None, :]
    return F.scaled_dot_product_attention(query_RH1D, k, v, attn_mask=mask, scale=scale).transpose(1, 2)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_prefix_shared_attention_equals_attention_over_full_copies(dtype):
    torch.manual_seed(0)
    P, KVH, H, Lp, T, D = 3, 2, 4, 7, 5, 8
    # Rows after some left the batch: prompt 0 has 3, prompt 1 none, prompt 2 one; prompts left-padded differently.
    prompt_R = torch.tensor([0, 0, 0, 2])
    R = len(prompt_R)
    prefix_mask_PL = torch.ones(P, Lp, dtype=torch.long)
    prefix_mask_PL[0, :2] = 0
    prefix_mask_PL[2, :4] = 0
    prefix_k, prefix_v = torch.randn(P, KVH, Lp, D) * 3, torch.randn(P, KVH, Lp, D)
    suffix_k, suffix_v = torch.randn(R, KVH, T, D) * 3, torch.randn(R, KVH, T, D)
    query = torch.randn(R, H, 1, D) * 3
    # A padded position with a huge score must get no weight.
    prefix_k[0, :, 0] = 100 * query[0, :2, 0].mean(0)
    want = _reference(query, prefix_k, prefix_v, suffix_k, suffix_v, prompt_R, prefix_mask_PL, 0.3)
    cast = [t.to(dtype) for t in (query, prefix_k, prefix_v, suffix_k, suffix_v)]
    layout = row_layout(prompt_R, prefix_mask_PL)
    assert not layout.full
    got, _ = prefix_shared_attention(_Module(), cast[0], PrefixSplit(cast[1], cast[3], layout),
                                     PrefixSplit(cast[2], cast[4], layout), None, scaling=0.3)
    assert got.shape == (R, 1, H, D) and got.dtype == dtype
    torch.testing.assert_close(got.float(), want, atol=1e-5 if dtype == torch.float32 else 3e-2, rtol=0)
    # Every prompt with all its rows (before any leaves): the reshaped layout.
    full_R = torch.tensor([0, 0, 1, 1, 2, 2])
    layout = row_layout(full_R, prefix_mask_PL)
    assert layout.full and layout.width == 2
    q6, sk6, sv6 = torch.randn(6, H, 1, D), torch.randn(6, KVH, T, D), torch.randn(6, KVH, T, D)
    got, _ = prefix_shared_attention(_Module(), q6, PrefixSplit(prefix_k, sk6, layout),
                                     PrefixSplit(prefix_v, sv6, layout), None, scaling=0.3)
    want = _reference(q6, prefix_k, prefix_v, sk6, sv6, full_R, prefix_mask_PL, 0.3)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def test_prefix_shared_attention_passes_plain_tensors_to_sdpa():
    torch.manual_seed(1)
    q, k, v = torch.randn(2, 4, 3, 8), torch.randn(2, 2, 3, 8), torch.randn(2, 2, 3, 8)
    module = _Module()
    module.num_key_value_groups = 2
    got, _ = prefix_shared_attention(module, q, k, v, None, scaling=0.5)
    want = F.scaled_dot_product_attention(q, k.repeat_interleave(2, 1), v.repeat_interleave(2, 1), scale=0.5,
                                          is_causal=True).transpose(1, 2)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)


def test_prefix_shared_layer_holds_what_a_layer_of_copies_holds():
    torch.manual_seed(2)
    P, G, KVH, Lp, D = 2, 3, 2, 4, 8
    prefix_k, prefix_v = torch.randn(P, KVH, Lp, D), torch.randn(P, KVH, Lp, D)
    prompt_B = torch.arange(P).repeat_interleave(G)
    copies = DynamicLayer()
    copies.update(prefix_k[prompt_B], prefix_v[prompt_B])
    shared = PrefixSharedKVLayer(prefix_k, prefix_v, torch.ones(P, Lp, dtype=torch.long), prompt_B, reserve_tokens=2)
    rows = prompt_B
    for step in range(5):  # past the reserve of 2: the buffers grow
        if step == 3:  # rows 1 and 4 leave
            keep = torch.tensor([0, 2, 3, 5])
            copies.batch_select_indices(keep)
            shared.batch_select_indices(keep)
            rows = rows[keep]
        k, v = torch.randn(len(rows), KVH, 1, D), torch.randn(len(rows), KVH, 1, D)
        want_k, want_v = copies.update(k, v)
        split_k, split_v = shared.update(k, v)
        assert shared.get_seq_length() == copies.get_seq_length() == Lp + step + 1
        assert shared.get_mask_sizes(1) == copies.get_mask_sizes(1)
        assert torch.equal(split_k.layout.prompt_R, rows)
        for split, want in ((split_k, want_k), (split_v, want_v)):
            assert torch.equal(torch.cat([split.prefix_PHLD[split.layout.prompt_R], split.suffix_RHTD], dim=2), want)


def test_tiny_models_sample_through_the_prefix_shared_path(tiny_dirs, monkeypatch):
    """The sampler's equality tests (test_perf_paths.py) cover this path only if the tiny models take it."""
    from omnivideo_r1.policy import prefix_attention, shared_prefix
    from omnivideo_r1.policy.omni import OmniPolicy, make_prompt
    from omnivideo_r1.schema import AVSample

    from helpers import FAMILIES, clip_from_arrays

    import numpy as np

    rng = np.random.RandomState(0)
    clip = clip_from_arrays(rng.randint(0, 256, (2, 64, 64, 3), dtype=np.uint8),
                            (0.1 * rng.randn(16_000)).astype(np.float32), fps=2.0, path="c.mp4")
    sample = AVSample(id="s", video="s.mp4", question="Which colour?", answer="B", options=["red", "green", "blue"])
    calls = []
    real = prefix_attention.prefix_shared_attention

    def spy(module, query, key, *a, **k):
        calls.append(isinstance(key, prefix_attention.PrefixSplit))
        return real(module, query, key, *a, **k)

    monkeypatch.setitem(prefix_attention.AttentionInterface._global_mapping, prefix_attention.ATTENTION_NAME, spy)
    for family in FAMILIES:
        policy = OmniPolicy.from_pretrained(tiny_dirs[family])
        calls.clear()
        policy.sample([make_prompt(sample, clip, "av")], 2, 4, generator_seed=0, share_prefix=True)
        assert calls and all(calls), family
        assert policy.model.model.config._attn_implementation != prefix_attention.ATTENTION_NAME  # restored
    assert shared_prefix.share_prefix_cache is prefix_attention.share_prefix_cache


def test_prompt_keys_held_once_sample_what_copied_rows_sample(tiny_dirs, monkeypatch):
    """The copied path (layers that are not plain full attention) and the prefix-shared one: the same tokens and
    log-probs, with rows leaving the batch on both."""
    import numpy as np

    from omnivideo_r1.policy import shared_prefix
    from omnivideo_r1.policy.omni import OmniPolicy, make_prompt
    from omnivideo_r1.schema import AVSample

    from helpers import FAMILIES, clip_from_arrays

    rng = np.random.RandomState(3)
    prompts = [make_prompt(AVSample(id=f"s{k}", video=f"s{k}.mp4", question="Which colour?" + " Why?" * k,
                                    answer="B", options=["red", "green", "blue"]),
                           clip_from_arrays(rng.randint(0, 256, (2 + k, 64, 64, 3), dtype=np.uint8),
                                            (0.1 * rng.randn(16_000)).astype(np.float32), fps=2.0, path=f"c{k}.mp4"),
                           "av") for k in range(3)]
    for family in FAMILIES:
        policy = OmniPolicy.from_pretrained(tiny_dirs[family])
        kw = dict(rollouts_per_prompt=4, max_new_tokens=24, temperature=0.9, generator_seed=[5, 6, 7],
                  share_prefix=True)
        shared = policy.sample(prompts, **kw)
        with monkeypatch.context() as m:
            m.setattr(shared_prefix, "share_prefix_cache", lambda *args: False)
            copied = policy.sample(prompts, **kw)
        assert [c.token_ids for c in shared] == [c.token_ids for c in copied], family
        for a, b in zip(shared, copied):
            np.testing.assert_allclose(a.logp, b.logp, atol=1e-5)
