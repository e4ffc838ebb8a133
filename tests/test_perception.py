"""Perception: media towers that respond to the clip at init, the pretraining targets, and a short training run."""

from __future__ import annotations

import numpy as np

from omnivideo_r1.answers import extract_answer_block, parse_choice
import pytest
import torch

from helpers import FAMILIES
from omnivideo_r1.synth.scene import WorldConfig
from omnivideo_r1.synth.world import make_clip
from omnivideo_r1.train.perception_data import (NOTHING_WORD, Weights, audio_token_labels, caption_target,
                                                clip_from_frames, question_target, single_modality_question,
                                                tokenize_pieces, video_token_labels)

WORLD = WorldConfig(width=96, height=64)


def _clip(index: int, world: WorldConfig = WORLD):
    synth = make_clip(5, index, world)
    return synth, clip_from_frames(synth.frames_THWC, synth.audio, world, 2.0, 8, world.width * world.height)


def _relative_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    n = min(len(a), len(b))
    return float((a[:n] - b[:n]).norm() / a[:n].norm())


@pytest.mark.parametrize("family", FAMILIES)
def test_fresh_model_media_embeddings_change_with_the_clip(tiny_dirs, family, one_thread):
    # Under the stock 0.02-std init the audio tower's output differed by ~1e-4 (relative) between any two clips:
    # the log-mel content was swamped by the position table, and no gradient could teach the model to hear.
    from omnivideo_r1.policy.omni import OmniPolicy
    from omnivideo_r1.train.perception_measure import tower_embeddings

    policy = OmniPolicy.from_pretrained(tiny_dirs[family])
    first, second = (tower_embeddings(policy, _clip(i)[1]) for i in (0, 1))
    for tower in ("audio", "video"):
        assert first[tower].abs().mean() > 1e-2, tower
        assert _relative_difference(first[tower], second[tower]) > 0.05, tower


def test_fresh_model_video_tokens_say_where_the_shape_is(tiny_dirs, one_thread):
    # At the width-scaled init of Qwen3-Omni's learned position table (std 0.125, against patch content of std
    # ~1.3), a shape's token differed by 8% between the left and the right of the frame; training erased that
    # and the base listed every shape "on the left". Qwen2.5-Omni's vision tower has no position table.
    from omnivideo_r1.policy.omni import OmniPolicy
    from omnivideo_r1.synth.scene import Timeline, VisualEvent, render_frames
    from omnivideo_r1.train.perception_measure import tower_embeddings

    policy = OmniPolicy.from_pretrained(tiny_dirs["qwen3_omni"])
    tokens = {}
    for position in ("left", "right"):
        timeline = Timeline(WORLD.duration_s, [VisualEvent("circle", "red", position, 0.0, WORLD.duration_s)], [])
        clip = clip_from_frames(render_frames(timeline, WORLD), np.zeros(16000 * 4, np.float32), WORLD, 2.0, 8,
                                WORLD.width * WORLD.height)
        tokens[position] = tower_embeddings(policy, clip)["video"]
    # 96x64 frames: 3 merged columns (left, center, right) x 2 rows per time step; the shape fills its column.
    left_shape, right_shape = tokens["left"][0], tokens["right"][2]
    assert float((left_shape - right_shape).norm() / left_shape.norm()) > 0.3


def test_video_token_labels_follow_the_merged_patch_grid():
    synth, clip = _clip(0)
    # 96x64 frames, 16-pixel patches merged 2x2: 3 columns (one per screen position) x 2 rows per time step.
    labels = video_token_labels(synth.timeline, WORLD, clip.frame_times_T, (4, 4, 6))
    assert len(labels) == 4 * 2 * 3
    column = {"left": 0, "center": 1, "right": 2}
    for t in range(4):
        frames = clip.frame_times_T[2 * t:2 * t + 2]
        on = [e for e in synth.timeline.visual if any(e.start <= ft < e.end for ft in frames)]
        for c in range(3):
            words = labels[t * 6 + c]  # top row
            shown = [e for e in on if column[e.position] == c]
            if not shown:
                assert words == [NOTHING_WORD]
            else:
                assert words in ([e.colour, e.shape, e.position] for e in shown)


