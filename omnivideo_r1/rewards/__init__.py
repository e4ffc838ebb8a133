"""Reward functions: plain functions over a batch of rollouts, `fn(records, cfg, judge=None) -> RewardOutput`.

`REWARDS` is the one registry: reward name -> (function, its options dataclass). A recipe selects rewards by name
with weights (`rewards:`) and sets each one's options (`reward_options.<name>:`). Stage QI uses answer + format +
intent, stage MA uses answer + format + modality_attention (the released scripts, weights 1 1 1). follows_listing
is ours, for the synthetic world (rewards/listing.py).
"""

from __future__ import annotations

from typing import Any, Callable

from ..config import ConfigError, build_config
from ..judges.base import Judge
from .answer import AnswerRewardConfig, answer_reward
from .combine import combine_rewards
from .format import FormatRewardConfig, format_reward
from .intent import IntentRewardConfig, intent_reward
from .listing import FollowsListingConfig, follows_listing_reward
from .modality import ModalityRewardConfig, modality_attention_reward
from .types import RewardOutput, RolloutRecord

REWARDS: dict[str, tuple[Callable[..., RewardOutput], type]] = {
    "format": (format_reward, FormatRewardConfig),
    "answer": (answer_reward, AnswerRewardConfig),
    "intent": (intent_reward, IntentRewardConfig),
    "modality_attention": (modality_attention_reward, ModalityRewardConfig),
    "follows_listing": (follows_listing_reward, FollowsListingConfig),
}


def build_reward_config(name: str, options: dict[str, Any] | None = None):
    """The options dataclass of reward `name` from a plain mapping (a recipe's `reward_options.<name>`), checked."""
    if name not in REWARDS:
        raise ConfigError(f"unknown reward {name!r}; known: {sorted(REWARDS)}")
    if options is not None and not isinstance(options, dict):
        raise ConfigError(f"reward_options.{name}: expected a mapping of options, got {options!r}")
    return build_config(REWARDS[name][1], dict(options or {}), f"reward_options.{name}")


def check_reward_settings(weights: dict[str, float], options: dict[str, dict]) -> None:
    """Config-load check of a recipe's `rewards` and `reward_options`: known names, valid options."""
    unknown = sorted(set(weights) - set(REWARDS))
    if unknown:
        raise ConfigError(f"rewards: unknown reward(s) {unknown}; known: {sorted(REWARDS)}")
    for name, opts in options.items():
        build_reward_config(name, opts)


def compute_rewards(records: list[RolloutRecord], weights: dict[str, float], options: dict[str, dict],
                    judge: Judge | None = None) -> dict[str, RewardOutput]:
    """Run every reward named in `weights` (with its `options`) over the batch; {name: RewardOutput}.

    Weights are applied by `combine_rewards`; a reward with weight 0 is still computed, so it can be watched.
    """
    check_reward_settings(weights, options)
    outputs = {}
    for name in weights:
        fn, _ = REWARDS[name]
        outputs[name] = fn(records, build_reward_config(name, options.get(name)), judge=judge)
    return outputs


__all__ = [
    "REWARDS", "RewardOutput", "RolloutRecord", "build_reward_config", "check_reward_settings", "combine_rewards",
    "compute_rewards",
    "AnswerRewardConfig", "FollowsListingConfig", "FormatRewardConfig", "IntentRewardConfig", "ModalityRewardConfig",
]
