"""Loaders of the video benchmarks and of our own JSONL (see docs/benchmarks.md):

    video-holmes    test_Video-Holmes.json                 videos/<video ID>.mp4 (evaluate.py) or videos_cropped/
                                                           (what lmms-eval finds in the HF videos.zip)
    video-mme       videomme/test-00000-of-00001.parquet   data/<videoID>.mp4 (.MP4/.mkv as lmms-eval accepts;
                    (or a JSON export)                      also videos/ or the root)
    synthetic       samples.jsonl                          our schema, media relative to the file
"""

from __future__ import annotations

import os
from typing import Any

from ..schema import LETTERS, AVSample, SchemaError, iter_json_lines, sample_from_dict
from .bench_io import (BenchmarkFormatError, LoadReport, RecordErrors, as_list, check_letter, find_annotation,
                       first_existing, keep, options_of, read_annotation, require)


def load_video_holmes(path: str, skipped: LoadReport | None = None) -> list[AVSample]:
    """Video-Holmes test_Video-Holmes.json: [{"video ID", "Question ID", "Question Type", "Options": {A..F}, ...}]."""
    ann, root = find_annotation(path, ("test_Video-Holmes.json",), "Video-Holmes")
    records = as_list(read_annotation(ann, "Video-Holmes' test_Video-Holmes.json (a JSON list of questions)"),
                      ann, "questions")
    errors, out = RecordErrors(skipped, ann), []
    for i, rec in enumerate(records):
        errors.seen += 1
        where, notes = f"{ann} record {i}", []
        try:
            require(rec, ("video ID", "Question", "Options", "Answer"), where)
            vid, qid = str(rec["video ID"]), str(rec.get("Question ID", i))
            where = f"{where} (video ID {vid}, Question ID {qid})"
            opts = rec["Options"]
            if not isinstance(opts, dict) or sorted(opts) != list(LETTERS[: len(opts)]):
                raise BenchmarkFormatError(f"{where}: Options must be an object keyed A, B, C, ... (got {opts!r})")
            raw = [str(opts[k]) for k in sorted(opts)]
            options = options_of(raw, where, notes)
            answer = check_letter(rec["Answer"], len(options), where)
        except BenchmarkFormatError as exc:
            errors.skip(f"video-holmes-{i}", exc)
            continue
        qtype = str(rec.get("Question Type") or "uncategorized")
        sample = AVSample(
            id=f"video-holmes-{vid}-{qid}", video=first_existing(
                [os.path.join(root, d, f"{vid}{ext}") for d in ("videos", "videos_cropped")
                 for ext in (".mp4", ".MP4", ".mkv", ".webm")]),
            question=str(rec["Question"]).strip(), options=options, answer=answer, category=qtype,
            modality_needs="both", source="video-holmes",
            extra={"video_id": vid, "question_id": qid, "raw_options": raw, "groups": {"Question Type": qtype},
                   "load_notes": notes})
        if keep(sample, skipped):
            out.append(sample)
    return errors.finish(out)


VIDEOMME_FILES = ("videomme/test-*.parquet", "test-*.parquet", "videomme.json", "Video-MME.json", "test.json",
                  "videomme.jsonl")
_VIDEOMME_EXPECTED = ("Video-MME's annotation: the dataset's parquet (videomme/test-00000-of-00001.parquet) "
                      "or a JSON list of its rows")


def _videomme_rows(data: Any, ann: str) -> list[tuple[Any, Any, str]]:
    """(video-level fields, question, where) from the parquet's flat rows or the official nested JSON."""
    rows = []
    for i, entry in enumerate(as_list(data, ann, "videos or questions")):
        where = f"{ann} row {i}"
        if isinstance(entry, dict) and isinstance(entry.get("questions"), list):
            rows += [(entry, q, f"{where} question {j}") for j, q in enumerate(entry["questions"])]
        else:
            rows.append((entry, entry, where))
    return rows