def test_audio_token_labels_name_the_sound_at_each_time():
    synth, _ = _clip(1)
    labels = audio_token_labels(synth.timeline, 52, WORLD.duration_s)
    for k, words in enumerate(labels):
        t = (k + 0.5) * WORLD.duration_s / 52
        playing = [a for a in synth.timeline.audio if a.start + 0.04 <= t < a.end - 0.04]
        if playing:
            assert words == [{"noise": "noise"}.get(playing[0].sound, playing[0].sound)]
        elif not any(a.start - 0.04 <= t < a.end + 0.04 for a in synth.timeline.audio):
            assert words == [NOTHING_WORD]


def test_targets_weigh_content_words_and_keep_the_reference_caption_text(tiny_dirs):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_dirs["qwen3_omni"])
    synth, _ = _clip(2)
    w = Weights(content=1.0, time=0.5, template=0.1)
    pieces = caption_target(synth.timeline, "video", w)
    text = "".join(t for t, _ in pieces)
    for e in synth.timeline.visual:
        assert f"<time>{e.start:.1f}-{e.end:.1f}</time><caption>{e.caption}</caption>" in text
    ids, weights = tokenize_pieces(tok, pieces)
    content = tok.decode([i for i, wt in zip(ids, weights) if wt == 1.0])
    assert all(e.colour in content and e.shape in content for e in synth.timeline.visual)
    assert "appears" not in content and min(weights) == pytest.approx(0.1)

    from omnivideo_r1.synth.questions import LetterDeck

    rng = np.random.default_rng(0)
    sample = single_modality_question(synth.timeline, WORLD, rng, LetterDeck(rng), "audio", "q")
    assert sample is not None and sample.modality_needs == "audio"
    listing = "".join(t for t, _ in caption_target(synth.timeline, "audio", w))
    q_text = q_text_all = "".join(t for t, _ in question_target(sample, synth.timeline, w))  # every sound, then text
    assert q_text == listing + f"<thinking> {sample.answer_text}</thinking><answer> {sample.answer_text}</answer>"
    assert parse_choice(extract_answer_block(q_text), sample.options) == sample.answer
    q_text = "".join(t for t, _ in question_target(sample, synth.timeline, w, "query", "letter"))
    spans = [f"<time>{e['start']:.1f}-{e['end']:.1f}</time>" for e in sample.extra["evidence"]]
    assert q_text.startswith(spans[0]) and q_text.count("<time>") == len(spans)
    assert q_text.endswith(f"<thinking> {sample.answer_text}</thinking><answer>{sample.answer}</answer>")
    with pytest.raises(ValueError, match="evidence"):
        question_target(sample, synth.timeline, w, "some")
    # "input": every event the input carries; with audio and video both timelines, merged in reference order.
    both = "".join(t for t, _ in question_target(sample, synth.timeline, w, "input", input_modality="av"))
    reference = "".join(f"<time>{c.start:.1f}-{c.end:.1f}</time><caption>{c.caption}</caption>"
                        for c in synth.timeline.captions())
    assert synth.timeline.visual and synth.timeline.audio and both.startswith(reference + "<thinking>")
    alone = "".join(t for t, _ in question_target(sample, synth.timeline, w, "input", input_modality="audio"))
    assert alone == q_text_all
    as_text = "".join(t for t, _ in question_target(sample, synth.timeline, w, answer_style="text"))
    assert as_text.endswith(f"<answer> {sample.answer_text}</answer>")
    assert parse_choice(as_text, sample.options) == sample.answer  # the option's text reads as its letter


