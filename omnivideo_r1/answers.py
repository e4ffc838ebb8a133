"""THE one multiple-choice answer parser, shared by the rewards, curation and evaluation.

Benchmark harnesses disagree on how to read a letter out of free text, and several popular parsers are wrong in
ways that change reported accuracy by points (see docs of lmms-eval / Video-MME / WorldSense):
  * "any capital letter anywhere counts" (`if choice in response`) reads the "A" of "A man ..." as option A;
  * "first [ABCD] in the text" reads the "B" of "Based on the video ...";
  * an unparseable reply silently becomes "A" (or a random letter) instead of being counted as a failure.
This parser avoids all three. It tries evidence tiers from the most to the least explicit and stops at the first
tier that finds anything; a tier that finds two different letters is ambiguous and returns None (unless the
question is multi-label), so a failed parse is always visible as None and can be counted.

Tiers, in order:
  0. yes/no questions (options ["yes", "no"]): the reply's first word.
  1. the whole reply is a letter: "B", "(B)", "B.", "[b]" (lower case only inside brackets).
  2. the reply starts with a labelled option: "B. text", "B) text", "B: text", "(b) text".
  3. an answer phrase: "Answer: B", "the answer is (B)"; the last one wins (the model's final conclusion).
  4. an option phrase: "Option B", "choice c".
  5. a bracketed letter anywhere: "... so (C)".
  6. a standalone capital letter ("I think B is right"), skipping the article "A" at a sentence start and the
     pronoun "I" when a lower-case word follows.
  7. the text of an option (case and punctuation insensitive): exact match, or the only option contained in it.
Letters outside the options' range are never accepted.

The same module holds the one grammar of option labels ("A. x", "(B) y", and list-wide "A x"): `option_label` and
`strip_option_labels`, used by the benchmark loaders and the curation sources.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .schema import LETTERS

if TYPE_CHECKING:
    from .schema import AVSample

_ANSWER_BLOCK = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)
_THINK_BLOCK = re.compile(r"<(think|thinking)>.*?</\1>", re.DOTALL | re.IGNORECASE)
_MARKDOWN = re.compile(r"\*\*|__|\*|`")
_WHOLE_LETTER = re.compile(r"\(\s*([A-Za-z])\s*\)[.:]?|\[\s*([A-Za-z])\s*\][.:]?|([A-Z])[.:)]?")
_LETTER_LIST = re.compile(r"[A-Z](?:\s*(?:,|;|/|&|\band\b)?\s*[A-Z])*\.?")
_LEADING_LABEL = re.compile(r"(?:\(\s*([A-Za-z])\s*\)|\[\s*([A-Za-z])\s*\]|([A-Z])[.:)])(?=\s|$)")
# "answer"/"answers" + optional verb + optional colon, then a letter that is not the start of a word.
_ANSWER_PHRASE = re.compile(
    r"\banswers?\b(?:\s+(?:is|are|would be|should be|will be|=))?\s*[:：\-]?\s*"
    r"(?:\(\s*([A-Za-z])\s*\)|\[\s*([A-Za-z])\s*\]|([A-Za-z]))(?![A-Za-z0-9'’])",
    re.IGNORECASE,
)
_OPTION_PHRASE = re.compile(
    r"\b(?:option|choice)\s*[:\-]?\s*(?:\(\s*([A-Za-z])\s*\)|\[\s*([A-Za-z])\s*\]|([A-Za-z]))(?![A-Za-z0-9'’])",
    re.IGNORECASE,
)
_BRACKETED = re.compile(r"\(\s*([A-Za-z])\s*\)|\[\s*([A-Za-z])\s*\]")
_STANDALONE = re.compile(r"(?<![A-Za-z0-9'’])([A-Z])(?![A-Za-z0-9'’])")
_LIST_TAIL = re.compile(r"\s*(?:,|;|/|&|\band\b)\s*\(?([A-Z])\)?(?![A-Za-z0-9])")
_YES_NO = ("yes", "no")
_NOT_AFTER_ARTICLE = frozenset(
    "and or nor but is was are were seems looks might could would should may must can also then".split()
)


@dataclass
class ChoiceParse:
    """One parse with its provenance, for audits and parse-failure metrics."""

    letter: str | None
    """The chosen letter(s) ("B", or sorted "AC" for multi-label), or None."""
    method: str
    """Which tier decided: yes_no, whole, label, answer_phrase, option_phrase, bracket, standalone, option_text, none."""
    reason: str | None = None
    """Why it is None: empty, ambiguous, out_of_range, no_match."""


def extract_answer_block(text: str | None) -> str | None:
    """Content of the last <answer>...</answer> (stripped), or None when there is none."""
    if not text:
        return None
    blocks = _ANSWER_BLOCK.findall(text)
    return blocks[-1].strip() if blocks else None


def normalize_text(text: str) -> str:
    """Lower case, punctuation to spaces, single spaces: the form option texts are compared in."""
    return " ".join(re.sub(r"[^0-9a-z]+", " ", text.lower()).split())


def _first(match: re.Match) -> str:
    return next(g for g in match.groups() if g)


def _in_range(letters: list[str], n_options: int) -> bool:
    valid = LETTERS[:n_options]
    return all(ch.upper() in valid for ch in letters)


def _decide(letters: list[str], n_options: int, multi: bool, method: str, last_wins: bool = False) -> ChoiceParse:
    """Turn one tier's candidate letters into a result: range check, then ambiguity check."""
    letters = [ch.upper() for ch in letters]
    if not _in_range(letters, n_options):
        return ChoiceParse(None, method, "out_of_range")
    if multi:
        return ChoiceParse("".join(sorted(set(letters))), method)
    if last_wins:
        return ChoiceParse(letters[-1], method)
    distinct = set(letters)
    if len(distinct) > 1:
        return ChoiceParse(None, method, "ambiguous")
    return ChoiceParse(letters[0], method)


