"""Group-relative advantages (GRPO / GSPO) as pure tensor math.

Rewards arrive prompt-major: B = prompts x G, and rows [p*G, (p+1)*G) are the G completions of prompt p.

    A_i = (r_i - mean{r_j}) / (std{r_j} + eps)          (GSPO paper, Sec. 2; TRL / ms-swift with eps = 1e-4)

The std is the UNBIASED sample std (Bessel's correction, divide by n - 1), as TRL's `torch.std` and the released
OmniVideo-R1 fork compute it, so advantages match those trainers on identical rewards.

A NaN reward marks a failed judge. It is excluded from its group's mean and std (a silent 0 would pull the baseline
towards 0) and gets advantage 0, so that completion contributes no policy gradient.
"""

from __future__ import annotations

from typing import Literal

import torch


def group_advantages(
    rewards_B: torch.Tensor,
    group_size: int,
    scale: Literal["group", "none"] = "group",
    eps: float = 1e-4,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Group-normalised advantages for prompt-major rewards; (B,) -> ((B,), metrics).

    scale="group": (r - group mean) / (group std + eps). scale="none": r - group mean (Dr. GRPO style, no std
    division, so easy/hard prompts are not up-weighted).
    Zero advantages are returned for: NaN rewards, every member of a group with fewer than 2 valid rewards (no
    baseline can be formed), and groups whose valid rewards are all equal (no learning signal; set exactly to 0
    rather than to rounding noise of r - mean).

    metrics: reward_mean / reward_std over valid rewards (NaN when there are none / fewer than 2),
    reward_nan_frac, zero_std_group_frac (groups with >= 2 valid, all-equal rewards, over all groups),
    few_valid_group_frac (groups with < 2 valid rewards, over all groups).
    """
    if rewards_B.dim() != 1:
        raise ValueError(f"group_advantages: rewards must be 1-D (B,), got shape {tuple(rewards_B.shape)}")
    if group_size < 2:
        raise ValueError(
            f"group_advantages: group_size must be >= 2 (a group of one has no baseline), got {group_size}; "
            "set rollout.rollouts_per_prompt >= 2"
        )
    B = rewards_B.shape[0]
    if B % group_size != 0:
        raise ValueError(
            f"group_advantages: batch of {B} rewards is not a multiple of group_size={group_size}; rewards must be "
            "laid out prompt-major with exactly group_size completions per prompt"
        )
    if scale not in ("group", "none"):
        raise ValueError(f"group_advantages: scale must be 'group' or 'none', got {scale!r}")
    if torch.isinf(rewards_B).any():
        raise ValueError("group_advantages: rewards contain +-inf; a reward function returned a non-finite value")

    # float64 so that mean/std of a group are not perturbed by the float32 rounding of large rewards.
    r_PG = rewards_B.detach().to(torch.float64).reshape(-1, group_size)
    valid_PG = ~torch.isnan(r_PG)
    r0_PG = torch.where(valid_PG, r_PG, torch.zeros_like(r_PG))
    n_P = valid_PG.sum(-1)
    n_P1 = n_P.clamp(min=1).unsqueeze(-1).to(torch.float64)

    mean_P1 = r0_PG.sum(-1, keepdim=True) / n_P1
    dev_PG = torch.where(valid_PG, r_PG - mean_P1, torch.zeros_like(r_PG))
    # Unbiased sample variance over the valid members: sum (r - mean)^2 / (n - 1).
    var_P1 = (dev_PG**2).sum(-1, keepdim=True) / (n_P1 - 1).clamp(min=1)
    std_P1 = var_P1.sqrt()

    adv_PG = dev_PG / (std_P1 + eps) if scale == "group" else dev_PG

    # All-equal valid rewards, tested exactly via max == min (a std threshold would misfire on tiny real spreads).
    inf = torch.tensor(float("inf"), dtype=torch.float64, device=r_PG.device)
    max_P = torch.where(valid_PG, r_PG, -inf).amax(-1)
    min_P = torch.where(valid_PG, r_PG, inf).amin(-1)
    few_valid_P = n_P < 2
    zero_std_P = (~few_valid_P) & (max_P == min_P)
    keep_PG = valid_PG & ~(few_valid_P | zero_std_P).unsqueeze(-1)
    adv_PG = torch.where(keep_PG, adv_PG, torch.zeros_like(adv_PG))

    valid_r = r_PG[valid_PG]
    n_groups = r_PG.shape[0]
    metrics = {
        "reward_mean": valid_r.mean().item() if valid_r.numel() > 0 else float("nan"),
        "reward_std": valid_r.std().item() if valid_r.numel() > 1 else float("nan"),
        "reward_nan_frac": 1.0 - valid_PG.double().mean().item(),
        "zero_std_group_frac": zero_std_P.double().sum().item() / n_groups,
        "few_valid_group_frac": few_valid_P.double().sum().item() / n_groups,
    }
    out_dtype = rewards_B.dtype if rewards_B.is_floating_point() else torch.float32
    return adv_PG.reshape(B).to(out_dtype), metrics
