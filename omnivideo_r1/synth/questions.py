"""Questions about a synthetic clip, and the solvers that prove which senses each question needs.

Every question is a *query* (a small JSON dict kept in `extra["query"]`) evaluated on the clip's event timeline
(`extra["timeline"]`). `consistent_answers(query, timeline, knowledge)` returns the option texts that stay possible
for an observer who perceives only the video, only the audio, or both. A question is kept only when:
  - "video"/"audio" questions: that modality alone leaves exactly the right answer;
  - "both" questions: the two together leave exactly the right answer, and each modality alone leaves >= 2 options
    (so neither a silent-video nor an audio-only model can be sure; audio never carries colour or shape).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from ..schema import LETTERS, AVSample, time_span_text
from .scene import POSITION_PHRASE, SOUND_NAME, Timeline, WorldConfig, overlap

Knowledge = Literal["video", "audio", "both"]
N_OPTIONS = 4
NO_SHAPE = "no shape was on screen"
ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth")

# query type -> (modality_needs, category)
QUERY_TYPES: dict[str, tuple[str, str]] = {
    "colour_of_shape": ("video", "visual_attribute"),
    "colour_of_nth": ("video", "visual_attribute"),
    "object_at_position": ("video", "visual_position"),
    "count_beeps": ("audio", "audio_count"),
    "nth_sound": ("audio", "audio_pitch"),
    "colour_during_sound": ("both", "av_binding_colour"),
    "shape_during_sound": ("both", "av_binding_shape"),
    "sound_during_object": ("both", "av_binding_sound"),
}
CATEGORIES = tuple(sorted({cat for _, cat in QUERY_TYPES.values()}))
TIME_WINDOW_TYPES: dict[str, tuple[str, str]] = {
    "colour_at_time": ("video", "visual_time"),
    "shape_at_time": ("video", "visual_time"),
    "sound_at_time": ("audio", "audio_time"),
}
"""Single-modality questions that name a time window ("What colour was the shape on screen at 1.0-1.5 s?"): the
one-sense half of each cross-modal question, used only to train perception (synthetic worlds never ask them)."""
ALL_QUERY_TYPES = QUERY_TYPES | TIME_WINDOW_TYPES


def sound_text(sound: str) -> str:
    return f"a {SOUND_NAME[sound]}"


def object_text(colour: str, shape: str) -> str:
    return f"{colour} {shape}"


def _covered(tl: Timeline, start: float, end: float) -> float:
    return sum(overlap(start, end, v.start, v.end) for v in tl.visual)


def consistent_answers(query: dict[str, Any], tl: Timeline, knowledge: Knowledge) -> set[str] | None:
    """Option texts an observer with `knowledge` cannot rule out; None when that sense reveals nothing about it."""
    kind = query["type"]
    if kind in TIME_WINDOW_TYPES:
        return _time_window_truth(query, tl, knowledge)
    if kind not in QUERY_TYPES:
        raise ValueError(f"unknown synthetic query type {kind!r}; known: {sorted(ALL_QUERY_TYPES)}")
    needs = QUERY_TYPES[kind][0]
    if needs == "video":
        # The audio says nothing about shapes, colours or positions.
        return None if knowledge == "audio" else _visual_truth(query, tl)
    if needs == "audio":
        # The picture says nothing about what was heard.
        return None if knowledge == "video" else _audio_truth(query, tl)
    if kind == "colour_during_sound":
        if knowledge == "audio":
            return None
        if knowledge == "video":  # the sound could have been during any shape
            return {v.colour for v in tl.visual}
        wins = [a for a in tl.audio if a.sound == query["sound"]]
        return set().union(*(_seen_during(tl, a.start, a.end, "colour") for a in wins))
    if kind == "shape_during_sound":
        if knowledge == "audio":
            return None
        if knowledge == "video":  # any shape, or "none" if some gap is long enough to hold a sound
            out = {v.shape for v in tl.visual}
            if any(e - s >= tl.audio_event_min_s - 1e-9 for s, e in tl.gaps()):
                out.add(NO_SHAPE)
            return out
        wins = [a for a in tl.audio if a.sound == query["sound"]]
        return set().union(*(_seen_during(tl, a.start, a.end, "shape") for a in wins))
    # sound_during_object
    if knowledge == "video":
        return None
    if knowledge == "audio":  # the object could have been on screen during any of the sounds
        return {sound_text(a.sound) for a in tl.audio}
    targets = [v for v in tl.visual if v.colour == query["colour"] and v.shape == query["shape"]]
    return set().union(*(_heard_during(tl, v.start, v.end) for v in targets))


def _seen_during(tl: Timeline, start: float, end: float, attribute: str) -> set[str]:
    """The colours or shapes (`attribute`) on screen at some moment of [start, end]; for shapes also NO_SHAPE when
    part of the span had none on screen."""
    out = {getattr(v, attribute) for v in tl.visual if overlap(start, end, v.start, v.end) > 0}
    if attribute == "shape" and _covered(tl, start, end) < (end - start) - 1e-9:
        out.add(NO_SHAPE)
    return out


def _heard_during(tl: Timeline, start: float, end: float) -> set[str]:
    """The sounds heard at some moment of [start, end]."""
    return {sound_text(a.sound) for a in tl.audio if overlap(start, end, a.start, a.end) > 0}


def _visual_truth(query: dict[str, Any], tl: Timeline) -> set[str]:
    kind, vis = query["type"], sorted(tl.visual, key=lambda v: v.start)
    if kind == "colour_of_shape":
        return {v.colour for v in vis if v.shape == query["shape"]}
    if kind == "colour_of_nth":
        k = int(query["index"])
        return {vis[k].colour} if k < len(vis) else set()
    return {object_text(v.colour, v.shape) for v in vis if v.position == query["position"]}


def _time_window_truth(query: dict[str, Any], tl: Timeline, knowledge: Knowledge) -> set[str] | None:
    """What was on screen / heard during [start, end], read by the same functions the cross-modal questions read
    a sound's or a shape's time span with."""
    kind, start, end = query["type"], float(query["start"]), float(query["end"])
    if knowledge != "both" and knowledge != TIME_WINDOW_TYPES[kind][0]:
        return None
    if kind == "sound_at_time":
        return _heard_during(tl, start, end)
    return _seen_during(tl, start, end, "colour" if kind == "colour_at_time" else "shape")


def time_window_queries(tl: Timeline, cfg: WorldConfig, rng: np.random.Generator, per_type: int = 2
                        ) -> list[dict[str, Any]]:
    """Random time-window queries on the world's time grid: windows as long as a sound for the questions about the
    picture (what a cross-modal question asks about the moment of a sound), as long as a shape for the one about
    sounds. Unanswerable ones are dropped by make_question."""
    g, out = cfg.time_grid_s, []
    n_cells = max(1, round(tl.duration / g))
    for kind, (needs, _) in TIME_WINDOW_TYPES.items():
        lo, hi = cfg.audio_event_s if needs == "video" else cfg.visual_event_s
        for _ in range(per_type):
            cells = min(n_cells, int(rng.integers(max(1, round(lo / g)), max(1, round(hi / g)) + 1)))
            first = int(rng.integers(0, n_cells - cells + 1))  # the window ends inside the clip
            out.append({"type": kind, "start": round(first * g, 6), "end": round((first + cells) * g, 6)})
    return out


def _audio_truth(query: dict[str, Any], tl: Timeline) -> set[str]:
    aud = sorted(tl.audio, key=lambda a: a.start)
    if query["type"] == "count_beeps":
        return {str(sum(a.sound != "noise" for a in aud))}
    k = int(query["index"])
    return {sound_text(aud[k].sound)} if k < len(aud) else set()


def _letters(sample: AVSample, texts: set[str] | None) -> set[str]:
    return {LETTERS[i] for i, opt in enumerate(sample.options) if texts is None or opt in texts}


def is_world_question(sample: AVSample) -> bool:
    """Whether `sample` was written by `omnivideo-r1 synth`: its extra carries the timeline and the query that the
    solvers read."""
    extra = sample.extra or {}
    return "timeline" in extra and "query" in extra


def _timeline_and_query(sample: AVSample) -> tuple[Timeline, dict[str, Any]]:
    if not is_world_question(sample):
        raise ValueError(f"sample {sample.id}: extra has no 'timeline'/'query'; the synthetic-world solvers only "
                         "work on records written by `omnivideo-r1 synth`")
    return Timeline.from_dict(sample.extra["timeline"]), sample.extra["query"]


def candidate_answers(sample: AVSample, knowledge: Knowledge, timeline: Timeline | None = None) -> set[str]:
    """Option letters consistent with what `knowledge` ("video", "audio" or "both") reveals about the clip, or,
    given `timeline`, about that timeline instead of the clip's own (e.g. the events a reply lists)."""
    if knowledge not in ("video", "audio", "both"):
        raise ValueError(f"knowledge {knowledge!r} must be 'video', 'audio' or 'both'")
    tl, query = _timeline_and_query(sample)
    return _letters(sample, consistent_answers(query, timeline or tl, knowledge))