def test_option_letter_targets_mark_each_option_text_with_its_letter(tiny_dirs):
    from omnivideo_r1.policy.omni import OmniPolicy
    from omnivideo_r1.policy.prompting import make_prompt
    from omnivideo_r1.schema import AVSample
    from omnivideo_r1.train.perception import answer_letter_ids, option_letter_targets

    policy = OmniPolicy.from_pretrained(tiny_dirs["qwen3_omni"])
    sample = AVSample(id="q", video="", question="Which object appeared on the left?",
                      options=["red circle", "blue square", "a low-pitched beep", "2"], answer="C")
    batch, _ = policy.encode([make_prompt(sample, None, "text")])
    letters = answer_letter_ids(policy.tokenizer)
    positions, labels = option_letter_targets(policy.tokenizer, batch["input_ids"], [sample], letters)
    tok = policy.tokenizer
    for k, option in enumerate(sample.options):
        text = "".join(tok.decode([int(batch["input_ids"][0, c])]) for (_, c), lab in zip(positions, labels)
                       if lab == letters[k])
        assert text.strip() == option


def _single_modality_questions(seed: int, time_window: bool = False):
    """(needs, clip, question) for each sense of 12 clips that has a question of the kind asked for."""
    from omnivideo_r1.synth.questions import LetterDeck

    rng = np.random.default_rng(seed)
    deck = LetterDeck(rng)
    for i in range(12):
        synth, _ = _clip(i)
        for needs in ("video", "audio"):
            sample = single_modality_question(synth.timeline, WORLD, rng, deck, needs, f"q{i}", time_window=time_window)
            if sample is not None:
                yield needs, synth, sample


def test_single_modality_questions_never_need_both_senses():
    kinds = set()
    for needs, _, sample in _single_modality_questions(1):
        assert sample.modality_needs == needs
        kinds.add(sample.extra["query"]["type"])
    assert kinds <= {"colour_of_shape", "colour_of_nth", "object_at_position", "count_beeps", "nth_sound"}
    assert len(kinds) >= 4


def test_time_window_questions_are_single_modality_and_answered_after_the_listing():
    from omnivideo_r1.synth.questions import TIME_WINDOW_TYPES
    from omnivideo_r1.train.perception import PerceptionConfig

    kinds = set()
    for needs, synth, sample in _single_modality_questions(2, time_window=True):
        assert sample.modality_needs == needs == TIME_WINDOW_TYPES[sample.extra["query"]["type"]][0]
        kinds.add(sample.extra["query"]["type"])
        text = "".join(t for t, _ in question_target(sample, synth.timeline, Weights(), "input", "text", needs))
        assert text.endswith(f"<thinking> {sample.answer_text}</thinking><answer> {sample.answer_text}</answer>")
    assert kinds == set(TIME_WINDOW_TYPES)
    with pytest.raises(ValueError, match="time_question_share"):
        PerceptionConfig(time_question_share=1.5)


def test_named_scan_walks_the_listed_shapes_up_to_the_named_one_and_leaves_other_kinds_alone():
    from omnivideo_r1.synth.scene import sample_timeline
    from omnivideo_r1.train.perception_data import NAMED_LOOKUPS, scan_text

    scanned = set()
    for needs, synth, sample in _single_modality_questions(3):
        kind, tl = sample.extra["query"]["type"], synth.timeline
        plain = "".join(t for t, _ in question_target(sample, tl, Weights(), "input", "text", needs))
        pieces = question_target(sample, tl, Weights(), "input", "text", needs, named_scan=True)
        text = "".join(t for t, _ in pieces)
        if kind not in NAMED_LOOKUPS:
            assert text == plain and scan_text(sample, tl) == ""
            continue
        scanned.add(kind)
        field_name, wanted = NAMED_LOOKUPS[kind], sample.extra["query"][NAMED_LOOKUPS[kind]]
        shapes = sorted(tl.visual, key=lambda e: e.start)
        hit = next(i for i, e in enumerate(shapes) if getattr(e, field_name) == wanted)
        steps = [f"{getattr(e, field_name)} no" for e in shapes[:hit]] + [f"{wanted} yes"]
        reasoning = " " + ", ".join(steps) + f", {sample.answer_text}"
        assert text == plain.replace(f"<thinking> {sample.answer_text}<", f"<thinking>{reasoning}<")
        assert parse_choice(extract_answer_block(text), sample.options) == sample.answer
        assert (reasoning, Weights().content) in pieces  # the scan is learned like the answer text
    assert scanned == set(NAMED_LOOKUPS)
    # A query whose name is not on screen is a broken question, not an empty scan.
    _, synth, sample = next((n, c, s) for n, c, s in _single_modality_questions(3)
                            if s.extra["query"]["type"] == "colour_of_shape")
    other = sample_timeline(np.random.default_rng(9), WORLD)
    other.visual = [e for e in other.visual if e.shape != sample.extra["query"]["shape"]]
    with pytest.raises(ValueError, match="no shape in its timeline"):
        scan_text(sample, other)


