"""Rollout plumbing: pick a step's prompts, load their media, sample GSPO groups, probe modality variants.

Everything here is deterministic in (seed, step, global prompt index), never in the process rank, so one process and
two processes with the same global batch sample the same completions.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from ..media.cache import ClipCache
from ..media.types import MediaError
from ..schema import AVSample
from .config import DataConfig, RolloutConfig


def stable_seed(*parts: int | str) -> int:
    """A 63-bit seed from the given parts (independent of Python's hash randomisation)."""
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def epoch_order(num_samples: int, seed: int, epoch: int, shuffle: bool) -> np.ndarray:
    if not shuffle:
        return np.arange(num_samples)
    return np.random.default_rng(stable_seed(seed, "epoch", epoch)).permutation(num_samples)


def step_prompt_indices(num_samples: int, step: int, prompts_per_step: int, seed: int, shuffle: bool) -> list[int]:
    """Dataset indices of the `prompts_per_step` prompts of `step` (global; epochs wrap around)."""
    out = []
    for k in range(prompts_per_step):
        position = step * prompts_per_step + k
        epoch, offset = divmod(position, num_samples)
        out.append(int(epoch_order(num_samples, seed, epoch, shuffle)[offset]))
    return out


def rank_slots(prompts_per_step: int, minibatches: int, world_size: int, rank: int) -> list[list[int]]:
    """For each minibatch, the slots (0..prompts_per_step-1) this rank owns.

    Minibatch j is the contiguous block j of the step's prompts; inside a block, rank r takes slots r, r+W, ...
    The union over ranks of minibatch j is then the same set of prompts whatever the process count, which makes
    one process and W processes take identical optimizer steps.
    """
    if prompts_per_step % (minibatches * world_size):
        raise ValueError(
            f"rollout.prompts_per_step={prompts_per_step} must be divisible by gspo.minibatches_per_rollout="
            f"{minibatches} x processes={world_size}")
    block = prompts_per_step // minibatches
    return [list(range(j * block + rank, (j + 1) * block, world_size)) for j in range(minibatches)]


@dataclass
class MediaSkips:
    """Counts of samples skipped because their media could not be used, by reason (never a crash)."""

    counts: dict[str, int] = field(default_factory=dict)
    bad_paths: set[str] = field(default_factory=set)

    def add(self, path: str, reason: str) -> None:
        self.bad_paths.add(path)
        key = reason.split(":")[0][:60]
        self.counts[key] = self.counts.get(key, 0) + 1


def load_sample_clip(samples: list[AVSample], index: int, data: DataConfig, cache: ClipCache, skips: MediaSkips,
                     max_tries: int = 16):
    """Return (sample, clip) for dataset index `index`, walking forward past samples whose media is unusable.

    The replacement depends only on `index`, so it is the same in every process.
    """
    for attempt in range(max_tries):
        sample = samples[(index + attempt) % len(samples)]
        if sample.video in skips.bad_paths:
            continue
        try:
            clip = cache.get_or_load(sample.video, fps=data.fps, max_frames=data.max_frames,
                                     max_pixels=data.max_pixels, start=sample.start, end=sample.end,
                                     audio_path=sample.audio)
            return sample, clip
        except MediaError as exc:
            skips.add(sample.video, str(exc).replace(sample.video, "").strip(": "))
    raise RuntimeError(f"{max_tries} consecutive samples from index {index} have unusable media; "
                       f"check the data (skips so far: {skips.counts})")


def answer_prefix_ids(tokenizer, completion_text: str) -> list[int] | None:
    """Token ids of the completion up to and including `<answer>`, to probe the answer letter's probability."""
    cut = completion_text.find("<answer>")
    if cut < 0:
        return None
    return tokenizer.encode(completion_text[: cut + len("<answer>")], add_special_tokens=False)


def sample_group(policy, prompt, rollout: RolloutConfig, seed: int):
    """G completions of one prompt: its media is encoded and its prompt prefilled once, the KV cache copied G times."""
    return policy.sample([prompt], rollouts_per_prompt=rollout.rollouts_per_prompt,
                         max_new_tokens=rollout.max_new_tokens, temperature=rollout.temperature,
                         top_p=rollout.top_p, generator_seed=seed, share_prefix=True)
