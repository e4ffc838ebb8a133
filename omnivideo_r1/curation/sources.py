"""Read raw training data into single-question units: LLaVA-Video-178K, VideoVista and our own JSONL.

Every unit is either an AVSample or a rejection with a reason: a bad record never stops the run. LLaVA-style records
(`conversations` of human/gpt turns) are split into one unit per human->gpt pair, like the released
`split_multiturn_to_singleturn.py`; the unit id is `<record id>-t<turn>` and the original id and turn index go to
`extra`.

Which units are multiple choice:
  * LLaVA-Video-178K ships one file per subset and type (`*_mc_*`, `*_oe_*`, `*_cap_*`); the file name is the type
    signal (the released `process_llava_video_178k.py` copies it into `Type`, and `extract_mc_qa.py` keeps types
    containing "mc"), so every unit of an open-ended or caption file is "not_multiple_choice", and a unit of an mc
    file without options is "unparseable_options";
  * VideoVista's `Type` names the task ("Objects Count", "Brief Description"), so it says nothing about the format
    (the released code never filters VideoVista by it): the record decides: an A/B/... option block is multiple
    choice, a turn without any option line is "not_multiple_choice", a broken block is "unparseable_options".

Record ids are video keys, shared by a subset's mc, oe and caption files. Ids are made unique over all inputs in a
way that does not depend on their order: a usable unit keeps `<id>-t<turn>`; a unit rejected at the source that
collides with it is renamed `<id>-t<turn>@<file name>` (keeping its own reason); two usable units with the same id
and the same content are one question given twice ("duplicate_id" for the later ones), with different content both
are renamed after their files.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from typing import Any

from ..answers import option_label
from ..schema import LETTERS, AVSample, SchemaError, iter_json_lines, sample_from_dict

LLAVA = "llava-video-178k"
VIDEOVISTA = "videovista"
JSONL = "jsonl"
FORMATS = (LLAVA, VIDEOVISTA, JSONL)

_MEDIA_TAG_RE = re.compile(r"<(?:image|video|audio)>", re.I)
# Instruction lines appended by the dataset builders; they are prompt boilerplate, not the question.
_INSTRUCTION_RE = re.compile(
    r"^\s*(answer with|please (respond|answer|select|choose)|respond with|select the best|choose the correct"
    r"|options?\s*:?\s*$|choices?\s*:?\s*$|the best answer is)", re.I)


@dataclass
class SourceItem:
    """One question unit read from an input file: a sample, or why none could be built."""

    uid: str
    """Unique id of the unit (becomes the sample id): `<record id>-t<turn>` for conversations, else the id."""
    source: str
    """llava-video-178k, videovista, or the JSONL sample's own source."""
    record_id: str
    """The original record's id (the unit of the kept/rejected invariant is the question, not the record)."""
    turn: int | None
    """Turn index within a multi-turn record (0-based); None for JSONL samples and unsplittable records."""
    where: str
    """`file:index` of the record, for error messages and rejected.jsonl."""
    sample: AVSample | None = None
    """The parsed sample, or None when the record was rejected here."""
    reason: str | None = None
    """Rejection reason when sample is None (unparseable_question, unparseable_options, ...)."""
    detail: str = ""
    """Human-readable explanation of the rejection."""
    raw_answer: str = ""
    """The answer text as the source wrote it ("B. a red circle"); the judge checks it against the options."""
    extra: dict[str, Any] = field(default_factory=dict)


def parse_mc_prompt(text: str) -> tuple[str, list[str]] | None:
    """Split a human turn into (question, option texts); None if it has no A, B, ... option block.

    Options must be consecutive letters from A; the question is the text before them without media tags and
    without instruction boilerplate ("Answer with the option's letter ...").
    """
    lines = _MEDIA_TAG_RE.sub("", text or "").splitlines()
    question_lines: list[str] = []
    options: list[str] = []
    for line in lines:
        # Per line only delimited labels count ("A man walks in" is a question, not option A).
        label = option_label(line)
        if label and label[0] == LETTERS[len(options)]:
            options.append(label[1])
            continue
        if options:
            # Anything after the option block is instructions (or a wrapped option line: then the block is broken).
            if line.strip() and not _INSTRUCTION_RE.match(line) and label:
                return None
            continue
        if line.strip() and not _INSTRUCTION_RE.match(line):
            question_lines.append(re.sub(r"^\s*question\s*:\s*", "", line.strip(), flags=re.I))
    if len(options) < 2:
        return None
    return " ".join(question_lines).strip(), options


def _reject(base: dict[str, Any], reason: str, detail: str) -> SourceItem:
    return SourceItem(**base, reason=reason, detail=detail)


