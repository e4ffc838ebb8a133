"""Score thresholds that decide which judged samples stay: the paper's rules and the released code's rules.

Judges report every dimension in [0, 1]. A rule set first maps that onto its own scale, `s = scale * x + offset`,
then applies its thresholds there, so thresholds read exactly as their source wrote them:

- "paper" (arXiv 2602.05847): a sample fails if s_r != 1 or s_q < 0, and only strong audio-visual dependency
  (s_v >= 0) is kept. The paper's scores are signed with 0 as neutral and 1 as best, so we read them on [-1, 1]:
  scale 2, offset -1 (x = 1 -> 1, x = 0.5 -> 0, x = 0 -> -1). s_r != 1 then means "answer accuracy below the top
  score"; s_q >= 0 and s_v >= 0 mean "at least 0.5" on the judge's scale. The paper names one AV-dependency score;
  we apply it to both the video and the audio dimension because the MA stage needs both senses.
- "released" (zhangquanchen/OmniVideo-R1 preprocess/filter_quality_data.py and filter_by_scores.py), 0-10 scales:
  answer accuracy == 10, question logic >= 8, composite >= 7, video and audio dependency >= 7 (scale 10, offset 0).

Ties: judges round (the HTTP judge divides 0-10 integers by 10), so comparisons allow `tolerance`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..judges.base import CURATION_DIMENSIONS


@dataclass
class RuleSet:
    name: str = "paper"
    """Label of the rule set, written to the report."""
    scale: float = 2.0
    """Multiplier from the judge's [0, 1] scores to this rule set's scale (paper: 2, released: 10)."""
    offset: float = -1.0
    """Added after scaling (paper: -1, so [0, 1] becomes [-1, 1]; released: 0)."""
    exact_answer_accuracy: float | None = 1.0
    """Answer accuracy must equal this on the rule scale (paper: s_r == 1; released: 10); null = no check."""
    min_answer_accuracy: float | None = None
    """Alternatively, a lower bound on answer accuracy; null = no check."""
    min_question_logic: float | None = 0.0
    """Lower bound on question logic (paper: s_q >= 0; released: 8); null = no check."""
    min_video_dependency: float | None = 0.0
    """Lower bound on video dependency (paper: s_v >= 0; released: 7); null = no check."""
    min_audio_dependency: float | None = 0.0
    """Lower bound on audio dependency (paper: the AV-dependency bound, applied to audio too; released: 7)."""
    min_composite: float | None = None
    """Lower bound on the composite score on the rule scale (released: 7); null = no check."""
    tolerance: float = 1e-6
    """Slack for float comparisons on the rule scale (0.8 * 10 is 8.000000000000002)."""


# Order matters: the first failing check is the rejection reason; all failures go to the detail.
_CHECKS = ("answer_accuracy", "question_logic", "video_dependency", "audio_dependency", "composite")


def composite_score(scores: dict[str, float], weights: dict[str, float]) -> float:
    """Weighted mean of the four judge dimensions (weights need not sum to 1; they are normalised)."""
    missing = [k for k in weights if k not in CURATION_DIMENSIONS]
    if missing:
        raise ValueError(f"composite_weights has unknown dimension(s) {missing}; use {list(CURATION_DIMENSIONS)}")
    total = sum(weights.values())
    if total <= 0:
        raise ValueError("composite_weights must have a positive sum")
    return sum(scores[k] * w for k, w in weights.items()) / total


def to_rule_scale(value: float, rules: RuleSet) -> float:
    return rules.scale * value + rules.offset


def check_rules(scores: dict[str, float], composite: float, rules: RuleSet) -> list[str]:
    """Names of the failed checks ("answer_accuracy", ..., "composite"), in a fixed order; [] = keep."""
    values = {k: to_rule_scale(scores[k], rules) for k in CURATION_DIMENSIONS}
    values["composite"] = to_rule_scale(composite, rules)
    tol = rules.tolerance
    failed = []
    for check in _CHECKS:
        v = values[check]
        if check == "answer_accuracy" and rules.exact_answer_accuracy is not None \
                and abs(v - rules.exact_answer_accuracy) > tol:
            failed.append(check)
            continue
        bound = getattr(rules, f"min_{check}")
        if bound is not None and v < bound - tol:
            failed.append(check)
    return failed


def filter_record(record: dict[str, Any], rules: RuleSet, weights: dict[str, float]) -> tuple[bool, str, str]:
    """Pure filter on a plain record {"scores": {...}} -> (keep, reason, detail); reason "low_<check>"."""
    scores = record["scores"]
    composite = composite_score(scores, weights)
    failed = check_rules(scores, composite, rules)
    if not failed:
        return True, "", ""
    shown = {k: round(to_rule_scale(scores[k] if k != "composite" else composite, rules), 3) for k in failed}
    return False, f"low_{failed[0]}", f"rule set {rules.name}: failed {shown}"


def paper_rules() -> RuleSet:
    return RuleSet()


def released_rules() -> RuleSet:
    return RuleSet(name="released", scale=10.0, offset=0.0, exact_answer_accuracy=10.0, min_question_logic=8.0,
                   min_video_dependency=7.0, min_audio_dependency=7.0, min_composite=7.0)
