"""The one sample schema read by curation, training and evaluation.

A sample is one multiple-choice question about one clip. It is stored as one JSON object per line (JSONL).
Media paths may be absolute or relative to the JSONL file's folder; `read_samples` resolves them.

    {"id": "synth-000012-q1", "video": "clips/000012.mp4", "audio": null,
     "question": "What colour was on screen when the high beep sounded?",
     "options": ["red", "green", "blue", "yellow"], "answer": "B",
     "category": "av_temporal_binding", "modality_needs": "both",
     "time_captions": [{"start": 1.0, "end": 2.5, "caption": "A green circle appears on the left."}],
     "start": null, "end": null, "duration": 6.0, "source": "synthetic", "extra": {}}
"""

from __future__ import annotations

import json
import os
import string
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Iterator

from .errors import UserError

LETTERS = string.ascii_uppercase
MODALITY_NEEDS = ("video", "audio", "both", "unknown")
MODALITIES = ("av", "video", "audio")
"""Input conditions a question is asked under: av (frames + audio), video (frames only: the silent-video condition),
audio (audio only). Rewards, prompts and evaluation share them."""


def time_span_text(start: float, end: float) -> str:
    """A time span as a `<time>` tag writes it: "1.0-2.5" (tenths of a second). Every target, drill and question that
    quotes a span takes its digits from here, so they match the policy's tags token for token;
    `rewards.grounded_format.parse_time_range` reads them back."""
    return f"{start:.1f}-{end:.1f}"


class SchemaError(UserError, ValueError):
    """A record that does not fit the sample schema; the message names the file, line and field."""


@dataclass
class TimeCaption:
    start: float
    """Segment start in seconds from the clip start."""
    end: float
    """Segment end in seconds; always > start."""
    caption: str
    """What is seen and/or heard in the segment."""


@dataclass
class AVSample:
    id: str
    """Unique id of the question (not of the clip: one clip may carry several questions)."""
    video: str
    """Path to the video file (its audio track is the sample's audio unless `audio` is set)."""
    question: str
    """The question text, without the options."""
    options: list[str]
    """Option texts without their letter prefix; option i has letter LETTERS[i]."""
    answer: str
    """Correct option letter ("A".."Z"); multi-label answers are letters joined without separator ("AC")."""
    category: str = "uncategorized"
    """Task category (taxonomy name for training data, task type for benchmarks)."""
    modality_needs: str = "unknown"
    """Which senses the question needs: "video", "audio", "both" or "unknown"."""
    audio: str | None = None
    """Separate audio file (e.g. Daily-Omni's _audio.wav); None means use the video's own audio track."""
    time_captions: list[TimeCaption] = field(default_factory=list)
    """Reference (start, end, caption) evidence, when the source has it; the intent reward uses it."""
    start: float | None = None
    """Optional window start in seconds (only this part of the clip is shown)."""
    end: float | None = None
    """Optional window end in seconds."""
    duration: float | None = None
    """Clip (or window) length in seconds, if known."""
    source: str = "unknown"
    """Where the record came from (synthetic, llava-video-178k, videovista, daily-omni, ...)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Anything source-specific that must survive a round trip (scores, original ids, ...)."""

    @property
    def answer_text(self) -> str:
        """The correct option's text (first letter for multi-label answers)."""
        return self.options[LETTERS.index(self.answer[0])]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_REQUIRED = ("id", "video", "question", "options", "answer")


def sample_from_dict(obj: dict[str, Any], where: str = "<record>", base_dir: str | None = None) -> AVSample:
    """Validate one JSON object and build an AVSample; errors name `where` (file:line) and the fix."""
    if not isinstance(obj, dict):
        raise SchemaError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    missing = [k for k in _REQUIRED if k not in obj]
    if missing:
        raise SchemaError(f"{where}: missing field(s) {missing}; every sample needs {list(_REQUIRED)}")
    known = set(AVSample.__dataclass_fields__)
    unknown = sorted(set(obj) - known)
    if unknown:
        raise SchemaError(f"{where}: unknown field(s) {unknown}; put source-specific data under 'extra'")
    options = obj["options"]
    if not isinstance(options, list) or len(options) < 2 or not all(isinstance(o, str) for o in options):
        raise SchemaError(f"{where}: 'options' must be a list of at least 2 strings")
    if len(options) > len(LETTERS):
        raise SchemaError(f"{where}: {len(options)} options; at most {len(LETTERS)} are supported")
    answer = obj["answer"]
    valid = LETTERS[: len(options)]
    if not isinstance(answer, str) or not answer or any(ch not in valid for ch in answer):
        raise SchemaError(f"{where}: answer {answer!r} is not a letter among {list(valid)}")
    needs = obj.get("modality_needs", "unknown")
    if needs not in MODALITY_NEEDS:
        raise SchemaError(f"{where}: modality_needs {needs!r} must be one of {MODALITY_NEEDS}")
    pairs = []
    for i, tc in enumerate(obj.get("time_captions") or []):
        try:
            start, end, caption = float(tc["start"]), float(tc["end"]), str(tc["caption"])
        except (KeyError, TypeError, ValueError) as exc:
            raise SchemaError(f"{where}: time_captions[{i}] needs numeric start/end and a caption ({exc})") from None
        if not end > start:
            raise SchemaError(f"{where}: time_captions[{i}] has end {end} <= start {start}")
        pairs.append(TimeCaption(start, end, caption))
    fields = dict(obj)
    fields["time_captions"] = pairs
    for key in ("video", "audio"):
        path = fields.get(key)
        if path and base_dir and not os.path.isabs(path):
            fields[key] = os.path.normpath(os.path.join(base_dir, path))
    return AVSample(**fields)


def read_samples(path: str) -> list[AVSample]:
    """Read a JSONL file of samples; relative media paths are resolved against the file's folder."""
    return list(iter_samples(path))


def iter_json_lines(path: str) -> Iterator[tuple[str, Any, str | None]]:
    """(where, object, error) for each non-blank line: `where` is "file:line"; a line that is not JSON gives
    object None and the parse error, so callers choose between raising and recording a rejection."""
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                yield where, json.loads(line), None
            except json.JSONDecodeError as exc:
                yield where, None, exc.msg


def iter_samples(path: str) -> Iterator[AVSample]:
    base_dir = os.path.dirname(os.path.abspath(path))
    for where, obj, error in iter_json_lines(path):
        if error is not None:
            raise SchemaError(f"{where}: not valid JSON ({error}); each line must be one JSON object")
        yield sample_from_dict(obj, where, base_dir)


def write_samples(path: str, samples: Iterable[AVSample], relative_to_file: bool = True) -> int:
    """Write samples as JSONL atomically; media paths are stored relative to the file when possible."""
    base_dir = os.path.dirname(os.path.abspath(path))
    os.makedirs(base_dir, exist_ok=True)
    tmp = f"{path}.tmp"
    count = 0
    with open(tmp, "w", encoding="utf-8") as fh:
        for sample in samples:
            obj = sample.to_dict()
            if relative_to_file:
                for key in ("video", "audio"):
                    if obj.get(key) and os.path.isabs(obj[key]):
                        obj[key] = os.path.relpath(obj[key], base_dir)
            fh.write(json.dumps(obj, ensure_ascii=False) + "\n")
            count += 1
    os.replace(tmp, path)
    return count


def write_jsonl(path: str, rows: Iterable[dict[str, Any]]) -> int:
    """Write plain dict rows as JSONL atomically (reports, rejected records, eval outputs)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp"
    count = 0
    with open(tmp, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    os.replace(tmp, path)
    return count