_WINDOW_TIMELINE = dict(duration=4.0,
                        visual=[("circle", "red", "left", 0.0, 1.0), ("square", "blue", "right", 1.5, 2.5),
                                ("circle", "green", "center", 3.0, 4.0)],
                        audio=[("low", 0.5, 1.0), ("noise", 2.0, 2.5)])


@pytest.mark.parametrize("kind, start, end, answer, scan", [
    ("colour_at_time", 0.25, 0.75, "red", " 0.0-1.0 yes,"),  # the first shape already overlaps
    ("colour_at_time", 2.0, 2.5, "blue", " 0.0-1.0 no, 1.5-2.5 yes,"),
    ("colour_at_time", 2.25, 3.25, "blue", " 0.0-1.0 no, 1.5-2.5 yes,"),  # stops at the first overlap
    ("shape_at_time", 1.0, 1.5, "no shape was on screen", " 0.0-1.0 no, 1.5-2.5 no, 3.0-4.0 no,"),  # touching
    ("sound_at_time", 1.75, 2.25, "a noise burst", " 0.5-1.0 no, 2.0-2.5 yes,"),  # walks the sounds, not shapes
    ("colour_of_shape", None, None, "blue", ""),  # not a time-window question
])
def test_window_scan_walks_the_listed_events_of_its_sense_up_to_the_first_in_the_window(kind, start, end, answer,
                                                                                       scan):
    from omnivideo_r1.schema import AVSample
    from omnivideo_r1.synth.scene import AudioEvent, Timeline, VisualEvent
    from omnivideo_r1.train.perception_data import window_scan_text

    t = _WINDOW_TIMELINE
    tl = Timeline(t["duration"], [VisualEvent(*v) for v in t["visual"]], [AudioEvent(*a) for a in t["audio"]])
    query = {"type": kind, "start": start, "end": end} if start is not None else {"type": kind, "shape": "square"}
    options = [answer, "yellow", "purple", "orange"]
    sample = AVSample(id=f"w-{kind}", video="", question="?", options=options, answer="A",
                      modality_needs="audio" if kind == "sound_at_time" else "video", extra={"query": query})
    assert window_scan_text(sample, tl) == scan
    text = "".join(p for p, _ in question_target(sample, tl, Weights(), "input", "text", "av", window_scan=True))
    assert f"<thinking>{scan} {answer}</thinking>" in text
    assert parse_choice(extract_answer_block(text), options) == "A"
    plain = "".join(p for p, _ in question_target(sample, tl, Weights(), "input", "text", "av"))
    assert f"<thinking> {answer}</thinking>" in plain  # off by default


