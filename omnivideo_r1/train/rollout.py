"""Rollout plumbing: pick a step's prompts, load their media, sample GSPO groups, probe modality variants.

Everything here is deterministic in (seed, step, global prompt index), never in the process rank, so one process and
two processes with the same global batch sample the same completions.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import torch

from ..answers import extract_answer_block, parse_choice
from ..config import ConfigError
from ..media.cache import ClipCache
from ..media.types import Clip, MediaError
from ..policy.prompting import Completion, PolicyPrompt, make_prompt
from ..rewards.types import RolloutRecord
from ..schema import LETTERS, AVSample
from .config import RolloutConfig, TrainConfig


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
        # A launch-time check: the recipe cannot know how many processes `accelerate launch` starts.
        raise ConfigError(
            f"rollout.prompts_per_step={prompts_per_step} must be divisible by gspo.minibatches_per_rollout="
            f"{minibatches} x {world_size} processes: launch a process count that divides "
            f"{prompts_per_step // minibatches}, or set rollout.prompts_per_step to a multiple of "
            f"{minibatches * world_size}")
    block = prompts_per_step // minibatches
    return [list(range(j * block + rank, (j + 1) * block, world_size)) for j in range(minibatches)]


@dataclass
class MediaSkips:
    """Counts of samples skipped because their media could not be used, by reason (never a crash)."""

    counts: dict[str, int] = field(default_factory=dict)
    bad_paths: set[str] = field(default_factory=set)

    def add(self, path: str, reason: str, clip_unusable: bool = True) -> None:
        """Count a skip; a clip that cannot be used at all is not tried again for its other questions."""
        if clip_unusable:
            self.bad_paths.add(path)
        key = reason.split(":")[0][:60]
        self.counts[key] = self.counts.get(key, 0) + 1


def load_sample_clip(samples: list[AVSample], index: int, cfg: TrainConfig, cache: ClipCache, skips: MediaSkips,
                     max_tries: int = 16):
    """Return (sample, clip) for dataset index `index`, walking forward past samples whose media is unusable,
    including a clip without an audio track where this stage would show its audio alone (`audio_alone_use`).

    The replacement depends only on `index`, so it is the same in every process.
    """
    data = cfg.data
    for attempt in range(max_tries):
        sample = samples[(index + attempt) % len(samples)]
        if sample.video in skips.bad_paths:
            continue
        try:
            clip = cache.get_or_load(sample.video, fps=data.fps, max_frames=data.max_frames,
                                     max_pixels=data.max_pixels, start=sample.start, end=sample.end,
                                     audio_path=sample.audio)
        except MediaError as exc:
            skips.add(sample.video, str(exc).replace(sample.video, "").strip(": "))
            continue
        use = audio_alone_use(sample, cfg)
        if clip.audio is None and use:
            # With both senses it is a silent video (kept, as under the paper's stage QI); alone it shows nothing.
            # The clip stays open to its other questions (a video question under own), so the sample a slot gets
            # never depends on what this process loaded before: one process and several take the same steps.
            skips.add(sample.video, f"no audio track; {use}", clip_unusable=False)
            continue
        return sample, clip
    raise MediaError(f"{data.train_path}: {max_tries} consecutive samples from index {index} have unusable media "
                     f"(skips so far: {skips.counts}); check the clips the records point to")


def audio_alone_use(sample: AVSample, cfg: TrainConfig) -> str | None:
    """Why this stage shows `sample`'s audio alone (None if it never does); such a sample needs an audio track."""
    if cfg.run.stage == "ma":
        return "stage MA also asks it with audio alone"
    if rollout_modality(sample, cfg.data.single_sense_input) == "audio":
        return f"single_sense_input={cfg.data.single_sense_input} shows it alone"
    return None


