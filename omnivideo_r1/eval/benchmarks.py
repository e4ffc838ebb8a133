"""Benchmark loaders: each official on-disk format -> list[AVSample].

`--data` may be the annotation file itself or the benchmark's root folder (the loader then looks for the
annotation file under its official name). Media paths follow each benchmark's release layout:

    daily-omni      qa.json                 Videos/<id>/<id>_video.mp4 + Videos/<id>/<id>_audio.wav
    worldsense      worldsense_qa.json      videos/<video>.mp4 (or <video>.mp4 next to the json)
    omnivideobench  data.json               videos/<video>.mp4 (or <video>.mp4)
    intentbench     qa.json                 the record's `path`, relative to the root (or under videos/)
    video-holmes    test_Video-Holmes.json  videos/<video ID>.mp4
    video-mme       videomme.json           data/<videoID>.mp4 or videos/<videoID>.mp4
    synthetic       samples.jsonl           our schema (schema.read_samples)

A malformed record raises BenchmarkFormatError naming the file and the record. A record whose media file is
missing or empty is skipped and counted in `Skipped` (decode failures are found later, at eval time, and become
`media_error` rows), so one missing clip never hides the rest of a benchmark.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from ..answers import extract_answer_block, normalize_answer_letters
from ..schema import LETTERS, AVSample, SchemaError, read_samples


class BenchmarkFormatError(SchemaError):
    """An annotation file or record that does not match the benchmark's official format."""


@dataclass
class Skipped:
    """Records dropped at load time because their media is missing; counted per reason for the report."""

    items: list[dict[str, str]] = field(default_factory=list)
    """One entry per skipped record: {"id", "reason", "detail"}."""

    def add(self, record_id: str, reason: str, detail: str) -> None:
        self.items.append({"id": record_id, "reason": reason, "detail": detail})

    def by_reason(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for item in self.items:
            counts[item["reason"]] = counts.get(item["reason"], 0) + 1
        return counts

    def __len__(self) -> int:
        return len(self.items)


# "A. text", "A.text", "A) text", "A: text", "(A) text", "[A] text" -> letter + text. The delimiter is required so an
# option that merely starts with a capital ("A man runs") is left alone.
_OPTION_PREFIX = re.compile(r"^\s*(?:\(([A-Z])\)|\[([A-Z])\]|([A-Z])\s*[.):：])\s*(.*)$", re.S)


def normalize_options(options: Any, where: str) -> list[str]:
    """Strip the letter prefixes ("A. x", "(B) y") and check they are in order A, B, C, ...

    A prefix whose letter does not match its position means the options were reordered and the answer letter
    would point at the wrong text, so it is an error rather than silently stripped.
    """
    if not isinstance(options, list) or len(options) < 2 or not all(isinstance(o, str) for o in options):
        raise BenchmarkFormatError(f"{where}: options must be a list of at least 2 strings, got {options!r}")
    if len(options) > len(LETTERS):
        raise BenchmarkFormatError(f"{where}: {len(options)} options; at most {len(LETTERS)} are supported")
    texts = []
    for i, raw in enumerate(options):
        match = _OPTION_PREFIX.match(raw)
        if match:
            letter = match.group(1) or match.group(2) or match.group(3)
            if letter != LETTERS[i]:
                raise BenchmarkFormatError(
                    f"{where}: option {i} is labelled {letter!r} but sits at position {LETTERS[i]!r} ({raw!r}); "
                    "options must be listed in letter order")
            text = match.group(4).strip()
        else:
            text = raw.strip()
        if not text:
            raise BenchmarkFormatError(f"{where}: option {LETTERS[i]} is empty ({raw!r})")
        texts.append(text)
    return texts


def _check_letter(answer: Any, n_options: int, where: str, multi: bool = False) -> str:
    """A canonical answer via the shared reference-answer normaliser: one letter, or for multi-label sorted
    letters ("B,E" -> "BE"); a multi-letter answer on a single-answer question is an error."""
    try:
        letters = normalize_answer_letters(str(answer), n_options)
    except ValueError as exc:
        raise BenchmarkFormatError(f"{where}: {exc}; valid letters are {list(LETTERS[:n_options])}") from None
    if len(letters) > 1 and not multi:
        raise BenchmarkFormatError(f"{where}: answer {answer!r} has several letters on a single-answer question")
    return letters


def _read_json(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except json.JSONDecodeError as exc:
        raise BenchmarkFormatError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}); "
                                   "give the benchmark's original annotation file") from None


