"""A bounded sample of rollouts written to `rollouts.jsonl` in the run folder, for `omnivideo-r1 view`.

One line per recorded prompt group (all G completions, so each advantage can be read against its group):

    {"step": 5, "stage": "qi", "slot": 3, "weights": {...},
     "prompt": {"id", "question", "options", "answer", "category", "modality_needs", "source", "video", "audio",
                "start", "end", "clip_duration", "modality", "reference": [{start, end, caption}], "timeline"},
     "completions": [{"text", "truncated", "segments": [{start, end, caption}], "problems", "answer_block", "parsed",
                      "rewards": {name: score or null}, "total", "advantage",
                      "variants": {"audio": {"text", "parsed"}, ...}, "confidence": {"av": p, ...}}]}

Reward scores are the reward functions' own outputs (never recomputed here); None/NaN is written as null.
Size is bounded three ways: steps (first, every N-th, last), groups per step, characters per text; and the file
stops growing at `max_bytes` (the run goes on and the last line says so).
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Sequence

from ..answers import extract_answer_block, parse_choice
from ..rewards.grounded_format import parse_grounded_response
from ..rewards.types import RewardOutput, RolloutRecord
from ..schema import iter_json_lines
from .config import RunConfig

FILE_NAME = "rollouts.jsonl"


class RolloutLog:
    """Main-process writer (settings: `run.log_rollouts_*`); a disabled log (other ranks, every=0) writes nothing."""

    def __init__(self, run: RunConfig, enabled: bool = True, resume_step: int = 0):
        self.every, self.groups = run.log_rollouts_every, run.log_rollouts_groups
        self.max_chars, self.max_bytes = run.log_rollouts_max_chars, int(run.log_rollouts_max_mb * 2**20)
        self.total_steps = run.steps
        self.stage = run.stage
        self.enabled = enabled and self.every > 0 and self.groups > 0
        self.path = os.path.join(run.out_dir, FILE_NAME)
        self.full = False
        if not self.enabled:
            return
        os.makedirs(run.out_dir, exist_ok=True)
        if resume_step > 0 and os.path.exists(self.path):
            _drop_steps_after(self.path, resume_step)  # lines of steps the resumed run will redo
        elif os.path.exists(self.path):
            os.remove(self.path)

    def wants(self, step: int) -> bool:
        """Whether 1-based `step` is recorded (cheap; call before building anything)."""
        return self.enabled and not self.full and (step == 1 or step % self.every == 0 or step == self.total_steps)

    def record(self, step: int, records: Sequence[RolloutRecord], outputs: dict[str, RewardOutput],
               weights: dict[str, float], totals: Sequence[float], advantages: Sequence[float], group_size: int,
               slots: Sequence[int] | None = None) -> int:
        """Append the first `groups` groups of this step; returns the number of lines written.

        records/totals/advantages are flat in group order (group k = rows k*G .. k*G+G-1); `outputs` are the reward
        functions' outputs for the same rows; `slots` names each group's prompt slot in the step.
        """
        if not self.wants(step):
            return 0
        n = len(records)
        if n % group_size or len(totals) != n or len(advantages) != n:
            raise ValueError(f"rollout log: {n} records, {len(totals)} totals, {len(advantages)} advantages do not "
                             f"form groups of {group_size}")
        totals, advantages = [float(x) for x in totals], [float(x) for x in advantages]
        lines = []
        for k in range(min(self.groups, n // group_size)):
            rows = range(k * group_size, (k + 1) * group_size)
            group = {"step": step, "stage": self.stage, "slot": int(slots[k]) if slots is not None else k,
                     "weights": dict(weights), "prompt": _prompt(records[rows[0]]),
                     "completions": [self._completion(records[i], {name: out.scores[i] for name, out in outputs.items()},
                                                      totals[i], advantages[i]) for i in rows]}
            lines.append(json.dumps(group, ensure_ascii=False, allow_nan=False))
        size = os.path.getsize(self.path) if os.path.exists(self.path) else 0
        written = 0
        with open(self.path, "a", encoding="utf-8") as fh:
            for line in lines:
                if size + len(line) + 1 > self.max_bytes:
                    self.full = True
                    fh.write(json.dumps({"step": step, "stopped": f"{FILE_NAME} reached run.log_rollouts_max_mb; "
                                                                  "later steps are not recorded"}) + "\n")
                    break
                fh.write(line + "\n")
                size += len(line.encode("utf-8")) + 1
                written += 1
        return written

    def _completion(self, record: RolloutRecord, scores: dict[str, float | None], total: float,
                    advantage: float) -> dict[str, Any]:
        text = record.completion or ""
        parsed = parse_grounded_response(text)
        multi = len(record.sample.answer) > 1
        cap = self.max_chars
        variants = {m: {"text": t[:cap], "truncated": len(t) > cap,
                        "parsed": parse_choice(extract_answer_block(t) or "", record.sample.options, multi=multi)}
                    for m, t in sorted(record.variant_answers.items())}
        return {"text": text[:cap], "truncated": len(text) > cap,
                "segments": [_segment(s.start, s.end, s.caption) for s in parsed.segments],
                "problems": parsed.problems, "answer_block": parsed.answer,
                "parsed": parse_choice(extract_answer_block(text) or "", record.sample.options, multi=multi),
                "rewards": {name: _number(v) for name, v in scores.items()}, "total": _number(total),
                "advantage": _number(advantage), "variants": variants,
                "confidence": {m: _number(p) for m, p in sorted(record.variant_confidence.items())}}


def read_rollouts(path: str) -> tuple[list[dict[str, Any]], str | None]:
    """(groups, note): the recorded groups, the last line per (step, slot) kept; the note says why recording stopped
    or how many lines could not be read (a run still writing, or killed mid-line).

    Raises ValueError naming the line for JSON that is not a recorded group."""
    groups: dict[tuple[int, int], dict[str, Any]] = {}
    notes, unreadable = [], 0
    for where, row, error in iter_json_lines(path):
        if error is not None:
            unreadable += 1
            continue
        if isinstance(row, dict) and "stopped" in row:
            notes.append(f"step {row.get('step')}: {row['stopped']}")
            continue
        if not isinstance(row, dict) or not isinstance(row.get("step"), int) or "completions" not in row:
            raise ValueError(f"{where}: not a recorded rollout group (needs step and completions); "
                             "this file is written by omnivideo-r1 train")
        groups[(row["step"], int(row.get("slot", 0)))] = row
    if unreadable:
        notes.append(f"{unreadable} unreadable line(s) skipped (the run was still writing, or was killed mid-line)")
    return [groups[k] for k in sorted(groups)], "; ".join(notes) or None


def _prompt(record: RolloutRecord) -> dict[str, Any]:
    s = record.sample
    out = {"id": s.id, "question": s.question, "options": list(s.options), "answer": s.answer,
           "category": s.category, "modality_needs": s.modality_needs, "source": s.source, "video": s.video,
           "audio": s.audio, "start": s.start, "end": s.end, "clip_duration": _number(record.duration),
           "modality": record.modality, "reference": [_segment(t.start, t.end, t.caption) for t in s.time_captions]}
    timeline = s.extra.get("timeline") if isinstance(s.extra, dict) else None
    if isinstance(timeline, dict):  # the synthetic world's event timeline: visual and audio lanes for the viewer
        out["timeline"] = timeline
    return out


def _segment(start: float, end: float, caption: str) -> dict[str, Any]:
    return {"start": float(start), "end": float(end), "caption": caption}


def _number(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _drop_steps_after(path: str, step: int) -> None:
    with open(path, encoding="utf-8") as fh:
        kept = [line for line in fh if line.strip() and _line_step(line) <= step]
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.writelines(kept)
    os.replace(tmp, path)


def _line_step(line: str) -> int:
    try:
        return int(json.loads(line).get("step", 0))
    except (ValueError, AttributeError):
        return 1 << 62  # a cut-off last line from a killed run: drop it