def answerability_problems(sample: AVSample) -> list[str]:
    """Why the sample's `modality_needs` is not honest (empty list: it is)."""
    needs, answer = sample.modality_needs, {sample.answer}
    got = {k: candidate_answers(sample, k) for k in ("video", "audio", "both")}  # type: ignore[misc]
    problems = []
    if got["both"] != answer:
        problems.append(f"{sample.id}: with video and audio the consistent options are {sorted(got['both'])}, "
                        f"not exactly the answer {sample.answer}")
    if needs in ("video", "audio") and got[needs] != answer:
        problems.append(f"{sample.id}: a {needs}-only solver leaves {sorted(got[needs])}, not exactly {sample.answer}")
    if needs == "both":
        for k in ("video", "audio"):
            if len(got[k]) < 2:
                problems.append(f"{sample.id}: a {k}-only solver leaves only {sorted(got[k])}; a 'both' question "
                                "must be unanswerable from one modality")
    if needs not in ("video", "audio", "both"):
        problems.append(f"{sample.id}: modality_needs {needs!r} is not video/audio/both")
    return problems


def candidate_queries(tl: Timeline, cfg: WorldConfig) -> list[dict[str, Any]]:
    """Every query the clip could support, before the answerability check."""
    vis, aud = sorted(tl.visual, key=lambda v: v.start), sorted(tl.audio, key=lambda a: a.start)
    out: list[dict[str, Any]] = []
    for shape in cfg.shapes:
        if sum(v.shape == shape for v in vis) == 1:
            out.append({"type": "colour_of_shape", "shape": shape})
    out += [{"type": "colour_of_nth", "index": k} for k in range(min(len(vis), len(ORDINALS)))]
    for pos in cfg.positions:
        if sum(v.position == pos for v in vis) == 1:
            out.append({"type": "object_at_position", "position": pos})
    out.append({"type": "count_beeps"})
    out += [{"type": "nth_sound", "index": k} for k in range(min(len(aud), len(ORDINALS)))]
    for sound in cfg.sounds:
        if sum(a.sound == sound for a in aud) == 1:
            out.append({"type": "colour_during_sound", "sound": sound})
            out.append({"type": "shape_during_sound", "sound": sound})
    for v in vis:
        out.append({"type": "sound_during_object", "colour": v.colour, "shape": v.shape})
    return out