def test_perception_training_smoke_lowers_the_loss_and_measures(tiny_dirs, tmp_path, one_thread):
    from omnivideo_r1.eval.runner import EvalConfig
    from omnivideo_r1.policy.omni import OmniPolicy
    from omnivideo_r1.schema import read_samples
    from omnivideo_r1.synth.world import generate_world
    from omnivideo_r1.train.perception import PerceptionConfig, train_perception
    from omnivideo_r1.train.perception_measure import measure_perception

    torch.manual_seed(0)
    policy = OmniPolicy.from_pretrained(tiny_dirs["qwen3_omni"])
    cfg = PerceptionConfig(steps=8, batch_size=4, warmup_steps=1, lr=5e-3, log_every=0)
    history = train_perception(policy, WORLD, cfg, log=lambda *a: None)
    assert len(history) == 8
    assert {"loss", "text_loss", "media_loss", "content_acc", "video_word_acc", "audio_word_acc"} <= set(history[0])
    assert np.mean([h["media_loss"] for h in history[-2:]]) < history[0]["media_loss"]
    assert np.mean([h["loss"] for h in history[-2:]]) < history[0]["loss"]

    generate_world(str(tmp_path / "world"), 3, seed=7, config=WORLD)
    samples = read_samples(str(tmp_path / "world" / "train.jsonl"))
    samples += read_samples(str(tmp_path / "world" / "test.jsonl"))
    report = measure_perception(policy, samples, EvalConfig(fps=2.0, max_frames=8, max_pixels=96 * 64,
                                                            max_new_tokens=8, batch_size=4),
                                caption_clips=2)
    for key in ("video_only", "audio_only", "audio_only_audio"):
        stats = report[key]
        assert stats["n"] == stats["scored"] and {"accuracy", "ci_low", "ci_high"} <= set(stats)
    assert report["video_only"]["n"] == sum(s.modality_needs == "video" for s in samples)
    assert set(report["caption_words"]) == {"video", "audio"}
    assert report["caption_words"]["video"]["n"] > 0
    assert all(r["measure"] in ("video_only", "audio_only", "audio_only_audio") for r in report["rows"])


class _ListingReader:
    """A scripted policy for `listing_readout_accuracy`: it prefers the right option only when the text before
    `<thinking>` is exactly the reference listing of the sense the question is asked with (or, `blind`, always the
    first option)."""

    def __init__(self, tokenizer, blind: bool = False) -> None:
        self.tokenizer, self.blind, self.asked = tokenizer, blind, []

    def make_prompt(self, sample, clip, modality):
        self.asked.append((sample.modality_needs, modality, clip))
        return sample, modality

    def logprobs(self, prompts, token_lists):
        from omnivideo_r1.synth.scene import Timeline

        (sample, modality), = {id(p): p for p in prompts}.values()
        events = Timeline.from_dict(sample.extra["timeline"]).events(visual=modality == "video",
                                                                     audio=modality == "audio")
        listing = "".join(f"<time>{e.start:.1f}-{e.end:.1f}</time><caption>{e.caption}</caption>" for e in events)
        width = max(map(len, token_lists))
        logp_BT, mask_BT = torch.zeros(len(token_lists), width), torch.zeros(len(token_lists), width)
        for row, ids in enumerate(token_lists):
            mask_BT[row, : len(ids)] = 1.0
            right = self.tokenizer.decode(ids) == f"{listing}<thinking> {sample.answer_text}</thinking><answer>"
            logp_BT[row, len(ids) - 1] = 0.0 if (row == 0 if self.blind else right) else -3.0
        return logp_BT, mask_BT


