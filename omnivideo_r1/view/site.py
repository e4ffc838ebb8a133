"""Write the viewer: one static `index.html` (data, styles and scripts inline) plus a `media/` folder of thumbnails.

The page needs no server and no network: open index.html from disk. Its data is one JSON object (see
`build_site_data`) in a `<script type="application/json" id="site-data">` element; tests read it back with
`read_site_data`.
"""

from __future__ import annotations

import json
import os
import time
from importlib import resources
from typing import Any, Callable

from ..eval.report import summarize
from .sources import ViewError, classify, eval_questions, find_samples, read_eval_rows, read_run
from .thumbnails import ClipWindow, make_thumbnails

MAX_MEDIA = 150
"""Clip windows given thumbnails (rollout clips first, then eval questions in order)."""
MAX_QUESTIONS = 2000
"""Eval questions put in the page."""
OUTPUT_CHARS_BUDGET = 2_000_000
"""Characters of eval outputs in the page, shared evenly by all rows (each gets at least 240, at most 4000); each
parsed segment caption gets a quarter of a row's share (40 to 240 characters)."""
ASSETS = ("viewer.css", "core.js", "charts.js", "runs.js", "evals.js")


def build_site_data(path: str, data: str | None = None, benchmark: str | None = None, max_media: int = MAX_MEDIA,
                    max_questions: int = MAX_QUESTIONS, media_dir: str | None = None,
                    log: Callable[[str], None] = lambda msg: None) -> dict[str, Any]:
    """Everything the page shows, as plain JSON-able data; thumbnails are made under `media_dir` (None: no media).

    Keys: title, kind, source, generated, notes (caps the reader must know about), runs, eval, media.
    """
    folder = classify(path)
    notes: list[str] = []
    runs = [read_run(d) for d in folder.runs]
    for run in runs:
        if run["metrics"]["thinned"]:
            notes.append(f"{run['name']}: curves show {len(run['metrics']['steps'])} evenly spaced steps of the run.")
        if run["rollout_note"]:
            notes.append(f"{run['name']} rollouts.jsonl: {run['rollout_note']}.")
    evaluation = None
    if folder.evals:
        evaluation = _evaluation(folder, data, benchmark, max_questions, notes)

    windows: dict[str, ClipWindow] = {}
    targets: list[tuple[dict[str, Any], ClipWindow]] = []
    for run in runs:
        for group in run["groups"]:
            p = group["prompt"]
            p["media"] = None
            if p.get("video"):
                targets.append((p, ClipWindow(p["video"], p.get("audio"), p.get("start"), p.get("end"))))
    for q in evaluation["questions"] if evaluation else []:
        q["media"] = None
        s = q.pop("sample")
        q["video"] = s.video if s is not None else None
        if s is not None:
            targets.append((q, ClipWindow(s.video, s.audio, s.start, s.end)))
    media: dict[str, Any] = {}
    distinct = list(dict.fromkeys(w for _, w in targets))
    chosen = set(distinct[:max_media]) if media_dir else set()
    if media_dir and len(distinct) > max_media:
        notes.append(f"Media (frames, spectrogram) shown for {max_media} of {len(distinct)} clips; raise "
                     "--max-media for more.")
    for i, window in enumerate(w for w in distinct if w in chosen):
        windows[f"m{i}"] = window
    key_of = {w: k for k, w in windows.items()}
    for n, (k, window) in enumerate(windows.items()):
        if n and n % 25 == 0:
            log(f"thumbnails {n}/{len(windows)}")
        meta = make_thumbnails(window, media_dir)
        media[k] = {**meta, "frames": _rel(meta["frames"]), "spectrogram": _rel(meta["spectrogram"])}
    for record, window in targets:
        record["media"] = key_of.get(window)
    title = os.path.basename(folder.path.rstrip(os.sep)) or folder.path
    return {"title": title, "kind": folder.kind, "source": folder.path,
            "generated": time.strftime("%Y-%m-%d %H:%M"), "notes": notes, "runs": runs, "eval": evaluation,
            "media": media}


