"""Shared-prefix scoring (policy/grouped_prefix.py) equals the plain pass with one full row per completion: log-probs,
the GSPO loss and every parameter gradient, in float64, for both Qwen-Omni families, with ragged completions, left
padding, an empty completion, LoRA, gradient checkpointing and frozen encoders; and under 2-process DDP and FSDP2
(tests/grouped_prefix_worker.py)."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from omnivideo_r1.algo.gspo import gspo_loss
from omnivideo_r1.policy.grouped_prefix import ATTENTION_PREFIX, use_grouped_attention
from omnivideo_r1.policy.omni import OmniPolicy, make_prompt
from omnivideo_r1.schema import AVSample

from helpers import FAMILIES, clip_from_arrays

pytestmark = pytest.mark.usefixtures("one_thread")

ADV_B = torch.tensor([1.0, -0.5, 0.3, -1.0, 0.2, 0.7], dtype=torch.float64)


@pytest.fixture(scope="module")
def policies64(tiny_dirs):
    """float64 tiny policies; RMSNorm still computes in float32 (transformers upcasts to float32, not beyond)."""
    out = {}
    for fam in FAMILIES:
        policy = OmniPolicy.from_pretrained(tiny_dirs[fam])
        policy.model.to(torch.float64)
        if fam == "qwen3_omni":
            policy.model.set_experts_implementation("eager")  # the grouped-GEMM MoE kernel has no float64
        out[fam] = policy
    return out


def _sample(sid, n_options=4, question="What colour was on screen when the beep sounded?", audio=None):
    return AVSample(id=sid, video=f"{sid}.mp4", question=question, answer="B", audio=audio,
                    options=["red", "green", "blue", "yellow", "white", "black"][:n_options])


def _clip(seed, frames=4, seconds=1.0):
    rng = np.random.RandomState(seed)
    clip = clip_from_arrays(rng.randint(0, 256, (frames, 64, 64, 3), dtype=np.uint8),
                            (0.1 * rng.randn(int(16_000 * seconds))).astype(np.float32), fps=2.0,
                            path=f"clip{seed}.mp4")
    clip.frames_THWC.flags.writeable = False
    clip.audio.flags.writeable = False
    return clip


def _groups(modality, audio=None):
    """Two prompts of different lengths (left padding), rows interleaved, ragged completions, one empty."""
    a = make_prompt(_sample("a", audio=audio), _clip(0), modality)
    b = make_prompt(_sample("b", 6, "Which colour was on screen during the high beep?", audio=audio),
                    _clip(1, frames=2, seconds=1.5), modality)
    rng = np.random.RandomState(1)
    completions = [rng.randint(5, 300, n).tolist() for n in (7, 3, 0, 12, 5, 1)]
    return [a, b, a, a, b, b], completions


def _loss_and_grads(policy, prompts, completions, share, old_BT=None):
    policy.model.zero_grad(set_to_none=True)
    logp_BT, mask_BT, ent_BT = policy.logprobs(prompts, completions, temperature=0.9, with_entropy=True,
                                               share_prefix=share)
    if old_BT is None:  # ratios off 1 both ways, some clipped (range [1 - 3e-4, 1 + 4e-4]), all 1e-4 from its edges
        old_BT = logp_BT.detach() + torch.tensor([-2e-3, 1e-4, 0.0, 1e-3, -1e-4, 5e-4])[:, None]
    loss, _ = gspo_loss(logp_BT, old_BT, ADV_B, mask_BT, clip_low=3e-4, clip_high=4e-4, num_sequences=len(prompts))
    loss.backward()
    grads = {n: p.grad.clone() for n, p in policy.model.named_parameters() if p.grad is not None}
    return logp_BT.detach(), ent_BT, loss.detach(), grads, old_BT


def _assert_same(plain, shared, what):
    (logp0, ent0, loss0, g0, _), (logp1, ent1, loss1, g1, _) = plain, shared
    torch.testing.assert_close(logp1, logp0, rtol=0, atol=1e-9, msg=f"{what}: log-probs")
    torch.testing.assert_close(ent1, ent0, rtol=0, atol=1e-9, msg=f"{what}: entropies")
    assert abs(float(loss1 - loss0)) <= 1e-6 * abs(float(loss0)), f"{what}: loss {loss1} vs {loss0}"
    assert g0.keys() == g1.keys() and len(g0) > 0, f"{what}: different parameters got gradients"
    # Relative per tensor; the floor is for tensors whose exact gradient is 0 and whose computed one is rounding noise
    # (key biases: softmax ignores a shift shared by all keys), 1e-22 to 1e-8 of the largest gradient here.
    floor = 1e-12 * max(float(g.norm()) for g in g0.values())
    for name in g0:
        err = float((g1[name] - g0[name]).norm())
        assert err <= 1e-6 * float(g0[name].norm()) + floor, f"{what}: {name} gradient differs by {err}"


@pytest.mark.parametrize("family", FAMILIES)
def test_grouped_scoring_equals_plain_rows(policies64, family):
    policy = policies64[family]
    policy.model.train()
    # av with the video's own audio track (use_audio_in_video: interleaved positions), av with a separate audio
    # file, audio only (the text-like rope branch), video only.
    for modality, audio in (("av", None), ("av", "a.wav"), ("audio", None), ("video", None)):
        prompts, completions = _groups(modality, audio)
        assert prompts[0].use_audio_in_video == (modality == "av" and audio is None)
        plain = _loss_and_grads(policy, prompts, completions, share=False)
        shared = _loss_and_grads(policy, prompts, completions, share=True, old_BT=plain[4])
        _assert_same(plain, shared, f"{family} {modality} audio={audio}")
        assert plain[0][2].abs().sum() == 0 and plain[0][0, :7].abs().min() > 0  # the empty row is empty
    # One prompt's group, as the trainer scores it: no padded prompt row (the unmasked causal kernels).
    prompts, completions = _groups("av")
    prompts = [prompts[0]] * len(prompts)
    plain = _loss_and_grads(policy, prompts, completions, share=False)
    _assert_same(plain, _loss_and_grads(policy, prompts, completions, share=True, old_BT=plain[4]), f"{family} group")
    policy.model.zero_grad(set_to_none=True)


@pytest.mark.parametrize("family", FAMILIES)
def test_grouped_scoring_with_lora_checkpointing_and_frozen_encoders(policies64, family):
    from omnivideo_r1.policy.lora import prepare_trainable
    from omnivideo_r1.train.config import ModelConfig

    base = policies64[family]
    policy = OmniPolicy(copy.deepcopy(base.model), base.tokenizer, base.processor, base.family)
    # As training sets it up: encoders frozen, LoRA on the language model's attention projections (and on the
    # fused MoE experts of Qwen3-Omni).
    policy.model = prepare_trainable(policy.model, ModelConfig(freeze_vision=True, freeze_audio=True, lora_rank=4,
                                                               lora_alpha=8, lora_experts=family == "qwen3_omni"))
    for name, param in policy.model.named_parameters():
        if "lora_B" in name:  # a trained adapter, not the identity
            torch.nn.init.normal_(param, std=0.1, generator=torch.Generator().manual_seed(0))
    policy.model.gradient_checkpointing_enable()
    policy.model.train()
    thinker = policy.model.get_base_model()
    seen = []
    hooks = [getattr(thinker.model, name).register_forward_hook(
        lambda module, args, out, name=name: seen.append((name, tuple(args[0].shape), out.last_hidden_state.requires_grad)))
        for name in ("visual", "audio_tower")]
    try:
        prompts, completions = _groups("av")
        plain = _loss_and_grads(policy, prompts, completions, share=False)
        seen.clear()
        shared = _loss_and_grads(policy, prompts, completions, share=True, old_BT=plain[4])
        _assert_same(plain, shared, "LoRA + checkpointing")
        lora = [name for name, p in policy.model.named_parameters() if p.requires_grad]
        assert all("lora_" in name for name in lora) and sorted(shared[3]) == sorted(lora)
        # The encoders ran once per distinct prompt, and being frozen they built no autograd graph (as under no_grad).
        batch, _ = policy.encode([prompts[0], prompts[1]])
        audio_frames = int(batch["feature_attention_mask"].sum())
        assert sorted(seen) == [("audio_tower", (batch["input_features"].shape[1], audio_frames), False),
                                ("visual", tuple(batch["pixel_values_videos"].shape), False)]
        # The reference pass (adapter off) takes the same shared path.
        with torch.no_grad(), policy.model.disable_adapter():
            ref_plain = policy.logprobs(prompts, completions, share_prefix=False)[0]
            ref_shared = policy.logprobs(prompts, completions)[0]
        torch.testing.assert_close(ref_shared, ref_plain, rtol=0, atol=1e-9)
        assert (ref_plain - plain[0]).abs().max() > 1e-3  # the adapter did change the scores
    finally:
        for hook in hooks:
            hook.remove()


@pytest.mark.slow
@pytest.mark.parametrize("config_file", ["ddp_cpu_2proc.yaml", "fsdp_cpu_2proc.yaml"])
def test_grouped_scoring_equals_plain_rows_under_two_processes(tiny_dirs, tmp_path, config_file):
    """Each process scores its own group through the engine-prepared module; the reduced gradients (DDP) and each
    process's gradient shards (FSDP2) of the shared pass equal those of the plain pass."""
    from test_train import REPO, _free_port

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join([REPO, os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
           os.path.join(REPO, "omnivideo_r1", "recipes", "accelerate", config_file), "--main_process_port",
           str(_free_port()), os.path.join(REPO, "tests", "grouped_prefix_worker.py"), tiny_dirs["qwen3_omni"],
           str(tmp_path)]
    run = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    for rank in (0, 1):
        report = json.loads((tmp_path / f"rank{rank}.json").read_text())
        (loss0, loss1), grads = report["loss"], report["grads"]
        assert report["same_parameters"] and len(grads) > 0, report
        assert abs(loss1 - loss0) <= 1e-6 * abs(loss0), (rank, loss0, loss1)
        floor = 1e-12 * max(norm for norm, _ in grads.values())
        bad = {name: (norm, err) for name, (norm, err) in grads.items() if err > 1e-6 * norm + floor}
        assert not bad, f"{config_file} rank {rank}: gradients differ: {bad}"


def test_dispatching_attention_leaves_other_calls_unchanged(tiny_dirs):
    from omnivideo_r1.train.config import GSPOConfig, ModelConfig, TrainConfig

    policy = OmniPolicy.from_pretrained(tiny_dirs["qwen2_5_omni"])
    prompt = make_prompt(_sample("a"), _clip(0), "av")
    batch, flag = policy.encode([prompt, make_prompt(_sample("b", 6), _clip(1, frames=2), "av")])
    with torch.no_grad():
        before = policy.model(**batch, use_audio_in_video=flag).logits
        use_grouped_attention(policy.model)
        assert policy.model.config.get_text_config()._attn_implementation == ATTENTION_PREFIX + "sdpa"
        after = policy.model(**batch, use_audio_in_video=flag).logits
    torch.testing.assert_close(after, before, rtol=0, atol=0)
    # A backend the layout cannot sit on is a config error naming the fix, not a failure mid-run.
    with pytest.raises(ValueError, match="gspo.shared_prefix=false"):
        TrainConfig(model=ModelConfig(attn_implementation="flash_attention_2"))
    TrainConfig(model=ModelConfig(attn_implementation="flash_attention_2"), gspo=GSPOConfig(shared_prefix=False))