def question_text(query: dict[str, Any]) -> str:
    kind = query["type"]
    if kind == "colour_of_shape":
        return f"What colour was the {query['shape']}?"
    if kind == "colour_of_nth":
        return f"What colour was the {ORDINALS[query['index']]} shape to appear?"
    if kind == "object_at_position":
        return f"Which object appeared {POSITION_PHRASE[query['position']]}?"
    if kind == "count_beeps":
        return "How many beeps were heard? (Noise bursts do not count.)"
    if kind == "nth_sound":
        return f"What was the {ORDINALS[query['index']]} sound heard?"
    if kind == "colour_during_sound":
        return f"What colour was the shape on screen when the {SOUND_NAME[query['sound']]} was heard?"
    if kind == "shape_during_sound":
        return f"Which shape was on screen when the {SOUND_NAME[query['sound']]} was heard?"
    if kind in TIME_WINDOW_TYPES:
        window = f"{time_span_text(query['start'], query['end'])} s"  # the digits a <time> tag writes
        return {"colour_at_time": f"What colour was the shape on screen at {window}?",
                "shape_at_time": f"Which shape was on screen at {window}?",
                "sound_at_time": f"Which sound was heard at {window}?"}[kind]
    return f"Which sound was heard while the {query['colour']} {query['shape']} was on screen?"


