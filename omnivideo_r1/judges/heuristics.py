"""Offline rule-based scorer for the embedded judge's "curation" and "category" tasks.

It cannot watch the clip, so it scores what the text shows: is the question well formed, is the answer consistent
with the options, do the question, options and reference captions cue sight and/or sound. For the synthetic world
the pipeline passes the sample's annotated `modality_needs` (as "modality_needs: both" in `response`), which is the
ground truth the cue words only approximate. Scores are in [0, 1] like every judge's.
"""

from __future__ import annotations

import re

from ..answers import parse_choice
from ..schema import LETTERS
from ..taxonomy import classify_by_keywords
from .base import CURATION_DIMENSIONS, JudgeRequest, JudgeResult

MODALITY_HINT_RE = re.compile(r"modality_needs:\s*(video|audio|both|unknown)", re.I)

VISUAL_CUES = (
    "see", "seen", "shown", "show", "shows", "appear", "appears", "visible", "look", "looks", "watch", "screen",
    "frame", "color", "colour", "wearing", "holding", "hold", "shape", "circle", "square", "left", "right",
    "written", "text", "sign", "picture", "image", "scene", "doing", "person", "man", "woman", "red", "green",
    "blue", "yellow", "moves", "moving", "flash", "flashes", "display", "displayed",
)
AUDIO_CUES = (
    "hear", "heard", "sound", "sounds", "audio", "say", "says", "said", "speak", "speaks", "speaker", "voice",
    "music", "song", "sing", "sings", "singing", "noise", "beep", "beeps", "tone", "loud", "quiet", "narrator",
    "mention", "mentions", "talk", "talks", "pitch", "instrument", "bark", "barks", "ring", "rings", "bell",
    "whistle", "melody", "spoken", "announce", "announces", "laugh", "laughs", "clap", "claps",
)
QUESTION_WORDS = ("what", "which", "who", "whom", "whose", "when", "where", "why", "how", "is", "are", "does", "do",
                  "did", "can", "was", "were", "identify", "describe", "choose", "select")
_ANSWER_RE = re.compile(r"^\s*\(?([A-Z])\)?(?:[.:)]\s*|\s+|$)(.*)$", re.S)


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def _count_cues(text: str, cues: tuple[str, ...]) -> int:
    words = set(_norm(text).split())
    return sum(1 for c in cues if c in words)


def modality_hint(response: str) -> str | None:
    """The annotated modality_needs the pipeline may pass in `response`, or None."""
    m = MODALITY_HINT_RE.search(response or "")
    return m.group(1).lower() if m else None


def question_logic(question: str, options: tuple[str, ...], answer_letter: str | None) -> tuple[float, list[str]]:
    """1.0 for a well-formed question; the worst problem found sets the score. Returns (score, problems)."""
    problems: list[tuple[float, str]] = []
    q = _norm(question)
    opts = [_norm(o) for o in options]
    if not q:
        problems.append((0.0, "empty question"))
    if len(options) < 2:
        problems.append((0.0, "fewer than 2 options"))
    if any(not o for o in opts):
        problems.append((0.3, "empty option"))
    if len(set(opts)) < len(opts):
        problems.append((0.2, "duplicate options"))
    if answer_letter is None or any(ch not in LETTERS[: len(options)] for ch in answer_letter):
        problems.append((0.0, "answer letter not among the options"))
    if q and any(o and (o == q or (len(q) > 3 and q in o)) for o in opts):
        problems.append((0.4, "question is contained in an option"))
    if answer_letter and q and len(answer_letter) == 1 and LETTERS.index(answer_letter) < len(opts):
        ans = opts[LETTERS.index(answer_letter)]
        # An answer spelled out in the question (and in no other option) gives itself away.
        if len(ans) > 3 and re.search(r"\b" + re.escape(ans) + r"\b", q) and sum(ans in o for o in opts) == 1:
            problems.append((0.5, "answer text appears in the question"))
    words = q.split()
    if q and "?" not in question and not (words and words[0] in QUESTION_WORDS):
        problems.append((0.8, "not phrased as a question"))
    score = min([1.0] + [s for s, _ in problems])
    return score, [p for _, p in problems]


