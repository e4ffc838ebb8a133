"""Read what the trainer and the evaluator wrote into plain records for the viewer.

A folder is one of:
- a run folder: `metrics.jsonl` and/or `rollouts.jsonl` (+ `config_<stage>.yaml`), written by `omnivideo-r1 train`;
- an eval folder: `results.jsonl` (one row per question, model and modality), written by `omnivideo-r1 eval`;
- a collection (the demo's folder): run and eval folders one level down, and possibly a synthetic world.
Nothing here decodes media or writes files; `site.py` does both.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import UserError
from ..eval.report import EVAL_INPUTS
from ..rewards.grounded_format import parse_grounded_response
from ..schema import AVSample, iter_json_lines, read_samples

MAX_CURVE_POINTS = 1500
"""Points kept per metric curve (evenly thinned, last step always kept)."""


class ViewError(UserError, ValueError):
    """A folder the viewer cannot read; the message names the path and what it expected."""


@dataclass
class Folder:
    kind: str
    """"run", "eval" or "collection"."""
    path: str
    """Absolute path."""
    runs: list[str] = field(default_factory=list)
    """Run folders inside (itself for a run folder), in the order they were trained."""
    evals: list[str] = field(default_factory=list)
    """Eval folders inside (itself for an eval folder)."""


def is_run_folder(path: str) -> bool:
    return any(os.path.isfile(os.path.join(path, f)) for f in ("metrics.jsonl", "rollouts.jsonl"))


def is_eval_folder(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "results.jsonl"))


def classify(path: str) -> Folder:
    """What kind of folder `path` is, with the run and eval folders it holds."""
    path = os.path.abspath(path)
    if not os.path.isdir(path):
        raise ViewError(f"{path}: not a folder; pass a run folder (metrics.jsonl), an eval output folder "
                        "(results.jsonl) or the demo's output folder")
    if is_run_folder(path):
        return Folder("run", path, runs=[path])
    if is_eval_folder(path):
        return Folder("eval", path, evals=[path])
    subs = sorted(os.path.join(path, d) for d in os.listdir(path) if os.path.isdir(os.path.join(path, d)))
    runs = [d for d in subs if is_run_folder(d)]
    evals = [d for d in subs if is_eval_folder(d)]
    if not runs and not evals:
        raise ViewError(f"{path}: no metrics.jsonl / rollouts.jsonl (a training run), no results.jsonl (an "
                        "evaluation) here or one level down; pass a run, eval or demo output folder")
    runs.sort(key=lambda d: _first_mtime(d))  # training order (the demo trains QI, MA, then QI -> MA)
    return Folder("collection", path, runs=runs, evals=evals)


def _first_mtime(run_dir: str) -> float:
    times = [os.path.getmtime(os.path.join(run_dir, f)) for f in os.listdir(run_dir) if f.startswith("config_")]
    return min(times) if times else os.path.getmtime(run_dir)


# ---------------------------------------------------------------- runs

def read_run(run_dir: str) -> dict[str, Any]:
    """{name, path, stage, config_text, metrics: {steps, series}, groups, rollout_note}."""
    from ..train.metrics_log import read_metrics
    from ..train.rollout_log import FILE_NAME, read_rollouts

    configs = sorted(f for f in os.listdir(run_dir) if re.fullmatch(r"config_\w+\.yaml", f))
    stage = configs[0][len("config_"):-len(".yaml")] if configs else None
    config_text = None
    if configs:
        with open(os.path.join(run_dir, configs[0]), encoding="utf-8") as fh:
            config_text = fh.read()
    metrics_path = os.path.join(run_dir, "metrics.jsonl")
    try:
        rows = read_metrics(metrics_path) if os.path.exists(metrics_path) else []
    except json.JSONDecodeError as exc:
        raise ViewError(f"{metrics_path}: line {exc.lineno} is not valid JSON; the run may have been killed while "
                        "writing it, delete that line") from None
    groups, note = [], None
    rollouts_path = os.path.join(run_dir, FILE_NAME)
    if os.path.exists(rollouts_path):
        try:
            groups, note = read_rollouts(rollouts_path)
        except ValueError as exc:
            raise ViewError(str(exc)) from None
    for group in groups:
        prompt = group.get("prompt", {})
        for key in ("video", "audio"):
            if prompt.get(key) and not os.path.isabs(prompt[key]):
                prompt[key] = os.path.normpath(os.path.join(run_dir, prompt[key]))
    stage = stage or (groups[0].get("stage") if groups else None)
    return {"name": os.path.basename(run_dir), "path": run_dir, "stage": stage, "config_text": config_text,
            "metrics": metric_series(rows), "groups": groups, "rollout_note": note}


def metric_series(rows: list[dict[str, Any]], max_points: int = MAX_CURVE_POINTS) -> dict[str, Any]:
    """{"steps": [...], "series": {key: [value or None]}, "thinned": bool} over numeric keys, thinned evenly."""
    rows = sorted((r for r in rows if isinstance(r.get("step"), int)), key=lambda r: r["step"])
    thinned = len(rows) > max_points
    if thinned:
        stride = len(rows) / max_points
        keep = sorted({int(i * stride) for i in range(max_points)} | {len(rows) - 1})
        rows = [rows[i] for i in keep]
    keys = list(dict.fromkeys(k for r in rows for k, v in r.items()
                              if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool)))
    series = {k: [_finite(r.get(k)) for r in rows] for k in keys}
    return {"steps": [r["step"] for r in rows], "series": series, "thinned": thinned}


def _finite(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if v == v and abs(v) != float("inf") else None


# ---------------------------------------------------------------- evaluations

def read_eval_rows(eval_dir: str) -> list[dict[str, Any]]:
    path = os.path.join(eval_dir, "results.jsonl")
    rows = []
    for where, row, error in iter_json_lines(path):
        if error is not None:
            raise ViewError(f"{where}: not valid JSON ({error}); each line must be one result row")
        if not isinstance(row, dict) or "id" not in row:
            raise ViewError(f"{where}: a result row needs an 'id' (rows come from omnivideo-r1 eval)")
        rows.append(row)
    return rows


def split_prompt(prompt: str | None) -> tuple[str, list[str]]:
    """(question, options) from an eval row's prompt text ("question\\nA. x\\nB. y\\n<instruction>"); the whole
    text and no options when it does not look like that."""
    if not prompt:
        return "", []
    lines = prompt.split("\n")
    first = next((i for i, line in enumerate(lines) if re.match(r"^A\. ", line)), None)
    if first is None or first == 0:
        return prompt, []
    options = []
    for i, line in enumerate(lines[first:]):
        m = re.match(r"^([A-Z])\. (.*)$", line)
        if not m or m.group(1) != chr(ord("A") + i):
            break
        options.append(m.group(2))
    return "\n".join(lines[:first]).strip(), options


def conditions(rows: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The (model, modality) pairs in the order they appear."""
    seen = dict.fromkeys((str(r.get("model", "model")), str(r.get("modality", "av"))) for r in rows)
    return [{"model": m, "modality": mod} for m, mod in seen]