def answer_prefix_ids(tokenizer, completion_text: str) -> list[int] | None:
    """Token ids of the completion up to and including `<answer>`, to probe the answer letter's probability."""
    cut = completion_text.find("<answer>")
    if cut < 0:
        return None
    return tokenizer.encode(completion_text[: cut + len("<answer>")], add_special_tokens=False)


def sample_groups_together(policy, prompts, seeds: list[int], rollout: RolloutConfig) -> list[list[Completion]]:
    """G completions of each prompt (one media layout), decoded as one batch, each prompt's from its own seed: its
    media is encoded and its prompt prefilled once, the KV cache copied G times."""
    G = rollout.rollouts_per_prompt
    completions = policy.sample(prompts, rollouts_per_prompt=G, max_new_tokens=rollout.max_new_tokens,
                                temperature=rollout.temperature, top_p=rollout.top_p, generator_seed=list(seeds),
                                share_prefix=True)
    return [completions[k * G: (k + 1) * G] for k in range(len(prompts))]


@dataclass
class ModalityProbe:
    """Stage MA: one AV completion's question asked again under single-sense input (for the contrastive reward)."""

    answers: dict[str, str] = field(default_factory=dict)
    """accuracy mode: modality ("audio", "video") -> the completion sampled under that input only."""
    confidence: dict[str, float] = field(default_factory=dict)
    """confidence mode: modality ("av", "audio", "video") -> probability of the AV completion's letter under it."""


@dataclass
class PromptGroup:
    """One prompt of a step and its G completions (one GSPO group), with everything the rewards need."""

    slot: int
    """Position of the prompt in the step's global batch; sampling seeds and process assignment key on it."""
    sample: AVSample
    """The question record (after skipping samples with unusable media)."""
    clip: Clip
    """Its decoded media."""
    prompt: PolicyPrompt
    """The full audio-visual prompt the completions were sampled from."""
    completions: list[Completion]
    """The G sampled completions."""
    probes: list[ModalityProbe] = field(default_factory=list)
    """Stage MA: one probe per completion; empty in stage QI."""

    def records(self) -> list[RolloutRecord]:
        """One reward record per completion, in completion order."""
        probes = self.probes or [ModalityProbe() for _ in self.completions]
        return [RolloutRecord(sample=self.sample, completion=c.text, modality=self.prompt.effective_modality,
                              clip_duration=self.clip.duration, variant_answers=p.answers,
                              variant_confidence=p.confidence)
                for c, p in zip(self.completions, probes)]


def rollout_modality(sample: AVSample, single_sense_input: str) -> str:
    """The input a rollout shows `sample` with: "av", or its one needed sense when single_sense_input is "own", or
    for "mixed" one or the other by the question's id (half the single-sense questions each way, the same way at
    every visit, so the choice never depends on the step, the slot or the process)."""
    if sample.modality_needs not in ("video", "audio") or single_sense_input == "av":
        return "av"
    if single_sense_input == "mixed" and stable_seed(sample.id, "single-sense input") % 2:
        return "av"
    return sample.modality_needs


def rollout_groups(sampler, samples: list[AVSample], indices: list[int], slots: list[int], step: int,
                   cfg: TrainConfig, cache: ClipCache, skips: MediaSkips) -> list[PromptGroup]:
    """This process's groups of `step`: for each slot, its sample's clip and G completions under full AV input
    (a single-sense question under its own sense alone with data.single_sense_input=own).

    indices: the step's global dataset indices (one per slot); sampler: train/rollout_backends.py (the trainer's
    model or a vLLM server), which gets every prompt of the step at once.
    """
    loaded = [load_sample_clip(samples, indices[slot], cfg, cache, skips) for slot in slots]
    prompts = [make_prompt(sample, clip, rollout_modality(sample, cfg.data.single_sense_input),
                           interleave_audio=cfg.interleave_audio) for sample, clip in loaded]
    sampled = sampler.sample_groups(prompts, [stable_seed(cfg.run.seed, step, slot, "av") for slot in slots])
    return [PromptGroup(slot, sample, clip, prompt, completions)
            for slot, (sample, clip), prompt, completions in zip(slots, loaded, prompts, sampled)]


