"""GSPO loss and group advantages: hand-made examples, gradient properties, and agreement with TRL and verl."""

from __future__ import annotations

import math
from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch

from omnivideo_r1.algo.advantages import group_advantages
from omnivideo_r1.algo.gspo import gspo_loss, k3_kl, sequence_log_ratio, token_mean
from omnivideo_r1.algo.schedule import warmup_cosine

D = torch.float64  # exact comparisons are done in float64 so tolerances test the formula, not rounding


def _random_batch(seed: int, B: int = 6, T: int = 7, noise: float = 1e-3):
    """Random old log-probs, current ones close to them (so some sequences clip), random masks and advantages."""
    g = torch.Generator().manual_seed(seed)
    old = -torch.rand(B, T, generator=g, dtype=D) * 3.0
    logp = (old + noise * torch.randn(B, T, generator=g, dtype=D)).requires_grad_(True)
    mask = torch.rand(B, T, generator=g) < 0.7
    mask[:, 0] = True  # every row keeps at least one token
    adv = torch.randn(B, generator=g, dtype=D)
    return logp, old, adv, mask


# ---------------------------------------------------------------------------------------------------- advantages


def test_group_advantages_hand_example():
    r = torch.tensor([1.0, 0.0, 0.0, 1.0, 2.0, 2.0, 2.0, 5.0])
    adv, m = group_advantages(r, group_size=4)
    # group 1: mean 0.5, unbiased std sqrt(4 * 0.25 / 3) = 1/sqrt(3); group 2: mean 2.75, std sqrt(6.75 / 3) = 1.5
    a1 = 0.5 / (1 / math.sqrt(3) + 1e-4)
    expected = torch.tensor([a1, -a1, -a1, a1, -0.75 / 1.5001, -0.75 / 1.5001, -0.75 / 1.5001, 2.25 / 1.5001])
    torch.testing.assert_close(adv, expected, rtol=0, atol=1e-6)
    assert adv.dtype == torch.float32 and adv.shape == (8,)
    assert m["reward_mean"] == pytest.approx(13 / 8)
    assert m["reward_nan_frac"] == 0.0 and m["zero_std_group_frac"] == 0.0 and m["few_valid_group_frac"] == 0.0

    adv_none, _ = group_advantages(r, group_size=4, scale="none")
    torch.testing.assert_close(adv_none, torch.tensor([0.5, -0.5, -0.5, 0.5, -0.75, -0.75, -0.75, 2.25]))


def test_group_advantages_nan_is_excluded_and_zero():
    r = torch.tensor([1.0, float("nan"), 0.0, 0.5])
    adv, m = group_advantages(r, group_size=4)
    # valid rewards {1, 0, 0.5}: mean 0.5, unbiased std sqrt((0.25 + 0.25 + 0) / 2) = 0.5
    torch.testing.assert_close(adv, torch.tensor([0.5 / 0.5001, 0.0, -0.5 / 0.5001, 0.0]), rtol=0, atol=1e-6)
    assert adv[1] == 0.0 and not torch.isnan(adv).any()
    assert m["reward_nan_frac"] == pytest.approx(0.25)
    assert m["reward_mean"] == pytest.approx(0.5)


def test_group_advantages_degenerate_groups_are_zero():
    nan = float("nan")
    # all-NaN group, a group with a single valid reward, a zero-std group (0.1 is not exact in binary), a normal one
    r = torch.tensor([nan, nan, nan, 3.0, nan, nan, 0.1, 0.1, 0.1, 0.0, 1.0, 1.0])
    adv, m = group_advantages(r, group_size=3)
    assert torch.equal(adv[:9], torch.zeros(9))
    assert (adv[9:] != 0).all()
    assert m["few_valid_group_frac"] == pytest.approx(0.5)
    assert m["zero_std_group_frac"] == pytest.approx(0.25)
    assert m["reward_nan_frac"] == pytest.approx(5 / 12)

    all_nan, m2 = group_advantages(torch.full((4,), nan), group_size=2)
    assert torch.equal(all_nan, torch.zeros(4)) and math.isnan(m2["reward_mean"])


