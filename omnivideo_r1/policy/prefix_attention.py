"""Decode-step attention that reads each prompt's keys and values once for its G rows (shared-prefix sampling).

In group sampling the G rows of a prompt share the prompt's keys and values; a plain cache holds G copies and
attention reads each copy (P*G rows x prompt length per layer and token, the largest memory read of a CPU decode
step). Here a layer keeps the prompt part once per prompt (`PrefixSharedKVLayer`) and each row's generated part
apart, and `prefix_shared_attention` computes softmax attention over the two parts and merges them by their
log-sum-exp:

    o = (e^(m1 - m) * sum_j e^(s1_j - m1) v1_j + e^(m2 - m) * sum_j e^(s2_j - m2) v2_j)
        / (e^(m1 - m) * l1 + e^(m2 - m) * l2),  m = max(m1, m2), l = sum_j e^(s_j - m_.)

which is softmax over the concatenated keys: the same values as one attention over G copies, up to float rounding.

Both decode caches live here: `ReservedKVLayer` (every row's whole cache in buffers reserved for the rollout, written
in place; the copied path) and `PrefixSharedKVLayer` (its subclass: the rows' generated part in those buffers, the
prompt part once per prompt).

Plumbing: the layer's `update` returns `PrefixSplit` records instead of tensors, and the attention function
registered under ATTENTION_NAME reads them (any plain tensor goes to transformers' SDPA). The decode loop switches the
language model's `_attn_implementation` to ATTENTION_NAME for its decode steps only (`prefix_shared_decoding`); the
mask function registered under the same name returns None, as the prompt's padding mask travels in the records and a
single decode query attends to every earlier generated token of its row.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import NamedTuple

import torch
from transformers import AttentionInterface
from transformers.cache_utils import DynamicLayer
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface

ATTENTION_NAME = "omnivideo_prefix_shared"


class RowLayout(NamedTuple):
    """How the decode batch's rows map to prompts, computed once per batch (not per layer and step)."""

    prompt_R: torch.Tensor
    """The prompt of each row (long, R); rows of one prompt are contiguous and in prompt order."""
    slot_R: torch.Tensor
    """Each row's place among its prompt's rows (long, R)."""
    width: int
    """The most rows any prompt has."""
    full: bool
    """Every prompt has `width` rows, in order: rows and (prompt, slot) blocks are the same layout (a reshape)."""
    prefix_bias_P11L: torch.Tensor
    """0 where the prompt has a token, -inf on its left padding (P, 1, 1, prompt length), added to the scores."""


def row_layout(prompt_R: torch.Tensor, prefix_mask_PL: torch.Tensor) -> RowLayout:
    P = prefix_mask_PL.shape[0]
    counts_P = torch.bincount(prompt_R, minlength=P)
    first_P = torch.cumsum(counts_P, 0) - counts_P
    slot_R = torch.arange(len(prompt_R), device=prompt_R.device) - first_P[prompt_R]
    width = int(counts_P.max())
    bias = torch.zeros(prefix_mask_PL.shape, dtype=torch.float32, device=prefix_mask_PL.device)
    bias = bias.masked_fill(~prefix_mask_PL.bool(), float("-inf"))[:, None, None, :]
    return RowLayout(prompt_R, slot_R, width, bool((counts_P == width).all()), bias)


class PrefixSplit(NamedTuple):
    """What a `PrefixSharedKVLayer` hands attention for keys (or values): the two parts and how rows map to prompts."""

    prefix_PHLD: torch.Tensor
    """The prompts' keys (values), once per prompt: (P, kv heads, prompt length, head dim)."""
    suffix_RHTD: torch.Tensor
    """Each row's generated tokens' keys (values): (R, kv heads, tokens so far, head dim)."""
    layout: RowLayout


