"""Each benchmark's released answer extraction and aggregation, reproduced so our numbers compare with theirs.

Our own accuracy uses the shared parser (`answers.parse_choice`), which refuses to guess. The published numbers
were computed by each benchmark's script, which reads replies differently, sometimes generously (Video-Holmes takes
any "A" in the reply), sometimes strictly (OmniVideoBench needs the bare letter), sometimes with a known flaw
(lmms-eval's WorldSense parser matches a capital "A" anywhere and falls back to "A"). Those rules are reproduced
here as they are, flaws included, and reported next to ours; they are never used for rewards or curation.

`official_score(sample, output)` gives what the script would have read (`parsed`) and its score for that question
(1/0; IntentBench's multi-label questions score their F1), or score None where the script leaves the question out
of its denominator (Video-MME counts only replies it could read). `official_summary(rows)` aggregates like the
script: the overall mean of the counted scores, and the same mean per field the script breaks accuracy down by
(`row["groups"]`, filled by the loaders). Sources in docs/benchmarks.md.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import numpy as np

from ..schema import AVSample


@dataclass
class OfficialScore:
    parsed: str | None
    """What the official extraction read from the reply (None: nothing)."""
    score: float | None
    """The script's score for the question; None when the script does not count it."""


def _letters(sample: AVSample) -> str:
    return "".join(sample.answer)


# -------------------------------------------------------------------- OmniVideoBench (utils/utils.py, eval/*.py)


def _ovb_clean(text: str) -> str:
    text = text.lower()
    if m := re.search(r"/box\{([^}]+)\}", text):
        text = m.group(1)
    if len(text) > 1 and text[1] == ".":
        text = text[0]
    return " ".join(text.translate(str.maketrans("", "", string.punctuation)).split())


def _omnivideobench(sample: AVSample, output: str) -> OfficialScore:
    reply = output.split("assistant")[-1].strip() if "assistant" in output else output.strip()
    for pattern in (r"/box\{([^}]+)\}", r"\\boxed\{([^}]+)\}"):
        if m := re.search(pattern, reply):
            reply = m.group(1).strip()
    cleaned = _ovb_clean(reply)
    parsed = cleaned.upper() if len(cleaned) == 1 else None
    return OfficialScore(parsed, float(cleaned == _ovb_clean(sample.answer)))


# -------------------------------------------------------------------- Daily-Omni (test_model/Qwen3-Omni/testmodel.py)


def _daily_omni_letter(text: str) -> str | None:
    raw = text.strip()
    if not raw:
        return None
    ends = list(re.finditer(r"</think>", raw, flags=re.IGNORECASE))
    post_think = raw[ends[-1].end():].strip() if ends else raw
    no_think = re.sub(r"(?is)<think>.*?</think>", " ", raw).strip()
    for candidate in dict.fromkeys(c for c in (post_think, no_think, raw) if c):
        if m := re.search(r"(?is)<answer>\s*([A-D])\s*</answer>", candidate):
            return m.group(1).upper()
        if m := re.search(r"(?i)(?:^|[\n\r])\s*(?:final answer|answer|the answer is|答案)\s*[:：]?\s*([A-D])\b",
                          candidate):
            return m.group(1).upper()
        if m := re.match(r"(?i)^\s*([A-D])(?:[\s\.\):：]|$)", candidate):
            return m.group(1).upper()
        if found := re.findall(r"\b([A-D])\b", candidate.upper()):
            return found[-1]
    return None


def _daily_omni(sample: AVSample, output: str) -> OfficialScore:
    letter = _daily_omni_letter(output)
    return OfficialScore(letter, float(letter == _letters(sample)))


# -------------------------------------------------------------------- WorldSense (lmms-eval tasks/worldsense/utils.py)


def _worldsense_pick(response: str, choices: list[str], index2ans: dict[str, str]) -> str:
    for char in (",", ".", "!", "?", ";", ":", "'"):
        response = response.strip(char)
    response = f" {response} "
    by_letter, bracketed = True, False
    candidates = [c for c in choices if c in response]  # any capital letter anywhere: the script's own rule
    bracketed = bool(candidates)
    if not candidates:
        candidates = [c for c in choices if f" {c} " in response]
    if not candidates and len(response.split()) > 5:
        candidates = [c for c, text in index2ans.items() if text.lower() in response.lower()]
        by_letter = not candidates
    if not candidates:
        return "A"  # the script's fallback for an unreadable reply
    if len(candidates) == 1:
        return candidates[0]
    if by_letter:
        where = [response.rfind(f"({c})") if bracketed else response.rfind(f" {c} ") for c in candidates]
    else:
        where = [response.lower().rfind(index2ans[c].lower()) for c in candidates]
    return candidates[int(np.argmax(where))]


def _worldsense(sample: AVSample, output: str) -> OfficialScore:
    from .official_prompts import released_options

    raw = released_options(sample)
    choices = list("ABC") if len(raw) == 3 else list("ABCD")
    letter = _worldsense_pick(output, choices, {c: raw[i][3:] for i, c in enumerate(choices) if i < len(raw)})
    return OfficialScore(letter, float(letter == _letters(sample)))