def _turn_pairs(conversations: Any) -> list[tuple[str, str]] | None:
    """(human, gpt) text pairs in order; None if the list is not alternating human/gpt strings."""
    if not isinstance(conversations, list) or not conversations:
        return None
    pairs: list[tuple[str, str]] = []
    pending: str | None = None
    for turn in conversations:
        if not isinstance(turn, dict) or not isinstance(turn.get("value"), str):
            return None
        role = turn.get("from")
        if role == "human" and pending is None:
            pending = turn["value"]
        elif role == "gpt" and pending is not None:
            pairs.append((pending, turn["value"]))
            pending = None
        else:
            return None
    return pairs or None


def has_option_lines(text: str) -> bool:
    """Whether a human turn has any line that looks like a labelled option ("A. x", "(B) y")."""
    return any(option_label(line) for line in _MEDIA_TAG_RE.sub("", text or "").splitlines())


def type_kind(name: str | None) -> str | None:
    """"mc", "oe" or "cap" from a LLaVA-Video-178K file name or released `Type` ("0_30_s_academic_oe_v0_1_qa_
    processed" -> "oe"); None when the name carries no type."""
    tokens = set(re.split(r"[_\-.\s/]+", (name or "").lower()))
    for kind in ("mc", "oe", "cap"):
        if kind in tokens:
            return kind
    return None


def conversation_units(record: Any, where: str, source: str, video_root: str,
                       kind: str | None = None) -> list[SourceItem]:
    """Units of one LLaVA-Video-178K / VideoVista record (one per human->gpt turn).

    `kind` is the input file's type ("mc", "oe", "cap" or None, see `type_kind`); a LLaVA record's own `Type`
    (files processed by the released scripts) overrides it. VideoVista's `Type` is a task name and is ignored here.
    """
    from ..answers import parse_choice

    rid = str(record.get("id")) if isinstance(record, dict) and record.get("id") is not None else where
    base = dict(uid=rid, source=source, record_id=rid, turn=None, where=where)
    if not isinstance(record, dict):
        return [_reject(base, "bad_record", f"{where}: expected a JSON object, got {type(record).__name__}")]
    video = record.get("video")
    if isinstance(video, list) and len(video) == 1:
        video = video[0]
    if not isinstance(video, str) or not video:
        return [_reject(base, "no_video", f"{where}: record {rid} has no 'video' path string")]
    if source == LLAVA and isinstance(record.get("Type"), str):
        kind = "mc" if "mc" in record["Type"] else (type_kind(record["Type"]) or "oe")
    pairs = _turn_pairs(record.get("conversations"))
    if pairs is None:
        return [_reject(base, "bad_conversations",
                        f"{where}: 'conversations' must alternate human/gpt turns with string values")]
    path = video if os.path.isabs(video) else os.path.normpath(os.path.join(video_root, video))
    units = []
    for turn, (human, gpt) in enumerate(pairs):
        ubase = dict(uid=f"{rid}-t{turn}", source=source, record_id=rid, turn=turn, where=where)
        if kind in ("oe", "cap"):
            units.append(_reject(ubase, "not_multiple_choice",
                                 f"{where} turn {turn}: from an {'open-ended' if kind == 'oe' else 'caption'} file"))
            continue
        parsed = parse_mc_prompt(human)
        if parsed is None:
            if kind != "mc" and not has_option_lines(human):
                units.append(_reject(ubase, "not_multiple_choice", f"{where} turn {turn}: no options (open question)"))
            else:
                units.append(_reject(ubase, "unparseable_options", f"{where} turn {turn}: no A./B./... option block"))
            continue
        question, options = parsed
        if not question:
            units.append(_reject(ubase, "unparseable_question", f"{where} turn {turn}: no question text"))
            continue
        letter = parse_choice(gpt, options)
        if not letter or any(ch not in LETTERS[: len(options)] for ch in letter):
            units.append(_reject(ubase, "unparseable_answer",
                                 f"{where} turn {turn}: answer {gpt[:60]!r} names none of {len(options)} options"))
            continue
        extra = {"source_id": rid, "turn": turn, "raw_answer": gpt}
        for key in ("data_source", "Type"):
            if record.get(key) is not None:
                extra[key.lower()] = record[key]
        sample = AVSample(id=ubase["uid"], video=path, question=question, options=options, answer=letter,
                          source=source, extra=extra)
        units.append(SourceItem(**ubase, sample=sample, raw_answer=gpt))
    return units


def jsonl_units(path: str) -> list[SourceItem]:
    """Units of our own JSONL (schema.sample_from_dict per line, so one bad line is one rejection)."""
    base_dir = os.path.dirname(os.path.abspath(path))
    units = []
    for where, obj, error in iter_json_lines(path):
        if error is not None:
            units.append(SourceItem(where, JSONL, where, None, where, reason="bad_json", detail=f"{where}: {error}"))
            continue
        rid = str(obj.get("id")) if isinstance(obj, dict) and obj.get("id") is not None else where
        try:
            sample = sample_from_dict(obj, where, base_dir)
        except SchemaError as exc:
            units.append(SourceItem(rid, JSONL, rid, None, where, reason="schema_error", detail=str(exc)))
            continue
        sample.extra = {**sample.extra, "source_id": rid}
        raw = f"{sample.answer}. {sample.answer_text}" if len(sample.answer) == 1 else sample.answer
        units.append(SourceItem(sample.id, sample.source, rid, None, where, sample=sample, raw_answer=raw))
    return units