def test_group_advantages_bad_inputs_raise():
    with pytest.raises(ValueError, match="multiple of group_size"):
        group_advantages(torch.zeros(7), group_size=4)
    with pytest.raises(ValueError, match="group_size must be >= 2"):
        group_advantages(torch.zeros(4), group_size=1)
    with pytest.raises(ValueError, match="inf"):
        group_advantages(torch.tensor([1.0, float("inf")]), group_size=2)


# ---------------------------------------------------------------------------------------------------- gspo loss


@pytest.mark.parametrize("level", ["sequence", "sequence_token", "token"])
def test_ratio_one_gives_minus_mean_advantage(level):
    logp, old, adv, mask = _random_batch(0)
    loss, m = gspo_loss(old.clone().requires_grad_(True), old, adv, mask, level=level)
    torch.testing.assert_close(loss, -adv.mean(), rtol=0, atol=1e-12)
    assert m["ratio_min"] == m["ratio_max"] == 1.0 and m["clip_frac"] == 0.0


def test_sequence_log_ratio_is_masked_token_mean():
    logp = torch.tensor([[-1.0, -2.0, -3.0], [-1.0, -1.0, -1.0]], dtype=D)
    old = torch.tensor([[-1.5, -2.0, -9.0], [-1.0, -1.0, -1.0]], dtype=D)
    mask = torch.tensor([[True, True, False], [False, False, False]])
    torch.testing.assert_close(sequence_log_ratio(logp, old, mask), torch.tensor([0.25, 0.0], dtype=D))


@pytest.mark.parametrize("level", ["sequence", "sequence_token"])
def test_clipped_sequences_get_zero_gradient(level):
    old = torch.full((4, 3), -1.0, dtype=D)
    shift = torch.tensor([0.01, -0.01, -0.01, 0.01], dtype=D).unsqueeze(-1)  # s_i = exp(shift)
    adv = torch.tensor([1.0, -1.0, 1.0, -1.0], dtype=D)
    # row 0: A>0, s>1+eps_high -> clipped; row 1: A<0, s<1-eps_low -> clipped; rows 2, 3: the min keeps s*A
    logp = (old + shift).requires_grad_(True)
    mask = torch.ones(4, 3, dtype=torch.bool)
    loss, m = gspo_loss(logp, old, adv, mask, level=level)
    loss.backward()
    g = logp.grad
    assert torch.equal(g[:2], torch.zeros(2, 3, dtype=D))
    assert (g[2:] != 0).all()
    # d loss / d logp_t = -A s / (|y| B) for an unclipped sequence
    torch.testing.assert_close(g[2], torch.full((3,), -math.exp(-0.01) / 12, dtype=D))
    assert m["clip_frac_high"] == 0.25 and m["clip_frac_low"] == 0.25 and m["clip_frac"] == 0.5


def test_sequence_and_sequence_token_levels_agree():
    logp, old, adv, mask = _random_batch(1, noise=1e-2)
    loss_s, m_s = gspo_loss(logp, old, adv, mask, level="sequence")
    (g_s,) = torch.autograd.grad(loss_s, logp)
    loss_t, m_t = gspo_loss(logp, old, adv, mask, level="sequence_token")
    (g_t,) = torch.autograd.grad(loss_t, logp)
    torch.testing.assert_close(loss_s, loss_t, rtol=0, atol=1e-12)
    torch.testing.assert_close(g_s, g_t, rtol=0, atol=1e-12)
    assert 0 < m_s["clip_frac"] < 1 and m_s == pytest.approx(m_t)