def parse_reference(reference: str, options: tuple[str, ...]) -> tuple[str | None, str]:
    """(letter, text after the letter) of a reference like "B. a red circle"; letters via the shared parser."""
    letter = parse_choice(reference, list(options)) if reference.strip() else None
    m = _ANSWER_RE.match(reference or "")
    text = m.group(2).strip() if m and m.group(1) == letter else ""
    return letter, text


def answer_accuracy(reference: str, options: tuple[str, ...]) -> tuple[float, list[str]]:
    """1.0 when the reference names a valid option and any text it carries is that option's text."""
    letter, text = parse_reference(reference, options)
    if letter is None:
        return 0.0, ["reference answer names no option"]
    if any(ch not in LETTERS[: len(options)] for ch in letter):
        return 0.0, [f"answer {letter} is not among {len(options)} options"]
    if not text or len(letter) > 1:
        return 1.0, []
    want = _norm(text)
    chosen = _norm(options[LETTERS.index(letter)])
    if want == chosen or (want and (want in chosen or chosen in want)):
        return 1.0, []
    if any(_norm(o) == want for o in options):
        return 0.0, [f"answer text matches another option than {letter}"]
    return 0.5, [f"answer text {text!r} differs from option {letter}"]


def modality_dependency(request: JudgeRequest) -> tuple[float, float, list[str]]:
    """(video, audio) dependency from the annotated hint, else from cue words in question/options/captions."""
    hint = modality_hint(request.response)
    if hint == "both":
        return 1.0, 1.0, ["annotated modality_needs=both"]
    if hint == "video":
        return 1.0, 0.2, ["annotated modality_needs=video"]
    if hint == "audio":
        return 0.2, 1.0, ["annotated modality_needs=audio"]
    text = " ".join([request.question, *request.options])
    refs = " ".join(r.caption for r in request.references)
    # Cues in the question weigh most; caption cues only show the evidence exists in that modality.
    v = _count_cues(text, VISUAL_CUES) + 0.5 * min(_count_cues(refs, VISUAL_CUES), 2)
    a = _count_cues(text, AUDIO_CUES) + 0.5 * min(_count_cues(refs, AUDIO_CUES), 2)
    video = min(1.0, 0.3 + 0.35 * v)
    audio = min(1.0, 0.3 + 0.35 * a)
    return video, audio, [f"visual cues {v:g}, audio cues {a:g}"]


def curation_scores(request: JudgeRequest) -> tuple[dict[str, float], list[str]]:
    letter = parse_choice(request.reference_answer, list(request.options)) if request.reference_answer.strip() else None
    logic, p1 = question_logic(request.question, request.options, letter)
    acc, p2 = answer_accuracy(request.reference_answer, request.options)
    video, audio, p3 = modality_dependency(request)
    scores = {"video_dependency": video, "audio_dependency": audio, "question_logic": logic, "answer_accuracy": acc}
    return {k: round(scores[k], 4) for k in CURATION_DIMENSIONS}, p1 + p2 + p3


def heuristic_judgement(request: JudgeRequest) -> JudgeResult:
    """Score one curation request (four dimensions) or pick one category label; never raises."""
    try:
        if request.task == "curation":
            scores, notes = curation_scores(request)
            raw = "\n".join([f"{k}: {v * 10:.1f}" for k, v in scores.items()] + [f"note: {n}" for n in notes])
            return JudgeResult(score=sum(scores.values()) / len(scores), scores=scores, raw=raw)
        if request.task == "category":
            names = list(request.options)
            if not names:
                return JudgeResult(score=None, error="category request has no options (the taxonomy names)")
            label = classify_by_keywords(" ".join([request.question, request.reference_answer]), names)
            return JudgeResult(score=1.0, label=label, raw=f"category: {label}")
        return JudgeResult(score=None, error=f"the heuristic scorer handles curation/category, not {request.task!r}")
    except Exception as exc:  # noqa: BLE001 - one bad request must not stop a batch (Judge contract)
        return JudgeResult(score=None, error=f"heuristic scorer failed: {type(exc).__name__}: {exc}")
