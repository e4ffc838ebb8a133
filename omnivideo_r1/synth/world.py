"""The synthetic audio-visual world: seeded clips (real .mp4 files) with multiple-choice questions.

This is the offline default training/eval data. A seed fixes everything: the same seed gives byte-identical JSONL
and identical frame/audio arrays. Clip i draws from its own random stream (seed, i), so clip i is the same whatever
the number of clips; answer letters come from one shared stream so they stay balanced over the whole world.

    generate_world("data/world", n_clips=200, seed=0)
    -> data/world/clips/000000.mp4 ..., data/world/{train,val,test}.jsonl, data/world/world.json
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np

from ..schema import AVSample, write_samples
from .questions import CATEGORIES, LetterDeck, answerability_problems, candidate_answers, make_questions
from .scene import Timeline, WorldConfig, render_audio, render_frames, sample_timeline

__all__ = ["WorldConfig", "SynthClip", "make_clip", "generate_world", "candidate_answers", "answerability_problems",
           "SPLITS"]

SPLITS = ("train", "val", "test")
_LETTER_STREAM = 1  # spawn keys: (0, i) for clip i, (1,) for answer letters, (2,) for the split shuffle
_SPLIT_STREAM = 2


@dataclass
class SynthClip:
    """One generated clip in memory."""

    index: int
    """Clip number within the world (its file is clips/{index:06d}.mp4)."""
    timeline: Timeline
    """The events shown and heard."""
    frames_THWC: np.ndarray
    """RGB uint8 frames."""
    audio: np.ndarray
    """Mono float32 waveform at the config's sample rate."""
    rng: np.random.Generator
    """The clip's random stream, positioned after rendering (questions draw from it next)."""


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=key))


def make_clip(seed: int, index: int, config: WorldConfig | None = None) -> SynthClip:
    """Clip `index` of the world with `seed`: its timeline, frames and audio (nothing is written)."""
    cfg = config or WorldConfig()
    rng = _rng(seed, 0, index)
    timeline = sample_timeline(rng, cfg)
    frames = render_frames(timeline, cfg)
    audio = render_audio(timeline, cfg, rng)
    return SynthClip(index, timeline, frames, audio, rng)


def split_counts(n: int, splits: Sequence[float]) -> list[int]:
    """Clips per split (train, val, test) for `n` clips and the fractions `splits`; ValueError if they are not 3
    non-negative fractions summing to 1."""
    if len(splits) != len(SPLITS) or any(s < 0 for s in splits) or abs(sum(splits) - 1.0) > 1e-6:
        raise ValueError(f"splits {tuple(splits)} must be 3 non-negative fractions (train, val, test) summing to 1")
    bounds = [int(round(b * n)) for b in np.cumsum(splits)]
    bounds[-1] = n
    return [bounds[0], bounds[1] - bounds[0], bounds[2] - bounds[1]]


def generate_world(out_dir: str, n_clips: int, seed: int = 0, splits: Sequence[float] = (0.8, 0.1, 0.1),
                   config: WorldConfig | None = None) -> dict[str, Any]:
    """Write clips/*.mp4, {train,val,test}.jsonl and world.json under `out_dir`; returns the summary."""
    from ..media.encode import write_av_file  # PyAV is only needed when writing

    cfg = config or WorldConfig()
    if n_clips < 1:
        raise ValueError(f"n_clips {n_clips} must be >= 1")
    counts = split_counts(n_clips, splits)
    order = [int(i) for i in _rng(seed, _SPLIT_STREAM).permutation(n_clips)]
    split_of: dict[int, str] = {}
    start = 0
    for name, count in zip(SPLITS, counts):
        split_of.update({i: name for i in order[start:start + count]})
        start += count

    out_dir = os.path.abspath(out_dir)
    clip_dir = os.path.join(out_dir, "clips")
    os.makedirs(clip_dir, exist_ok=True)
    deck = LetterDeck(_rng(seed, _LETTER_STREAM))
    per_split: dict[str, list[AVSample]] = {name: [] for name in SPLITS}
    for i in range(n_clips):
        clip = make_clip(seed, i, cfg)
        clip_id = f"{i:06d}"
        path = os.path.join(clip_dir, f"{clip_id}.mp4")
        write_av_file(path, clip.frames_THWC, cfg.fps, clip.audio, sample_rate=cfg.sample_rate)
        samples = make_questions(clip.timeline, cfg, clip.rng, deck, clip_id, path)
        for sample in samples:
            problems = answerability_problems(sample)
            if problems:  # make_questions already filters; this guards the guarantee itself
                raise AssertionError("; ".join(problems))
            sample.extra["clip_id"] = clip_id
            sample.extra["split"] = split_of[i]
        per_split[split_of[i]].extend(samples)

    for name in SPLITS:
        write_samples(os.path.join(out_dir, f"{name}.jsonl"), per_split[name])
    summary = _summary(out_dir, seed, n_clips, splits, cfg, counts, per_split)
    with open(os.path.join(out_dir, "world.json"), "w", encoding="utf-8") as fh:
        json.dump(summary, fh, indent=2, sort_keys=True)
        fh.write("\n")
    return summary


def _summary(out_dir: str, seed: int, n_clips: int, splits: Sequence[float], cfg: WorldConfig,
             counts: list[int], per_split: dict[str, list[AVSample]]) -> dict[str, Any]:
    everything = [s for name in SPLITS for s in per_split[name]]
    kinds = Counter(s.modality_needs for s in everything)
    cats = Counter(s.category for s in everything)
    letters = Counter(s.answer for s in everything)
    return {
        "seed": seed,
        "n_clips": n_clips,
        "splits": {name: frac for name, frac in zip(SPLITS, splits)},
        "config": asdict(cfg),
        "clips": dict(zip(SPLITS, counts)),
        "questions": {name: len(per_split[name]) for name in SPLITS},
        "per_split": {name: {"modality_needs": dict(sorted(Counter(s.modality_needs for s in per_split[name]).items())),
                             "category": dict(sorted(Counter(s.category for s in per_split[name]).items()))}
                      for name in SPLITS},
        "modality_needs": {k: kinds.get(k, 0) for k in ("video", "audio", "both")},
        "category": {c: cats.get(c, 0) for c in CATEGORIES},
        "answer_letters": dict(sorted(letters.items())),
        "files": {name: f"{name}.jsonl" for name in SPLITS} | {"clips": "clips/"},
    }
