"""Records shared by all reward functions: one rollout in, one score (or None) out per rollout."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..schema import MODALITIES, AVSample


@dataclass
class RolloutRecord:
    sample: AVSample
    """The question the rollout answers."""
    completion: str
    """The policy's generated text (untrusted)."""
    modality: str = "av"
    """Input condition the completion was generated under: one of MODALITIES."""
    clip_duration: float | None = None
    """Length in seconds of the clip the policy saw; None falls back to `sample.duration`."""
    variant_answers: dict[str, str] = field(default_factory=dict)
    """Modality ("audio", "video") -> completion generated for the same prompt under that input only (MA stage)."""
    variant_confidence: dict[str, float] = field(default_factory=dict)
    """Modality ("av", "audio", "video") -> probability of the AV rollout's chosen letter under that input."""

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES:
            raise ValueError(f"rollout of sample {self.sample.id}: modality {self.modality!r} not in {MODALITIES}")

    @property
    def duration(self) -> float | None:
        return self.clip_duration if self.clip_duration is not None else self.sample.duration


@dataclass
class RewardOutput:
    scores: list[float | None]
    """One score per record, same order; None means the reward could not score it (judge failure, missing data)."""
    metrics: dict[str, float] = field(default_factory=dict)
    """Batch statistics, keyed without the reward's name (the caller prefixes it)."""


def score_metrics(scores: list[float | None]) -> dict[str, float]:
    """Mean over the scored records and the count of None, the two metrics every reward reports."""
    valid = [s for s in scores if s is not None and not math.isnan(s)]
    return {"mean": sum(valid) / len(valid) if valid else float("nan"), "n_none": float(len(scores) - len(valid))}