class ReservedKVLayer(DynamicLayer):
    """One layer's keys and values in buffers sized for the prompt plus every token still to come.

    `update` writes the new tokens in place and returns views of the filled part, where `DynamicLayer` concatenates
    (a copy of the layer's whole cache per decode step). Past the reserve the buffers double, so a longer run is
    still correct. Same values as `DynamicLayer`: only where they are stored differs.
    """

    def __init__(self, keys_BHLD: torch.Tensor, values_BHLD: torch.Tensor, reserve_tokens: int) -> None:
        super().__init__()
        self.dtype, self.device = keys_BHLD.dtype, keys_BHLD.device
        capacity = keys_BHLD.shape[-2] + reserve_tokens
        self._keys, self._values = (self._buffer(t, capacity) for t in (keys_BHLD, values_BHLD))
        self._set_filled(keys_BHLD.shape[-2])
        self.is_initialized = True

    @staticmethod
    def _buffer(filled_BHLD: torch.Tensor, capacity: int) -> torch.Tensor:
        B, H, L, D = filled_BHLD.shape
        buffer = filled_BHLD.new_empty(B, H, capacity, D)
        buffer[..., :L, :] = filled_BHLD
        return buffer

    def _set_filled(self, length: int) -> None:
        """`keys` / `values`: views of the buffers' first `length` positions (what attention reads)."""
        self.keys, self.values = self._keys[..., :length, :], self._values[..., :length, :]

    def update(self, key_states, value_states, *args, **kwargs):
        start = self.keys.shape[-2]
        end = start + key_states.shape[-2]
        if end > self._keys.shape[-2]:
            self._keys, self._values = (self._buffer(t, 2 * end) for t in (self.keys, self.values))
        self._keys[..., start: end, :] = key_states
        self._values[..., start: end, :] = value_states
        self._set_filled(end)
        return self.keys, self.values

    def batch_repeat_interleave(self, repeats: int) -> None:
        raise NotImplementedError("repeat the cache before reserving it (reserve_kv_cache)")

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        """Keep the rows `indices` (in that order), with the reserve: rows leaving a decode batch."""
        filled = self.keys.shape[-2]
        self._keys, self._values = self._keys[indices], self._values[indices]
        self._set_filled(filled)


def reserve_kv_cache(cache, reserve_tokens: int) -> None:
    """Swap each plain `DynamicLayer` of `cache` for a `ReservedKVLayer` with room for `reserve_tokens` more tokens.

    Other layer kinds (sliding windows, linear attention) are left as they are."""
    for i, layer in enumerate(cache.layers):
        if type(layer) is DynamicLayer and layer.get_seq_length() > 0:
            cache.layers[i] = ReservedKVLayer(layer.keys, layer.values, reserve_tokens)


class PrefixSharedKVLayer(ReservedKVLayer):
    """One layer's cache for shared-prefix decoding: the prompt part once per prompt, and each row's generated part in
    the reserved buffers of `ReservedKVLayer` (empty at first); `update` returns `PrefixSplit` records."""

    def __init__(self, keys_PHLD: torch.Tensor, values_PHLD: torch.Tensor, prefix_mask_PL: torch.Tensor,
                 prompt_R: torch.Tensor, reserve_tokens: int) -> None:
        P, H, _, D = keys_PHLD.shape
        empty_RH0D = keys_PHLD.new_empty(len(prompt_R), H, 0, D)
        super().__init__(empty_RH0D, empty_RH0D, max(1, reserve_tokens))
        self.prefix_keys, self.prefix_values, self.prefix_mask = keys_PHLD, values_PHLD, prefix_mask_PL
        self.layout = row_layout(prompt_R, prefix_mask_PL)

    def update(self, key_states, value_states, *args, **kwargs):
        keys, values = super().update(key_states, value_states)
        return PrefixSplit(self.prefix_keys, keys, self.layout), PrefixSplit(self.prefix_values, values, self.layout)

    def get_seq_length(self) -> int:
        return self.prefix_keys.shape[-2] + self.keys.shape[-2]

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        """Keep the rows `indices` (in order): rows leaving a decode batch. The prompt parts stay as they are."""
        super().batch_select_indices(indices)
        self.layout = row_layout(self.layout.prompt_R[indices], self.prefix_mask)

    def batch_repeat_interleave(self, repeats: int) -> None:
        raise NotImplementedError("rows are given when the layer is built (prompt_R)")


def share_prefix_cache(cache, prefix_mask_PL: torch.Tensor, prompt_R: torch.Tensor, reserve_tokens: int) -> bool:
    """Swap every layer of the prefilled `cache` (P prompt rows) for a `PrefixSharedKVLayer` feeding rows `prompt_R`.

    Only when every layer is a plain `DynamicLayer` (no sliding windows, no linear attention): returns whether it
    swapped; if not, the cache is untouched and the caller repeats it per row."""
    if not all(type(layer) is DynamicLayer and layer.get_seq_length() > 0 for layer in cache.layers):
        return False
    for i, layer in enumerate(cache.layers):
        cache.layers[i] = PrefixSharedKVLayer(layer.keys, layer.values, prefix_mask_PL, prompt_R, reserve_tokens)
    return True