def _load_json(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text (offset {exc.start}); expected a JSON list of records "
                         "(LLaVA-Video-178K / VideoVista) or our JSONL") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}); expected a list of records") \
            from None
    except OSError as exc:
        raise ValueError(f"{path}: cannot read it ({exc.strerror}); pass a readable JSON/JSONL file") from None


def _format_of(path: str, data: Any) -> str:
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of records (LLaVA-Video-178K / VideoVista) or a .jsonl file")
    if type_kind(os.path.basename(path)):  # a LLaVA-Video-178K subset file (*_mc_*, *_oe_*, *_cap_*)
        return LLAVA
    head = [r for r in data[:50] if isinstance(r, dict)]
    return VIDEOVISTA if any("Type" in r for r in head) else LLAVA


def detect_format(path: str) -> str:
    """jsonl by extension; LLaVA-Video-178K for its subset files (mc/oe/cap in the name); otherwise a JSON list
    whose records carry `Type` is VideoVista, else LLaVA-Video-178K."""
    if path.endswith(".jsonl"):
        return JSONL
    return _format_of(path, _load_json(path))


def read_source(path: str, fmt: str = "auto", video_root: str | None = None) -> list[SourceItem]:
    """All units of one input file. `video_root` (default: the file's folder) resolves relative video paths.

    Only an unreadable file raises (a ValueError naming it): that is a wrong --input, not a bad record.
    """
    if not os.path.isfile(path):
        raise ValueError(f"{path}: input file not found; pass an existing JSON/JSONL file to --input")
    if video_root is not None and not os.path.isdir(video_root):
        raise ValueError(f"{path}: video root {video_root} is not a folder; give the folder its clips are under")
    if fmt not in (*FORMATS, "auto"):
        raise ValueError(f"{path}: unknown format {fmt!r}; use one of {FORMATS} or 'auto'")
    if fmt == JSONL or (fmt == "auto" and path.endswith(".jsonl")):
        try:
            return jsonl_units(path)
        except UnicodeDecodeError as exc:
            raise ValueError(f"{path}: not UTF-8 text (offset {exc.start}); expected our JSONL samples, one JSON "
                             "object per line") from None
    data = _load_json(path)
    fmt = _format_of(path, data) if fmt == "auto" else fmt
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of records")
    root = video_root or os.path.dirname(os.path.abspath(path))
    kind = type_kind(os.path.basename(path))
    units: list[SourceItem] = []
    for i, record in enumerate(data):
        units.extend(conversation_units(record, f"{path}:{i}", fmt, root, kind))
    return units


def _content(item: SourceItem) -> tuple:
    s = item.sample
    return (s.video, s.question, tuple(s.options), s.answer) if s is not None else ()


def read_sources(paths: list[str], video_root: str | None = None,
                 video_roots: dict[str, str] | None = None) -> list[SourceItem]:
    """Units of all inputs in order, with ids unique over all of them whatever the order of `paths`.

    `video_roots` maps an input path to its own media root (else `video_root`, else the file's folder).
    """
    out: list[SourceItem] = []
    roots = video_roots or {}
    for path in paths:
        out.extend(read_source(path, video_root=roots.get(path, video_root)))
    groups: dict[str, list[int]] = {}
    for i, item in enumerate(out):
        groups.setdefault(item.uid, []).append(i)
    taken = {uid for uid, members in groups.items() if len(members) == 1}
    for uid, members in groups.items():
        if len(members) == 1:
            continue
        usable = [i for i in members if out[i].sample is not None]
        contents = {_content(out[i]) for i in usable}
        keeper = usable[0] if len(contents) == 1 else None  # one question (maybe given twice) keeps the plain id
        for i in members:
            item = out[i]
            if i == keeper:
                taken.add(uid)
                continue
            new = f"{uid}@{os.path.basename(item.where.rsplit(':', 1)[0])}"
            n = 2
            while new in taken or new in groups:
                new, n = f"{uid}@{os.path.basename(item.where.rsplit(':', 1)[0])}#{n}", n + 1
            taken.add(new)
            if keeper is not None and item.sample is not None:
                out[i] = SourceItem(new, item.source, item.record_id, item.turn, item.where, reason="duplicate_id",
                                    detail=f"{item.where}: the same question as {out[keeper].where} (id {uid})")
                continue
            item.uid = new
            if item.sample is not None:
                item.sample.id = new
    return out