# -------------------------------------------------------------------- IntentBench (HumanOmniV2 eval_humanomniv2.py)


def _intent_answer(text: str) -> str:
    m = re.search(r"<answer>\s*(.*?)\s*</answer>", text, re.DOTALL)
    return m.group(1).strip() if m else ""


def _intentbench(sample: AVSample, output: str) -> OfficialScore:
    final = _intent_answer(output)  # the script then falls back to another sample's reply; we keep ""
    gold = _intent_answer(str(sample.extra.get("solution", f"<answer>{sample.answer}</answer>")))
    ptype = sample.extra.get("problem_type", "multiple choice")
    if ptype == "emer_ov_mc":
        ref, hyp = final.split(","), gold.split(",")
        hits = len(set(ref) & set(hyp))
        precision, recall = hits / len(ref), hits / len(hyp)
        score = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    elif ptype == "judge":
        score = float(("yes" in gold.lower() and "yes" in final.lower()) or
                      ("no" in gold.lower() and "no" in final.lower()))
    else:
        score = float(final.strip() == gold.strip())
    return OfficialScore(final or None, score)


# -------------------------------------------------------------------- Video-Holmes (evaluate.py)


def _video_holmes(sample: AVSample, output: str) -> OfficialScore:
    blocks = re.findall(r"<answer>\s*(.*?)\s*</answer>", output, re.DOTALL)
    choice = blocks[-1].strip() if blocks else output
    letter = next((c for c in "ABCDEF" if f"{c} " in choice or f"{c}:" in choice or f"[{c}" in choice), None)
    letter = letter or next((c for c in "ABCDEF" if c in choice), None)
    return OfficialScore(letter, float(letter == _letters(sample)))


# -------------------------------------------------------------------- Video-MME (thanku-all/parse_answer)

# The list as released: two missing commas glue pairs of prefixes into one string that never matches.
_VIDEOMME_PREFIXES = ("The best answer is", "The correct answer is", "The answer is", "The answer",
                      "The best option isThe correct option is", "Best answer:Best option:", "Answer:", "Option:",
                      "The correct answer", "The correct option")


def _videomme(sample: AVSample, output: str) -> OfficialScore:
    s = output.strip()
    for prefix in _VIDEOMME_PREFIXES:
        s = s.replace(prefix, "")
    m = re.search(r"[ABCD]", s)  # the first capital A-D anywhere: "Based on ..." reads as B
    if m is None:
        return OfficialScore(None, None)  # "not answered": left out of the script's denominator
    return OfficialScore(m.group(0), float(m.group(0) == _letters(sample)))


OFFICIAL_SCORERS: dict[str, tuple[str, Callable[[AVSample, str], OfficialScore]]] = {
    "omnivideobench": ("NJU-LINK/OmniVideoBench utils.clean_text exact match", _omnivideobench),
    "daily-omni": ("Daily-Omni Qwen3-Omni testmodel.extract_choice_letter", _daily_omni),
    "worldsense": ("lmms-eval worldsense parse_multi_choice_response", _worldsense),
    "intentbench": ("HumanOmniV2 eval_humanomniv2 reward_fn", _intentbench),
    "video-holmes": ("Video-Holmes evaluate.py", _video_holmes),
    "video-mme": ("Video-MME eval_your_results.extract_characters_regex", _videomme),
}


def official_score(sample: AVSample, output: str | None) -> OfficialScore | None:
    """The benchmark script's reading and score of `output`; None for sources without a script (synthetic)."""
    entry = OFFICIAL_SCORERS.get(sample.source)
    if entry is None:
        return None
    return entry[1](sample, output or "")


def _mean(scores: list[float]) -> dict[str, Any]:
    return {"n": len(scores), "score": float(sum(scores)), "accuracy": sum(scores) / len(scores) if scores else None}


def official_summary(rows: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
    """Aggregate one (model, benchmark, modality) group like its script: {"scorer", "overall", "axes"}.

    Rows with a media error or a score of None are not counted (the scripts drop failed and unanswered items)."""
    rows = list(rows)
    bench = rows[0].get("benchmark") if rows else None
    if bench not in OFFICIAL_SCORERS:
        return None
    counted = [r for r in rows if not r.get("media_error") and r.get("official_score") is not None]
    axes: dict[str, dict[str, list[float]]] = {}
    for row in counted:
        for axis, value in (row.get("groups") or {}).items():
            for v in value if isinstance(value, list) else [value]:
                axes.setdefault(axis, {}).setdefault(str(v), []).append(float(row["official_score"]))
    return {"scorer": OFFICIAL_SCORERS[bench][0],
            "overall": {**_mean([float(r["official_score"]) for r in counted]), "not_counted": len(rows) - len(counted)},
            "axes": {axis: {v: _mean(s) for v, s in sorted(vals.items())} for axis, vals in sorted(axes.items())}}
