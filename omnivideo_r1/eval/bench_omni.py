"""Loaders of the audio-visual benchmarks, each reading its release as published (see docs/benchmarks.md):

    daily-omni      qa.json                 Videos/<id>/<id>_video.mp4 (+ <id>_audio.wav when present)
    worldsense      worldsense_qa.json      videos/<video>.mp4 (or <video>.mp4 next to the json)
    omnivideobench  data.json               videos/<video>.mp4, video/<video>.mp4 (the release's example) or root
    intentbench     qa.json                 the record's `video` (else `path`), under the root or videos/

Every sample keeps what the official scorers and prompts need in `extra`: `raw_options` (the option strings as
released), `groups` (the fields the official evaluator aggregates accuracy by) and benchmark-specific fields.
"""

from __future__ import annotations

import os
import re

from ..answers import extract_answer_block, normalize_text
from ..schema import LETTERS, AVSample
from .bench_io import (BenchmarkFormatError, LoadReport, RecordErrors, as_list, check_letter, duration_seconds,
                       find_annotation, first_existing, keep, options_of, read_annotation, require)


def load_daily_omni(path: str, skipped: LoadReport | None = None) -> list[AVSample]:
    """Daily-Omni qa.json: [{Question, Choice, Answer, video_id, Type, video_category, video_duration, ...}].

    Audio: the separate `<id>_audio.wav` when it exists, else the mp4's own track (the same audio; the official
    Qwen2.5-Omni script reads only the mp4). The fallback is counted as the note `audio_from_video`.
    """
    ann, root = find_annotation(path, ("qa.json",), "Daily-Omni")
    records = as_list(read_annotation(ann, "Daily-Omni's qa.json (a JSON list of questions)"), ann, "questions")
    errors, out = RecordErrors(skipped, ann), []
    for i, rec in enumerate(records):
        errors.seen += 1
        where, notes = f"{ann} record {i}", []
        try:
            require(rec, ("Question", "Choice", "Answer", "video_id"), where)
            vid = str(rec["video_id"])
            where = f"{where} (video_id {vid})"
            options = options_of(rec["Choice"], where, notes)
            answer = check_letter(rec["Answer"], len(options), where)
        except BenchmarkFormatError as exc:
            errors.skip(f"daily-omni-{i:04d}", exc)
            continue
        folder = os.path.join(root, "Videos", vid)
        wav = os.path.join(folder, f"{vid}_audio.wav")
        has_wav = os.path.isfile(wav) and os.path.getsize(wav) > 0
        if not has_wav:
            notes.append("audio_from_video")
        groups = {k: str(rec[k]) for k in ("Type", "video_category", "video_duration") if rec.get(k)}
        sample = AVSample(
            id=f"daily-omni-{i:04d}-{vid}", video=os.path.join(folder, f"{vid}_video.mp4"),
            audio=wav if has_wav else None, question=str(rec["Question"]).strip(), options=options, answer=answer,
            category=str(rec.get("Type") or "uncategorized"), modality_needs="both",
            duration=duration_seconds(rec.get("video_duration")), source="daily-omni",
            extra={"index": i, "video_id": vid, "raw_options": list(rec["Choice"]), "groups": groups,
                   "load_notes": notes,
                   "audio_source": "wav" if has_wav else "video",
                   **{k: rec[k] for k in ("content_parent_category", "content_fine_category", "video_category",
                                          "video_duration") if k in rec}})
        if keep(sample, skipped):
            out.append(sample)
    return errors.finish(out)