def test_listing_readout_gives_the_reference_listing_of_the_asked_sense(tiny_dirs, tmp_path):
    from transformers import AutoTokenizer

    from omnivideo_r1.schema import read_samples
    from omnivideo_r1.synth.world import generate_world
    from omnivideo_r1.train.perception_measure import listing_readout_accuracy

    tok = AutoTokenizer.from_pretrained(tiny_dirs["qwen3_omni"])
    generate_world(str(tmp_path / "w"), 6, seed=3, splits=(0.0, 0.0, 1.0), config=WORLD)
    samples = read_samples(str(tmp_path / "w" / "test.jsonl"))
    loads = []
    reader = _ListingReader(tok)
    out = listing_readout_accuracy(reader, samples, lambda s, modality: loads.append(modality) or modality)
    single = {n: sum(s.modality_needs == n for s in samples) for n in ("video", "audio")}
    assert single["video"] and single["audio"]
    assert {k: v["n"] for k, v in out.items()} == single and all(v["accuracy"] == 1.0 for v in out.values())
    assert [(needs, modality) for needs, modality, _ in reader.asked] == [(m, m) for m in loads]
    blind = listing_readout_accuracy(_ListingReader(tok, blind=True), samples, lambda s, modality: modality)
    for needs, stats in blind.items():  # answering without the listing: right only where the answer is "A"
        assert stats["correct"] == sum(s.modality_needs == needs and s.answer == "A" for s in samples)
        asked = [s for s in samples if s.modality_needs == needs]
        kinds = {s.extra["query"]["type"] for s in asked}
        assert set(stats["by_type"]) == kinds and len(kinds) > 1
        for kind, per_type in stats["by_type"].items():  # the same count, split by the question's query type
            of_kind = [s for s in asked if s.extra["query"]["type"] == kind]
            assert (per_type["n"], per_type["correct"]) == (len(of_kind), sum(s.answer == "A" for s in of_kind))



def test_packaged_base_is_the_recorded_file_and_perceives_a_fresh_world(tmp_path, one_thread):
    """The default demo starts from the packaged perception base: its weights are the file its provenance names, it
    loads with the demo's media settings, and on clips it never saw (a world of another seed) it hears and sees:
    audio-only questions answered from audio alone, greedy, and caption words on silent video, far above what a
    random model of the same class scores (chance 25% on the questions; ~0 on caption words)."""
    import hashlib
    import json
    import os

    from omnivideo_r1.eval.runner import EvalConfig
    from omnivideo_r1.policy.omni import OmniPolicy
    from omnivideo_r1.schema import read_samples
    from omnivideo_r1.synth.world import generate_world
    from omnivideo_r1.train.demo import PACKAGED_BASE_DIR, DemoConfig
    from omnivideo_r1.train.perception_measure import measure_perception

    with open(os.path.join(PACKAGED_BASE_DIR, "provenance.json"), encoding="utf-8") as fh:
        built = json.load(fh)
    with open(os.path.join(PACKAGED_BASE_DIR, "model.safetensors"), "rb") as fh:
        assert hashlib.sha256(fh.read()).hexdigest() == built["model_safetensors_sha256"]
    cfg = DemoConfig()  # the default demo's settings are the ones the base was built with (else it refuses)
    assert cfg.base_model == "packaged" and not cfg.perception_pretraining

    policy = OmniPolicy.from_pretrained(PACKAGED_BASE_DIR)
    world_dir = str(tmp_path / "world")
    generate_world(world_dir, 16, seed=4321, splits=(1.0, 0.0, 0.0), config=cfg.world)
    samples = [s for s in read_samples(os.path.join(world_dir, "train.jsonl")) if s.modality_needs == "audio"]
    report = measure_perception(policy, samples, EvalConfig(fps=2.0, max_frames=cfg.max_frames,
                                                            max_pixels=cfg.max_pixels, max_new_tokens=96,
                                                            batch_size=8), caption_clips=8)
    heard = report["audio_only_audio"]
    assert heard["n"] >= 10 and heard["accuracy"] >= 0.6, heard  # 87.9% measured on the demo's test split
    assert report["caption_words"]["video"]["accuracy"] >= 0.7, report["caption_words"]
    assert report["caption_words"]["audio"]["accuracy"] >= 0.7, report["caption_words"]


def _readout_drills(policy, cfg, seed: int, attempts: int) -> list:
    """The read-out drill rows `_readout_drill_task` builds over `attempts` indices (None ones dropped)."""
    from omnivideo_r1.synth.questions import LetterDeck
    from omnivideo_r1.train.perception import _readout_drill_task

    eos = policy.tokenizer.convert_tokens_to_ids("<|im_end|>")
    rng, deck = np.random.default_rng(seed), LetterDeck(np.random.default_rng(seed + 1))
    return [t for t in (_readout_drill_task(policy, WORLD, cfg, rng, deck, i, eos) for i in range(attempts)) if t]