def _with_list_tail(body: str, match: re.Match, first: str) -> list[str]:
    """For multi-label phrases ("answers are A and C"), the letters listed after the first one."""
    letters = [first]
    pos = match.end()
    while tail := _LIST_TAIL.match(body, pos):
        letters.append(tail.group(1))
        pos = tail.end()
    return letters


def _standalone_letters(body: str) -> list[str]:
    out = []
    for m in _STANDALONE.finditer(body):
        ch = m.group(1)
        next_word = re.match(r"\s+([a-z]+)", body[m.end():])
        # "A and B", "A is wrong": words an article never precedes, so the letter is meant.
        followed_by_word = next_word is not None and next_word.group(1) not in _NOT_AFTER_ARTICLE
        before = body[: m.start()].rstrip()
        sentence_start = before == "" or before[-1] in ".!?:\n"
        # The article "A" opening a sentence ("A man walks in") and the pronoun "I" are words, not answers.
        if ch == "A" and sentence_start and followed_by_word:
            continue
        if ch == "I" and followed_by_word:
            continue
        out.append(ch)
    return out


def _option_text(body: str, options: list[str], multi: bool) -> ChoiceParse:
    norm_body = normalize_text(body)
    norm_opts = [normalize_text(o) for o in options]
    if not norm_body:
        return ChoiceParse(None, "none", "empty")
    exact = [i for i, o in enumerate(norm_opts) if o and o == norm_body]
    if exact:
        return _decide([LETTERS[i] for i in exact], len(options), multi, "option_text")
    # Longest options first, masking each match, so "dark red" is not also read as "red".
    masked = f" {norm_body} "
    found = []
    for i in sorted(range(len(options)), key=lambda k: -len(norm_opts[k])):
        if norm_opts[i] and f" {norm_opts[i]} " in masked:
            found.append(i)
            masked = masked.replace(f" {norm_opts[i]} ", " | ")
    if not found:
        return ChoiceParse(None, "none", "no_match")
    return _decide([LETTERS[i] for i in sorted(found)], len(options), multi, "option_text")


