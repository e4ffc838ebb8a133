"""Listing-follows reward: does the reply's answer follow from the segments the reply itself listed?

A grounded reply lists `<time>s-e</time><caption>...</caption>` segments and then answers. The answer reward pays a
right answer however it was reached; this reward pays an answer that the reply's own listing implies, right or
wrong, so the policy is taught to read its answer out of what it wrote rather than beside it:
    r_follows = 1  if the listed events imply exactly one option and the reply answers it, else 0.
Measured on the demo's perception base (docs/demo-results.md): its listings imply the right option for 62% of a
fresh world's cross-modal questions, yet its answers agree with its own listing on 26%.

It reads listings with the synthetic world's solver (synth/questions.py), so it scores only samples written by
`omnivideo-r1 synth`; any other sample gets None (excluded from the group baseline, counted), as a judge failure
would. On real data this is a judge's job (given only the segments, which option do they imply?), not built here.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..answers import extract_answer_block, parse_choice
from ..judges.base import Judge
from ..synth.questions import candidate_answers, is_world_question
from ..synth.scene import AudioEvent, Timeline, VisualEvent, event_from_caption
from .grounded_format import parse_grounded_response
from .types import RewardOutput, RolloutRecord, score_metrics


@dataclass
class FollowsListingConfig:
    """No options: the implied answer uses every listed event, of both senses."""


def listed_timeline(completion: str, clip: Timeline) -> Timeline:
    """The events a reply lists, as a Timeline on the clip's duration; segments whose caption is not one of the
    world's captions are dropped (a garbled caption lists nothing)."""
    events = [event_from_caption(seg.start, seg.end, seg.caption)
              for seg in parse_grounded_response(completion).segments]
    return Timeline(clip.duration, [e for e in events if isinstance(e, VisualEvent)],
                    [e for e in events if isinstance(e, AudioEvent)], clip.audio_event_min_s)


def follows_listing_reward(records: list[RolloutRecord], cfg: FollowsListingConfig | None = None,
                           judge: Judge | None = None) -> RewardOutput:
    """One score per record (see the module docstring); `cfg` and `judge` are unused, kept for the common
    reward signature."""
    scores: list[float | None] = []
    not_synthetic = ambiguous = 0
    for record in records:
        sample = record.sample
        if not is_world_question(sample):
            not_synthetic += 1
            scores.append(None)
            continue
        listed = listed_timeline(record.completion, Timeline.from_dict(sample.extra["timeline"]))
        implied = candidate_answers(sample, "both", listed) if listed.visual or listed.audio else set()
        ambiguous += len(implied) > 1
        answer = parse_choice(extract_answer_block(record.completion), sample.options)
        scores.append(1.0 if len(implied) == 1 and answer in implied else 0.0)
    metrics = score_metrics(scores)
    metrics.update(not_synthetic=float(not_synthetic), ambiguous_listing=float(ambiguous))
    return RewardOutput(scores, metrics)
