"""Format reward: is the reply in the grounded format the prompt asks for?

Binary by default, like the released `tcta_format` reward, but stricter: the released regex only checked that tags
pair up and that a thinking/answer pair exists somewhere, so overlapping, reversed or out-of-clip times and text
outside the tags were paid. Here 1.0 needs every check of `grounded_format` to pass plus every segment ending within
the clip (+ `duration_tolerance_s`).
"""

from __future__ import annotations

from dataclasses import dataclass

from .grounded_format import (
    BEYOND_DURATION,
    JUNK,
    OVERLAP,
    PROBLEMS,
    SEGMENT_PROBLEMS,
    THINK_ANSWER_PROBLEMS,
    parse_grounded_response,
)
from .types import RewardOutput, RolloutRecord, score_metrics


@dataclass
class FormatRewardConfig:
    duration_tolerance_s: float = 0.5
    """Slack in seconds for segment ends past the clip length (times are written to 0.1 s and clip lengths are
    rounded by the decoder's frame sampling)."""
    partial_credit: bool = False
    """False: 1.0 or 0.0 (released behaviour). True: the share of the three check groups passed (segments,
    thinking/answer, nothing outside tags), so a nearly right reply earns 1/3 or 2/3."""
    allow_overlap: bool = False
    """Pay segments that overlap in time. False (default): overlapping segments fail the segment checks, as for
    segments of one timeline. True for replies that ground both senses: a sound heard while a shape is on screen is
    two overlapping segments, and a binding question's evidence is exactly that overlap."""


def format_problems(record: RolloutRecord, cfg: FormatRewardConfig) -> list[str]:
    """All problem codes of one reply, including the clip-length check the text parser cannot do."""
    parsed = parse_grounded_response(record.completion)
    problems = set(parsed.problems)
    if cfg.allow_overlap:
        problems.discard(OVERLAP)
    duration = record.duration
    if duration is not None and any(seg.end > duration + cfg.duration_tolerance_s for seg in parsed.segments):
        problems.add(BEYOND_DURATION)
    return sorted(problems)


def format_reward(records: list[RolloutRecord], cfg: FormatRewardConfig | None = None, judge=None) -> RewardOutput:
    """1.0 for a well-formed grounded reply, else 0.0 (or partial credit); never None. `judge` is unused."""
    cfg = cfg or FormatRewardConfig()
    scores: list[float | None] = []
    counts = dict.fromkeys(PROBLEMS, 0)
    unknown_duration = 0
    for record in records:
        problems = format_problems(record, cfg)
        unknown_duration += record.duration is None
        for code in problems:
            counts[code] += 1
        if cfg.partial_credit:
            groups = (SEGMENT_PROBLEMS, THINK_ANSWER_PROBLEMS, frozenset({JUNK}))
            scores.append(sum(not (set(problems) & g) for g in groups) / len(groups))
        else:
            scores.append(0.0 if problems else 1.0)
    n = max(len(records), 1)
    metrics = score_metrics(scores)
    metrics.update({f"fail_{code}_rate": c / n for code, c in counts.items()})
    metrics["duration_unknown_rate"] = unknown_duration / n
    return RewardOutput(scores, metrics)
