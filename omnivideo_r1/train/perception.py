"""Perception pretraining: the stand-in for the pretraining a real Qwen-Omni checkpoint has had.

A random tiny thinker cannot see or hear the synthetic world, and RL cannot teach it to (a reward for the right
letter carries far too little signal). This stage gives the RL arms a base that perceives, honestly: supervised
training on perception only, on clips drawn fresh from the world generator every step (a seed no evaluation world
uses), never on the cross-modal ("both") questions the RL stages are judged on. Each clip gives one task:
  - a time-grounded caption of its shapes (silent video or AV) or of its sounds (audio only or AV);
  - a single-modality question (modality_needs "video" / "audio") answered in the compact grounded format.
Alongside, the media-word objective: the hidden state at every video / audio placeholder token predicts through
the LM head the content word of what that token shows or hears (train/perception_data.py). That dense signal is
what makes the encoders and the language model's reading of media tokens learnable in minutes.

    from omnivideo_r1.train.perception import PerceptionConfig, train_perception
    history = train_perception(policy, world_config, PerceptionConfig())

What the trained base perceives is measured in train/perception_measure.py.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import numpy as np
import torch

from ..algo.schedule import warmup_cosine
from ..policy.forward import thinker_of
from ..schema import AVSample
from ..synth.questions import LetterDeck
from ..synth.scene import WorldConfig
from ..synth.world import make_clip
from .perception_data import (ANSWER_STYLES, CAPTION_REQUEST, QUESTION_EVIDENCE, Weights, audio_token_labels,
                              caption_target, clip_from_frames, media_words, question_target,
                              single_modality_question, tokenize_pieces, video_token_labels, word_ids)

TASKS = ("video_caption", "audio_caption", "video_question", "audio_question", "letter_drill", "readout_drill")


@dataclass
class PerceptionConfig:
    """Perception pretraining of a (tiny) policy on fresh synthetic clips."""

    steps: int = 600
    """Optimizer steps, ~1.2 s each for the "demo" size on one thread (600: ~12 min). The accuracy they reach, per
    setting, on a held-out world: docs/demo-results.md."""
    batch_size: int = 8
    """Clips per step (one task each)."""
    lr: float = 3e-3
    """AdamW peak learning rate (a small random model needs a large one)."""
    warmup_steps: int = 50
    """Linear warm-up steps of the learning rate."""
    min_lr_fraction: float = 0.05
    """Cosine decay of the learning rate to lr * this at the last step."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    seed: int = 1000
    """Seed of the training clips' world; keep it apart from every evaluation world's seed."""
    fps: float = 2.0
    """Frames sampled per second, as the evaluation decodes them."""
    max_frames: int = 8
    """Frames per clip, as in evaluation."""
    max_pixels: int | None = 96 * 64
    """Per-frame pixel cap, as in evaluation (None: the world's frame size)."""
    caption_share: tuple[float, float] = (0.5, 0.2)
    """Share of caption tasks (the rest are questions) at the first and the last step, linear in between: captions
    first teach what is where and when, questions then teach reading that out against the options."""
    av_share: float = 0.5
    """Share of tasks shown with both senses; the rest get only the sense the task is about (silent video or audio
    alone), the conditions the single-modality evaluation and the MA probes use."""
    caption_both_share: float = 0.0
    """Share of the caption tasks shown with both senses whose request and target cover both senses' events, in
    one listing in time order (what a reply to a cross-modal question starts with), instead of only the sense the
    task is about (0: the packaged base's recipe). Why: from both senses the packaged base's replies find 71% of
    the shapes and 61% of the sounds, against 86% each from one sense alone. Measured as 200 more steps on the
    packaged base (docs/demo-results.md): no effect against the same steps without it ("both" 39.3 against 42.3,
    sounds found 63.1 against 65.7); from the start of a build it was not measured."""
    question_evidence: str = "all"
    """What question targets ground before answering: "all" events of the needed sense, all events of every sense
    in the "input" (both timelines when it has audio and video), or the "query"'s own evidence segments
    (train/perception_data.py: question_target)."""
    time_question_share: float = 0.0
    """Share of question tasks that name a time window ("What colour was the shape on screen at 1.0-1.5 s?",
    "Which sound was heard at 2.0-3.0 s?"): single-modality, yet the same reading of a time span against the other
    events that a cross-modal question needs once it has found its sound's or shape's span. Measured
    (docs/demo-results.md): with the screen-position fix, a 1500-step base at 0.5 answers "both" questions on two
    fresh worlds at 35.1 / 40.3% against 14.9 / 14.3% at 0 (which answers a colour or a sound where the options are
    shapes), single-modality accuracy unchanged within noise; with model seed 1 "both" stayed put and video-only
    rose 7-9 points. 0.5 in the perceive and full presets."""
    media_word_weight: float = 1.0
    """Weight of the media-word loss relative to the target-text loss."""
    weights: Weights = field(default_factory=Weights)
    """Per-token weights of content words, times and template text in the targets."""
    answer_style: str = "text"
    """How question targets answer after `<thinking> answer text</thinking>`: "text" (`<answer> red circle</answer>`,
    the option's own text, which the shared answer parser and the answer reward read as that option's letter) or
    "letter" (`<answer>B</answer>`). Measured: after 600 steps the model writes the right answer text but a
    chance-level letter, since finding the letter of the option whose text matches is a lookup it learns last."""
    letter_drill_rows: int = 0
    """Extra text-only rows per step that train reading the option letter off the options list: a single-modality
    question without its clip, the answer text given as part of the target (no loss), the loss on the letter only.
    The letter lookup is what the model learns last (it writes the right answer text, then a chance letter);
    these rows are cheap (no media towers) and give it many more examples."""
    readout_drill_rows: int = 0
    """Extra text-only rows per step that train answering from a listing: a single-modality question about a
    freshly drawn timeline with no clip, the correct listing of the needed sense given in the target (no loss), the
    loss on the answer text only. With no media tokens the answer can only come from the listing, which the bases
    otherwise learn to bypass (they answer from the media tokens). Measured with 32 rows a step (docs/demo-results.md):
    on two fresh worlds video-only questions on silent video 43.9 / 37.8% -> 62.0 / 66.1%, audio alone unchanged,
    but audio-only questions asked with audio and video 76.5 / 83.4% -> 68.7 / 63.5%."""
    readout_drill_av_share: float = 0.0
    """Share of read-out drills whose given listing holds both timelines, as a reply to a question asked with
    audio and video does, instead of only the needed sense's: the answer must then be read from the right half of
    a merged listing (0: every drill lists one sense, the packaged base's recipe). Measured at 1.0
    (docs/demo-results.md): on two fresh worlds "both" 43.9 / 36.1% -> 48.2 / 55.5% and audio-only questions asked
    with audio and video 68.7 / 63.5% -> 72.1 / 75.1%, but video-only on silent video 62.0 / 66.1% -> 43.9 / 37.8%;
    0.5 lost video-only as much and gained nothing."""
    named_scan: bool = False
    """Write the reasoning of questions about a named shape or screen position ("What colour was the circle?") as
    a scan of the listed shapes up to the match, `<thinking> triangle no, circle yes, green</thinking>`, in
    question tasks and read-out drills (perception_data.scan_text); false: the answer text alone, the packaged
    base's recipe. Measured (docs/demo-results.md): a base rebuilt with it answers video-only questions on silent
    video at 81.6% on two fresh worlds (65.5% without; named shape 43 -> 93%, named position 43 -> 66%), but the
    cross-modal questions asked with both senses fall 44.9 -> 25.2% ("What colour was the shape on screen when the
    ... was heard?" gets a shape word, a scan's first word, for an answer). Hence off; with window_scan most of that
    loss comes back (see there)."""
    window_scan: bool = False
    """Write the reasoning of time-window questions ("What colour was the shape on screen at 1.0-1.5 s?") as a
    scan of the listed events' time spans up to the first inside the window, `<thinking> 0.0-1.0 no, 1.0-2.0 yes,
    green</thinking>` (perception_data.window_scan_text), in question tasks and read-out drills; false: the answer
    text alone, the packaged base's recipe. Meant to go with named_scan: the cross-modal questions share the
    time-window questions' wording, and should get a scan by time instead of a named scan's shape word. Measured
    with named_scan in two rebuilt bases (docs/demo-results.md): video-only questions on silent video 77.3 / 77.9%
    on the test splits (63.6 / 62.1% without either scan), cross-modal questions asked with both senses 40.6 /
    42.0% (26.1% with named_scan alone; 42.2 / 42.0% without either), audio questions asked with both senses 5-7
    points lower; RL on top gains nothing. Hence off."""
    option_letter_weight: float = 0.0
    """Weight of the option-letter loss: the hidden state at each token of an option's text in the prompt
    predicts that option's answer-letter token. It writes each option's letter where its text is, so answering
    becomes finding the option whose text matches the answer text and copying what is stored there."""
    grad_clip: float = 1.0
    """Gradient norm clip."""
    log_every: int = 50
    """Print a progress line every this many steps (0: never)."""

    def __post_init__(self) -> None:
        if isinstance(self.weights, dict):
            self.weights = Weights(**self.weights)
        self.caption_share = tuple(self.caption_share)
        if self.steps < 1 or self.batch_size < 1 or self.lr <= 0 or not 0 < self.min_lr_fraction <= 1:
            raise ValueError(f"PerceptionConfig: steps, batch_size, lr must be positive, min_lr_fraction in (0, 1] "
                             f"({self})")
        if self.letter_drill_rows < 0 or self.readout_drill_rows < 0:
            raise ValueError(f"PerceptionConfig: letter_drill_rows and readout_drill_rows must be >= 0 ({self})")
        if self.question_evidence not in QUESTION_EVIDENCE:
            raise ValueError(f"PerceptionConfig: question_evidence {self.question_evidence!r} must be one of "
                             f"{QUESTION_EVIDENCE}")
        if self.answer_style not in ANSWER_STYLES:
            raise ValueError(f"PerceptionConfig: answer_style {self.answer_style!r} must be one of {ANSWER_STYLES}")
        if not all(0.0 <= s <= 1.0 for s in (*self.caption_share, self.av_share, self.caption_both_share,
                                             self.time_question_share, self.readout_drill_av_share)):
            raise ValueError(f"PerceptionConfig: caption_share, av_share, caption_both_share, time_question_share "
                             f"and readout_drill_av_share must lie in [0, 1] ({self})")
        if self.readout_drill_av_share > 0 and self.question_evidence != "input":
            raise ValueError(f"PerceptionConfig: readout_drill_av_share {self.readout_drill_av_share} needs "
                             f"question_evidence=input (with {self.question_evidence!r} a listing never holds the "
                             f"other sense); set question_evidence=input or readout_drill_av_share=0")


