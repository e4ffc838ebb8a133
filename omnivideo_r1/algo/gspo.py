"""GSPO policy loss (Zheng et al. 2025, arXiv 2507.18071) as pure tensor math.

Three importance-ratio levels share one clipped surrogate:
- "sequence" (GSPO, Eq. 5-7): one length-normalised ratio per completion,
      s_i = (pi(y_i|x) / pi_old(y_i|x))^(1/|y_i|) = exp(mean_t[log pi(y_i,t) - log pi_old(y_i,t)]).
- "sequence_token" (GSPO-token): s_i,t = sg[s_i] * pi(y_i,t) / sg[pi(y_i,t)]; same value as s_i and, for an
  advantage that is constant over the sequence, the same gradient (this is verl's "gspo" form).
- "token": the token-level GRPO/PPO ratio r_i,t = pi(y_i,t) / pi_old(y_i,t).

Aggregation is TRL's loss_type="grpo" / verl's "seq-mean-token-mean" (the released OmniVideo-R1 fork uses the same):
mean over a sequence's valid tokens, then over sequences, so every completion weighs the same whatever its length.
Matches TRL 1.16.0 `GRPOTrainer._compute_loss` for importance_sampling_level="sequence", loss_type="grpo"
(tests/test_gspo.py calls TRL's code to check). Unlike verl, no clamp is put on the log-ratio: a sequence with
s_i > exp(88) would overflow, which only happens far off-policy, and a clamp would change the gradient.
"""

from __future__ import annotations

from typing import Literal

import torch

Level = Literal["sequence", "sequence_token", "token"]
_LEVELS = ("sequence", "sequence_token", "token")


def _masked_log_ratio(logp_BT: torch.Tensor, old_logp_BT: torch.Tensor, mask_BT: torch.Tensor) -> torch.Tensor:
    # torch.where, not multiplication by the mask: padded positions may hold -inf/NaN log-probs and 0 * inf = NaN.
    return torch.where(mask_BT, logp_BT - old_logp_BT, torch.zeros_like(logp_BT))


def _check_shapes(logp_BT: torch.Tensor, old_logp_BT: torch.Tensor, mask_BT: torch.Tensor) -> None:
    if logp_BT.dim() != 2:
        raise ValueError(f"gspo: logp must be (B, T), got shape {tuple(logp_BT.shape)}")
    for name, t in (("old_logp", old_logp_BT), ("mask", mask_BT)):
        if t.shape != logp_BT.shape:
            raise ValueError(f"gspo: {name} shape {tuple(t.shape)} != logp shape {tuple(logp_BT.shape)}")


