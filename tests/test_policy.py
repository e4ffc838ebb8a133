"""The tiny Qwen-Omni policies: tokenizer, torch video processor, real thinker classes, sampling and scoring."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from omnivideo_r1.policy.forward import PolicyForward
from omnivideo_r1.policy.omni import (
    OmniPolicy,
    build_processor,
    group_by_audio_flag,
    make_prompt,
)
from omnivideo_r1.policy.tokenizer import MEDIA_TOKENS, build_tokenizer
from omnivideo_r1.policy.video_processor import TorchQwenVideoProcessor, smart_resize
from omnivideo_r1.schema import AVSample

from helpers import FAMILIES, clip_from_arrays

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def policies(tiny_dirs):
    return {fam: OmniPolicy.from_pretrained(path) for fam, path in tiny_dirs.items()}


def _sample(sid="s1", n_options=4, question="What colour was on screen when the beep sounded?", audio=None):
    options = ["red", "green", "blue", "yellow", "white", "black"][:n_options]
    return AVSample(id=sid, video=f"{sid}.mp4", question=question, options=options, answer="B", audio=audio)


def _clip(seed=0, frames=4, seconds=1.0, audio=True, size=64):
    rng = np.random.RandomState(seed)
    video = rng.randint(0, 256, (frames, size, size, 3), dtype=np.uint8)
    wave = (0.1 * rng.randn(int(16_000 * seconds))).astype(np.float32) if audio else None
    return clip_from_arrays(video, wave, fps=2.0, path=f"clip{seed}.mp4")


# ---------------------------------------------------------------- tokenizer and video processor
@pytest.mark.parametrize("family", FAMILIES)
def test_tokenizer_special_tokens_and_single_token_letters(family):
    tok = build_tokenizer(family)
    for name, text in MEDIA_TOKENS[family].items():
        assert getattr(tok, name) == text
        assert tok.encode(text, add_special_tokens=False) == [tok.convert_tokens_to_ids(text)]
    for text in ("<|im_start|>", "<|im_end|>", "<|endoftext|>"):
        assert len(tok.encode(text, add_special_tokens=False)) == 1
    for letter in "ABCDEF":
        assert len(tok.encode(letter, add_special_tokens=False)) == 1
        assert len(tok.encode(f" {letter}", add_special_tokens=False)) == 1
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"
    text = "<time>1.0-2.5</time><caption>green circle</caption><answer>B</answer>"
    assert tok.decode(tok.encode(text, add_special_tokens=False)) == text
    assert build_tokenizer(family).get_vocab() == tok.get_vocab()  # deterministic


def test_chat_template_renders_media_like_qwen_omni():
    tok = build_tokenizer("qwen2_5_omni")
    messages = [{"role": "system", "content": "SYS"},
                {"role": "user", "content": [{"type": "video", "video": "a.mp4"}, {"type": "audio", "audio": "a.wav"},
                                             {"type": "text", "text": "Q?"}]}]
    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == ("<|im_start|>system\nSYS<|im_end|>\n<|im_start|>user\n<|vision_bos|><|VIDEO|><|vision_eos|>"
                    "<|audio_bos|><|AUDIO|><|audio_eos|>Q?<|im_end|>\n<|im_start|>assistant\n")


@pytest.mark.parametrize("patch", [14, 16])
def test_video_processor_matches_reference_patching(patch):
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    factor = 2 * patch
    img = np.random.RandomState(1).randint(0, 256, (2 * factor, 3 * factor, 3), dtype=np.uint8)
    ref = Qwen2VLImageProcessorPil(patch_size=patch, temporal_patch_size=2, merge_size=2, min_pixels=factor**2,
                                   max_pixels=16 * factor**2)(images=[img], return_tensors="pt")
    ours = TorchQwenVideoProcessor(patch_size=patch, min_pixels=factor**2, max_pixels=16 * factor**2)(
        [np.stack([img, img])])
    # An image is a video of temporal_patch_size identical frames in the reference processor.
    assert ours["video_grid_thw"].tolist() == ref["image_grid_thw"].tolist() == [[1, 4, 6]]
    torch.testing.assert_close(ours["pixel_values_videos"], ref["pixel_values"], atol=1e-5, rtol=0)


def test_video_processor_resizes_and_pads_odd_frame_counts():
    vp = TorchQwenVideoProcessor(patch_size=16, min_pixels=32 * 32, max_pixels=64 * 32 * 32)
    video = np.random.RandomState(0).randint(0, 256, (3, 100, 150, 3), dtype=np.uint8)
    out = vp(video)
    h, w = smart_resize(100, 150, 32, 32 * 32, 64 * 32 * 32)
    assert out["video_grid_thw"].tolist() == [[2, h // 16, w // 16]]
    assert out["pixel_values_videos"].shape == (2 * (h // 16) * (w // 16), 3 * 2 * 16 * 16)
    assert vp.num_video_tokens(3, 100, 150) == 2 * (h // 32) * (w // 32)
    with pytest.raises(ValueError, match="uint8"):
        vp(video.astype(np.float32))


# ---------------------------------------------------------------- model build, forward, save/load
@pytest.mark.parametrize("family", FAMILIES)
def test_forward_all_modalities(policies, family):
    policy = policies[family]
    tok = policy.tokenizer
    sample, clip = _sample(), _clip()
    for modality, flag in (("av", True), ("video", False), ("audio", False), ("text", False)):
        prompt = make_prompt(sample, clip, modality)
        batch, use_audio = policy.encode([prompt])
        assert use_audio is flag
        ids = batch["input_ids"][0].tolist()
        assert (tok.video_token_id in ids) == (modality in ("av", "video"))
        assert (tok.audio_token_id in ids) == (modality in ("av", "audio"))
        if modality == "av":  # audio interleaved inside the video block
            assert ids.index(tok.convert_tokens_to_ids(tok.audio_bos_token)) == \
                ids.index(tok.convert_tokens_to_ids(tok.vision_bos_token)) + 1
        with torch.no_grad():
            logits = policy.model(**batch, use_audio_in_video=use_audio).logits
        assert logits.shape[:2] == batch["input_ids"].shape and torch.isfinite(logits).all()


def test_av_without_audio_is_silent_video_and_separate_audio_file(policies):
    policy = policies["qwen3_omni"]
    silent = make_prompt(_sample(), _clip(audio=False), "av")
    assert silent.effective_modality == "video" and not silent.use_audio_in_video
    separate = make_prompt(_sample(audio="s1_audio.wav"), _clip(), "av")
    assert separate.effective_modality == "av" and not separate.use_audio_in_video
    batch, flag = policy.encode([separate])
    assert flag is False and "input_features" in batch and "pixel_values_videos" in batch
    with pytest.raises(ValueError, match="needs a clip with audio"):
        make_prompt(_sample(), _clip(audio=False), "audio")


def test_mixing_audible_and_silent_raises(policies):
    audible = make_prompt(_sample("loud"), _clip(), "av")
    silent = make_prompt(_sample("quiet"), _clip(), "video")
    with pytest.raises(ValueError, match=r"loud.*quiet"):
        policies["qwen3_omni"].encode([audible, silent])
    assert group_by_audio_flag([audible, silent, audible]) == {True: [0, 2], False: [1]}


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_save_load_round_trip_gives_identical_logits(policies, family, tmp_path):
    policy = policies[family]
    prompt = make_prompt(_sample(), _clip(), "av")
    batch, flag = policy.encode([prompt])
    with torch.no_grad():
        before = policy.model(**batch, use_audio_in_video=flag).logits
    policy.save_pretrained(str(tmp_path / "saved"))
    loaded = OmniPolicy.from_pretrained(str(tmp_path / "saved"))
    assert loaded.family == family
    batch2, _ = loaded.encode([prompt])
    assert torch.equal(batch2["input_ids"], batch["input_ids"])
    with torch.no_grad():
        after = loaded.model(**batch2, use_audio_in_video=flag).logits
    torch.testing.assert_close(after, before, atol=0, rtol=0)
    with open(tmp_path / "saved" / "omnivideo_r1.json") as fh:
        assert json.load(fh)["video_processor"] == "torch"


# ---------------------------------------------------------------- sampling and scoring
@pytest.mark.parametrize("family", FAMILIES)
def test_sampler_groups_and_seed_determinism(policies, family):
    policy = policies[family]
    prompts = [make_prompt(_sample("a"), _clip(0), "av"), make_prompt(_sample("b"), _clip(1), "av")]
    first = policy.sample(prompts, rollouts_per_prompt=3, max_new_tokens=12, generator_seed=7)
    again = policy.sample(prompts, rollouts_per_prompt=3, max_new_tokens=12, generator_seed=7)
    other = policy.sample(prompts, rollouts_per_prompt=3, max_new_tokens=12, generator_seed=8)
    assert [c.prompt_index for c in first] == [0, 0, 0, 1, 1, 1]
    assert [c.token_ids for c in first] == [c.token_ids for c in again]
    assert [c.token_ids for c in first] != [c.token_ids for c in other]
    eos = set(policy.eos_token_ids)
    for c in first:
        assert len(c.token_ids) == len(c.logp) >= 1 and all(lp <= 0 for lp in c.logp)
        assert c.truncated == (c.token_ids[-1] not in eos)
        assert c.truncated or len(c.token_ids) <= 12


@pytest.mark.parametrize("family,temperature", [("qwen3_omni", 1.0), ("qwen3_omni", 0.7), ("qwen2_5_omni", 1.0),
                                                ("qwen2_5_omni", 0.7)])
def test_teacher_forced_logp_matches_sampler(policies, family, temperature):
    policy = policies[family]
    prompts = [make_prompt(_sample("a"), _clip(0), "av"), make_prompt(_sample("b", question="Which shape?"),
                                                                       _clip(1, frames=2), "av")]
    comps = policy.sample(prompts, 2, 10, temperature=temperature, top_p=0.9, generator_seed=3)
    logp, mask = policy.logprobs([prompts[c.prompt_index] for c in comps], [c.token_ids for c in comps],
                                 temperature=temperature)
    assert logp.shape == mask.shape == (len(comps), max(len(c.token_ids) for c in comps))
    for row, c in enumerate(comps):
        n = len(c.token_ids)
        assert mask[row, :n].eq(1).all() and mask[row, n:].eq(0).all()
        np.testing.assert_allclose(logp[row, :n].detach().numpy(), c.logp, atol=1e-4)


def test_left_padded_batch_matches_single_prompts(policies):
    policy = policies["qwen3_omni"]
    short = make_prompt(_sample("a", question="Colour?"), _clip(0, frames=2), "av")
    long = make_prompt(_sample("b", n_options=6, question="Which colour was on screen during the high beep?"),
                       _clip(1, frames=4, seconds=1.5), "av")
    completions = [[5, 6, 7, 8], [9, 10]]
    batch_logp, batch_mask, batch_ent = policy.logprobs([short, long], completions, with_entropy=True)
    for row, (prompt, ids) in enumerate(zip([short, long], completions)):
        single, _, ent = policy.logprobs([prompt], [ids], with_entropy=True)
        torch.testing.assert_close(batch_logp[row, : len(ids)], single[0], atol=1e-5, rtol=0)
        torch.testing.assert_close(batch_ent[row, : len(ids)], ent[0], atol=1e-5, rtol=0)
    assert batch_mask.sum().item() == 6


def test_placeholder_and_padded_ids_are_never_sampled(policies):
    policy = policies["qwen3_omni"]
    banned = set(policy.suppress_ids)
    tok = policy.tokenizer
    assert {tok.audio_token_id, tok.video_token_id, tok.image_token_id} <= banned
    assert set(range(len(tok), policy.model.config.get_text_config().vocab_size)) <= banned
    assert not banned & set(policy.eos_token_ids)
    prompt = make_prompt(_sample(), _clip(), "audio")
    comps = policy.sample([prompt], rollouts_per_prompt=8, max_new_tokens=40, temperature=8.0, generator_seed=0)
    sampled = [t for c in comps for t in c.token_ids]
    # At this temperature the distribution is near uniform, so ~5% of draws would hit a banned id unsuppressed.
    assert len(sampled) > 100 and not set(sampled) & banned


def test_option_probs(policies):
    policy = policies["qwen2_5_omni"]
    prompts = [make_prompt(_sample("a", n_options=3), _clip(0), "video", reasoning=False),
               make_prompt(_sample("b", n_options=5), _clip(1), "video", reasoning=False)]
    probs = policy.option_probs(prompts)
    assert probs.shape == (2, 5)
    torch.testing.assert_close(probs.sum(-1), torch.ones(2))
    assert probs[0, 3:].eq(0).all() and probs[0, :3].gt(0).all() and probs[1].gt(0).all()
    prefix = policy.tokenizer.encode("<answer>", add_special_tokens=False)
    with_prefix = policy.option_probs(prompts, [prefix, []])
    torch.testing.assert_close(with_prefix[1], probs[1], atol=1e-5, rtol=0)
    assert not torch.allclose(with_prefix[0], probs[0])
    assert len(policy.letter_token_ids(6)) == len(set(policy.letter_token_ids(6))) == 6


def test_generate_text_greedy_is_deterministic(policies):
    policy = policies["qwen3_omni"]
    prompt = make_prompt(_sample(), _clip(), "av", reasoning=False)
    first = policy.generate_text([prompt], max_new_tokens=8)
    assert first == policy.generate_text([prompt], max_new_tokens=8) and isinstance(first[0], str)


@pytest.mark.parametrize("family", FAMILIES)
def test_gradient_flows_from_logprobs(policies, family):
    policy = policies[family]
    model = policy.model
    prompt = make_prompt(_sample(), _clip(), "av")
    model.zero_grad(set_to_none=True)
    logp, mask = policy.logprobs([prompt, prompt], [[5, 6, 7], [8, 9]])
    (logp * mask).sum().backward()
    grads = {name: p.grad for name, p in model.named_parameters()}
    assert grads["lm_head.weight"] is not None and grads["lm_head.weight"].abs().sum() > 0
    vision = [g for n, g in grads.items() if ".visual." in n and g is not None]
    audio = [g for n, g in grads.items() if ".audio_tower." in n and g is not None]
    assert vision and any(g.abs().sum() > 0 for g in vision)
    assert audio and any(g.abs().sum() > 0 for g in audio)
    model.zero_grad(set_to_none=True)


def test_processor_rebuilt_from_checkpoint_files(tiny_dirs, policies):
    policy = policies["qwen3_omni"]
    proc = build_processor(tiny_dirs["qwen3_omni"], "qwen3_omni", policy.tokenizer, policy.model.config)
    assert proc.video_processor.patch_size == 16 and proc.n_window == 50 and proc.position_id_per_seconds == 13
    assert policies["qwen2_5_omni"].processor.video_processor.patch_size == 14


@pytest.mark.slow
def test_real_mp4_through_decoder(policies, tmp_path):
    from omnivideo_r1.media import decode
    from omnivideo_r1.media.encode import write_av_file

    rng = np.random.RandomState(0)
    frames = rng.randint(0, 256, (8, 64, 64, 3), dtype=np.uint8)
    audio = (0.2 * np.sin(np.linspace(0, 800 * np.pi, 32_000))).astype(np.float32)
    path = str(tmp_path / "clip.mp4")
    write_av_file(path, frames, fps=4.0, audio=audio, sample_rate=16_000)
    clip = decode.load_clip(path, fps=2.0, max_frames=4, max_pixels=64 * 64, start=None, end=None,
                            with_audio=True, audio_path=None)
    policy = policies["qwen3_omni"]
    prompt = make_prompt(_sample(), clip, "av")
    assert prompt.use_audio_in_video
    comps = policy.sample([prompt], 2, 6, generator_seed=0)
    logp, _ = policy.logprobs([prompt, prompt], [c.token_ids for c in comps])
    for row, c in enumerate(comps):
        np.testing.assert_allclose(logp[row, : len(c.token_ids)].detach().numpy(), c.logp, atol=1e-4)


class _WrapperLikeDDP(torch.nn.Module):
    """Stands in for DistributedDataParallel: the thinker under `.module`, forward delegating to it."""

    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)


@pytest.mark.slow
def test_wrapped_reference_and_lora_models_score_consistently(policies):
    import copy

    from peft import LoraConfig, get_peft_model

    policy = policies["qwen3_omni"]
    prompt = make_prompt(_sample(), _clip(), "av")
    assert policy.make_prompt(_sample(), _clip(), "av").user_text == prompt.user_text
    ids = [[5, 6, 7], [8, 9]]
    base, _ = policy.logprobs([prompt, prompt], ids)
    wrapped, _ = policy.logprobs([prompt, prompt], ids, model=_WrapperLikeDDP(PolicyForward(policy.model)))
    torch.testing.assert_close(wrapped, base, atol=1e-5, rtol=0)
    reference = copy.deepcopy(policy.model)
    with torch.no_grad():
        reference.lm_head.weight.mul_(2.0)
    assert not torch.allclose(policy.logprobs([prompt, prompt], ids, model=reference)[0], base)
    original = policy.model
    try:
        policy.model = get_peft_model(copy.deepcopy(original), LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
        lora, mask = policy.logprobs([prompt, prompt], ids)
        torch.testing.assert_close(lora, base, atol=1e-5, rtol=0)  # LoRA starts as the identity
        (lora * mask).sum().backward()
        assert any(p.grad is not None and p.grad.abs().sum() > 0
                   for n, p in policy.model.named_parameters() if "lora_" in n)
        assert len(policy.sample([prompt], 2, 4, generator_seed=0)) == 2
    finally:
        policy.model = original
