"""The category taxonomy used to balance curated training data.

The paper classifies every sample into a 15-category taxonomy (with an LLM) and prunes long-tail categories; the
released code does not publish the list, so this default is our own: audio-visual skills that the benchmarks
(Daily-Omni, WorldSense, OmniVideoBench, IntentBench) test, plus "other" as the catch-all. The list is configurable
(recipe key `taxonomy`); the keywords only feed the offline heuristic classifier. Curation balances by it and the
offline judge (judges/heuristics.py) classifies into it, so it sits below both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

OTHER = "other"


@dataclass
class CategorySpec:
    name: str
    """Label written to the sample's `category` (snake_case, unique within the taxonomy)."""
    description: str = ""
    """One line telling a judge what belongs here."""
    keywords: list[str] = field(default_factory=list)
    """Lower-case cue words/phrases for the offline keyword classifier (whole-word match)."""


DEFAULT_TAXONOMY: tuple[CategorySpec, ...] = (
    CategorySpec("temporal_order", "Order or timing of events: what happens before/after/first/last.",
                 ["before", "after", "first", "last", "then", "sequence", "order", "earlier", "later", "when"]),
    CategorySpec("counting", "How many times something is seen or heard.",
                 ["how many", "count", "number of", "times"]),
    CategorySpec("av_event_binding", "Linking a sound to the visual event that co-occurs with it.",
                 ["while", "at the moment", "same time", "during", "as the", "coincides", "synchron"]),
    CategorySpec("speech_content", "What is said: spoken words, dialogue, narration.",
                 ["say", "says", "said", "speak", "speaks", "spoken", "mention", "mentions", "narrator", "tell",
                  "tells", "talk", "talks", "dialogue", "word", "words"]),
    CategorySpec("sound_source", "Which object, person or place produces a sound.",
                 ["sound come", "source of", "produces the sound", "making the sound", "makes the sound",
                  "which direction", "where does the sound", "who is making"]),
    CategorySpec("music", "Music, instruments, songs, rhythm and singing.",
                 ["music", "song", "sing", "singing", "instrument", "melody", "rhythm", "piano", "guitar", "drum",
                  "violin", "tempo"]),
    CategorySpec("emotion_intent", "Emotion, attitude or intention of people.",
                 ["feel", "feels", "emotion", "mood", "attitude", "intent", "intention", "angry", "happy", "sad",
                  "why does the person want"]),
    CategorySpec("causal_reasoning", "Why something happens; causes and consequences.",
                 ["why", "because", "cause", "caused", "reason", "result", "lead to"]),
    CategorySpec("action_recognition", "What someone or something is doing.",
                 ["doing", "action", "activity", "perform", "performing"]),
    CategorySpec("object_attributes", "Colour, shape, size, material of objects.",
                 ["color", "colour", "shape", "size", "wearing", "material", "what kind of", "red", "green",
                  "blue", "yellow"]),
    CategorySpec("spatial_relation", "Where things are relative to each other.",
                 ["left", "right", "above", "below", "behind", "next to", "in front", "position", "located"]),
    CategorySpec("scene_understanding", "Setting, place and overall context of the scene.",
                 ["where is", "scene", "setting", "location", "place", "environment", "indoors", "outdoors"]),
    CategorySpec("ocr_text", "Text visible on screen: signs, captions, labels.",
                 ["text", "written", "sign", "caption", "label", "title", "read"]),
    CategorySpec("summary", "The overall topic, purpose or summary of the clip.",
                 ["summary", "summarize", "main topic", "overall", "mainly about", "purpose of the video"]),
    CategorySpec(OTHER, "Anything that fits none of the categories above.", []),
)


def default_taxonomy() -> list[CategorySpec]:
    """A fresh copy of the default list (config defaults must not share mutable objects)."""
    return [CategorySpec(c.name, c.description, list(c.keywords)) for c in DEFAULT_TAXONOMY]


def validate_taxonomy(taxonomy: list[CategorySpec], where: str = "taxonomy") -> None:
    """Names must be unique and non-empty, and OTHER must be present (the fallback label)."""
    names = [c.name for c in taxonomy]
    if not names or any(not n.strip() for n in names):
        raise ValueError(f"{where}: every category needs a non-empty name")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"{where}: duplicate category names {dupes}; make each name unique")
    if OTHER not in names:
        raise ValueError(f"{where}: the taxonomy must contain {OTHER!r} (the fallback for unknown labels)")


def _norm(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", label.strip().lower()).strip("_")


def normalize_label(label: str | None, names: list[str]) -> str | None:
    """Map a judge's label onto a taxonomy name ("Speech content" -> "speech_content"); None if it is not one."""
    if not label:
        return None
    wanted = _norm(label)
    for name in names:
        if _norm(name) == wanted:
            return name
    return None


def _keywords_for(name: str) -> list[str]:
    """Known keywords for a default category; for a custom one, the words of its name ("music_genre" -> music, genre)."""
    for spec in DEFAULT_TAXONOMY:
        if spec.name == name:
            return spec.keywords
    return [w for w in _norm(name).split("_") if len(w) > 2]


def keyword_scores(text: str, names: list[str], keywords: dict[str, list[str]] | None = None) -> dict[str, int]:
    """How many cue words of each category occur (whole-word/phrase, case-insensitive) in `text`."""
    low = " " + re.sub(r"\s+", " ", text.lower()) + " "
    out = {}
    for name in names:
        words = (keywords or {}).get(name) or _keywords_for(name)
        out[name] = sum(1 for w in words if re.search(r"(?<![a-z0-9])" + re.escape(w) + r"(?![a-z0-9])", low))
    return out


def classify_by_keywords(text: str, names: list[str], keywords: dict[str, list[str]] | None = None) -> str:
    """The category with most cue words; ties go to the earlier category; no cue at all -> OTHER (or the last name)."""
    scores = keyword_scores(text, names, keywords)
    best = max(names, key=lambda n: (scores[n], -names.index(n)))
    if scores[best] > 0:
        return best
    return OTHER if OTHER in names else names[-1]