def k3_kl(logp_BT: torch.Tensor, ref_logp_BT: torch.Tensor, mask_BT: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimate of KL(pi || pi_ref) on the sampled tokens; (B, T) x3 -> (B, T), 0 off the mask.

    k3 = exp(d) - d - 1 with d = log pi_ref - log pi: unbiased, always >= 0 (Schulman; TRL / the GRPO paper).
    Gradients flow through whichever argument carries them.
    """
    d_BT = torch.where(mask_BT.bool(), ref_logp_BT - logp_BT, torch.zeros_like(logp_BT))
    return torch.exp(d_BT) - d_BT - 1.0


def token_mean(x_BT: torch.Tensor, mask_BT: torch.Tensor) -> torch.Tensor:
    """Mean of x over all valid tokens of the batch (every token weighs the same); 0 when there are none."""
    mask_BT = mask_BT.bool()
    return torch.where(mask_BT, x_BT, torch.zeros_like(x_BT)).sum() / mask_BT.sum().clamp(min=1).to(x_BT.dtype)


def sequence_log_ratio(logp_BT: torch.Tensor, old_logp_BT: torch.Tensor, mask_BT: torch.Tensor) -> torch.Tensor:
    """log s_i = (1/|y_i|) sum_t (log pi - log pi_old) over valid tokens; (B, T) x3 -> (B,).

    A row with no valid token gets log s_i = 0 (ratio 1), as TRL's clamp(min=1) on the token count does.
    """
    _check_shapes(logp_BT, old_logp_BT, mask_BT)
    mask_BT = mask_BT.bool()
    n_B = mask_BT.sum(-1).clamp(min=1).to(logp_BT.dtype)
    # log s_i(theta) = (1/|y_i|) sum_t log[pi_theta(y_i,t|x,y_i,<t) / pi_old(y_i,t|x,y_i,<t)]   (GSPO Eq. 7)
    return _masked_log_ratio(logp_BT, old_logp_BT, mask_BT).sum(-1) / n_B


def gspo_loss(
    logp_BT: torch.Tensor,
    old_logp_BT: torch.Tensor,
    adv_B: torch.Tensor,
    mask_BT: torch.Tensor,
    clip_low: float = 3e-4,
    clip_high: float = 4e-4,
    level: Level = "sequence",
    ref_logp_BT: torch.Tensor | None = None,
    beta: float = 0.0,
    num_sequences: int | float | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Clipped GSPO / GRPO surrogate loss (to minimise) and detached float metrics.

    logp_BT: log pi_theta of the sampled completion tokens (carries the gradient); old_logp_BT: log pi_old (the
    policy that sampled them, detached); adv_B: one advantage per completion; mask_BT: 1 on completion tokens that
    count. clip_low / clip_high: eps_low / eps_high of clip(s, 1 - eps_low, 1 + eps_high) (GSPO paper: 3e-4 / 4e-4).
    ref_logp_BT, beta: optional k3 KL penalty to a reference policy, added per token before aggregation (TRL).

    Aggregation: loss_i = mean over the valid tokens of sequence i (a sequence with no valid token gives 0).
    - num_sequences=None: loss = mean_i loss_i (TRL loss_type="grpo"). Correct for one batch on one process.
    - num_sequences=N: loss = sum_i loss_i / N. Pass N = the number of sequences in the whole optimizer step (all
      micro-batches): summing the backward of every micro-batch then gives exactly the full-batch gradient, even
      when micro-batches differ in size (dividing each micro-batch mean by the number of micro-batches does not).
      Under DDP, which averages gradients over W ranks, the full-batch gradient needs sum_i loss_i / (N / W) on
      each rank (verl's "seq-mean-token-mean": divide by global_batch_size, multiply by dp_size); the training
      driver passes the global N and scales the backward by W, so the logged loss stays the global-batch value.

    metrics: loss, pg_loss (without KL), ratio_mean/min/max, clip_frac_low (ratio < 1 - eps_low with A < 0),
    clip_frac_high (ratio > 1 + eps_high with A > 0), clip_frac (their sum). For the sequence levels these are over
    sequences with at least one valid token; for the token level over valid tokens. kl (mean per-token k3 over valid
    tokens) when ref_logp_BT is given.
    """
    _check_shapes(logp_BT, old_logp_BT, mask_BT)
    B = logp_BT.shape[0]
    if adv_B.shape != (B,):
        raise ValueError(f"gspo_loss: advantages must be (B,) = ({B},), got shape {tuple(adv_B.shape)}")
    if level not in _LEVELS:
        raise ValueError(f"gspo_loss: level must be one of {_LEVELS}, got {level!r}")
    if not (0.0 <= clip_low < 1.0) or clip_high < 0.0:
        raise ValueError(f"gspo_loss: need 0 <= clip_low < 1 and clip_high >= 0, got {clip_low}, {clip_high}")
    if beta != 0.0 and ref_logp_BT is None:
        raise ValueError("gspo_loss: beta != 0 needs ref_logp_BT (reference-policy log-probs)")
    if ref_logp_BT is not None and ref_logp_BT.shape != logp_BT.shape:
        raise ValueError(f"gspo_loss: ref_logp shape {tuple(ref_logp_BT.shape)} != logp {tuple(logp_BT.shape)}")
    if num_sequences is not None and num_sequences <= 0:
        raise ValueError(f"gspo_loss: num_sequences must be > 0, got {num_sequences}")

    mask_BT = mask_BT.bool()
    old_logp_BT = old_logp_BT.detach()
    adv_B1 = adv_B.detach().to(logp_BT.dtype).unsqueeze(-1)
    n_tok_B = mask_BT.sum(-1)

    if level == "sequence":
        # s_i = exp(log s_i); shape (B, 1), the gradient flows through the sequence mean   (GSPO Eq. 7)
        log_w_BX = sequence_log_ratio(logp_BT, old_logp_BT, mask_BT).unsqueeze(-1)
    elif level == "sequence_token":
        log_s_B1 = sequence_log_ratio(logp_BT, old_logp_BT, mask_BT).detach().unsqueeze(-1)
        # s_i,t = sg[s_i] * pi(y_i,t) / sg[pi(y_i,t)]   (GSPO-token); value s_i, per-token gradient s_i * grad log pi
        log_w_BX = torch.where(mask_BT, logp_BT - logp_BT.detach(), torch.zeros_like(logp_BT)) + log_s_B1
    else:
        # r_i,t = pi(y_i,t) / pi_old(y_i,t)   (GRPO / PPO token-level ratio)
        log_w_BX = _masked_log_ratio(logp_BT, old_logp_BT, mask_BT)

    coef1_BX = torch.exp(log_w_BX)
    coef2_BX = torch.clamp(coef1_BX, 1.0 - clip_low, 1.0 + clip_high)
    # -min(s A, clip(s, 1 - eps_low, 1 + eps_high) A)   (GSPO Eq. 5, negated for minimisation)
    pg_BT = (-torch.min(coef1_BX * adv_B1, coef2_BX * adv_B1)).expand_as(logp_BT)
    loss_BT = pg_BT

    kl_BT = None
    if ref_logp_BT is not None:
        kl_BT = k3_kl(logp_BT, ref_logp_BT.detach(), mask_BT)
        if beta != 0.0:
            loss_BT = loss_BT + beta * kl_BT

    def seq_token_mean(x_BT: torch.Tensor) -> torch.Tensor:
        # mean over valid tokens of each sequence; clamp(min=1) keeps empty rows at 0 as TRL does
        return torch.where(mask_BT, x_BT, torch.zeros_like(x_BT)).sum(-1) / n_tok_B.clamp(min=1).to(x_BT.dtype)

    seq_loss_B = seq_token_mean(loss_BT)
    # "grpo" aggregation: (1/G) sum_i (1/|y_i|) sum_t loss_i,t   (or sum_i / num_sequences, see docstring)
    loss = seq_loss_B.mean() if num_sequences is None else seq_loss_B.sum() / num_sequences

    metrics = _metrics(loss, seq_token_mean(pg_BT), coef1_BX, adv_B1, mask_BT, n_tok_B, level, clip_low, clip_high,
                       kl_BT, num_sequences)
    return loss, metrics


@torch.no_grad()
def _metrics(
    loss: torch.Tensor,
    seq_pg_B: torch.Tensor,
    coef1_BX: torch.Tensor,
    adv_B1: torch.Tensor,
    mask_BT: torch.Tensor,
    n_tok_B: torch.Tensor,
    level: str,
    clip_low: float,
    clip_high: float,
    kl_BT: torch.Tensor | None,
    num_sequences: int | float | None,
) -> dict[str, float]:
    if level == "token":
        sel = mask_BT  # statistics over valid tokens
        ratio = coef1_BX.detach()
        adv = adv_B1.expand_as(ratio)
    else:
        # every token of a row carries the same ratio s_i: count sequences, not tokens
        sel = n_tok_B > 0
        ratio = coef1_BX.detach()[:, 0]
        adv = adv_B1[:, 0]
    # classify in the input dtype (as TRL does) so a ratio at the clip boundary is not flipped by a cast
    r, a = ratio[sel], adv[sel]
    zero = torch.zeros((), dtype=torch.float64, device=r.device)
    one = torch.ones((), dtype=torch.float64, device=r.device)
    empty = r.numel() == 0
    low = ((r < 1.0 - clip_low) & (a < 0)).double()
    high = ((r > 1.0 + clip_high) & (a > 0)).double()
    pg = seq_pg_B.detach().sum() / (seq_pg_B.shape[0] if num_sequences is None else num_sequences)
    vals = {
        "loss": loss.detach(),
        "pg_loss": pg,
        "ratio_mean": zero if empty else r.double().mean(),
        "ratio_min": one if empty else r.min(),
        "ratio_max": one if empty else r.max(),
        "clip_frac_low": zero if empty else low.mean(),
        "clip_frac_high": zero if empty else high.mean(),
        "clip_frac": zero if empty else (low + high).mean(),
    }
    if kl_BT is not None:
        kl_valid = kl_BT.detach()[mask_BT]
        vals["kl"] = kl_valid.mean() if kl_valid.numel() > 0 else zero
    # one device->host transfer for all metrics
    stacked = torch.stack([v.to(device=loss.device, dtype=torch.float64) for v in vals.values()])
    out = dict(zip(vals.keys(), stacked.tolist()))
    return out