def load_videomme(path: str, skipped: LoadReport | None = None) -> list[AVSample]:
    """Video-MME: the HF dataset's parquet (flat rows: video_id, duration, domain, sub_category, url, videoID,
    question_id, task_type, question, options ["A. ..."], answer), its JSON export, or the official nested
    results template [{video_id, duration, domain, sub_category, questions: [...]}]."""
    ann, root = find_annotation(path, VIDEOMME_FILES, "Video-MME")
    # The dataset keeps the parquet in videomme/ and the clips in data/ beside it.
    roots = [root, os.path.dirname(root)] if os.path.basename(root) == "videomme" else [root]
    errors, out = RecordErrors(skipped, ann), []
    for k, (video_fields, rec, where) in enumerate(_videomme_rows(read_annotation(ann, _VIDEOMME_EXPECTED), ann)):
        errors.seen += 1
        notes: list[str] = []
        try:
            require(rec, ("question", "options", "answer"), where)
            if not isinstance(video_fields, dict) or not (video_fields.get("videoID") or video_fields.get("video_id")):
                raise BenchmarkFormatError(f"{where}: needs 'videoID' (the clip's file name) or 'video_id'")
            name = str(video_fields.get("videoID") or video_fields.get("video_id"))
            qid = str(rec.get("question_id") or where.rsplit(" ", 1)[-1])
            where = f"{where} (question_id {qid})"
            options = options_of(rec["options"], where, notes)
            answer = check_letter(rec["answer"], len(options), where)
        except BenchmarkFormatError as exc:
            errors.skip(f"videomme-question-{k}", exc)
            continue
        video = first_existing([os.path.join(r, d, f"{name}{ext}") for r in reversed(roots) for d in ("data", "videos")
                                for ext in (".mp4", ".MP4", ".mkv")] + [os.path.join(root, f"{name}.mp4")])
        groups = {k: str(video_fields[k]) for k in ("duration", "domain", "sub_category") if video_fields.get(k)}
        if rec.get("task_type"):
            groups["task_type"] = str(rec["task_type"])
        raw = rec["options"].tolist() if hasattr(rec["options"], "tolist") else list(rec["options"])
        sample = AVSample(
            id=f"videomme-{qid}", video=video, question=str(rec["question"]).strip(), options=options, answer=answer,
            category=str(rec.get("task_type") or "uncategorized"), modality_needs="video", source="video-mme",
            extra={"question_id": qid, "video_id": name, "duration": video_fields.get("duration"),
                   "domain": video_fields.get("domain"), "sub_category": video_fields.get("sub_category"),
                   "raw_options": raw, "groups": groups, "load_notes": notes})
        if keep(sample, skipped):
            out.append(sample)
    return errors.finish(out)


def load_synthetic(path: str, skipped: LoadReport | None = None) -> list[AVSample]:
    """Our own JSONL (schema.sample_from_dict per line); a folder means its samples.jsonl."""
    ann, _ = find_annotation(path, ("samples.jsonl", "eval.jsonl", "test.jsonl"), "synthetic")
    base_dir = os.path.dirname(os.path.abspath(ann))
    errors, out = RecordErrors(skipped, ann), []
    try:
        lines = list(iter_json_lines(ann))
    except UnicodeDecodeError as exc:
        raise BenchmarkFormatError(f"{ann}: not UTF-8 text (offset {exc.start}); expected our JSONL samples, "
                                   "one JSON object per line") from None
    for where, obj, error in lines:
        errors.seen += 1
        try:
            if error is not None:
                raise SchemaError(f"{where}: not valid JSON ({error}); each line must be one JSON object")
            sample = sample_from_dict(obj, where, base_dir)
        except SchemaError as exc:
            errors.skip(where, BenchmarkFormatError(str(exc)))
            continue
        if keep(sample, skipped):
            out.append(sample)
    return errors.finish(out)