def eval_questions(rows: list[dict[str, Any]], samples: dict[str, AVSample], max_output_chars: int,
                   max_caption_chars: int, max_questions: int) -> tuple[list[dict[str, Any]], list[dict[str, str]], int]:
    """(questions, conditions, number of questions left out by the cap).

    Each question: id, benchmark, category, modality_needs, question, options, answer, sample (the joined AVSample
    or None), groups (the benchmark's own breakdown fields, e.g. video duration) and results: one entry per condition (None where that condition has no row) with parsed, correct,
    unparseable, media_error, output (cut to `max_output_chars`), truncated, segments (parsed from the full output,
    captions cut to `max_caption_chars`).
    """
    conds = conditions(rows)
    index = {(c["model"], c["modality"]): i for i, c in enumerate(conds)}
    questions: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        key = (str(row.get("benchmark", "?")), str(row["id"]))
        q = questions.get(key)
        if q is None:
            sample = samples.get(str(row["id"]))
            question, options = (sample.question, list(sample.options)) if sample else split_prompt(row.get("prompt"))
            q = {"id": key[1], "benchmark": key[0], "category": str(row.get("category", "uncategorized")),
                 "modality_needs": row.get("modality_needs") or (sample.modality_needs if sample else "unknown"),
                 "question": question, "options": options, "answer": row.get("answer"), "sample": sample,
                 "groups": {str(k): str(v) for k, v in (row.get("groups") or {}).items()},
                 "results": [None] * len(conds)}
            questions[key] = q
        output = row.get("output") or ""
        q["results"][index[(str(row.get("model", "model")), str(row.get("modality", "av")))]] = {
            "parsed": row.get("parsed"), "correct": bool(row.get("correct")),
            "unparseable": bool(row.get("unparseable")), "media_error": row.get("media_error"),
            "output": output[:max_output_chars], "truncated": len(output) > max_output_chars,
            "segments": [{"start": s.start, "end": s.end, "caption": s.caption[:max_caption_chars]}
                         for s in parse_grounded_response(output).segments]}
    ordered = list(questions.values())
    return ordered[:max_questions], conds, max(0, len(ordered) - max_questions)


def find_samples(folder: Folder, data: str | None, benchmark: str | None) -> tuple[dict[str, AVSample], str | None]:
    """Samples to join eval rows with (for media and reference timelines), by id, and where they came from.

    In order: --data (with --benchmark, default synthetic); eval_inputs.json next to the results; a synthetic
    world (world.json) in the folder or one level down. Empty when none is found (the page then shows no media).
    """
    if data:
        return _load(benchmark or "synthetic", data), data
    for eval_dir in folder.evals:
        info_path = os.path.join(eval_dir, EVAL_INPUTS)
        if os.path.exists(info_path):
            with open(info_path, encoding="utf-8") as fh:
                info = json.load(fh)
            if info.get("data") and os.path.exists(info["data"]):
                return _load(info.get("benchmark", "synthetic"), info["data"]), info["data"]
    for root in [folder.path] + sorted(os.path.join(folder.path, d) for d in os.listdir(folder.path)):
        if os.path.isfile(os.path.join(root, "world.json")):
            out: dict[str, AVSample] = {}
            for name in sorted(os.listdir(root)):
                if name.endswith(".jsonl"):
                    out.update({s.id: s for s in read_samples(os.path.join(root, name))})
            return out, root
    return {}, None


def _load(benchmark: str, data: str) -> dict[str, AVSample]:
    from ..eval.benchmarks import load_benchmark

    try:
        samples, _ = load_benchmark(benchmark, data)
    except KeyError as exc:
        raise ViewError(str(exc).strip("'\"")) from None
    return {s.id: s for s in samples}