def parse_choice_detailed(text: str | None, options: list[str], multi: bool = False) -> ChoiceParse:
    """`parse_choice` with the deciding tier and the failure reason."""
    if not options:
        raise ValueError("parse_choice needs the question's options (got an empty list)")
    if text is None:
        return ChoiceParse(None, "none", "empty")
    block = extract_answer_block(text)
    body = block if block is not None else _THINK_BLOCK.sub(" ", text)
    body = _MARKDOWN.sub("", body).strip()
    if not body:
        return ChoiceParse(None, "none", "empty")
    n = len(options)

    if sorted(normalize_text(o) for o in options) == sorted(_YES_NO):
        first_word = normalize_text(body).split(" ", 1)[0]
        if first_word in _YES_NO:
            idx = [normalize_text(o) for o in options].index(first_word)
            return ChoiceParse(LETTERS[idx], "yes_no")

    stripped = body.rstrip(".!").strip()
    if m := _WHOLE_LETTER.fullmatch(stripped):
        return _decide([_first(m)], n, multi, "whole")
    if multi and _LETTER_LIST.fullmatch(stripped):
        return _decide(re.findall(r"[A-Z]", stripped), n, multi, "whole")
    if m := _LEADING_LABEL.match(body):
        # "(A) or (C)" names two options; a label is only trusted when no other bracketed letter follows it.
        others = [ch for o in _BRACKETED.finditer(body, m.end()) if _in_range([ch := _first(o)], n)]
        return _decide([_first(m), *others], n, multi, "label")

    for pattern, method in ((_ANSWER_PHRASE, "answer_phrase"), (_OPTION_PHRASE, "option_phrase")):
        picks: list[list[str]] = []
        for m in pattern.finditer(body):
            letter = _first(m)
            bracketed = m.group(3) is None
            rest = body[m.end():]
            # "the answer is a red circle": a bare lower-case letter followed by a word is an article, not an answer.
            if letter.islower() and not bracketed and method == "answer_phrase" and re.match(r"\s+[A-Za-z]", rest):
                continue
            picks.append(_with_list_tail(body, m, letter) if multi else [letter])
        if picks:
            if multi:
                return _decide(picks[-1], n, multi, method)
            return _decide([p[0] for p in picks], n, multi, method, last_wins=(method == "answer_phrase"))

    if bracketed := [_first(m) for m in _BRACKETED.finditer(body)]:
        in_range = [ch for ch in bracketed if _in_range([ch], n)]
        if in_range:
            return _decide(in_range, n, multi, "bracket")
    standalone = [ch for ch in _standalone_letters(body) if _in_range([ch], n)]
    if standalone:
        return _decide(standalone, n, multi, "standalone")
    return _option_text(body, options, multi)


def parse_choice(text: str | None, options: list[str], multi: bool = False) -> str | None:
    """The chosen option letter ("B"; sorted letters "AC" when `multi`), or None when unparseable or ambiguous.

    If `text` holds an <answer>...</answer> block, only the last block is read; otherwise <think>/<thinking>
    blocks are ignored. There is no fallback letter: None must be counted as a failure by the caller.
    """
    return parse_choice_detailed(text, options, multi).letter


# An option's own letter label: "A. x", "A.x", "A) x", "A: x", "A：x", "(A) x", "[A] x". The delimiter is what
# tells a label from a word ("A man runs"); the bare "A x" form is only trusted list-wide (see strip_option_labels).
_OPTION_LABEL = re.compile(r"^\s*(?:\(\s*([A-Z])\s*\)|\[\s*([A-Z])\s*\]|([A-Z])\s*[.):：])\s*(.*)$", re.S)
_BARE_LABEL = re.compile(r"^\s*([A-Z])\s+(\S.*)$", re.S)


def option_label(text: str, bare: bool = False) -> tuple[str, str] | None:
    """(letter, rest) when `text` starts with a delimited option label ("B. x", "(B) x"); with `bare`, also
    "B x" (letter, space, text). None when there is no label."""
    if m := _OPTION_LABEL.match(text):
        return _first(m), m.group(4).strip()
    if bare and (m := _BARE_LABEL.match(text)):
        return m.group(1), m.group(2).strip()
    return None