def _listing(timeline, modality: str) -> str:
    return "".join(piece for piece, _ in caption_target(timeline, modality, Weights()))


def _trained_text(tok, task) -> str:
    """The text of the tokens a row puts loss on."""
    return tok.decode([i for i, w in zip(task.ids, task.weights) if w > 0])


def test_readout_drills_give_the_listing_and_train_only_the_answer(tiny_dirs, one_thread):
    from omnivideo_r1.policy.omni import OmniPolicy
    from omnivideo_r1.train.perception import PerceptionConfig, train_perception
    from omnivideo_r1.train.perception_data import scan_text, window_scan_text

    policy = OmniPolicy.from_pretrained(tiny_dirs["qwen3_omni"])
    tok = policy.tokenizer
    tasks = _readout_drills(policy, PerceptionConfig(question_evidence="input", time_question_share=0.5), 3, 12)
    assert len(tasks) >= 8 and {t.prompt.sample.modality_needs for t in tasks} == {"video", "audio"}
    for task in tasks:
        sample = task.prompt.sample
        assert task.prompt.clip is None and task.prompt.effective_modality == "text"
        text = tok.decode(task.ids)
        assert text.startswith(_listing(task.timeline, sample.modality_needs) + "<thinking>")  # listing given ...
        assert _trained_text(tok, task) == f" {sample.answer_text} {sample.answer_text}"  # ... only the answer trained
    # With named_scan the same drills train the scan too, on the named kinds only.
    scanned = _readout_drills(policy, PerceptionConfig(question_evidence="input", time_question_share=0.5,
                                                        named_scan=True), 3, 12)
    assert [t.prompt.sample.id for t in scanned] == [t.prompt.sample.id for t in tasks]
    for task in scanned:
        sample = task.prompt.sample
        scan = scan_text(sample, task.timeline)
        assert _trained_text(tok, task) == f"{scan} {sample.answer_text} {sample.answer_text}"
    assert any(scan_text(t.prompt.sample, t.timeline) for t in scanned)
    # With window_scan too, the time-window drills train their scan by time.
    both = _readout_drills(policy, PerceptionConfig(question_evidence="input", time_question_share=0.5,
                                                     named_scan=True, window_scan=True), 3, 12)
    assert [t.prompt.sample.id for t in both] == [t.prompt.sample.id for t in tasks]
    for task in both:
        sample = task.prompt.sample
        scan = scan_text(sample, task.timeline) + window_scan_text(sample, task.timeline)
        assert _trained_text(tok, task) == f"{scan} {sample.answer_text} {sample.answer_text}"
    assert any(window_scan_text(t.prompt.sample, t.timeline) for t in both)

    cfg = PerceptionConfig(steps=2, batch_size=2, warmup_steps=1, log_every=0, readout_drill_rows=3)
    history = train_perception(policy, WORLD, cfg, log=lambda *a: None)
    assert all(h["readout_drill_acc"] == h["readout_drill_acc"] for h in history)  # the drills were trained on
    with pytest.raises(ValueError, match="readout_drill_rows"):
        PerceptionConfig(readout_drill_rows=-1)


def test_readout_drills_with_merged_listings_give_both_timelines(tiny_dirs, one_thread):
    from omnivideo_r1.policy.omni import OmniPolicy
    from omnivideo_r1.train.perception import PerceptionConfig

    policy = OmniPolicy.from_pretrained(tiny_dirs["qwen3_omni"])
    tok = policy.tokenizer
    tasks = _readout_drills(policy, PerceptionConfig(question_evidence="input", readout_drill_av_share=0.5), 5, 24)
    kinds = []
    for task in tasks:
        sample = task.prompt.sample
        text = tok.decode(task.ids)
        one, both = (_listing(task.timeline, m) for m in (sample.modality_needs, "av"))
        assert task.prompt.clip is None and sample.modality_needs in ("video", "audio")
        assert text.startswith(one + "<thinking>") or text.startswith(both + "<thinking>")
        kinds.append(text.startswith(both + "<thinking>"))
        assert _trained_text(tok, task) == f" {sample.answer_text} {sample.answer_text}"
    assert 0 < sum(kinds) < len(kinds)  # some drills list both senses, some one
    with pytest.raises(ValueError, match="readout_drill_av_share"):
        PerceptionConfig(question_evidence="input", readout_drill_av_share=1.5)
    with pytest.raises(ValueError, match="question_evidence=input"):
        PerceptionConfig(question_evidence="all", readout_drill_av_share=0.5)


