"""Parse the grounded response format of the OmniVideo-R1 prompt (see `prompts.SYSTEM_PROMPT`):

    <time>1.0-2.5</time><caption>...</caption> <time>5.2-6.8</time><caption>...</caption>
    <thinking>...</thinking><answer>...</answer>

The parser never raises on policy output: everything wrong with a reply is listed in `problems` as a stable code
(the format reward reports the rate of each). Segments are kept when their own pair is well formed even if other
parts of the reply are not, so the intent reward can still judge them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..schema import TimeCaption

# Problem codes (stable: they are metric names).
NO_SEGMENTS = "no_segments"
UNPAIRED = "unpaired_tags"
NESTED = "nested_tags"
BAD_TIME = "bad_time"
START_NOT_BEFORE_END = "start_not_before_end"
OVERLAP = "overlap"
THINKING_COUNT = "thinking_count"
ANSWER_COUNT = "answer_count"
ORDER = "order"
JUNK = "junk_outside_tags"
BEYOND_DURATION = "beyond_duration"
"""Not found by the parser (it needs the clip length): added by the format reward."""

PROBLEMS = (NO_SEGMENTS, UNPAIRED, NESTED, BAD_TIME, START_NOT_BEFORE_END, BEYOND_DURATION, OVERLAP,
            THINKING_COUNT, ANSWER_COUNT, ORDER, JUNK)
SEGMENT_PROBLEMS = frozenset({NO_SEGMENTS, UNPAIRED, NESTED, BAD_TIME, START_NOT_BEFORE_END, BEYOND_DURATION, OVERLAP})
THINK_ANSWER_PROBLEMS = frozenset({THINKING_COUNT, ANSWER_COUNT, ORDER})

_TAGS = ("time", "caption", "thinking", "answer")
_ELEMENT = re.compile(r"<(time|caption|thinking|answer)>(.*?)</\1>", re.DOTALL)
_ANY_TAG = re.compile(r"</?(?:time|caption|thinking|answer)>")
# Same number syntax as the released format reward: "6.2-9.3", spaces allowed around the dash.
_TIME = re.compile(r"\s*(\d+(?:\.\d*)?)\s*-\s*(\d+(?:\.\d*)?)\s*")


@dataclass
class GroundedResponse:
    segments: list[TimeCaption] = field(default_factory=list)
    """Well-formed (start < end) <time>/<caption> pairs, in the order written."""
    thinking: str | None = None
    """Content of the first <thinking> block, stripped; None if absent."""
    answer: str | None = None
    """Content of the last <answer> block, stripped; None if absent."""
    problems: list[str] = field(default_factory=list)
    """Sorted, de-duplicated problem codes (see PROBLEMS); empty for a well-formed reply."""
    n_pairs: int = 0
    """Number of <time>/<caption> pairs written, including ones whose times do not parse."""

    @property
    def ok(self) -> bool:
        return not self.problems


def parse_time_range(text: str) -> tuple[float, float] | None:
    """ "1.0-2.5" -> (1.0, 2.5); None when it is not two non-negative numbers joined by a dash. The inverse of
    `schema.time_span_text`, which writes the spans of every target, drill and question."""
    m = _TIME.fullmatch(text)
    return (float(m.group(1)), float(m.group(2))) if m else None


def parse_grounded_response(text: str) -> GroundedResponse:
    """Split a reply into segments, thinking and answer, and list every format problem."""
    out = GroundedResponse()
    problems: set[str] = set()
    text = text or ""
    for tag in _TAGS:
        if text.count(f"<{tag}>") != text.count(f"</{tag}>"):
            problems.add(UNPAIRED)

    elements: list[tuple[str, str]] = []
    pos = 0
    for m in _ELEMENT.finditer(text):
        gap = text[pos:m.start()]
        if _ANY_TAG.search(gap):
            problems.add(UNPAIRED)
        elif gap.strip():
            problems.add(JUNK)
        if _ANY_TAG.search(m.group(2)):
            problems.add(NESTED)
        elements.append((m.group(1), m.group(2)))
        pos = m.end()
    tail = text[pos:]
    if _ANY_TAG.search(tail):
        problems.add(UNPAIRED)
    elif tail.strip():
        problems.add(JUNK)

    # Segment phase: strictly alternating time, caption pairs; then thinking, then answer.
    i = 0
    while i < len(elements) and elements[i][0] in ("time", "caption"):
        tag, content = elements[i]
        if tag == "time" and i + 1 < len(elements) and elements[i + 1][0] == "caption":
            out.n_pairs += 1
            span = parse_time_range(content)
            if span is None:
                problems.add(BAD_TIME)
            elif span[0] >= span[1]:
                problems.add(START_NOT_BEFORE_END)
            else:
                out.segments.append(TimeCaption(span[0], span[1], elements[i + 1][1].strip()))
            i += 2
        else:
            problems.add(UNPAIRED)
            i += 1
    rest = [tag for tag, _ in elements[i:]]
    if any(tag in ("time", "caption") for tag in rest):
        problems.add(ORDER)
    thinking = [content for tag, content in elements if tag == "thinking"]
    answers = [content for tag, content in elements if tag == "answer"]
    if len(thinking) != 1:
        problems.add(THINKING_COUNT)
    if len(answers) != 1:
        problems.add(ANSWER_COUNT)
    if "thinking" in rest and "answer" in rest and rest.index("answer") < rest.index("thinking"):
        problems.add(ORDER)
    if out.n_pairs == 0:
        problems.add(NO_SEGMENTS)
    ordered = sorted(out.segments, key=lambda s: (s.start, s.end))
    if any(b.start < a.end for a, b in zip(ordered, ordered[1:])):
        problems.add(OVERLAP)

    out.thinking = thinking[0].strip() if thinking else None
    out.answer = answers[-1].strip() if answers else None
    out.problems = sorted(problems)
    return out