@dataclass
class OptionLabels:
    """Option texts with their letter labels removed, and what the labels said."""

    texts: list[str]
    """Option i's text without its label; its letter is LETTERS[i] (position decides, as benchmark scorers do)."""
    status: str
    """labelled (every label matches its position), relabelled (every option has a delimited label but not in
    letter order, e.g. A, B, A, B), partial (only some options carry their position's label) or unlabelled."""


def strip_option_labels(options: list[str]) -> OptionLabels:
    """Remove letter labels from a list of option strings; the option's position is its letter.

    A bare label ("A The girl ...") is stripped only when every option of the list carries its own position's
    letter (delimited or bare), so a list whose first option merely starts with a capital ("A man runs",
    "Birds sing") is left alone.
    """
    n = len(options)
    positional = [option_label(o, bare=True) for o in options]
    if all(lab is not None and lab[0] == LETTERS[i] for i, lab in enumerate(positional)):
        return OptionLabels([lab[1] for lab in positional], "labelled")
    delimited = [option_label(o) for o in options]
    if n and all(lab is not None for lab in delimited):
        return OptionLabels([lab[1] for lab in delimited], "relabelled")
    texts = [lab[1] if lab is not None and lab[0] == LETTERS[i] else o.strip()
             for i, (o, lab) in enumerate(zip(options, delimited))]
    return OptionLabels(texts, "partial" if any(lab is not None for lab in delimited) else "unlabelled")


def normalize_answer_letters(raw: str, n_options: int | None = None) -> str:
    """A reference answer from a dataset ("<answer>B</answer>", "B. text", "(B)", "B,E", "b") -> "B" / "BE".

    Raises ValueError naming the value when it holds no answer letter (or one outside `n_options`).
    """
    text = extract_answer_block(raw)
    text = (text if text is not None else str(raw)).strip()
    letters: list[str] = []
    if m := re.fullmatch(r"[\(\[]?\s*([A-Za-z])\s*[\)\]]?[.:)]?", text):
        letters = [m.group(1).upper()]
    elif re.fullmatch(r"[A-Za-z](?:\s*[,;/&]\s*[A-Za-z])+", text) or re.fullmatch(r"[A-Z]{2,}", text):
        letters = sorted(set(re.findall(r"[A-Za-z]", text.upper())))
    elif m := re.match(r"[\(\[]?([A-Z])[\)\]]?[.:)]\s", text):
        letters = [m.group(1)]
    if not letters:
        raise ValueError(f"answer {raw!r} holds no option letter; expected forms like 'B', 'B. text', 'B,E'")
    if n_options is not None and not _in_range(letters, n_options):
        raise ValueError(f"answer {raw!r} is outside the {n_options} options {list(LETTERS[:n_options])}")
    return "".join(letters)


def reference_answer_text(sample: "AVSample") -> str:
    """The correct answer as judges see it: "B. a green circle" (multi-label: "A. x; C. y")."""
    return "; ".join(f"{ch}. {sample.options[LETTERS.index(ch)]}" for ch in sample.answer)


def is_correct(completion: str | None, sample: "AVSample", require_answer_block: bool = False) -> bool:
    """Whether the completion's answer (its <answer> block when present) is the sample's answer.

    `require_answer_block`: only an <answer> block counts (the rewards' rule, so the answer reward and the modality
    reward never disagree on what was answered); evaluation leaves it off to read bare replies too.
    """
    if require_answer_block:
        completion = extract_answer_block(completion or "")
        if completion is None:
            return False
    parsed = parse_choice(completion, sample.options, multi=is_multi_label(sample))
    return parsed is not None and sorted(parsed) == sorted(sample.answer)


def is_multi_label(sample: "AVSample") -> bool:
    """Whether the question takes a set of letters (IntentBench emer_ov_mc, or any answer of several letters); such
    answers are read with parse_choice(multi=True) and scored as an exact set. The one rule for rewards and eval."""
    return bool(sample.extra.get("multi_label")) or len(sample.answer) > 1
