"""Warm start: a short supervised phase that teaches a (tiny, random) policy the output format.

Targets are built from each sample's reference time-caption pairs, e.g.
`<time>1.0-2.0</time><caption>A red circle appears on the left.</caption><thinking>...</thinking><answer>B</answer>`.
A real Qwen-Omni checkpoint follows the format from the prompt alone and needs no warm start.

Two target styles: "full" restates the question in the thinking and writes the answer as "B. red" (~80 tokens on
the synthetic world, up to ~135); "compact" keeps the same tags and segments but thinks only the answer text and
answers with the letter (~40 tokens), so that a completion fits a short generation budget: a target longer than
`max_new_tokens` teaches the policy replies that are always cut before `<answer>`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from ..algo.schedule import warmup_cosine
from ..schema import AVSample, TimeCaption, time_span_text


@dataclass
class SFTConfig:
    steps: int = 60
    """Optimizer steps."""
    batch_size: int = 8
    """Samples per step."""
    lr: float = 3e-3
    """AdamW learning rate (a random tiny model needs a large one)."""
    seed: int = 0
    """Data order seed."""
    max_segments: int = 3
    """At most this many reference segments in a target (keeps completions short)."""
    target_style: str = "full"
    """"full" or "compact" (see the module docstring)."""
    min_lr_fraction: float = 1.0
    """Cosine decay of the learning rate to lr * this at the last step (1.0: constant). A large warm-start rate
    learns the format fast; decaying it lets the last steps settle instead of bouncing."""

    def __post_init__(self) -> None:
        if self.target_style not in ("full", "compact"):
            raise ValueError(f"SFTConfig.target_style {self.target_style!r} must be 'full' or 'compact'")
        if self.steps < 1 or self.batch_size < 1 or not 0.0 < self.min_lr_fraction <= 1.0:
            raise ValueError(f"SFTConfig: steps and batch_size must be >= 1 and min_lr_fraction in (0, 1] ({self})")


def format_target(sample: AVSample, max_segments: int, style: str = "full") -> str:
    """The ideal completion for a sample with reference time-caption pairs.

    When the record names the evidence its question needs (`extra["evidence"]`, as the synthetic world does), only
    those segments are used: the target then shows query-focused grounding rather than a list of every event.
    """
    evidence = [TimeCaption(float(e["start"]), float(e["end"]), str(e["caption"]))
                for e in sample.extra.get("evidence", [])]
    pairs = sorted(evidence or sample.time_captions, key=lambda tc: tc.start)[:max_segments]
    segments = "".join(f"<time>{time_span_text(tc.start, tc.end)}</time><caption>{tc.caption}</caption>"
                       for tc in pairs)
    if style == "compact":
        return f"{segments}<thinking>{sample.answer_text}</thinking><answer>{sample.answer}</answer>"
    thinking = f"The question asks: {sample.question} The clues point to {sample.answer_text}."
    return f"{segments}<thinking>{thinking}</thinking><answer>{sample.answer}. {sample.answer_text}</answer>"


def warm_start(policy, samples: list[AVSample], load_clip_fn, cfg: SFTConfig, log=print) -> list[float]:
    """Teacher-forced cross-entropy on format targets; returns the loss per step."""
    rng = random.Random(cfg.seed)
    params = [p for p in policy.model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr)
    # Cosine from lr to lr * min_lr_fraction over the steps (constant when the fraction is 1).
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_cosine(step, 0, cfg.steps - 1, cfg.min_lr_fraction))
    eos = policy.tokenizer.convert_tokens_to_ids("<|im_end|>")
    usable = [s for s in samples if s.time_captions]
    if not usable:
        raise ValueError("warm start needs samples with reference time_captions (e.g. the synthetic world)")
    losses = []
    policy.model.train()
    for step in range(cfg.steps):
        batch = rng.sample(usable, min(cfg.batch_size, len(usable)))
        optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for group in _by_audio(batch, load_clip_fn, policy, cfg.max_segments, cfg.target_style).values():
            prompts, targets = zip(*group)
            ids = [policy.tokenizer.encode(t, add_special_tokens=False) + [eos] for t in targets]
            logp_BT, mask_BT = policy.logprobs(list(prompts), ids)
            loss = -(logp_BT * mask_BT).sum() / mask_BT.sum() * len(group) / len(batch)
            loss.backward()
            total += float(loss.detach())
        optimizer.step()
        scheduler.step()
        losses.append(total)
        if step % max(1, cfg.steps // 5) == 0 or step == cfg.steps - 1:
            log(f"warm start step {step + 1}/{cfg.steps}: loss {total:.3f}")
    policy.model.eval()
    return losses


def _by_audio(batch, load_clip_fn, policy, max_segments: int, style: str):
    """Group (prompt, target) pairs so a silent clip is never batched with an audible one."""
    groups: dict[bool, list] = {}
    for sample in batch:
        clip = load_clip_fn(sample)
        if clip is None:
            continue
        prompt = policy.make_prompt(sample, clip, "av")
        groups.setdefault(clip.has_audio, []).append((prompt, format_target(sample, max_segments, style)))
    return groups
