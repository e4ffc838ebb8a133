"""Supervision for perception pretraining, as pure functions of a synthetic clip's timeline.

Three kinds of targets, none of which ever involves a cross-modal ("both") question:
- time-grounded captions of one modality's events, `<time>1.0-2.0</time><caption>A red circle appears on the
  left.</caption>...`, with the content words (colour, shape, position, sound) and the times marked informative;
- single-modality multiple-choice questions (modality_needs "video" or "audio") in the compact grounded format the
  RL stages use (evidence segments, the answer text, the option letter);
- media-word labels: for each video / audio placeholder token, the content words of what is on screen in that
  token's patch and frames ("red", "circle", "left") or heard at that token's time ("low", "noise"; "no" for
  nothing).

Targets are lists of (text, weight) pieces so the loss can sit on the informative tokens: template text (tags,
"appears on the") is trivially learnable and would otherwise dominate the per-token loss while hiding whether the
model perceives anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from ..media.frames import resize_frame
from ..media.types import Clip
from ..schema import AVSample, time_span_text
from ..synth.questions import (QUERY_TYPES, TIME_WINDOW_TYPES, LetterDeck, candidate_queries, make_question,
                               time_window_queries)
from ..synth.scene import Timeline, WorldConfig, _shape_mask, overlap

Pieces = list[tuple[str, float]]
"""A target as (text, loss weight) pieces; their concatenation is the target text."""

NOTHING_WORD = "no"
"""Media-word label of a token with nothing in it (no shape in the patch, no sound at that time)."""
SOUND_WORD = {"low": "low", "mid": "mid", "high": "high", "noise": "noise"}
"""The word of a sound's caption that names it ("A low-pitched beep sounds.", "A burst of noise sounds.")."""
SINGLE_MODALITY_TYPES = {kind: needs for kind, (needs, _) in QUERY_TYPES.items() if needs in ("video", "audio")}
"""Query types that one modality alone answers; the "both" types are never trained on here."""
CAPTION_REQUEST = {
    "video": "Describe each shape that appears, with its time range.",
    "audio": "Describe each sound that is heard, with its time range.",
    "both": "Describe each shape that appears and each sound that is heard, with its time range.",
}
"""The user text of a caption task, per captioned sense ("both": both senses' events in one listing)."""


@dataclass
class Weights:
    """Per-token loss weights of the parts of a target."""

    content: float = 1.0
    """Content words of captions and the answer text / letter."""
    time: float = 0.5
    """The digits of `<time>s-e</time>` (grounding matters to the intent reward, but is easier than content)."""
    template: float = 0.1
    """Everything else (tags, "appears on the", "sounds."): kept small but non-zero so the format is learned."""


def span_text(event: Any) -> str:
    """An event's time span as its `<time>` tag writes it ("1.0-1.8"); the window scan copies these digits."""
    return time_span_text(event.start, event.end)


def caption_pieces(event: Any, w: Weights) -> Pieces:
    """One event's `<time>..</time><caption>..</caption>` with its content words marked (same text as the world's
    reference caption, which the intent reward compares against)."""
    text = event.caption
    words = [event.colour, event.shape, event.position] if hasattr(event, "colour") else [SOUND_WORD[event.sound]]
    pieces: Pieces = [("<time>", w.template), (span_text(event), w.time),
                      ("</time><caption>", w.template)]
    at = 0
    for word in words:
        found = text.find(word, at)
        if found < 0:
            continue
        pieces += [(text[at:found], w.template), (word, w.content)]
        at = found + len(word)
    pieces += [(text[at:], w.template), ("</caption>", w.template)]
    return [(t, wt) for t, wt in pieces if t]


def caption_target(timeline: Timeline, modality: str, w: Weights) -> Pieces:
    """Every event of one modality ("video" or "audio"), or of both ("av"), in the world's reference order."""
    events = timeline.events(visual=modality in ("video", "av"), audio=modality in ("audio", "av"))
    return [p for e in events for p in caption_pieces(e, w)]