def _annotation_path(path: str, names: tuple[str, ...], benchmark: str) -> tuple[str, str]:
    """(annotation file, media root) from a file path or a root folder."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: {benchmark} data not found; pass the annotation file or its folder")
    if os.path.isfile(path):
        return path, os.path.dirname(os.path.abspath(path))
    for name in names:
        candidate = os.path.join(path, name)
        if os.path.isfile(candidate):
            return candidate, os.path.abspath(path)
    raise FileNotFoundError(f"{path}: no {benchmark} annotation file; expected one of {list(names)} in this folder")


def _media_problem(path: str | None) -> str | None:
    if not path or not os.path.exists(path):
        return "missing_media"
    if os.path.isdir(path) or os.path.getsize(path) == 0:
        return "empty_media"
    return None


def _first_existing(candidates: list[str]) -> str:
    """The first candidate that exists, else the first (so a missing file is reported under its main name)."""
    for candidate in candidates:
        if os.path.isfile(candidate):
            return candidate
    return candidates[0]


def _keep(sample: AVSample, skipped: Skipped | None) -> bool:
    """True if the sample's media exists; otherwise count the skip (or fail loudly when nobody counts)."""
    for path in [sample.video] + ([sample.audio] if sample.audio else []):
        problem = _media_problem(path)
        if problem:
            if skipped is None:
                raise FileNotFoundError(f"{path}: {problem.replace('_', ' ')} for record {sample.id}")
            skipped.add(sample.id, problem, f"{path}")
            return False
    return True