def load_worldsense(path: str, skipped: LoadReport | None = None) -> list[AVSample]:
    """WorldSense worldsense_qa.json: {video: {duration, domain, ..., task0: {question, candidates, answer, ...}}}.

    `duration` is a bucket ("<1min", "1-2min", ...), kept for the per-duration table; the clip length in seconds
    comes from `video_duration` ("60s") when the release has it.
    """
    ann, root = find_annotation(path, ("worldsense_qa.json",), "WorldSense")
    data = read_annotation(ann, "WorldSense's worldsense_qa.json (an object keyed by video id)")
    if not isinstance(data, dict):
        raise BenchmarkFormatError(f"{ann}: expected a JSON object keyed by video id, got {type(data).__name__}")
    errors, out = RecordErrors(skipped, ann), []
    for vid, entry in data.items():
        where = f"{ann} video {vid}"
        if not isinstance(entry, dict) or not any(re.fullmatch(r"task\d+", k) for k in entry):
            errors.seen += 1
            errors.skip(f"worldsense-{vid}", BenchmarkFormatError(
                f"{where}: expected an object with task0..taskN entries (is this worldsense_qa.json?)"))
            continue
        tasks = sorted((k for k in entry if re.fullmatch(r"task\d+", k)), key=lambda k: int(k[4:]))
        video = first_existing([os.path.join(root, "videos", f"{vid}.mp4"), os.path.join(root, f"{vid}.mp4")])
        for key in tasks:
            errors.seen += 1
            rec, rwhere, notes = entry[key], f"{where} {key}", []
            try:
                require(rec, ("question", "candidates", "answer"), rwhere)
                options = options_of(rec["candidates"], rwhere, notes)
                answer = check_letter(rec["answer"], len(options), rwhere)
            except BenchmarkFormatError as exc:
                errors.skip(f"worldsense-{vid}-{key}", exc)
                continue
            seconds = duration_seconds(rec.get("video_duration", entry.get("video_duration")))
            if seconds is None:
                seconds = duration_seconds(entry.get("duration"))
            audio_class = entry.get("audio_class")
            audio_class = [str(a) for a in audio_class] if isinstance(audio_class, list) else (
                [str(audio_class)] if audio_class else [])
            groups = {"task_type": rec.get("task_type"), "task_domain": rec.get("task_domain"),
                      "duration": entry.get("duration"), "audio_class": audio_class}
            sample = AVSample(
                id=f"worldsense-{vid}-{key}", video=video, question=str(rec["question"]).strip(), options=options,
                answer=answer, category=str(rec.get("task_type") or "uncategorized"), modality_needs="both",
                duration=seconds, source="worldsense",
                extra={"video_id": vid, "task": key, "task_domain": rec.get("task_domain"),
                       "duration": entry.get("duration"), "domain": entry.get("domain"),
                       "audio_class": entry.get("audio_class"), "raw_options": list(rec["candidates"]),
                       "load_notes": notes,
                       "groups": {k: v for k, v in groups.items() if v}})
            if keep(sample, skipped):
                out.append(sample)
    return errors.finish(out)


def load_omnivideobench(path: str, skipped: LoadReport | None = None) -> list[AVSample]:
    """OmniVideoBench data.json: [{video, video_type, duration "MM:SS", questions: [{question, question_type,
    audio_type, options ["A.x"], answer (text), correct_option}]}].

    The answer is `correct_option` (what the official scorer compares); an `answer` text that names a different
    option is kept as released and counted as the note `answer_text_mismatch`.
    """
    ann, root = find_annotation(path, ("data.json", "omnivideobench.json"), "OmniVideoBench")
    videos = as_list(read_annotation(ann, "OmniVideoBench's data.json (a JSON list of videos)"), ann, "videos")
    errors, out = RecordErrors(skipped, ann), []
    for i, entry in enumerate(videos):
        where = f"{ann} video record {i}"
        try:
            require(entry, ("video", "questions"), where)
            questions = as_list(entry["questions"], where, "questions")
        except BenchmarkFormatError as exc:
            errors.seen += 1
            errors.skip(f"omnivideobench-{i}", exc)
            continue
        vid = str(entry["video"])
        where = f"{where} ({vid})"
        name = vid if vid.lower().endswith(".mp4") else f"{vid}.mp4"
        video = first_existing([os.path.join(root, d, name) for d in ("videos", "video")] + [os.path.join(root, name)])
        for j, rec in enumerate(questions):
            errors.seen += 1
            qwhere, notes = f"{where} question {j}", []
            try:
                require(rec, ("question", "options", "correct_option"), qwhere)
                options = options_of(rec["options"], qwhere, notes)
                answer = check_letter(rec["correct_option"], len(options), qwhere)
            except BenchmarkFormatError as exc:
                errors.skip(f"omnivideobench-{vid}-q{j}", exc)
                continue
            text = rec.get("answer")
            if isinstance(text, str) and normalize_text(text) != normalize_text(options[LETTERS.index(answer)]):
                notes.append("answer_text_mismatch")
            groups = {k: str(rec[k]) for k in ("question_type", "audio_type") if rec.get(k)}
            sample = AVSample(
                id=f"omnivideobench-{vid}-q{j}", video=video, question=str(rec["question"]).strip(),
                options=options, answer=answer, category=str(rec.get("question_type") or "uncategorized"),
                modality_needs="both", duration=duration_seconds(entry.get("duration")), source="omnivideobench",
                extra={"video_id": vid, "question_index": j, "video_type": entry.get("video_type"),
                       "audio_type": rec.get("audio_type"), "answer_text": text,
                       "raw_options": list(rec["options"]), "groups": groups, "load_notes": notes})
            if keep(sample, skipped):
                out.append(sample)
    return errors.finish(out)