@dataclass
class Task:
    """One training row: a prompt, its target tokens with weights, and the media-word labels of its clip."""

    prompt: Any
    """PolicyPrompt."""
    ids: list[int]
    """Target token ids (ending with <|im_end|>)."""
    weights: list[float]
    """Loss weight per target token."""
    timeline: Any
    """The clip's Timeline (media-word labels are computed once its token counts are known)."""
    kind: str
    """One of TASKS."""


def caption_sample(needs: str, clip_id: str) -> AVSample:
    """The placeholder sample of a caption task (it has no options; its request is the user text)."""
    return AVSample(id=f"perception-{clip_id}-{needs}", video="", question=CAPTION_REQUEST[needs],
                    options=["-", "-"], answer="A", modality_needs=needs, source="perception")


def _make_task(policy, world: WorldConfig, cfg: PerceptionConfig, index: int, kind: str, rng: np.random.Generator,
               deck: LetterDeck, eos: int) -> Task | None:
    from ..policy.prompting import PolicyPrompt, make_prompt
    from ..policy.tokenizer import DEFAULT_SYSTEM

    synth = make_clip(cfg.seed, index, world)
    clip = clip_from_frames(synth.frames_THWC, synth.audio, world, cfg.fps, cfg.max_frames, cfg.max_pixels)
    needs = "video" if kind.startswith("video") else "audio"
    modality = "av" if rng.random() < cfg.av_share else needs
    if modality == "video":
        clip = clip.silent()
    if kind.endswith("caption"):
        # No draw at share 0, so the packaged base's recipe sees the same clips and tasks as before the option.
        listed = "both" if modality == "av" and cfg.caption_both_share > 0 and \
            rng.random() < cfg.caption_both_share else needs
        # Captions use the plain system turn: the grounded-answer instructions are about answering questions.
        prompt = PolicyPrompt(caption_sample(listed, str(index)), clip, modality, DEFAULT_SYSTEM,
                              CAPTION_REQUEST[listed])
        pieces = caption_target(synth.timeline, "av" if listed == "both" else listed, cfg.weights)
    else:
        # No draw at share 0, so runs without time-window questions see the same clips and tasks as before.
        time_window = cfg.time_question_share > 0 and rng.random() < cfg.time_question_share
        sample = single_modality_question(synth.timeline, world, rng, deck, needs, f"perception-{index}",
                                          time_window=time_window)
        if sample is None:
            return None
        prompt = make_prompt(sample, clip, modality)
        pieces = question_target(sample, synth.timeline, cfg.weights, cfg.question_evidence,
                                 cfg.answer_style, modality, cfg.named_scan, cfg.window_scan)
    ids, weights = tokenize_pieces(policy.tokenizer, pieces)
    return Task(prompt, ids + [eos], weights + [cfg.weights.template], synth.timeline, kind)