QUESTION_EVIDENCE = ("all", "input", "query")
"""What a question target grounds before answering: every event of the sense the question needs ("all"), every
event of every sense the input carries ("input": with audio and video, both timelines merged in time order), or only
the question's own evidence segments ("query")."""
NAMED_LOOKUPS = {"colour_of_shape": "shape", "object_at_position": "position"}
"""Video query types keyed by one named shape or screen position, and the event field that holds the name."""
ANSWER_STYLES = ("text", "letter")
"""How a question target answers: with the option's text (which the shared parser reads as its letter) or with the
option letter."""


def scan_text(sample: AVSample, timeline: Timeline) -> str:
    """A named lookup written out as a scan of the shapes in listing order, up to the match (" triangle no, circle
    yes," for "What colour was the circle?"); "" for every other question.

    Why: a small thinker answers "the n-th shape" or "the shape at 1.0-1.5 s" from its listing but not "the
    circle" (35-49% on fresh drills at any size tried): finding the one event whose field matches a name needs a
    comparison with every event at once. Written out, each step compares one event, which it learns
    (docs/demo-results.md: 100 / 88% end to end on fresh drills)."""
    field_name = NAMED_LOOKUPS.get(sample.extra.get("query", {}).get("type", ""))
    if field_name is None:
        return ""
    wanted = sample.extra["query"][field_name]
    text, found = _walk(timeline.events(visual=True, audio=False), lambda e: getattr(e, field_name),
                        lambda e: getattr(e, field_name) == wanted)
    if found:
        return text
    raise ValueError(f"{sample.id}: no shape in its timeline has {field_name} {wanted!r}; a named question needs "
                     "exactly one (synth/questions.py: candidate_queries)")


def window_scan_text(sample: AVSample, timeline: Timeline) -> str:
    """A time-window question written out as a scan of the listed events of its sense, each one's time span and
    whether it overlaps the window, up to the first that does (" 0.0-1.0 no, 1.0-2.0 yes," for "What colour was
    the shape on screen at 1.0-1.5 s?"; every event with "no" when none does); "" for every other question.

    Why: a cross-modal question ("What colour was the shape on screen when the beep was heard?") starts with the
    words of the time-window question and must be answered the same way, by a time, then what was on screen then.
    With the named scan alone, a rebuilt base answered it with a shape word, a named scan's first word
    (docs/demo-results.md); this gives the shared wording a scan by time."""
    kind = sample.extra.get("query", {}).get("type", "")
    if kind not in TIME_WINDOW_TYPES:
        return ""
    start, end = float(sample.extra["query"]["start"]), float(sample.extra["query"]["end"])
    visual = TIME_WINDOW_TYPES[kind][0] == "video"
    text, _ = _walk(timeline.events(visual=visual, audio=not visual), span_text,
                    lambda e: overlap(start, end, e.start, e.end) > 0)
    return text


def _walk(events: Sequence[Any], label: Callable[[Any], str], is_hit: Callable[[Any], bool]) -> tuple[str, bool]:
    """The steps of a scan, " a no, b yes,": each event's label and whether it is the one sought, up to the first
    that is; and whether one was ("" and False for no events)."""
    parts = []
    for event in events:
        hit = is_hit(event)
        parts.append(f"{label(event)} {'yes' if hit else 'no'}")
        if hit:
            return " " + ", ".join(parts) + ",", True
    return (" " + ", ".join(parts) + "," if parts else ""), False