def _duration_seconds(value: Any) -> float | None:
    """"30s", "03:28", "1:02:03", 42 -> seconds; bucket names ("short") -> None."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, str):
        return None
    text = value.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?\s*s", text):
        return float(text.rstrip("s").strip())
    if re.fullmatch(r"\d+(:\d{1,2}){1,2}", text):
        seconds = 0.0
        for part in text.split(":"):
            seconds = seconds * 60 + int(part)
        return seconds
    return None


def _require(record: Any, keys: tuple[str, ...], where: str) -> None:
    if not isinstance(record, dict):
        raise BenchmarkFormatError(f"{where}: expected a JSON object, got {type(record).__name__}")
    missing = [k for k in keys if k not in record]
    if missing:
        raise BenchmarkFormatError(f"{where}: missing field(s) {missing}; official records have {list(keys)}")


def _as_list(data: Any, path: str, what: str) -> list:
    if not isinstance(data, list):
        raise BenchmarkFormatError(f"{path}: expected a JSON list of {what}, got {type(data).__name__}")
    return data


def load_daily_omni(path: str, skipped: Skipped | None = None) -> list[AVSample]:
    """Daily-Omni qa.json: [{Question, Choice, Answer, video_id, Type, ...}]; audio is the separate _audio.wav."""
    ann, root = _annotation_path(path, ("qa.json",), "Daily-Omni")
    out = []
    for i, rec in enumerate(_as_list(_read_json(ann), ann, "questions")):
        where = f"{ann} record {i}"
        _require(rec, ("Question", "Choice", "Answer", "video_id"), where)
        vid = str(rec["video_id"])
        where = f"{where} (video_id {vid})"
        options = normalize_options(rec["Choice"], where)
        folder = os.path.join(root, "Videos", vid)
        sample = AVSample(
            id=f"daily-omni-{i:04d}-{vid}", video=os.path.join(folder, f"{vid}_video.mp4"),
            audio=os.path.join(folder, f"{vid}_audio.wav"), question=str(rec["Question"]).strip(),
            options=options, answer=_check_letter(rec["Answer"], len(options), where),
            category=str(rec.get("Type") or "uncategorized"), modality_needs="both",
            duration=_duration_seconds(rec.get("video_duration")), source="daily-omni",
            extra={"index": i, "video_id": vid, **{k: rec[k] for k in ("content_parent_category",
                   "content_fine_category", "video_category", "video_duration") if k in rec}})
        if _keep(sample, skipped):
            out.append(sample)
    return out


def load_worldsense(path: str, skipped: Skipped | None = None) -> list[AVSample]:
    """WorldSense worldsense_qa.json: {video: {duration, domain, ..., task0: {question, candidates, answer, ...}}}."""
    ann, root = _annotation_path(path, ("worldsense_qa.json",), "WorldSense")
    data = _read_json(ann)
    if not isinstance(data, dict):
        raise BenchmarkFormatError(f"{ann}: expected a JSON object keyed by video id, got {type(data).__name__}")
    out = []
    for vid, entry in data.items():
        where = f"{ann} video {vid}"
        if not isinstance(entry, dict):
            raise BenchmarkFormatError(f"{where}: expected an object with task0..taskN, got {type(entry).__name__}")
        tasks = sorted((k for k in entry if re.fullmatch(r"task\d+", k)), key=lambda k: int(k[4:]))
        if not tasks:
            raise BenchmarkFormatError(f"{where}: no task0..taskN entries; is this worldsense_qa.json?")
        video = _first_existing([os.path.join(root, "videos", f"{vid}.mp4"), os.path.join(root, f"{vid}.mp4")])
        for key in tasks:
            rec, rwhere = entry[key], f"{where} {key}"
            _require(rec, ("question", "candidates", "answer"), rwhere)
            options = normalize_options(rec["candidates"], rwhere)
            sample = AVSample(
                id=f"worldsense-{vid}-{key}", video=video, question=str(rec["question"]).strip(), options=options,
                answer=_check_letter(rec["answer"], len(options), rwhere),
                category=str(rec.get("task_type") or "uncategorized"), modality_needs="both",
                duration=_duration_seconds(entry.get("duration")), source="worldsense",
                extra={"video_id": vid, "task": key, "task_domain": rec.get("task_domain"),
                       "duration": entry.get("duration"), "domain": entry.get("domain"),
                       "audio_class": entry.get("audio_class")})
            if _keep(sample, skipped):
                out.append(sample)
    return out


def load_omnivideobench(path: str, skipped: Skipped | None = None) -> list[AVSample]:
    """OmniVideoBench: [{video, video_type, duration, questions: [{question, options ["A.x"], correct_option}]}]."""
    ann, root = _annotation_path(path, ("data.json", "omnivideobench.json"), "OmniVideoBench")
    out = []
    for i, entry in enumerate(_as_list(_read_json(ann), ann, "videos")):
        where = f"{ann} video record {i}"
        _require(entry, ("video", "questions"), where)
        vid = str(entry["video"])
        where = f"{where} ({vid})"
        name = vid if vid.lower().endswith(".mp4") else f"{vid}.mp4"
        video = _first_existing([os.path.join(root, "videos", name), os.path.join(root, name)])
        for j, rec in enumerate(_as_list(entry["questions"], where, "questions")):
            qwhere = f"{where} question {j}"
            _require(rec, ("question", "options", "correct_option"), qwhere)
            options = normalize_options(rec["options"], qwhere)
            sample = AVSample(
                id=f"omnivideobench-{vid}-q{j}", video=video, question=str(rec["question"]).strip(),
                options=options, answer=_check_letter(rec["correct_option"], len(options), qwhere),
                category=str(rec.get("question_type") or "uncategorized"), modality_needs="both",
                duration=_duration_seconds(entry.get("duration")), source="omnivideobench",
                extra={"video_id": vid, "question_index": j, "video_type": entry.get("video_type"),
                       "audio_type": rec.get("audio_type"), "answer_text": rec.get("answer")})
            if _keep(sample, skipped):
                out.append(sample)
    return out


_INTENT_TYPES = {"multiple choice": "multiple_choice", "emer_ov_mc": "multi_label", "judge": "yes_no"}


def load_intentbench(path: str, skipped: Skipped | None = None) -> list[AVSample]:
    """IntentBench qa.json (Video-R1 style): {problem, options, problem_type, solution "<answer>B</answer>", path}.

    `multiple choice` -> one letter; `emer_ov_mc` -> multi-label letters ("B,E" -> "BE", extra.multi_label);
    `judge` -> yes/no, turned into options ["yes", "no"] so the same letter scoring applies.
    """
    ann, root = _annotation_path(path, ("qa.json", "IntentBench.json"), "IntentBench")
    out = []
    for i, rec in enumerate(_as_list(_read_json(ann), ann, "questions")):
        where = f"{ann} record {i}"
        _require(rec, ("problem", "problem_type", "solution", "path"), where)
        ptype = str(rec["problem_type"])
        if ptype not in _INTENT_TYPES:
            raise BenchmarkFormatError(f"{where}: problem_type {ptype!r} is not one of {list(_INTENT_TYPES)}")
        gold = extract_answer_block(str(rec["solution"]))
        if gold is None or not gold.strip():
            raise BenchmarkFormatError(f"{where}: solution {rec['solution']!r} is not of the form <answer>X</answer>")
        gold = gold.strip()
        if ptype == "judge":
            options = normalize_options(rec["options"], where) if rec.get("options") else ["yes", "no"]
            lowered = [o.lower().rstrip(".") for o in options]
            if gold.lower() in lowered:
                answer = LETTERS[lowered.index(gold.lower())]
            else:
                answer = _check_letter(gold, len(options), where)
        else:
            if "options" not in rec:
                raise BenchmarkFormatError(f"{where}: a {ptype!r} question needs an 'options' list")
            options = normalize_options(rec["options"], where)
            answer = _check_letter(gold, len(options), where, multi=ptype == "emer_ov_mc")
        rel = str(rec["path"])
        video = rel if os.path.isabs(rel) else _first_existing(
            [os.path.normpath(os.path.join(root, rel)), os.path.normpath(os.path.join(root, "videos", rel))])
        rid = str(rec.get("problem_id", rec.get("id", i)))
        sample = AVSample(
            id=f"intentbench-{i:04d}", video=video, question=str(rec["problem"]).strip(), options=options,
            answer=answer, category=str(rec.get("category") or rec.get("task") or _INTENT_TYPES[ptype]),
            modality_needs="both", source="intentbench",
            extra={"index": i, "original_id": rid, "problem_type": ptype, "path": rel,
                   "multi_label": ptype == "emer_ov_mc"})
        if _keep(sample, skipped):
            out.append(sample)
    return out


def load_video_holmes(path: str, skipped: Skipped | None = None) -> list[AVSample]:
    """Video-Holmes test_Video-Holmes.json: [{"video ID", "Question ID", "Question Type", "Options": {A..F}, ...}]."""
    ann, root = _annotation_path(path, ("test_Video-Holmes.json",), "Video-Holmes")
    out = []
    for i, rec in enumerate(_as_list(_read_json(ann), ann, "questions")):
        where = f"{ann} record {i}"
        _require(rec, ("video ID", "Question", "Options", "Answer"), where)
        vid, qid = str(rec["video ID"]), str(rec.get("Question ID", i))
        where = f"{where} (video ID {vid}, Question ID {qid})"
        opts = rec["Options"]
        if not isinstance(opts, dict) or sorted(opts) != list(LETTERS[: len(opts)]):
            raise BenchmarkFormatError(f"{where}: Options must be an object keyed A, B, C, ... (got {opts!r})")
        options = normalize_options([opts[k] for k in sorted(opts)], where)
        sample = AVSample(
            id=f"video-holmes-{vid}-{qid}", video=os.path.join(root, "videos", f"{vid}.mp4"),
            question=str(rec["Question"]).strip(), options=options,
            answer=_check_letter(rec["Answer"], len(options), where),
            category=str(rec.get("Question Type") or "uncategorized"), modality_needs="both", source="video-holmes",
            extra={"video_id": vid, "question_id": qid})
        if _keep(sample, skipped):
            out.append(sample)
    return out


def _videomme_records(data: Any, ann: str) -> list[tuple[dict, dict, str]]:
    """(video-level fields, question, where) from either the official nested format or lmms-eval's flat rows."""
    rows = []
    for i, entry in enumerate(_as_list(data, ann, "videos or questions")):
        where = f"{ann} record {i}"
        if isinstance(entry, dict) and "questions" in entry:
            for j, q in enumerate(_as_list(entry["questions"], where, "questions")):
                rows.append((entry, q, f"{where} question {j}"))
        else:
            rows.append((entry, entry, where))
    return rows