def _letter_drill_task(policy, world: WorldConfig, rng: np.random.Generator, deck: LetterDeck, index: int,
                       eos: int) -> Task | None:
    from ..policy.prompting import make_prompt
    from ..synth.scene import sample_timeline

    timeline = sample_timeline(rng, world)
    needs = "video" if rng.random() < 0.5 else "audio"
    sample = single_modality_question(timeline, world, rng, deck, needs, f"drill-{index}")
    if sample is None:
        return None
    silent = Weights(content=0.0, time=0.0, template=0.0)
    pieces = question_target(sample, timeline, silent)[-5:]  # <thinking> text </thinking><answer> X </answer>
    pieces[3] = (pieces[3][0], 1.0)
    ids, weights = tokenize_pieces(policy.tokenizer, pieces)
    # No system turn: it is ~130 of the prompt's ~250 tokens and plays no part in finding the letter.
    prompt = replace(make_prompt(sample, None, "text"), system="")
    return Task(prompt, ids + [eos], weights + [0.0], timeline, "letter_drill")


def _readout_drill_task(policy, world: WorldConfig, cfg: PerceptionConfig, rng: np.random.Generator,
                        deck: LetterDeck, index: int, eos: int) -> Task | None:
    from ..policy.prompting import make_prompt
    from ..synth.scene import sample_timeline

    timeline = sample_timeline(rng, world)
    needs = "video" if rng.random() < 0.5 else "audio"
    time_window = rng.random() < cfg.time_question_share
    sample = single_modality_question(timeline, world, rng, deck, needs, f"readout-drill-{index}",
                                      time_window=time_window)
    if sample is None:
        return None
    # Drawn only when asked for, so that a recipe without merged listings keeps its random stream (and the
    # packaged base its bytes).
    merged = cfg.readout_drill_av_share > 0 and rng.random() < cfg.readout_drill_av_share
    given = Weights(content=0.0, time=0.0, template=0.0)
    pieces = question_target(sample, timeline, given, cfg.question_evidence, cfg.answer_style,
                             "av" if merged else needs, cfg.named_scan, cfg.window_scan)
    # The last five pieces are <thinking>, the answer text, </thinking><answer>, the answer, </answer>.
    pieces[-4] = (pieces[-4][0], cfg.weights.content)
    pieces[-2] = (pieces[-2][0], cfg.weights.content)
    ids, weights = tokenize_pieces(policy.tokenizer, pieces)
    return Task(make_prompt(sample, None, "text"), ids + [eos], weights + [0.0], timeline, "readout_drill")