def test_single_token_sequence_level_equals_token_level():
    logp, old, adv, mask = _random_batch(2, T=1, noise=1e-3)
    mask = torch.ones_like(mask)
    loss_s, m_s = gspo_loss(logp, old, adv, mask, level="sequence")
    (g_s,) = torch.autograd.grad(loss_s, logp)
    loss_t, m_t = gspo_loss(logp, old, adv, mask, level="token")
    (g_t,) = torch.autograd.grad(loss_t, logp)
    torch.testing.assert_close(loss_s, loss_t, rtol=0, atol=1e-12)
    torch.testing.assert_close(g_s, g_t, rtol=0, atol=1e-12)
    assert m_s == pytest.approx(m_t)


@pytest.mark.parametrize("level", ["sequence", "token"])
def test_micro_batch_accumulation_matches_full_batch(level):
    logp, old, adv, mask = _random_batch(3, noise=1e-2)
    ref = old + 0.05
    full, _ = gspo_loss(logp, old, adv, mask, level=level, ref_logp_BT=ref, beta=0.1)
    (g_full,) = torch.autograd.grad(full, logp)

    g_acc = torch.zeros_like(logp)
    g_naive = torch.zeros_like(logp)
    for sl in (slice(0, 1), slice(1, 3), slice(3, 6)):  # uneven micro-batches
        lp = logp.detach()[sl].clone().requires_grad_(True)
        part, _ = gspo_loss(lp, old[sl], adv[sl], mask[sl], level=level, ref_logp_BT=ref[sl], beta=0.1,
                            num_sequences=6)
        g_acc[sl] = torch.autograd.grad(part, lp)[0]
        naive, _ = gspo_loss(lp, old[sl], adv[sl], mask[sl], level=level, ref_logp_BT=ref[sl], beta=0.1)
        g_naive[sl] = torch.autograd.grad(naive / 3, lp)[0]
    torch.testing.assert_close(g_acc, g_full, rtol=0, atol=1e-12)
    # dividing each micro-batch mean by the number of micro-batches is NOT the full-batch gradient
    assert not torch.allclose(g_naive, g_full)


def test_kl_term():
    logp, old, adv, mask = _random_batch(4)
    base, _ = gspo_loss(logp, old, adv, mask)
    same, m_same = gspo_loss(logp, old, adv, mask, ref_logp_BT=logp.detach(), beta=0.5)
    assert m_same["kl"] == 0.0
    torch.testing.assert_close(same, base, rtol=0, atol=1e-12)
    other, m_other = gspo_loss(logp, old, adv, mask, ref_logp_BT=old - 0.3, beta=0.5)
    assert m_other["kl"] > 0 and other > base
    assert m_other["pg_loss"] == pytest.approx(base.item())


def test_k3_kl_and_token_mean_hand_example():
    logp = torch.tensor([[-1.0, -2.0, float("-inf")]], dtype=D)
    ref = torch.tensor([[-1.0, -1.5, 0.0]], dtype=D)
    mask = torch.tensor([[True, True, False]])
    kl = k3_kl(logp, ref, mask)
    # d = ref - logp = (0, 0.5); k3 = e^d - d - 1; the padded -inf position gives 0, not NaN
    torch.testing.assert_close(kl, torch.tensor([[0.0, math.exp(0.5) - 1.5, 0.0]], dtype=D))
    assert token_mean(kl, mask).item() == pytest.approx((math.exp(0.5) - 1.5) / 2)
    assert token_mean(kl, torch.zeros_like(mask)).item() == 0.0


def test_warmup_cosine_schedule():
    factors = [warmup_cosine(step, warmup_steps=2, decay_steps=4, floor=0.1) for step in range(8)]
    assert factors[:2] == [0.5, 1.0]
    assert factors[2] == pytest.approx(1.0) and factors[4] == pytest.approx(0.55) and factors[6] == pytest.approx(0.1)
    assert factors[7] == pytest.approx(0.1)  # stays at the floor after the decay
    assert all(a >= b for a, b in zip(factors[1:], factors[2:]))


