"""Reading benchmark annotation files as released: JSON, JSONL or parquet, found from a file or a root folder.

Everything here is shared by the loaders in `bench_omni.py` and `bench_video.py`:
  * `read_annotation` reads any of the three formats and turns every decoder failure into one BenchmarkFormatError
    line naming the file, where it failed and what was expected (a parquet file is recognised by its magic bytes
    whatever its name, so a renamed parquet is read, not reported as bad UTF-8);
  * `LoadReport` counts what a load dropped (missing or empty media, malformed records) and what it noticed but
    kept (a notes counter: options relabelled by position, audio taken from the video's own track, ...);
  * `RecordErrors` applies the rule "a bad record never hides the rest of a benchmark": a malformed record is
    counted and skipped, and only a file with no usable record at all is an error.
"""

from __future__ import annotations

import glob
import json
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ..answers import normalize_answer_letters, strip_option_labels
from ..schema import LETTERS, AVSample, SchemaError


class BenchmarkFormatError(SchemaError):
    """An annotation file or record that does not match the benchmark's official format."""


@dataclass
class LoadReport:
    """What a load skipped (per record, with the reason) and noticed (counted notes), for the eval report."""

    items: list[dict[str, str]] = field(default_factory=list)
    """One entry per skipped record: {"id", "reason", "detail"}; reasons: missing_media, empty_media, bad_record."""
    notes: Counter = field(default_factory=Counter)
    """Counts of kept records with something worth reporting (relabelled_options, audio_from_video, ...)."""

    def add(self, record_id: str, reason: str, detail: str) -> None:
        self.items.append({"id": record_id, "reason": reason, "detail": detail})

    def note(self, kind: str, count: int = 1) -> None:
        self.notes[kind] += count

    def by_reason(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for item in self.items:
            counts[item["reason"]] = counts.get(item["reason"], 0) + 1
        return counts

    def first(self, reason: str) -> str | None:
        """The detail of the first skip with `reason` (the example an error message quotes)."""
        return next((item["detail"] for item in self.items if item["reason"] == reason), None)

    def __len__(self) -> int:
        return len(self.items)


Skipped = LoadReport
"""The name the loaders' signatures and older callers use."""


class RecordErrors:
    """Counts malformed records into a LoadReport; without one (a direct loader call) the first one raises."""

    def __init__(self, report: LoadReport | None, annotation: str) -> None:
        self.report, self.annotation, self.bad, self.seen = report, annotation, 0, 0

    def skip(self, record_id: str, exc: BenchmarkFormatError) -> None:
        self.bad += 1
        if self.report is None:
            raise exc
        self.report.add(record_id, "bad_record", str(exc))

    def finish(self, samples: list[AVSample]) -> list[AVSample]:
        """`samples`, or an error when records were given and every one of them was malformed."""
        if not samples and self.bad and self.bad == self.seen and self.report is not None:
            raise BenchmarkFormatError(
                f"{self.annotation}: none of its {self.bad} record(s) is usable; the first: "
                f"{self.report.first('bad_record')}")
        return samples


# ---------------------------------------------------------------------------------------------------- files


def find_annotation(path: str, names: tuple[str, ...], benchmark: str) -> tuple[str, str]:
    """(annotation file, media root) from a file path or a root folder; `names` may hold glob patterns."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: {benchmark} data not found; pass the annotation file or its folder")
    if os.path.isfile(path):
        return path, os.path.dirname(os.path.abspath(path))
    for name in names:
        matches = sorted(glob.glob(os.path.join(glob.escape(path), name)))
        files = [m for m in matches if os.path.isfile(m)]
        if files:
            return files[0], os.path.abspath(path)
    raise FileNotFoundError(f"{path}: no {benchmark} annotation file; expected one of {list(names)} in this folder")


def _read_parquet(path: str, expected: str) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq
    from pyarrow import ArrowException

    try:
        return pq.read_table(path).to_pylist()
    except (ArrowException, OSError) as exc:
        raise BenchmarkFormatError(f"{path}: not a readable parquet file ({type(exc).__name__}: "
                                   f"{str(exc).splitlines()[0] if str(exc) else ''}); expected {expected}") from None


def read_annotation(path: str, expected: str) -> Any:
    """The parsed content of a JSON, JSONL (list of lines) or parquet (list of rows) annotation file.

    `expected` describes the official file in error messages ("Video-MME's test parquet or a JSON list ...").
    """
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise BenchmarkFormatError(f"{path}: cannot read it ({exc.strerror}); expected {expected}") from None
    if raw[:4] == b"PAR1":
        return _read_parquet(path, expected)
    if path.endswith(".parquet"):
        raise BenchmarkFormatError(f"{path}: named .parquet but not a parquet file (no PAR1 header); "
                                   f"expected {expected}")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BenchmarkFormatError(
            f"{path}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); expected {expected}"
        ) from None
    if path.endswith(".jsonl"):
        rows = []
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                # One bad line is one bad record: keep its place so the loader reports it by line number.
                rows.append(_BadLine(f"{path}:{lineno}: not valid JSON ({exc.msg}); each line must be one object"))
        return rows
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise BenchmarkFormatError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); "
                                   f"expected {expected}") from None


@dataclass
class _BadLine:
    """A JSONL line that did not parse; `require` reports it as that record's error."""

    message: str


def as_list(data: Any, path: str, what: str) -> list:
    if not isinstance(data, list):
        raise BenchmarkFormatError(f"{path}: expected a JSON list of {what}, got {type(data).__name__}")
    return data


def require(record: Any, keys: tuple[str, ...], where: str) -> None:
    if isinstance(record, _BadLine):
        raise BenchmarkFormatError(record.message)
    if not isinstance(record, dict):
        raise BenchmarkFormatError(f"{where}: expected a JSON object, got {type(record).__name__}")
    missing = [k for k in keys if k not in record or record[k] is None]
    if missing:
        raise BenchmarkFormatError(f"{where}: missing field(s) {missing}; official records have {list(keys)}")


# ---------------------------------------------------------------------------------------------------- fields


def options_of(options: Any, where: str, notes: list[str] | None = None) -> list[str]:
    """Option texts without their letter labels; the position is the letter (as every official scorer reads it).

    Lists labelled out of letter order (OmniVideoBench has A, B, A, B) are kept, with the note
    `relabelled_options` appended to `notes`; "A The girl ..." (letter, space, text on every option) is stripped
    like "A. The girl".
    """
    if hasattr(options, "tolist"):  # parquet list columns may arrive as numpy arrays
        options = options.tolist()
    if not isinstance(options, list) or len(options) < 2 or not all(isinstance(o, str) for o in options):
        raise BenchmarkFormatError(f"{where}: options must be a list of at least 2 strings, got {options!r}")
    if len(options) > len(LETTERS):
        raise BenchmarkFormatError(f"{where}: {len(options)} options; at most {len(LETTERS)} are supported")
    labels = strip_option_labels(options)
    for i, text in enumerate(labels.texts):
        if not text:
            raise BenchmarkFormatError(f"{where}: option {LETTERS[i]} is empty ({options[i]!r})")
    if labels.status == "relabelled" and notes is not None:
        notes.append("relabelled_options")
    return labels.texts


def normalize_options(options: Any, where: str) -> list[str]:
    """Option texts without letter labels (see `options_of`)."""
    return options_of(options, where)


def check_letter(answer: Any, n_options: int, where: str, multi: bool = False) -> str:
    """A canonical answer via the shared reference-answer normaliser: one letter, or for multi-label sorted
    letters ("B,E" -> "BE"); a multi-letter answer on a single-answer question is an error."""
    try:
        letters = normalize_answer_letters(str(answer), n_options)
    except ValueError as exc:
        raise BenchmarkFormatError(f"{where}: {exc}; valid letters are {list(LETTERS[:n_options])}") from None
    if len(letters) > 1 and not multi:
        raise BenchmarkFormatError(f"{where}: answer {answer!r} has several letters on a single-answer question")
    return letters


def duration_seconds(value: Any) -> float | None:
    """"30s", "60 s", "03:28", "1:02:03", 42 -> seconds; bucket names ("short", "<1min") -> None."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, str):
        return None
    text = value.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?\s*s(ec(ond)?s?)?", text):
        return float(re.match(r"\d+(\.\d+)?", text).group(0))
    if re.fullmatch(r"\d+(:\d{1,2}){1,2}", text):
        seconds = 0.0
        for part in text.split(":"):
            seconds = seconds * 60 + int(part)
        return seconds
    return None


# ---------------------------------------------------------------------------------------------------- media


def media_problem(path: str | None) -> str | None:
    if not path or not os.path.exists(path):
        return "missing_media"
    if os.path.isdir(path) or os.path.getsize(path) == 0:
        return "empty_media"
    return None


def first_existing(candidates: list[str]) -> str:
    """The first candidate that is a file, else the first (so a missing file is reported under its main name)."""
    for candidate in candidates:
        if os.path.isfile(candidate):
            return candidate
    return candidates[0]


def keep(sample: AVSample, report: LoadReport | None) -> bool:
    """True if the sample's media exists; otherwise count the skip (or fail loudly when nobody counts).

    A kept sample's `extra["load_notes"]` are counted into the report's notes."""
    for path in [sample.video] + ([sample.audio] if sample.audio else []):
        problem = media_problem(path)
        if problem:
            if report is None:
                raise FileNotFoundError(f"{path}: {problem.replace('_', ' ')} for record {sample.id}")
            report.add(sample.id, problem, f"{path}")
            return False
    if report is not None:
        for kind in sample.extra.get("load_notes", ()):
            report.note(kind)
    return True