@pytest.mark.parametrize("share", [0.0, 0.5])
def test_caption_tasks_list_both_senses_only_when_both_are_shown(tiny_dirs, one_thread, share):
    from omnivideo_r1.policy.omni import OmniPolicy
    from omnivideo_r1.synth.questions import LetterDeck
    from omnivideo_r1.train.perception import PerceptionConfig, _make_task
    from omnivideo_r1.train.perception_data import CAPTION_REQUEST

    policy = OmniPolicy.from_pretrained(tiny_dirs["qwen3_omni"])
    eos = policy.tokenizer.convert_tokens_to_ids("<|im_end|>")
    cfg = PerceptionConfig(seed=5, av_share=0.5, caption_both_share=share)
    rng, deck = np.random.default_rng(3), LetterDeck(np.random.default_rng(4))
    seen = []
    for i in range(24):
        kind = ("video_caption", "audio_caption")[i % 2]
        task = _make_task(policy, WORLD, cfg, i, kind, rng, deck, eos)
        shown, listed = task.prompt.effective_modality, task.prompt.sample.modality_needs
        own = kind.split("_")[0]
        assert listed in (own, "both") and (listed == "both") <= (shown == "av")  # both listed only if both shown
        assert task.prompt.user_text == CAPTION_REQUEST[listed]
        want = _listing(task.timeline, "av" if listed == "both" else own)
        assert policy.tokenizer.decode(task.ids).startswith(want)
        seen.append((shown, listed))
    both_shown = [listed for shown, listed in seen if shown == "av"]
    assert both_shown and (("both" in both_shown) == (share > 0))
    if share:
        assert any(listed != "both" for listed in both_shown)  # a share, not all
    with pytest.raises(ValueError, match="caption_both_share"):
        PerceptionConfig(caption_both_share=1.5)


def test_clip_questions_answer_named_and_time_window_lookups_after_a_scan_when_asked(tiny_dirs, one_thread):
    from omnivideo_r1.policy.omni import OmniPolicy
    from omnivideo_r1.synth.questions import LetterDeck
    from omnivideo_r1.train.perception import PerceptionConfig, _make_task
    from omnivideo_r1.train.perception_data import scan_text, window_scan_text

    policy = OmniPolicy.from_pretrained(tiny_dirs["qwen3_omni"])
    eos = policy.tokenizer.convert_tokens_to_ids("<|im_end|>")
    scans = []
    for named_scan, window_scan in ((False, False), (True, False), (True, True)):
        cfg = PerceptionConfig(seed=5, question_evidence="input", time_question_share=0.5, named_scan=named_scan,
                               window_scan=window_scan)
        rng, deck = np.random.default_rng(3), LetterDeck(np.random.default_rng(4))
        for i in range(16):
            task = _make_task(policy, WORLD, cfg, i, "video_question", rng, deck, eos)
            if task is None:
                continue
            sample, text = task.prompt.sample, policy.tokenizer.decode(task.ids)
            named = scan_text(sample, task.timeline) if named_scan else ""
            by_time = window_scan_text(sample, task.timeline) if window_scan else ""
            assert f"<thinking>{named}{by_time} {sample.answer_text}</thinking>" in text
            scans.append((bool(named), bool(by_time)))
    # Some of the clips' questions are named lookups and some time-window ones, and those were scanned.
    assert (True, False) in scans and (False, True) in scans