INTENT_TYPES = {"multiple choice": "multiple_choice", "emer_ov_mc": "multi_label", "judge": "yes_no"}


def load_intentbench(path: str, skipped: LoadReport | None = None) -> list[AVSample]:
    """IntentBench qa.json (Video-R1 style): {problem, options, problem_type, solution "<answer>B</answer>",
    video or path, data_type, Type}.

    The clip is `video` when present, else `path` (HumanOmniV2's evaluator reads them in that order), relative to
    the root or its videos/ folder. `multiple choice` -> one letter; `emer_ov_mc` -> multi-label letters
    ("B,E" -> "BE"); `judge` -> options ["yes", "no"]. The category is `Type`.
    """
    ann, root = find_annotation(path, ("qa.json", "IntentBench.json"), "IntentBench")
    records = as_list(read_annotation(ann, "IntentBench's qa.json (a JSON list of questions)"), ann, "questions")
    errors, out = RecordErrors(skipped, ann), []
    for i, rec in enumerate(records):
        errors.seen += 1
        where = f"{ann} record {i}"
        try:
            sample = _intent_sample(rec, i, where, root)
        except BenchmarkFormatError as exc:
            errors.skip(f"intentbench-{i:04d}", exc)
            continue
        if keep(sample, skipped):
            out.append(sample)
    return errors.finish(out)


def _intent_sample(rec: object, i: int, where: str, root: str) -> AVSample:
    require(rec, ("problem", "problem_type", "solution"), where)
    assert isinstance(rec, dict)
    rel = rec.get("video") or rec.get("path")
    if not isinstance(rel, str) or not rel:
        raise BenchmarkFormatError(f"{where}: no clip; official records name it in 'video' or 'path'")
    ptype = str(rec["problem_type"])
    if ptype not in INTENT_TYPES:
        raise BenchmarkFormatError(f"{where}: problem_type {ptype!r} is not one of {list(INTENT_TYPES)}")
    gold = extract_answer_block(str(rec["solution"]))
    if gold is None or not gold.strip():
        raise BenchmarkFormatError(f"{where}: solution {rec['solution']!r} is not of the form <answer>X</answer>")
    gold, notes = gold.strip(), []
    if ptype == "judge":
        options = options_of(rec["options"], where, notes) if rec.get("options") else ["yes", "no"]
        lowered = [o.lower().rstrip(".") for o in options]
        answer = LETTERS[lowered.index(gold.lower())] if gold.lower() in lowered else \
            check_letter(gold, len(options), where)
    else:
        if not rec.get("options"):
            raise BenchmarkFormatError(f"{where}: a {ptype!r} question needs an 'options' list")
        options = options_of(rec["options"], where, notes)
        answer = check_letter(gold, len(options), where, multi=ptype == "emer_ov_mc")
    video = rel if os.path.isabs(rel) else first_existing(
        [os.path.normpath(os.path.join(root, rel)), os.path.normpath(os.path.join(root, "videos", rel))])
    category = str(rec.get("Type") or rec.get("category") or rec.get("task") or INTENT_TYPES[ptype])
    return AVSample(
        id=f"intentbench-{i:04d}", video=video, question=str(rec["problem"]).strip(), options=options,
        answer=answer, category=category, modality_needs="both", source="intentbench",
        extra={"index": i, "original_id": str(rec.get("problem_id", rec.get("id", i))), "problem_type": ptype,
               "path": rel, "multi_label": ptype == "emer_ov_mc", "solution": str(rec["solution"]),
               "data_type": str(rec.get("data_type") or "video"), "raw_options": list(rec.get("options") or []),
               "groups": {"Type": category, "problem_type": ptype}, "load_notes": notes})