def question_target(sample: AVSample, timeline: Timeline, w: Weights, evidence: str = "all",
                    answer_style: str = "text", input_modality: str = "av", named_scan: bool = False,
                    window_scan: bool = False) -> Pieces:
    """The grounded answer: `<time>..</time><caption>..</caption>` segments, `<thinking> answer text</thinking>`,
    `<answer>..</answer>`.

    evidence "all" lists every event of the needed sense in time order, exactly as the caption task does, so that
    "the second sound" or "how many beeps" becomes a lookup in text the model has just written instead of counting
    over media tokens (measured on the demo model: audio-only questions 0.96 greedy vs 0.28 with "query").
    evidence "input" lists every event of every sense in `input_modality` ("av", "video" or "audio"): with both
    senses the reply holds both timelines side by side, which a cross-modal question needs (it is never trained on
    one here; the RL stages are).
    answer_style "text" answers with the option's own text, sparing a small model the option-to-letter lookup.
    named_scan writes a question about a named shape or position as a scan before its answer text (`scan_text`):
    `<thinking> triangle no, circle yes, green</thinking>`. window_scan does the same for a time-window question
    by the events' time spans (`window_scan_text`): `<thinking> 0.0-1.0 no, 1.0-2.0 yes, green</thinking>`.
    """
    if evidence not in QUESTION_EVIDENCE or answer_style not in ANSWER_STYLES:
        raise ValueError(f"question_target: evidence {evidence!r} must be one of {QUESTION_EVIDENCE} and "
                         f"answer_style {answer_style!r} one of {ANSWER_STYLES}")
    if evidence == "all":
        pieces = caption_target(timeline, sample.modality_needs, w)
    elif evidence == "input":
        pieces = caption_target(timeline, input_modality, w)
    else:
        spans = {(e["start"], e["end"]) for e in sample.extra.get("evidence", [])}
        events = sorted((e for e in timeline.visual + timeline.audio if (e.start, e.end) in spans),
                        key=lambda e: (e.start, e.end))
        pieces = [p for e in events for p in caption_pieces(e, w)]
    # " red circle", with its leading space, is tokenised exactly as the option line "B. red circle" and the
    # caption are; "<thinking>red" would start with a different token.
    answer = f" {sample.answer_text}" if answer_style == "text" else sample.answer
    reasoning = (scan_text(sample, timeline) if named_scan else "") + \
        (window_scan_text(sample, timeline) if window_scan else "") + f" {sample.answer_text}"
    return pieces + [("<thinking>", w.template), (reasoning, w.content),
                     ("</thinking><answer>", w.template), (answer, w.content), ("</answer>", w.template)]


def tokenize_pieces(tokenizer, pieces: Pieces) -> tuple[list[int], list[float]]:
    """Token ids of the joined text and each token's weight (the largest weight of the characters it covers), so
    a token that merges a tag with the answer letter (">B") carries the letter's weight."""
    text = "".join(t for t, _ in pieces)
    char_w = np.concatenate([np.full(len(t), wt, dtype=np.float32) for t, wt in pieces])
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    weights = [float(char_w[s:e].max()) if e > s else 0.0 for s, e in enc["offset_mapping"]]
    return list(enc["input_ids"]), weights


def word_ids(tokenizer, words: Sequence[str]) -> dict[str, int]:
    """The first token of " word" for each word: what the LM head is asked to predict at a media token."""
    return {word: tokenizer.encode(" " + word, add_special_tokens=False)[0] for word in words}


def media_words(world: WorldConfig) -> list[str]:
    """Every word a media token can be labelled with."""
    return [*world.colours, *world.shapes, *world.positions, *(SOUND_WORD[s] for s in world.sounds), NOTHING_WORD]


