"""Multiple-choice evaluation loop: samples x one modality -> one row per question.

The loop needs only two policy methods (`EvalPolicy`), so unit tests drive it with a scripted fake. Clips are
decoded per sample; a clip that fails to decode gives a row with `media_error` set and the run continues.
Generation is batched, and a batch never mixes prompts with and without audio (the Omni processors take
`use_audio_in_video` per batch). Under `accelerate launch` each process takes every N-th sample and the rows are
gathered in the original order; without it the loop runs in one process.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, replace
from typing import Any, Callable, Protocol, Sequence

import numpy as np

from ..answers import is_multi_label, parse_choice
from ..media.types import Clip, MediaError
from ..prompts import question_text
from ..schema import MODALITIES, AVSample
from .official_prompts import official_prompt
from .official_scoring import official_score


@dataclass
class EvalConfig:
    """Decoding, prompting and generation settings for one evaluation run."""

    fps: float = 2.0
    """Frames sampled per second of clip time (Qwen-Omni's default)."""
    max_frames: int = 64
    """Cap on sampled frames per clip (OmniVideo-R1 trains with FPS_MAX_FRAMES=64)."""
    max_pixels: int | None = 200704
    """Per-frame pixel cap before the processor (256 visual tokens at 28x28 patches); None keeps the source size."""
    max_new_tokens: int = 1024
    """Generation budget per answer; the <time>/<thinking>/<answer> format needs several hundred tokens."""
    batch_size: int = 4
    """Prompts generated together; batches are formed separately for prompts with and without audio."""
    reasoning: bool = True
    """True: ask for <time>/<caption>, <thinking>, <answer>; False: ask for the option letter directly."""
    limit: int | None = None
    """Evaluate only the first N samples (before sharding), for smoke runs; None means all."""
    official_prompt: bool = False
    """Ask with each benchmark's own prompt template (eval/official_prompts.py) instead of ours; samples of
    sources without one (our JSONL) keep ours."""

    def __post_init__(self) -> None:
        bad = [f"{k}={getattr(self, k)}" for k in ("fps", "max_frames", "batch_size", "max_new_tokens")
               if getattr(self, k) <= 0]
        if self.max_pixels is not None and self.max_pixels < 1:
            bad.append(f"max_pixels={self.max_pixels}")
        if bad:
            raise ValueError(f"{', '.join(bad)}: must be positive (max_pixels: or null for the source size)")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit={self.limit}: must be >= 1, or null for all questions")


class EvalPolicy(Protocol):
    """What evaluation needs from a policy: OmniPolicy, or the scripted fake the tests use."""

    def make_prompt(self, sample: AVSample, clip: Clip, modality: str, reasoning: bool = True) -> Any: ...

    def generate_text(self, prompts: list[Any], max_new_tokens: int, greedy: bool = True) -> list[str]: ...


ClipLoader = Callable[..., Clip]


def score_output(sample: AVSample, output: str) -> dict[str, Any]:
    """Parse one model output with the shared parser and compare with the answer letter(s); also the benchmark
    script's own reading and score (`official_parsed`, `official_score`; None for our JSONL)."""
    official = official_score(sample, output)
    extra = {"official_parsed": official.parsed if official else None,
             "official_score": official.score if official else None}
    multi = is_multi_label(sample)
    parsed = parse_choice(output, sample.options, multi=multi)
    if parsed is None:
        return {"parsed": None, "correct": False, "unparseable": True, **extra}
    correct = set(parsed) == set(sample.answer) if multi else parsed == sample.answer
    return {"parsed": parsed, "correct": bool(correct), "unparseable": False, **extra}


def with_official_prompt(prompt: Any, sample: AVSample, modality: str) -> Any:
    """`prompt` with its system and user text replaced by the benchmark's own template (unchanged when the sample's
    source has none). `modality` is what the model actually gets ("video" for an av clip without a track)."""
    texts = official_prompt(sample, modality)
    if texts is None:
        return prompt
    system, user = texts
    if dataclasses.is_dataclass(prompt):
        return dataclasses.replace(prompt, system=system, user_text=user)
    prompt.system, prompt.user_text = system, user
    return prompt


def load_modality_clip(sample: AVSample, modality: str, cfg: EvalConfig, loader: ClipLoader) -> Clip:
    """Decode the sample's clip for one condition; the runner removes the other sense itself, so a policy that
    ignores `modality` still cannot see (or hear) what the condition hides."""
    clip = loader(sample.video, fps=cfg.fps, max_frames=cfg.max_frames, max_pixels=cfg.max_pixels,
                  start=sample.start, end=sample.end, with_audio=modality != "video", audio_path=sample.audio)
    if modality == "video":
        return clip.silent() if clip.has_audio else clip
    if modality == "audio":
        if not clip.has_audio:
            raise MediaError(f"{sample.audio or sample.video}: no audio track; the audio-only condition needs audio")
        return replace(clip, frames_THWC=None, frame_times_T=np.zeros(0, np.float64), fps=0.0)
    if clip.frames_THWC is None:
        raise MediaError(f"{sample.video}: no video stream; the {modality!r} condition needs frames")
    return clip


def _base_row(sample: AVSample, modality: str, index: int, cfg: EvalConfig) -> dict[str, Any]:
    official = official_prompt(sample, modality) if cfg.official_prompt else None
    return {"id": sample.id, "benchmark": sample.source, "category": sample.category, "modality": modality,
            "prompt": official[1] if official else question_text(sample, cfg.reasoning), "output": None, "parsed": None, "answer": sample.answer,
            "correct": False, "unparseable": False, "media_error": None, "has_audio": None,
            "multi_label": is_multi_label(sample), "modality_needs": sample.modality_needs,
            "groups": dict(sample.extra.get("groups") or {}), "official_parsed": None, "official_score": None,
            "audio_source": None, "_index": index}


def _run_shard(policy: EvalPolicy, indexed: Sequence[tuple[int, AVSample]], modality: str, cfg: EvalConfig,
               loader: ClipLoader) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    make_prompt = policy.make_prompt
    # Prompts wait here, split by (has audio, audio interleaved in the video), until a full batch of one kind is
    # ready: the Omni processors take `use_audio_in_video` per batch, and Daily-Omni's separate wav is audible but
    # not interleaved.
    pending: dict[tuple[bool, Any], list[tuple[dict[str, Any], AVSample, Any]]] = {}

    def flush(flag: tuple[bool, Any]) -> None:
        batch = pending.pop(flag, [])
        if not batch:
            return
        outputs = policy.generate_text([p for _, _, p in batch], max_new_tokens=cfg.max_new_tokens, greedy=True)
        if len(outputs) != len(batch):
            raise RuntimeError(f"policy.generate_text returned {len(outputs)} outputs for {len(batch)} prompts")
        for (row, sample, _), text in zip(batch, outputs):
            row["output"] = text
            row.update(score_output(sample, text))

    for index, sample in indexed:
        row = _base_row(sample, modality, index, cfg)
        rows.append(row)
        try:
            clip = load_modality_clip(sample, modality, cfg, loader)
            prompt = make_prompt(sample, clip, modality, reasoning=cfg.reasoning)
            if cfg.official_prompt:
                heard = modality if modality != "av" or clip.has_audio else "video"
                prompt = with_official_prompt(prompt, sample, heard)
        except MediaError as exc:
            row["media_error"] = str(exc)
            continue
        text = getattr(prompt, "user_text", None) or getattr(prompt, "text", None)
        if isinstance(text, str) and text:
            row["prompt"] = text
        row["has_audio"] = clip.has_audio
        if clip.has_audio:
            row["audio_source"] = "separate_file" if sample.audio else "video_track"
        key = (clip.has_audio, getattr(prompt, "use_audio_in_video", None))
        pending.setdefault(key, []).append((row, sample, prompt))
        if len(pending[key]) >= cfg.batch_size:
            flush(key)
    for key in list(pending):
        flush(key)
    return rows


def process_state():
    """accelerate's PartialState, on CPU when no GPU is usable.

    PartialState only sets up multi-process CPU runs (torchrun or `accelerate launch --cpu` on a CPU machine) when
    told `cpu=True`; without it every process would think it is alone and evaluate everything.
    """
    import torch
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    return PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU") or not torch.cuda.is_available())


def _distributed() -> tuple[int, int, Callable[[list], list]]:
    """(rank, world size, gather) from accelerate; one process without a launcher."""
    from accelerate.utils import gather_object

    state = process_state()
    if state.num_processes == 1:
        return 0, 1, lambda rows: rows
    return state.process_index, state.num_processes, gather_object


def evaluate(policy: EvalPolicy, samples: Sequence[AVSample], modality: str, cfg: EvalConfig,
             clip_loader: ClipLoader | None = None) -> list[dict[str, Any]]:
    """Answer every sample under `modality` and score it; returns one row per question, in sample order.

    Row keys: id, benchmark, category, modality, prompt, output, parsed, answer, correct, unparseable,
    media_error (str or None; such rows count as skipped), has_audio, multi_label, modality_needs, groups (the
    fields the benchmark's script aggregates by), official_parsed / official_score (the script's reading and
    score), audio_source (video_track / separate_file when audio was given). Under `accelerate launch`
    every process returns all rows (gathered) so any rank can write the report.
    """
    if modality not in MODALITIES:
        raise ValueError(f"unknown modality {modality!r}; choose from {MODALITIES}")
    if clip_loader is None:
        from ..media.decode import load_clip as clip_loader
    chosen = list(samples)[: cfg.limit] if cfg.limit else list(samples)
    rank, world, gather = _distributed()
    shard = [(i, s) for i, s in enumerate(chosen) if i % world == rank]
    rows = gather(_run_shard(policy, shard, modality, cfg, clip_loader))
    rows = sorted(rows, key=lambda r: r["_index"])
    for row in rows:
        del row["_index"]
    return rows
