"""Reward functions: plain functions over a batch of rollouts, `fn(records, cfg, judge=None) -> RewardOutput`.

`cfg` is the reward's own sub-config (`RewardConfig.<name>`). Stage QI uses answer + format + intent, stage MA uses
answer + format + modality_attention (the released scripts, weights 1 1 1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..config import _build
from ..judges.base import Judge
from .answer import AnswerRewardConfig, answer_reward
from .combine import combine_rewards
from .format import FormatRewardConfig, format_reward
from .intent import IntentRewardConfig, intent_reward
from .modality import ModalityRewardConfig, modality_attention_reward
from .types import RewardOutput, RolloutRecord

REWARD_FUNCTIONS = {
    "format": format_reward,
    "answer": answer_reward,
    "intent": intent_reward,
    "modality_attention": modality_attention_reward,
}


@dataclass
class RewardConfig:
    weights: dict[str, float] = field(default_factory=lambda: {"answer": 1.0, "format": 1.0, "intent": 1.0})
    """Reward name (a key of REWARD_FUNCTIONS) -> weight in the total; only named rewards are computed."""
    format: FormatRewardConfig = field(default_factory=FormatRewardConfig)
    """Settings of the format reward."""
    answer: AnswerRewardConfig = field(default_factory=AnswerRewardConfig)
    """Settings of the answer reward."""
    intent: IntentRewardConfig = field(default_factory=IntentRewardConfig)
    """Settings of the query-intent grounding reward (stage QI)."""
    modality_attention: ModalityRewardConfig = field(default_factory=ModalityRewardConfig)
    """Settings of the modality-attention reward (stage MA)."""
    judge: Literal["embedded", "http"] = "embedded"
    """Judge for the intent (and soft answer) rewards: "embedded" (offline, needs reference time-caption pairs)
    or "http" (an OpenAI-compatible judge server)."""

    def __post_init__(self) -> None:
        unknown = sorted(set(self.weights) - set(REWARD_FUNCTIONS))
        if unknown:
            raise ValueError(f"unknown reward(s) {unknown} in weights; known: {sorted(REWARD_FUNCTIONS)}")


_SUB_CONFIGS = {
    "format": FormatRewardConfig,
    "answer": AnswerRewardConfig,
    "intent": IntentRewardConfig,
    "modality_attention": ModalityRewardConfig,
}


def build_reward_config(name: str, options: dict | None = None):
    """The sub-config of reward `name` from a plain mapping (a recipe's `reward_options.<name>`), type-checked."""
    if name not in _SUB_CONFIGS:
        raise ValueError(f"unknown reward {name!r}; known: {sorted(_SUB_CONFIGS)}")
    # config._build gives the same unknown-key and wrong-type errors as every other recipe section.
    return _build(_SUB_CONFIGS[name], dict(options or {}), f"reward_options.{name}")


def compute_rewards(records: list[RolloutRecord], cfg: RewardConfig,
                    judge: Judge | None = None) -> tuple[list[float], dict[str, float], dict[str, RewardOutput]]:
    """Run every weighted reward over the batch; returns (totals with NaN for failures, metrics, per-reward outputs)."""
    sub_configs = {"format": cfg.format, "answer": cfg.answer, "intent": cfg.intent,
                   "modality_attention": cfg.modality_attention}
    outputs = {name: REWARD_FUNCTIONS[name](records, sub_configs[name], judge)
               for name, w in cfg.weights.items() if w != 0}
    totals, metrics = combine_rewards(outputs, {name: cfg.weights[name] for name in outputs})
    return totals, metrics, outputs


__all__ = [
    "REWARD_FUNCTIONS", "RewardConfig", "RewardOutput", "RolloutRecord", "build_reward_config", "compute_rewards",
    "combine_rewards",
    "AnswerRewardConfig", "FormatRewardConfig", "IntentRewardConfig", "ModalityRewardConfig",
]