def last_hidden_states(model, batch: dict, use_audio_in_video: bool):
    """Last hidden states of the whole batch (run inside the policy's prepared module)."""
    thinker = thinker_of(model)
    return thinker.model(**batch, use_audio_in_video=use_audio_in_video, use_cache=False).last_hidden_state


def _media_targets(policy, tasks: list[Task], batch: dict, world: WorldConfig, words: dict[str, int],
                   frame_times: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(mask of video positions, their label matrix, mask of audio positions, their label matrix); a label matrix
    holds one row per token with 1/k on each of its k words (a token showing a red circle answers "red" and
    "circle" with half the mass each)."""
    tok = policy.tokenizer
    ids = batch["input_ids"]
    v_mask = ids == tok.convert_tokens_to_ids(tok.video_token)
    a_mask = ids == tok.convert_tokens_to_ids(tok.audio_token)
    vocab = thinker_of(policy.model).config.get_text_config().vocab_size
    grids = batch.get("video_grid_thw")
    v_rows, a_rows, g = [], [], 0
    for row, task in enumerate(tasks):
        n_v = int(v_mask[row].sum())
        if n_v:
            labels = video_token_labels(task.timeline, world, frame_times[row], grids[g].tolist())
            g += 1
            if len(labels) != n_v:
                raise RuntimeError(f"{len(labels)} video labels for {n_v} video tokens")
            v_rows += labels
        n_a = int(a_mask[row].sum())
        if n_a:
            a_rows += audio_token_labels(task.timeline, n_a, world.duration_s)

    def matrix(rows: list[list[str]]) -> torch.Tensor:
        out = torch.zeros(len(rows), vocab)
        for i, ws in enumerate(rows):
            for w in ws:
                out[i, words[w]] += 1.0 / len(ws)
        return out

    return v_mask, matrix(v_rows), a_mask, matrix(a_rows)


def _soft_ce(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Cross-entropy against soft targets over labelled rows -> (sum of losses, correct top-1 count, rows)."""
    keep = target.sum(-1) > 0
    if not keep.any():
        return logits.sum() * 0.0, torch.tensor(0), 0
    logits, target = logits[keep], target[keep]
    loss = -(torch.log_softmax(logits.float(), -1) * target).sum()
    correct = (target.gather(1, logits.argmax(-1, keepdim=True)) > 0).sum()
    return loss, correct, int(keep.sum())


def task_loss(policy, tasks: list[Task], world: WorldConfig, words: dict[str, int], media_word_weight: float,
              option_letter_weight: float = 0.0, letter_ids: list[int] | None = None
              ) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted target cross-entropy (mean over weight) + media-word cross-entropy (mean over labelled tokens) for
    tasks that share one audio flag; returns (loss, stats)."""
    prompts = [t.prompt for t in tasks]
    batch, flag, prompt_len, ids_BS, mask_BS = policy._prompt_suffix_batch(prompts, [t.ids for t in tasks])
    hidden = policy.forward_module_for(None)(last_hidden_states, batch, flag)
    lm_head = thinker_of(policy.model).lm_head
    w_BS = torch.zeros(ids_BS.shape)
    for row, t in enumerate(tasks):
        w_BS[row, : len(t.weights)] = torch.as_tensor(t.weights)
    logits = lm_head(hidden[:, prompt_len - 1: prompt_len - 1 + ids_BS.shape[1]]).float()
    nll_BS = torch.nn.functional.cross_entropy(logits.transpose(1, 2), ids_BS, reduction="none")
    text_loss = (nll_BS * w_BS).sum() / w_BS.sum().clamp_min(1e-6)
    content = w_BS >= 1.0
    hit_BS = (logits.argmax(-1) == ids_BS) & content
    stats = {"text_loss": float(text_loss.detach()), "content_correct": float(hit_BS.sum()),
             "content_n": float(content.sum())}
    for row, t in enumerate(tasks):  # content-token accuracy per task kind, to see which one lags
        stats[f"{t.kind}_correct"] = stats.get(f"{t.kind}_correct", 0.0) + float(hit_BS[row].sum())
        stats[f"{t.kind}_n"] = stats.get(f"{t.kind}_n", 0.0) + float(content[row].sum())
    frame_times_rows = [t.prompt.clip.frame_times_T if t.prompt.effective_modality in ("av", "video") else None
                        for t in tasks]
    v_mask, v_target, a_mask, a_target = _media_targets(policy, tasks, batch, world, words, frame_times_rows)
    media_loss, n_media = hidden.new_zeros(()), 0
    for name, mask, target in (("video", v_mask, v_target), ("audio", a_mask, a_target)):
        if mask.any():
            loss_sum, correct, n = _soft_ce(lm_head(hidden[mask]), target)
            media_loss, n_media = media_loss + loss_sum, n_media + n
            stats[f"{name}_word_correct"], stats[f"{name}_word_n"] = float(correct), float(n)
    media_loss = media_loss / max(1, n_media)
    stats["media_loss"] = float(media_loss.detach())
    loss = text_loss + media_word_weight * media_loss
    positions, letters = option_letter_targets(policy.tokenizer, batch["input_ids"][:, :prompt_len],
                                               [t.prompt.sample for t in tasks], letter_ids)
    if option_letter_weight and positions:
        rows, cols = zip(*positions)
        logits_opt = lm_head(hidden[list(rows), list(cols)]).float()
        target = torch.as_tensor(letters)
        opt_loss = torch.nn.functional.cross_entropy(logits_opt, target)
        loss = loss + option_letter_weight * opt_loss
        stats["option_loss"] = float(opt_loss.detach())
        stats["option_correct"], stats["option_n"] = float((logits_opt.argmax(-1) == target).sum()), len(letters)
    return loss, stats


def answer_letter_ids(tokenizer, n: int = 4) -> list[int]:
    """The token the model writes for each option letter right after `<answer>` (it merges with the ">")."""
    from ..schema import LETTERS

    return [tokenizer.encode(f"<answer>{letter}", add_special_tokens=False)[-1] for letter in LETTERS[:n]]


def option_letter_targets(tokenizer, prompt_ids, samples, letter_ids: list[int]
                          ) -> tuple[list[tuple[int, int]], list[int]]:
    """(row, position) of every token of every option's text in the prompts' option lists ("\nB. red circle\n"),
    and the answer-letter token each should predict. Rows whose prompt has no option list give nothing."""
    from ..schema import LETTERS

    newline, dot = (tokenizer.convert_tokens_to_ids(tokenizer.tokenize(t))[0] for t in ("\n", "."))
    letter_tok = [tokenizer.convert_tokens_to_ids(tokenizer.tokenize(letter))[0] for letter in LETTERS[:4]]
    positions, labels = [], []
    for row, sample in enumerate(samples):
        if sample.source == "perception":  # caption tasks have no options
            continue
        ids = prompt_ids[row].tolist()
        n = len(sample.options)
        starts = [i for i in range(len(ids) - 2) if ids[i] == newline and ids[i + 1] == letter_tok[0]
                  and ids[i + 2] == dot]
        if not starts or n > len(letter_ids):
            continue
        i = starts[-1] + 3  # the last "\nA." opens the option list
        for k in range(n):
            while i < len(ids) and ids[i] != newline:
                positions.append((row, i))
                labels.append(letter_ids[k])
                i += 1
            i += 3  # "\n", the next letter, "."
    return positions, labels


def _draw_rows(n: int, index: int, make: Callable[[int], Task | None]) -> tuple[list[Task], int]:
    """`n` rows from `make(index)`, which gives None when what it drew has no such task, and the next index: every
    attempt uses one up, so no clip is drawn twice."""
    rows: list[Task] = []
    while len(rows) < n:
        task = make(index)
        index += 1
        if task is not None:
            rows.append(task)
    return rows, index


def _task_kind(step: int, cfg: PerceptionConfig, rng: np.random.Generator) -> str:
    frac = step / max(1, cfg.steps - 1)
    caption_share = cfg.caption_share[0] + (cfg.caption_share[1] - cfg.caption_share[0]) * frac
    group = "caption" if rng.random() < caption_share else "question"
    return f"{'video' if rng.random() < 0.5 else 'audio'}_{group}"


def train_perception(policy, world: WorldConfig, cfg: PerceptionConfig, log: Callable[[str], None] = print
                     ) -> list[dict[str, float]]:
    """Train `policy` in place on fresh clips of `world` (seeded by cfg.seed); returns one stats dict per step
    (loss, text_loss, media_loss, content / video-word / audio-word token accuracy, seconds)."""
    rng = np.random.default_rng(np.random.SeedSequence(entropy=cfg.seed, spawn_key=(7,)))
    deck = LetterDeck(np.random.default_rng(np.random.SeedSequence(entropy=cfg.seed, spawn_key=(8,))))
    eos = policy.tokenizer.convert_tokens_to_ids("<|im_end|>")
    words = word_ids(policy.tokenizer, media_words(world))
    letter_ids = answer_letter_ids(policy.tokenizer)
    # Drills draw from their own stream, so the number of drill rows does not change which questions they get.
    drill_rng = np.random.default_rng(cfg.seed + 1024)
    drill_deck = LetterDeck(np.random.default_rng(cfg.seed + 1025))
    params = [p for p in policy.model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: warmup_cosine(
        s, cfg.warmup_steps, max(1, cfg.steps - cfg.warmup_steps - 1), cfg.min_lr_fraction))
    history: list[dict[str, float]] = []
    index = 0
    policy.model.train()
    t_start = time.perf_counter()
    for step in range(cfg.steps):
        tasks, index = _draw_rows(cfg.batch_size, index, lambda i: _make_task(
            policy, world, cfg, i, _task_kind(step, cfg, rng), rng, deck, eos))
        drills, index = _draw_rows(cfg.letter_drill_rows, index,
                                   lambda i: _letter_drill_task(policy, world, rng, deck, i, eos))
        readouts, index = _draw_rows(cfg.readout_drill_rows, index, lambda i: _readout_drill_task(
            policy, world, cfg, drill_rng, drill_deck, i, eos))
        tasks += drills + readouts
        groups: dict[bool, list[Task]] = {}
        for t in tasks:
            groups.setdefault(t.prompt.use_audio_in_video, []).append(t)
        optimizer.zero_grad(set_to_none=True)
        totals: dict[str, float] = {}
        for group in groups.values():
            loss, stats = task_loss(policy, group, world, words, cfg.media_word_weight, cfg.option_letter_weight,
                                    letter_ids)
            (loss * len(group) / len(tasks)).backward()
            stats["loss"] = float(loss.detach())
            for k, v in stats.items():
                weight = len(group) / len(tasks) if k.endswith("loss") else 1.0
                totals[k] = totals.get(k, 0.0) + v * weight
        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        optimizer.step()
        scheduler.step()
        row = {k: v for k, v in totals.items() if k.endswith("loss")}
        for name in ("content", "video_word", "audio_word", "option", *TASKS):
            n = totals.get(f"{name}_n", 0.0)
            row[f"{name}_acc"] = totals.get(f"{name}_correct", 0.0) / n if n else float("nan")
        row["seconds"] = time.perf_counter() - t_start
        history.append(row)
        if cfg.log_every and (step % cfg.log_every == 0 or step == cfg.steps - 1):
            window = history[-cfg.log_every:]
            mean = {}
            for k in row:  # over the steps that had the quantity (drills, letter targets and tasks are optional)
                vals = [h[k] for h in window if h[k] == h[k]]
                if vals:
                    mean[k] = float(np.mean(vals))
            accs = [("content", "content"), ("video-word", "video_word"), ("audio-word", "audio_word"),
                    ("option-letter", "option"), *((k, k) for k in TASKS)]
            log(f"perception step {step + 1}/{cfg.steps}: loss {mean['loss']:.3f} (text {mean['text_loss']:.3f}, "
                f"media {mean['media_loss']:.3f}); accuracy "
                + ", ".join(f"{label} {mean[key + '_acc']:.2f}" for label, key in accs if key + "_acc" in mean)
                + f" ({row['seconds']:.0f}s)")
    policy.model.eval()
    return history
