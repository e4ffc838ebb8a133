"""Model inputs as plain records: which sample, which decoded clip, which senses, and the chat messages.

Kept apart from `omni.py` (the model plumbing) so evaluation and rewards can build and inspect prompts without
loading a model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import prompts as prompt_text
from ..media.types import Clip
from ..schema import MODALITIES, AVSample
from .tokenizer import DEFAULT_SYSTEM

PROMPT_MODALITIES = (*MODALITIES, "text")
"""The input conditions (schema.MODALITIES) plus "text": the question without any media."""


@dataclass
class PolicyPrompt:
    """One model input: a sample, its decoded clip, and which senses the model is given."""

    sample: AVSample
    """The question record."""
    clip: Clip | None
    """Decoded media (None only for modality "text")."""
    modality: str
    """Requested input: "av" (frames + audio), "video" (frames only), "audio" (audio only) or "text"."""
    system: str
    """System turn text; "" sends no system turn (some benchmarks' own prompts have none)."""
    user_text: str
    """User turn text (question, lettered options, format instruction); media items come before it."""
    interleave_audio: bool = True
    """When the audio is the video's own track: True interleaves it with the frames (Qwen-Omni's
    use_audio_in_video); False gives it as a separate audio item after the video, as the released training data
    does and as vLLM's server needs (its use_audio_in_video is broken in `vllm serve`)."""

    @property
    def effective_modality(self) -> str:
        """What the model actually gets: "av" on a clip without audio is a silent video ("video")."""
        if self.modality == "av" and (self.clip is None or self.clip.audio is None):
            return "video"
        return self.modality

    @property
    def use_audio_in_video(self) -> bool:
        """True when the audio is the video's own track (interleaved with frames); False for a separate file."""
        return self.effective_modality == "av" and self.sample.audio is None and self.interleave_audio


@dataclass
class Completion:
    """One sampled completion of one prompt."""

    prompt_index: int
    """Index of its prompt in the list given to `sample`."""
    token_ids: list[int]
    """Generated ids, ending with the EOS id when the model stopped, else cut at max_new_tokens."""
    text: str
    """Decoded text without special tokens."""
    logp: list[float]
    """Sampler's log-prob of each token under softmax(logits / temperature), before top-p and suppression."""
    truncated: bool
    """True when max_new_tokens was reached without EOS."""


def make_prompt(sample: AVSample, clip: Clip | None, modality: str, reasoning: bool = True,
                interleave_audio: bool = True) -> PolicyPrompt:
    """Build the prompt for `sample` shown with `modality`; checks the clip has what the modality needs.

    interleave_audio=False: a video's own sound goes in as a separate audio item (see PolicyPrompt)."""
    if modality not in PROMPT_MODALITIES:
        raise ValueError(f"sample {sample.id}: modality {modality!r} must be one of {PROMPT_MODALITIES}")
    if modality in ("av", "video") and (clip is None or clip.frames_THWC is None):
        raise ValueError(f"sample {sample.id}: modality {modality!r} needs a clip with frames ({sample.video})")
    if modality == "audio" and (clip is None or clip.audio is None):
        raise ValueError(f"sample {sample.id}: modality 'audio' needs a clip with audio; {sample.video} has none")
    system = prompt_text.SYSTEM_PROMPT if reasoning else DEFAULT_SYSTEM
    return PolicyPrompt(sample, clip if modality != "text" else None, modality, system,
                        prompt_text.question_text(sample, reasoning), interleave_audio)


def group_by_audio_flag(prompts: list[PolicyPrompt]) -> dict[bool, list[int]]:
    """Indices of `prompts` grouped by their use_audio_in_video flag (each group can be one batch)."""
    groups: dict[bool, list[int]] = {}
    for i, p in enumerate(prompts):
        groups.setdefault(p.use_audio_in_video, []).append(i)
    return groups


def conversation(prompt: PolicyPrompt) -> list[dict[str, Any]]:
    """The chat messages for `prompt`, media items first (as the Qwen-Omni evaluations do), then the text."""
    content: list[dict[str, Any]] = []
    mode = prompt.effective_modality
    if mode in ("av", "video"):
        content.append({"type": "video", "video": prompt.clip.path})
    if mode == "audio" or (mode == "av" and not prompt.use_audio_in_video):
        content.append({"type": "audio", "audio": prompt.sample.audio or prompt.clip.path})
    content.append({"type": "text", "text": prompt.user_text})
    system = [{"role": "system", "content": prompt.system}] if prompt.system else []
    return system + [{"role": "user", "content": content}]
