"""Query-intent grounding reward r_intent (stage QI).

For one reply with predicted segments S = {(s_k, e_k, c_k)}:
    r_cons   = mean_k judge("caption", c_k in window [s_k, e_k])            # is each caption true of its window
    r_comp   = judge("completeness", all of S, question, correct answer)    # do the segments suffice to answer
    r_intent = consistency_weight * r_cons + (1 - consistency_weight) * r_comp   # paper: weight 1/2
Requests carry the sample's reference time-caption pairs (when present) and its media paths, so either a text judge
(EmbeddedJudge) or a multimodal judge can answer them.

Failure policy: no parsable segment -> 0.0 (the policy did not ground; not a judge failure). A failed completeness
judgment, or every caption judgment failing -> None (excluded from the baseline). Some caption judgments failing ->
r_cons is the mean over the rest, and the failures are counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..answers import reference_answer_text
from ..judges.base import Judge, JudgeRequest, JudgeResult
from .grounded_format import parse_grounded_response
from .types import RewardOutput, RolloutRecord, score_metrics


@dataclass
class IntentRewardConfig:
    consistency_weight: float = 0.5
    """Weight of r_cons; r_comp gets 1 - weight. 0.5 is the paper's r_intent = (r_cons + r_comp) / 2."""
    max_segments: int = 16
    """Only the first this-many segments of a reply are judged (caps judge cost on degenerate replies); extra
    segments are ignored and counted."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.consistency_weight <= 1.0:
            raise ValueError(f"consistency_weight {self.consistency_weight} must be in [0, 1]")
        if self.max_segments < 1:
            raise ValueError(f"max_segments {self.max_segments} must be >= 1")


def _valid(result: JudgeResult) -> float | None:
    score = result.score
    if score is None or not math.isfinite(score) or not 0.0 <= score <= 1.0:
        return None
    return float(score)


def intent_reward(records: list[RolloutRecord], cfg: IntentRewardConfig | None = None,
                  judge: Judge | None = None) -> RewardOutput:
    cfg = cfg or IntentRewardConfig()
    if judge is None:
        raise ValueError("the intent reward needs a judge (rewards.judge: embedded or http)")
    requests: list[JudgeRequest] = []
    # Per record: (indices of its caption requests, index of its completeness request), or None when ungrounded.
    plan: list[tuple[list[int], int] | None] = []
    truncated = 0
    for record in records:
        sample = record.sample
        segments = parse_grounded_response(record.completion).segments
        if not segments:
            plan.append(None)
            continue
        truncated += len(segments) > cfg.max_segments
        segments = segments[: cfg.max_segments]
        common = dict(question=sample.question, options=tuple(sample.options),
                      reference_answer=reference_answer_text(sample), video=sample.video, audio=sample.audio,
                      references=tuple(sample.time_captions))
        caption_ids = []
        for seg in segments:
            caption_ids.append(len(requests))
            requests.append(JudgeRequest(task="caption", response=seg.caption, start=seg.start, end=seg.end, **common))
        plan.append((caption_ids, len(requests)))
        requests.append(JudgeRequest(task="completeness", segments=tuple(segments), **common))

    results = judge.judge(requests) if requests else []
    if len(results) != len(requests):
        raise RuntimeError(f"judge {judge.judge_id} returned {len(results)} results for {len(requests)} requests")

    scores: list[float | None] = []
    cons_vals: list[float] = []
    comp_vals: list[float] = []
    caption_failures = comp_failures = ungrounded = 0
    for entry in plan:
        if entry is None:
            ungrounded += 1
            scores.append(0.0)
            continue
        caption_ids, comp_id = entry
        caption_scores = [s for i in caption_ids if (s := _valid(results[i])) is not None]
        caption_failures += len(caption_ids) - len(caption_scores)
        comp = _valid(results[comp_id])
        comp_failures += comp is None
        if comp is None or not caption_scores:
            scores.append(None)
            continue
        cons = sum(caption_scores) / len(caption_scores)
        cons_vals.append(cons)
        comp_vals.append(comp)
        scores.append(cfg.consistency_weight * cons + (1.0 - cfg.consistency_weight) * comp)

    n = max(len(records), 1)
    metrics = score_metrics(scores)
    metrics.update({
        "consistency_mean": sum(cons_vals) / len(cons_vals) if cons_vals else float("nan"),
        "completeness_mean": sum(comp_vals) / len(comp_vals) if comp_vals else float("nan"),
        "ungrounded_rate": ungrounded / n,
        "caption_judge_failures": float(caption_failures),
        "completeness_judge_failures": float(comp_failures),
        "truncated_segments_rate": truncated / n,
        "judge_requests": float(len(requests)),
    })
    return RewardOutput(scores, metrics)