def test_padding_with_minus_inf_and_empty_rows_stay_finite():
    logp, old, adv, mask = _random_batch(5)
    mask[0] = False  # a row with no completion token contributes 0 and still counts in the mean (as TRL)
    ref = old + 0.1
    clean, _ = gspo_loss(logp, old, adv, mask, ref_logp_BT=ref, beta=0.1)
    (g_clean,) = torch.autograd.grad(clean, logp)
    inf_pad = torch.where(mask, logp.detach(), torch.tensor(-math.inf, dtype=D)).requires_grad_(True)
    old_pad = torch.where(mask, old, torch.tensor(math.nan, dtype=D))
    for level in ("sequence", "sequence_token", "token"):
        loss, m = gspo_loss(inf_pad, old_pad, adv, mask, level=level, ref_logp_BT=ref, beta=0.1)
        (g,) = torch.autograd.grad(loss, inf_pad)
        assert torch.isfinite(loss) and torch.isfinite(g).all() and all(math.isfinite(v) for v in m.values())
        assert torch.equal(g[~mask], torch.zeros_like(g[~mask]))
    loss, _ = gspo_loss(inf_pad, old_pad, adv, mask, ref_logp_BT=ref, beta=0.1)
    torch.testing.assert_close(loss, clean, rtol=0, atol=1e-12)
    torch.testing.assert_close(torch.autograd.grad(loss, inf_pad)[0], g_clean, rtol=0, atol=1e-12)


def test_bad_inputs_raise():
    logp, old, adv, mask = _random_batch(6)
    with pytest.raises(ValueError, match="old_logp shape"):
        gspo_loss(logp, old[:, :3], adv, mask)
    with pytest.raises(ValueError, match="advantages"):
        gspo_loss(logp, old, adv[:3], mask)
    with pytest.raises(ValueError, match="ref_logp"):
        gspo_loss(logp, old, adv, mask, beta=0.1)
    with pytest.raises(ValueError, match="level"):
        gspo_loss(logp, old, adv, mask, level="seq")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------- peers


def _trl_loss(logp, old, adv, mask, eps_low, eps_high, level="sequence", ref=None, beta=0.0):
    """Run TRL 1.16.0's own GRPOTrainer._compute_loss on a stand-in trainer that holds only what it reads.

    _get_per_token_logps_and_entropies is replaced by a function returning our logp tensor, so TRL's gradient
    flows into it. Everything optional (vLLM IS correction, entropy mask/bonus, off-policy mask, aux loss) is off.
    """
    from trl.trainer import grpo_trainer as grpo  # a test dependency (pyproject [test]); imported here: it is slow
    B, T = logp.shape
    metrics = {"train": defaultdict(list)}
    stub = SimpleNamespace(
        _get_per_token_logps_and_entropies=lambda *a, **k: (logp, torch.zeros_like(logp.detach()), None),
        aux_loss_enabled=False,
        top_entropy_quantile=1.0,
        off_policy_mask_threshold=None,
        importance_sampling_level=level,
        beta=beta,
        loss_type="grpo",
        epsilon_low=eps_low,
        epsilon_high=eps_high,
        args=SimpleNamespace(use_bias_correction_kl=False, delta=None),
        use_vllm=False,
        vllm_importance_sampling_correction=False,
        model=SimpleNamespace(training=True),
        current_gradient_accumulation_steps=1,
        _entropy_bonus_enabled=False,
        _metrics=metrics,
        accelerator=SimpleNamespace(reduce=lambda t, reduction: t, gather=lambda t: t),
    )
    inputs = {
        "prompt_ids": torch.zeros(B, 1, dtype=torch.long),
        "prompt_mask": torch.ones(B, 1, dtype=torch.long),
        "completion_ids": torch.zeros(B, T, dtype=torch.long),
        "completion_mask": mask.long(),
        "advantages": adv,
        "old_per_token_logps": old,
    }
    if ref is not None:
        inputs["ref_per_token_logps"] = ref
    loss = grpo.GRPOTrainer._compute_loss(stub, None, inputs)
    return loss, metrics["train"]