def _evaluation(folder, data, benchmark, max_questions: int, notes: list[str]) -> dict[str, Any]:
    rows = [r for d in folder.evals for r in read_eval_rows(d)]
    samples, samples_from = find_samples(folder, data, benchmark)
    per_output = max(240, min(4000, OUTPUT_CHARS_BUDGET // max(1, len(rows))))
    questions, conds, left_out = eval_questions(rows, samples, per_output, max(40, min(240, per_output // 4)),
                                                max_questions)
    if left_out:
        notes.append(f"Evaluation: the first {len(questions)} of {len(questions) + left_out} questions are shown; "
                     "raise --max-questions for more.")
    if any(r["truncated"] for q in questions for r in q["results"] if r):
        notes.append(f"Evaluation outputs are cut to {per_output} characters here (full text in results.jsonl); "
                     "segments are parsed from the full text, their captions cut to a quarter of that.")
    if not samples:
        notes.append("No question media: the eval rows were not joined with their samples (pass --data, or run "
                     "omnivideo-r1 eval, which records its data in eval_inputs.json).")
    for q in questions:
        s = q["sample"]
        q["reference"] = [{"start": t.start, "end": t.end, "caption": t.caption} for t in s.time_captions] if s else []
        timeline = s.extra.get("timeline") if s is not None and isinstance(s.extra, dict) else None
        if isinstance(timeline, dict):
            q["timeline"] = timeline
    shown = {(q["benchmark"], q["id"]) for q in questions}
    kept_rows = [r for r in rows if (str(r.get("benchmark", "?")), str(r["id"])) in shown]
    return {"paths": folder.evals, "samples_from": samples_from, "conditions": conds,
            "summary": summarize(kept_rows), "questions": questions, "flips": flip_table(questions, conds)}


def flip_table(questions: list[dict[str, Any]], conds: list[dict[str, str]]) -> list[dict[str, Any]]:
    """For each pair of conditions that differ in one thing (checkpoint, or modality): which questions flipped.

    Entry: a, b (condition indices), n (questions scored under both: no media error in either), both_right,
    both_wrong, b_fixed (question indices wrong under a, right under b), b_broke (right under a, wrong under b).
    """
    out = []
    for a in range(len(conds)):
        for b in range(a + 1, len(conds)):
            same_model = conds[a]["model"] == conds[b]["model"]
            same_modality = conds[a]["modality"] == conds[b]["modality"]
            if same_model == same_modality:
                continue
            entry = {"a": a, "b": b, "n": 0, "both_right": 0, "both_wrong": 0, "b_fixed": [], "b_broke": []}
            for qi, q in enumerate(questions):
                ra, rb = q["results"][a], q["results"][b]
                if not ra or not rb or ra["media_error"] or rb["media_error"]:
                    continue
                entry["n"] += 1
                if ra["correct"] and rb["correct"]:
                    entry["both_right"] += 1
                elif not ra["correct"] and not rb["correct"]:
                    entry["both_wrong"] += 1
                else:
                    entry["b_fixed" if rb["correct"] else "b_broke"].append(qi)
            out.append(entry)
    return out


def _rel(name: str | None) -> str | None:
    return f"media/{name}" if name else None


def render_html(site: dict[str, Any]) -> str:
    """The page: the template with styles, data and scripts inlined."""
    assets = resources.files("omnivideo_r1.view") / "assets"
    text = {name: (assets / name).read_text(encoding="utf-8") for name in ("template.html", *ASSETS)}
    # "</" inside the JSON would end the <script> element early; "<\/" is the same string to JSON.parse.
    payload = json.dumps(site, ensure_ascii=False, allow_nan=False, separators=(",", ":")).replace("</", "<\\/")
    page = text["template.html"]
    page = page.replace("/*CSS*/", text["viewer.css"])
    page = page.replace("/*JS*/", "\n".join(text[n] for n in ASSETS if n.endswith(".js")))
    page = page.replace("{{TITLE}}", _escape(f"{site['title']} · OmniVideo-R1 viewer"))
    return page.replace("/*DATA*/", payload)  # last: the data may contain the other placeholders


def write_site(path: str, out_dir: str | None = None, data: str | None = None, benchmark: str | None = None,
               max_media: int = MAX_MEDIA, max_questions: int = MAX_QUESTIONS,
               log: Callable[[str], None] = lambda msg: None) -> dict[str, Any]:
    """Write `out_dir`/index.html and `out_dir`/media/ (default out_dir: `path`/viewer); returns paths and sizes."""
    out_dir = os.path.abspath(out_dir or os.path.join(path, "viewer"))
    media_dir = os.path.join(out_dir, "media")
    site = build_site_data(path, data, benchmark, max_media, max_questions, media_dir, log)
    os.makedirs(out_dir, exist_ok=True)
    index = os.path.join(out_dir, "index.html")
    tmp = f"{index}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(render_html(site))
    os.replace(tmp, index)
    media_files = [os.path.join(media_dir, f) for f in os.listdir(media_dir)] if os.path.isdir(media_dir) else []
    return {"index": index, "index_bytes": os.path.getsize(index), "media_files": len(media_files),
            "media_bytes": sum(os.path.getsize(f) for f in media_files), "notes": site["notes"]}


def read_site_data(index_path: str) -> dict[str, Any]:
    """The data object embedded in a written index.html."""
    with open(index_path, encoding="utf-8") as fh:
        page = fh.read()
    start_tag = '<script type="application/json" id="site-data">'
    start = page.index(start_tag) + len(start_tag)
    return json.loads(page[start: page.index("</script>", start)])


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


__all__ = ["ViewError", "build_site_data", "flip_table", "read_site_data", "render_html", "write_site"]