def load_videomme(path: str, skipped: Skipped | None = None) -> list[AVSample]:
    """Video-MME: official [{video_id, videoID?, duration, domain, questions: [{question_id, task_type, ...}]}]
    or lmms-eval's flat rows {videoID, question_id, task_type, question, options, answer}."""
    ann, root = _annotation_path(path, ("videomme.json", "Video-MME.json", "test.json"), "Video-MME")
    out = []
    for video_fields, rec, where in _videomme_records(_read_json(ann), ann):
        _require(rec, ("question", "options", "answer"), where)
        if not isinstance(video_fields, dict) or not (video_fields.get("videoID") or video_fields.get("video_id")):
            raise BenchmarkFormatError(f"{where}: needs 'videoID' (the file name) or 'video_id'")
        name = str(video_fields.get("videoID") or video_fields.get("video_id"))
        qid = str(rec.get("question_id", where.rsplit(" ", 1)[-1]))
        options = normalize_options(rec["options"], f"{where} ({qid})")
        video = _first_existing([os.path.join(root, d, f"{name}.mp4") for d in ("data", "videos")]
                                + [os.path.join(root, f"{name}.mp4")])
        sample = AVSample(
            id=f"videomme-{qid}", video=video, question=str(rec["question"]).strip(), options=options,
            answer=_check_letter(rec["answer"], len(options), f"{where} ({qid})"),
            category=str(rec.get("task_type") or "uncategorized"), modality_needs="video", source="video-mme",
            extra={"question_id": qid, "video_id": name, "duration": video_fields.get("duration"),
                   "domain": video_fields.get("domain"), "sub_category": video_fields.get("sub_category")})
        if _keep(sample, skipped):
            out.append(sample)
    return out


def load_synthetic(path: str, skipped: Skipped | None = None) -> list[AVSample]:
    """Our own JSONL (schema.read_samples); a folder means its samples.jsonl."""
    ann, _ = _annotation_path(path, ("samples.jsonl", "eval.jsonl", "test.jsonl"), "synthetic")
    out = []
    for sample in read_samples(ann):
        if _keep(sample, skipped):
            out.append(sample)
    return out


BENCHMARKS: dict[str, Callable[..., list[AVSample]]] = {
    "daily-omni": load_daily_omni,
    "worldsense": load_worldsense,
    "omnivideobench": load_omnivideobench,
    "intentbench": load_intentbench,
    "video-holmes": load_video_holmes,
    "video-mme": load_videomme,
    "synthetic": load_synthetic,
}


def load_benchmark(name: str, path: str) -> tuple[list[AVSample], Skipped]:
    """Load benchmark `name` from `path`; returns the usable samples and the records skipped for missing media."""
    key = name.lower().replace("_", "-")
    if key not in BENCHMARKS:
        raise KeyError(f"unknown benchmark {name!r}; choose from {sorted(BENCHMARKS)}")
    skipped = Skipped()
    return BENCHMARKS[key](path, skipped), skipped