def prefix_shared_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """Attention of decode queries (R, heads, 1, D) over `PrefixSplit` keys / values -> ((R, 1, heads, D), None).

    Plain tensors (prefill, scoring) go to transformers' SDPA attention unchanged."""
    if not isinstance(key, PrefixSplit):
        return sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout,
                                      **kwargs)
    R, H, Q, D = query.shape
    if Q != 1:
        raise ValueError(f"prefix-shared attention takes one query token per row (got {Q})")
    dtype = query.dtype
    if dtype != torch.float32:  # softmax parts and their merge in float32, as SDPA accumulates
        query, key, value = query.float(), _float(key), _float(value)
    P, KVH, Lp, _ = key.prefix_PHLD.shape
    n_rep = H // KVH  # query head h reads kv head h // n_rep (grouped-query attention)
    scale = scaling if scaling is not None else D ** -0.5
    rows, W = key.layout, key.layout.width
    q_RKND = query[:, :, 0].reshape(R, KVH, n_rep, D)

    # Prompt part: each prompt's rows as one block of W * n_rep queries against its keys, read once (not per row).
    if rows.full:
        q_PWKND = q_RKND.reshape(P, W, KVH, n_rep, D)
    else:
        q_PWKND = query.new_zeros(P, W, KVH, n_rep, D)
        q_PWKND[rows.prompt_R, rows.slot_R] = q_RKND
    q_PKMD = q_PWKND.permute(0, 2, 1, 3, 4).reshape(P, KVH, W * n_rep, D)
    s1_PKML = torch.baddbmm(rows.prefix_bias_P11L.expand(P, KVH, 1, Lp).reshape(P * KVH, 1, Lp),
                            q_PKMD.reshape(P * KVH, W * n_rep, D),
                            key.prefix_PHLD.reshape(P * KVH, Lp, D).transpose(1, 2), alpha=scale)
    m1 = s1_PKML.amax(dim=-1, keepdim=True)
    e1 = torch.exp(s1_PKML - m1)
    l1, o1 = e1.sum(dim=-1, keepdim=True), torch.bmm(e1, value.prefix_PHLD.reshape(P * KVH, Lp, D))

    def per_row(t):  # (P * KVH, W * n_rep, X) -> (R, KVH, n_rep, X)
        t = t.reshape(P, KVH, W, n_rep, -1).permute(0, 2, 1, 3, 4)
        return t.reshape(R, KVH, n_rep, -1) if rows.full else t[rows.prompt_R, rows.slot_R]

    m1, l1, o1 = per_row(m1), per_row(l1), per_row(o1)
    # Generated part: each row against its own tokens (all of them earlier than the query).
    s2 = (q_RKND @ key.suffix_RHTD.transpose(-1, -2)) * scale
    m2 = s2.amax(dim=-1, keepdim=True)
    e2 = torch.exp(s2 - m2)
    l2, o2 = e2.sum(dim=-1, keepdim=True), e2 @ value.suffix_RHTD
    # Merge the two softmax parts by their log-sum-exp.
    m = torch.maximum(m1, m2)
    w1, w2 = torch.exp(m1 - m), torch.exp(m2 - m)
    out_RKND = (w1 * o1 + w2 * o2) / (w1 * l1 + w2 * l2)
    return out_RKND.reshape(R, 1, H, D).to(dtype), None


def _float(split: PrefixSplit) -> PrefixSplit:
    return split._replace(prefix_PHLD=split.prefix_PHLD.float(), suffix_RHTD=split.suffix_RHTD.float())


def _no_mask(*args, **kwargs):
    return None


AttentionInterface.register(ATTENTION_NAME, prefix_shared_attention)
AttentionMaskInterface.register(ATTENTION_NAME, _no_mask)


@contextmanager
def prefix_shared_decoding(language_model):
    """The language model's attention goes through `prefix_shared_attention` inside the block (decode steps)."""
    config = language_model.config
    before = config._attn_implementation
    config._attn_implementation = ATTENTION_NAME
    try:
        yield
    finally:
        config._attn_implementation = before