def video_token_labels(timeline: Timeline, world: WorldConfig, frame_times: Sequence[float],
                       grid_thw: Sequence[int], merge: int = 2, temporal_patch: int = 2,
                       min_cover: float = 0.05) -> list[list[str]]:
    """Words for each merged video token, in the order the model fills them (time, row, column).

    A token covers `temporal_patch` consecutive sampled frames and a (merge x merge)-patch region of the frame;
    it is labelled with the colour, shape and screen position of the event covering >= `min_cover` of that region
    in most of its frames, else [NOTHING_WORD]. The region is taken in fractions of the frame, so any resize keeps
    it right. The position word is what makes a token's hidden state say where it is: without it the base wrote
    "on the left" for 912 of 912 listed shapes on a held-out world (docs/demo-results.md).
    """
    t_grid, h_patches, w_patches = (int(v) for v in grid_thw)
    rows, cols = h_patches // merge, w_patches // merge
    masks = {id(e): _shape_mask(e.shape, e.position, world) for e in timeline.visual}
    times = list(frame_times) + [frame_times[-1]] * (t_grid * temporal_patch - len(frame_times))
    labels: list[list[str]] = []
    for t in range(t_grid):
        frame_t = times[t * temporal_patch:(t + 1) * temporal_patch]
        for r in range(rows):
            y0, y1 = round(r * world.height / rows), round((r + 1) * world.height / rows)
            for c in range(cols):
                x0, x1 = round(c * world.width / cols), round((c + 1) * world.width / cols)
                best, best_frames = None, 0
                for e in timeline.visual:
                    if masks[id(e)][y0:y1, x0:x1].mean() < min_cover:
                        continue
                    on = sum(e.start - 1e-9 <= ft < e.end - 1e-9 for ft in frame_t)
                    if on > best_frames:
                        best, best_frames = e, on
                labels.append([best.colour, best.shape, best.position] if best is not None else [NOTHING_WORD])
    return labels


def audio_token_labels(timeline: Timeline, n_tokens: int, duration: float, edge_s: float = 0.04) -> list[list[str]]:
    """Words for each audio token, taking token k to sit at time (k + 0.5) * duration / n_tokens; tokens within
    `edge_s` of an event edge get no label (their window straddles the edge)."""
    labels: list[list[str]] = []
    for k in range(n_tokens):
        t = (k + 0.5) * duration / max(1, n_tokens)
        words: list[str] = [NOTHING_WORD]
        for a in timeline.audio:
            if a.start - edge_s <= t < a.end + edge_s:
                inside = a.start + edge_s <= t < a.end - edge_s
                words = [SOUND_WORD[a.sound]] if inside else []
                break
        labels.append(words)
    return labels


def single_modality_question(timeline: Timeline, world: WorldConfig, rng: np.random.Generator, deck: LetterDeck,
                             needs: str, sample_id: str, video: str = "", time_window: bool = False
                             ) -> AVSample | None:
    """A random valid question of modality `needs` ("video" or "audio") about the clip, or None if it has none;
    with `time_window`, one that names a time window (synth/questions.py: TIME_WINDOW_TYPES) instead.

    The query type is drawn first (uniformly among the types the clip supports) so rare types are not drowned."""
    by_type: dict[str, list[dict[str, Any]]] = {}
    if time_window:
        queries = [q for q in time_window_queries(timeline, world, rng) if TIME_WINDOW_TYPES[q["type"]][0] == needs]
    else:
        queries = [q for q in candidate_queries(timeline, world) if SINGLE_MODALITY_TYPES.get(q["type"]) == needs]
    for q in queries:
        by_type.setdefault(q["type"], []).append(q)
    while by_type:
        kind = sorted(by_type)[int(rng.integers(len(by_type)))]
        pool = by_type[kind]
        query = pool.pop(int(rng.integers(len(pool))))
        if not pool:
            del by_type[kind]
        sample = make_question(query, timeline, world, rng, deck, sample_id, video)
        if sample is not None:
            return sample
    return None


def clip_from_frames(frames_THWC: np.ndarray, audio: np.ndarray, world: WorldConfig, fps: float, max_frames: int,
                     max_pixels: int | None, path: str = "<synthetic>") -> Clip:
    """A decoded-clip record straight from rendered arrays, sampled like the decoder samples a file: the frame on
    screen at each of `fps` per second (at most `max_frames`), resized to `max_pixels`."""
    n = min(max_frames, int(np.floor(world.duration_s * fps + 1e-9)))
    times = np.arange(n) / fps
    idx = np.minimum(np.floor(times * world.fps + 1e-6).astype(int), len(frames_THWC) - 1)
    frames = np.stack([resize_frame(frames_THWC[i], max_pixels) for i in idx])
    return Clip(path, frames, times.astype(np.float64), float(fps), audio, 0.0, world.duration_s,
                source_fps=world.fps, source_size=(world.height, world.width))
