"""The one small judge interface: requests in, results (score in [0, 1] or None) out.

A judge failure is `score=None` with `error` set, never a silent 0: callers exclude it from group baselines.
Implementations: `judges.http.HTTPJudge` (OpenAI-compatible server: vLLM, SGLang, ...) and
`judges.embedded.EmbeddedJudge` (offline, rule-based on reference time-caption pairs).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Literal, Protocol, Sequence

from ..schema import TimeCaption

JudgeTask = Literal["caption", "completeness", "answer", "curation", "category"]
"""caption: is one predicted caption accurate for its own time window (r_cons, per segment).
completeness: are the predicted segments together sufficient to answer the question (r_comp).
answer: soft score of a free-form answer against the reference answer.
curation: four-dimension data-quality scores (video/audio dependency, question logic, answer accuracy).
category: pick one label of `options` (the taxonomy) for the sample's question; result in `label`."""

CURATION_DIMENSIONS = ("video_dependency", "audio_dependency", "question_logic", "answer_accuracy")


@dataclass(frozen=True)
class JudgeRequest:
    task: JudgeTask
    question: str = ""
    """The sample's question (with no options)."""
    options: tuple[str, ...] = ()
    """Option texts, lettered A.. in order."""
    reference_answer: str = ""
    """The correct answer ("B. a red circle")."""
    response: str = ""
    """The text being judged: one caption (caption), the model's answer (answer). Untrusted policy output."""
    segments: tuple[TimeCaption, ...] = ()
    """Predicted (start, end, caption) segments (completeness). Untrusted policy output."""
    start: float | None = None
    """Window start in seconds (caption task)."""
    end: float | None = None
    """Window end in seconds (caption task)."""
    video: str | None = None
    """Media file the judge may look at / listen to (the clipped window for multimodal judges)."""
    audio: str | None = None
    """Separate audio file, when the sample has one."""
    references: tuple[TimeCaption, ...] = ()
    """Reference time-caption pairs of the sample, when it has them: the best evidence for a text-only judge."""

    def cache_key(self, judge_id: str) -> str:
        """Stable key for on-disk caches: the judge's identity (model, prompt version) plus the whole request."""
        payload = json.dumps({"judge": judge_id, "request": asdict(self)}, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclass
class JudgeResult:
    score: float | None
    """Score in [0, 1]; None when the judge failed (excluded from baselines, counted in metrics)."""
    scores: dict[str, float] = field(default_factory=dict)
    """Named sub-scores (curation: CURATION_DIMENSIONS, each in [0, 1])."""
    raw: str = ""
    """The judge's raw reply, for audits."""
    label: str | None = None
    """A chosen label (category task), else None."""
    error: str | None = None
    """Why the judge failed (timeout, HTTP 500, unparseable reply), or None."""


class Judge(Protocol):
    judge_id: str
    """Identity used in cache keys and logs (model name + prompt version); never contains secrets."""

    def judge(self, requests: Sequence[JudgeRequest]) -> list[JudgeResult]:
        """Score each request; same length and order as `requests`. Must not raise for one bad request."""
        ...