@pytest.mark.parametrize("level,beta", [("sequence", 0.0), ("sequence", 0.03), ("token", 0.0)])
def test_agrees_with_trl_compute_loss(level, beta):
    logp, old, adv, mask = _random_batch(10, noise=1e-3)  # clips low and high
    ref = (old - 0.05 * torch.rand(old.shape, generator=torch.Generator().manual_seed(8), dtype=D)) if beta else None
    ours, m = gspo_loss(logp, old, adv, mask, clip_low=3e-4, clip_high=4e-4, level=level, ref_logp_BT=ref, beta=beta)
    (g_ours,) = torch.autograd.grad(ours, logp)
    theirs, trl_m = _trl_loss(logp, old, adv, mask, 3e-4, 4e-4, level=level, ref=ref, beta=beta)
    (g_theirs,) = torch.autograd.grad(theirs, logp)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-9)
    torch.testing.assert_close(g_ours, g_theirs, rtol=0, atol=1e-9)
    assert m["clip_frac"] == pytest.approx(trl_m["clip_ratio/region_mean"][0])
    assert m["clip_frac_low"] == pytest.approx(trl_m["clip_ratio/low_mean"][0])
    if beta:
        assert m["kl"] == pytest.approx(trl_m["kl"][0])
    if level == "sequence":  # the example must exercise both branches of the min
        assert 0 < m["clip_frac"] < 1


def _verl_gspo_loss(log_prob, old_log_prob, advantages, response_mask, clip_ratio_low, clip_ratio_high):
    """verl's "gspo" policy loss, transcribed from verl/trainer/ppo/core_algos.py (@register_policy_loss("gspo"),
    L1253-1326, quoted in /work/shared/research/rl-frameworks-and-gspo.md section 2.3) with agg_loss
    "seq-mean-token-mean" on one data-parallel rank (global_batch_size = B, dp_size = 1). verl is not installed."""
    response_mask = response_mask.to(log_prob.dtype)
    advantages = advantages.unsqueeze(-1).expand_as(log_prob)  # verl broadcasts outcome advantages to tokens
    negative_approx_kl = log_prob - old_log_prob
    seq_lengths = torch.sum(response_mask, dim=-1).clamp(min=1)
    negative_approx_kl_seq = torch.sum(negative_approx_kl * response_mask, dim=-1) / seq_lengths
    log_seq_importance_ratio = log_prob - log_prob.detach() + negative_approx_kl_seq.detach().unsqueeze(-1)
    log_seq_importance_ratio = torch.clamp(log_seq_importance_ratio, max=10.0)
    seq_importance_ratio = torch.exp(log_seq_importance_ratio)
    pg_losses1 = -advantages * seq_importance_ratio
    pg_losses2 = -advantages * torch.clamp(seq_importance_ratio, 1 - clip_ratio_low, 1 + clip_ratio_high)
    pg_losses = torch.maximum(pg_losses1, pg_losses2)
    seq_losses = torch.sum(pg_losses * response_mask, dim=-1) / (torch.sum(response_mask, dim=-1) + 1e-8)
    global_batch_size, dp_size = log_prob.shape[0], 1
    return seq_losses.sum() / global_batch_size * dp_size


@pytest.mark.parametrize("level", ["sequence", "sequence_token"])
def test_agrees_with_verl_gspo(level):
    logp, old, adv, mask = _random_batch(15, noise=1e-3)
    ours, m = gspo_loss(logp, old, adv, mask, clip_low=3e-4, clip_high=4e-4, level=level)
    (g_ours,) = torch.autograd.grad(ours, logp)
    theirs = _verl_gspo_loss(logp, old, adv, mask, 3e-4, 4e-4)
    (g_theirs,) = torch.autograd.grad(theirs, logp)
    # verl's 1e-8 in the token-count denominator differs from clamp(min=1) by ~1e-8 relative
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)
    torch.testing.assert_close(g_ours, g_theirs, rtol=0, atol=1e-6)
    assert 0 < m["clip_frac"] < 1