def probe_modality_variants(sampler, groups: list[PromptGroup], mode: str, cfg: TrainConfig, step: int) -> None:
    """Stage MA: each group's question under audio-only and video-only input; fills `group.probes`.

    accuracy mode: one completion per variant per rollout (as in the released code), compared by correctness.
    confidence mode: the probability of the AV rollout's chosen letter, teacher-forced under each input after the
    rollout's own text up to `<answer>` (sampler.option_probs: batched forwards, or single-token server requests).
    """
    tokenizer = sampler.policy.tokenizer
    variants = [{m: make_prompt(g.sample, g.clip, m, interleave_audio=cfg.interleave_audio) for m in ("audio", "video")}
                for g in groups]
    for group in groups:
        group.probes = [ModalityProbe() for _ in group.completions]
    if mode == "accuracy":
        # Every variant group of the step in one call: a server gets them in flight together.
        jobs = [(k, m) for k in range(len(groups)) for m in ("audio", "video")]
        sampled = sampler.sample_groups([variants[k][m] for k, m in jobs],
                                        [stable_seed(cfg.run.seed, step, groups[k].slot, m) for k, m in jobs])
        for (k, m), vcomps in zip(jobs, sampled):
            for probe, vcomp in zip(groups[k].probes, vcomps):
                probe.answers[m] = vcomp.text
        return
    for group, variant_prompts in zip(groups, variants):
        completions = group.completions
        letters = [parse_choice(extract_answer_block(c.text) or "", group.sample.options) for c in completions]
        prefixes = [answer_prefix_ids(tokenizer, c.text) for c in completions]
        rows = [i for i in range(len(completions)) if letters[i] and len(letters[i]) == 1 and prefixes[i]]
        # Called even when no completion has a letter: the sampler's forwards must not depend on what the
        # completions say (under a sharded engine every process runs the same forwards).
        probs = sampler.option_probs({"av": group.prompt, **variant_prompts}, [prefixes[i] for i in rows])
        for m, probs_RK in probs.items():
            for r, i in enumerate(rows):
                group.probes[i].confidence[m] = float(probs_RK[r, LETTERS.index(letters[i])])


def sampler_logprobs(completions: list[Completion]) -> tuple[torch.Tensor, torch.Tensor]:
    """(logp_BT, mask_BT) as the sampler reported them, right-padded with zeros."""
    T = max(len(c.token_ids) for c in completions)
    logp_BT = torch.zeros(len(completions), T)
    mask_BT = torch.zeros(len(completions), T)
    for i, c in enumerate(completions):
        logp_BT[i, : len(c.logp)] = torch.tensor(c.logp)
        mask_BT[i, : len(c.logp)] = 1
    return logp_BT, mask_BT


REASONING_TAG = "<thinking>"


def reasoning_mask(tokenizer, completion_ids: list[list[int]], mask_BT: torch.Tensor) -> torch.Tensor:
    """`mask_BT` with each completion's tokens before its first `<thinking>` zeroed (gspo.loss_span "reasoning").

    The token that carries the tag's first character stays in (e.g. "><" in "</caption><thinking>"); a completion
    without the tag keeps every token, so a reply that never reasons still takes its (format) penalty."""
    keep_BT = mask_BT.clone()
    for b, ids in enumerate(completion_ids):
        at = tokenizer.decode(ids).find(REASONING_TAG)
        if at < 0:
            continue
        lo, hi = 0, len(ids)  # the first k whose decoded prefix ids[:k + 1] reaches past character `at`
        while lo < hi:
            mid = (lo + hi) // 2
            if len(tokenizer.decode(ids[: mid + 1])) > at:
                hi = mid
            else:
                lo = mid + 1
        keep_BT[b, :lo] = 0
    return keep_BT