def option_pool(query: dict[str, Any], tl: Timeline, cfg: WorldConfig) -> tuple[list[str], list[str]]:
    """(all possible option texts, the ones present in this clip): present ones make the harder distractors."""
    kind = query["type"]
    if kind in ("colour_of_shape", "colour_of_nth", "colour_during_sound", "colour_at_time"):
        return list(cfg.colours), [v.colour for v in tl.visual]
    if kind == "object_at_position":
        pool = [object_text(c, s) for c in cfg.colours for s in cfg.shapes]
        return pool, [object_text(v.colour, v.shape) for v in tl.visual]
    if kind == "count_beeps":
        return [str(i) for i in range(max(N_OPTIONS, cfg.max_audio_events + 1))], []
    if kind in ("shape_during_sound", "shape_at_time"):
        return list(cfg.shapes) + [NO_SHAPE], [v.shape for v in tl.visual]
    return [sound_text(s) for s in cfg.sounds], [sound_text(a.sound) for a in tl.audio]


def evidence(query: dict[str, Any], tl: Timeline) -> list[dict[str, Any]]:
    """The reference (start, end, caption) segments a grounded answer should cite, in time order."""
    kind, vis, aud = query["type"], sorted(tl.visual, key=lambda v: v.start), sorted(tl.audio, key=lambda a: a.start)
    if kind == "colour_of_shape":
        events: list[Any] = [v for v in vis if v.shape == query["shape"]]
    elif kind == "colour_of_nth":
        events = vis[int(query["index"]):int(query["index"]) + 1]
    elif kind == "object_at_position":
        events = [v for v in vis if v.position == query["position"]]
    elif kind == "count_beeps":  # every sound, since telling beeps from noise bursts is the task
        events = list(aud)
    elif kind == "nth_sound":
        events = aud[int(query["index"]):int(query["index"]) + 1]
    elif kind in ("colour_during_sound", "shape_during_sound"):
        sounds = [a for a in aud if a.sound == query["sound"]]
        events = sounds + [v for v in vis for a in sounds if overlap(a.start, a.end, v.start, v.end) > 0]
    elif kind in TIME_WINDOW_TYPES:
        on = vis if kind != "sound_at_time" else aud
        events = [e for e in on if overlap(query["start"], query["end"], e.start, e.end) > 0]
    else:
        objs = [v for v in vis if v.colour == query["colour"] and v.shape == query["shape"]]
        events = objs + [a for a in aud for v in objs if overlap(a.start, a.end, v.start, v.end) > 0]
    events.sort(key=lambda e: (e.start, e.end))
    return [{"start": e.start, "end": e.end, "caption": e.caption} for e in events]


