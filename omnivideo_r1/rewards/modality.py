"""Modality-attention reward r_attn (stage MA): pay the policy for answering better with both senses than with one.

Each AV rollout comes with the same prompt run under audio-only and video-only input (`RolloutRecord.variant_*`).

mode "accuracy" (the released `modality_attention` reward). With acc_m in {0, 1} the correctness of the answer
generated under input m:
    rule "at_least":        r = reward_value  if acc_av >= acc_audio and acc_av >= acc_video  else 0
    rule "strictly_better": r = reward_value  if acc_av >  max(acc_audio, acc_video)          else 0
  Quirk of the released code: with "at_least", three wrong answers tie at 0 and are paid. `pay_on_all_wrong`
  (default False) turns that off. Note that with it off, "at_least" is exactly reward_value * acc_av: for one
  rollout per input the comparison only differs from plain accuracy on the all-wrong tie. "strictly_better" pays
  only answers that need both senses (AV right, both single-sense inputs wrong).

mode "confidence" (the paper's wording: higher confidence from fused input). With p_m the probability of the AV
rollout's chosen letter under input m, and gap = p_av - max(p_audio, p_video):
    shape "linear": r = reward_value * clip(gap / margin, 0, 1)
    shape "step":   r = reward_value  if gap >= margin  else 0
  and r = 0 when `require_correct` and the AV answer is wrong or unparseable (confidence in a wrong answer is not
  rewarded; no probabilities are needed then).

Missing variant data (an answer or a probability not provided, or NaN) -> None, never 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from ..answers import is_correct
from .types import RewardOutput, RolloutRecord, score_metrics

SINGLE = ("audio", "video")


@dataclass
class ModalityRewardConfig:
    mode: Literal["accuracy", "confidence"] = "accuracy"
    """"accuracy": compare correctness under AV / audio-only / video-only input (released code).
    "confidence": compare the probability of the AV answer's letter under each input (paper's wording)."""
    reward_value: float = 0.3
    """Reward paid when the comparison favours AV (released comparison_reward = 0.3)."""
    accuracy_rule: Literal["at_least", "strictly_better"] = "at_least"
    """accuracy mode: "at_least" pays acc_av >= both single-sense accuracies (released); "strictly_better" pays
    acc_av > both."""
    pay_on_all_wrong: bool = False
    """accuracy mode, "at_least": also pay when all three answers are wrong (the released code's tie quirk)."""
    confidence_shape: Literal["linear", "step"] = "linear"
    """confidence mode: "linear" ramps from 0 at gap 0 to reward_value at gap = margin; "step" pays reward_value
    once gap >= margin."""
    margin: float = 0.1
    """confidence mode: the confidence gap p_av - max(p_audio, p_video) at which the full reward is paid."""
    require_correct: bool = True
    """confidence mode: pay only when the AV answer is correct."""

    def __post_init__(self) -> None:
        if self.margin <= 0:
            raise ValueError(f"modality reward margin {self.margin} must be > 0")
        if self.reward_value < 0:
            raise ValueError(f"modality reward_value {self.reward_value} must be >= 0")


def _accuracy_score(record: RolloutRecord, cfg: ModalityRewardConfig) -> tuple[float | None, dict[str, bool]]:
    if any(m not in record.variant_answers or record.variant_answers[m] is None for m in SINGLE):
        return None, {}
    acc = {"av": is_correct(record.completion, record.sample, require_answer_block=True)}
    acc.update({m: is_correct(record.variant_answers[m], record.sample, require_answer_block=True) for m in SINGLE})
    best_single = max(acc["audio"], acc["video"])
    if cfg.accuracy_rule == "strictly_better":
        pays = acc["av"] > best_single
    else:
        pays = acc["av"] >= best_single and (acc["av"] or best_single or cfg.pay_on_all_wrong)
    return (cfg.reward_value if pays else 0.0), acc


def _confidence_score(record: RolloutRecord, cfg: ModalityRewardConfig) -> tuple[float | None, float | None]:
    # A wrong (or unparseable) AV answer earns 0 without needing probabilities: the trainer does not probe those,
    # and turning them into None would drop them from the group baseline.
    if cfg.require_correct and not is_correct(record.completion, record.sample, require_answer_block=True):
        return 0.0, None
    probs = {}
    for m in ("av", *SINGLE):
        p = record.variant_confidence.get(m)
        if p is None or not math.isfinite(p):
            return None, None
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"rollout of sample {record.sample.id}: variant_confidence[{m!r}] = {p} is not a "
                             "probability in [0, 1]; pass the letter's softmax probability, not a log-prob")
        probs[m] = float(p)
    gap = probs["av"] - max(probs["audio"], probs["video"])
    if cfg.confidence_shape == "step":
        return (cfg.reward_value if gap >= cfg.margin else 0.0), gap
    return cfg.reward_value * min(max(gap / cfg.margin, 0.0), 1.0), gap


def modality_attention_reward(records: list[RolloutRecord], cfg: ModalityRewardConfig | None = None,
                              judge=None) -> RewardOutput:
    """Contrastive AV-vs-single-sense reward; `judge` is unused."""
    cfg = cfg or ModalityRewardConfig()
    scores: list[float | None] = []
    accs: dict[str, list[bool]] = {"av": [], "audio": [], "video": []}
    gaps: list[float] = []
    for record in records:
        if cfg.mode == "accuracy":
            score, acc = _accuracy_score(record, cfg)
            for m, ok in acc.items():
                accs[m].append(ok)
        else:
            score, gap = _confidence_score(record, cfg)
            if gap is not None:
                gaps.append(gap)
        scores.append(score)
    metrics = score_metrics(scores)
    for m, vals in accs.items():
        if vals:
            metrics[f"accuracy_{m}"] = sum(vals) / len(vals)
    if gaps:
        metrics["confidence_gap_mean"] = sum(gaps) / len(gaps)
    return RewardOutput(scores, metrics)