def _dedup(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def build_options(query: dict[str, Any], tl: Timeline, cfg: WorldConfig, answer: str,
                  rng: np.random.Generator) -> list[str]:
    """The answer plus N_OPTIONS-1 distractors (clip-present ones first), answer first; the caller places it."""
    pool, present = option_pool(query, tl, cfg)
    hard = [t for t in _dedup(present) if t != answer]
    rest = [t for t in pool if t != answer and t not in hard]
    hard = [hard[i] for i in rng.permutation(len(hard))]
    rest = [rest[i] for i in rng.permutation(len(rest))]
    distractors = (hard + rest)[: N_OPTIONS - 1]
    if len(distractors) < N_OPTIONS - 1:
        raise ValueError(f"query {query}: only {len(distractors)} distractors available; widen the WorldConfig "
                         "vocabulary")
    return [answer] + distractors


class LetterDeck:
    """Deals answer positions from shuffled decks of all letters, so letters stay balanced to within one deck."""

    def __init__(self, rng: np.random.Generator, n_options: int = N_OPTIONS) -> None:
        self.rng, self.n, self.deck = rng, n_options, []  # type: list[int]

    def draw(self) -> int:
        if not self.deck:
            self.deck = [int(i) for i in self.rng.permutation(self.n)]
        return self.deck.pop()


def make_question(query: dict[str, Any], tl: Timeline, cfg: WorldConfig, rng: np.random.Generator,
                  deck: LetterDeck, sample_id: str, video: str) -> AVSample | None:
    """One validated sample for `query`, or None when the query is ambiguous or answerable by the wrong sense."""
    truth = consistent_answers(query, tl, "both")
    if truth is None or len(truth) != 1:
        return None
    answer = next(iter(truth))
    options = build_options(query, tl, cfg, answer, rng)
    needs, category = ALL_QUERY_TYPES[query["type"]]
    sample = AVSample(id=sample_id, video=video, question=question_text(query), options=options, answer="A",
                      category=category, modality_needs=needs, time_captions=tl.captions(),
                      duration=tl.duration, source="synthetic",
                      extra={"timeline": tl.to_dict(), "query": dict(query), "evidence": evidence(query, tl)})
    # Validate with the answer first; the check depends on option texts, not their order, so a rejected
    # question does not use up a letter from the deck.
    if answerability_problems(sample):
        return None
    slot = deck.draw()
    others = options[1:]
    sample.options = others[:slot] + [answer] + others[slot:]
    sample.answer = LETTERS[slot]
    return sample


def make_questions(tl: Timeline, cfg: WorldConfig, rng: np.random.Generator, deck: LetterDeck,
                   clip_id: str, video: str) -> list[AVSample]:
    """Up to cfg.questions_per_clip distinct valid questions, cycling video/audio/both so kinds stay mixed."""
    by_kind: dict[str, dict[str, list[dict[str, Any]]]] = {"video": {}, "audio": {}, "both": {}}
    for q in candidate_queries(tl, cfg):
        needs, category = QUERY_TYPES[q["type"]]
        by_kind[needs].setdefault(category, []).append(q)
    kinds = [("video", "audio", "both")[i] for i in rng.permutation(3)]
    samples: list[AVSample] = []
    turn = 0
    while len(samples) < cfg.questions_per_clip and any(by_kind[k] for k in kinds):
        kind = kinds[turn % 3]
        turn += 1
        cats = sorted(c for c, qs in by_kind[kind].items() if qs)
        if not cats:
            continue
        # Pick the category first, so rare categories are not drowned by ones with many candidate queries.
        cat = cats[int(rng.integers(len(cats)))]
        pool = by_kind[kind][cat]
        query = pool.pop(int(rng.integers(len(pool))))
        if not pool:
            del by_kind[kind][cat]
        sample = make_question(query, tl, cfg, rng, deck, f"synth-{clip_id}-q{len(samples)}", video)
        if sample is not None:
            samples.append(sample)
    return samples
