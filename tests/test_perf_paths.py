"""The fast paths give the same answers as the plain ones: shared-prefix sampling and scoring, the processed-input
cache, and the batched modality-variant probes of stage MA. Correctness only; speed is in benchmarks/."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from omnivideo_r1.policy.input_cache import ProcessedInputCache
from omnivideo_r1.policy.omni import Completion, OmniPolicy, make_prompt
from omnivideo_r1.schema import AVSample

from helpers import FAMILIES, clip_from_arrays

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def policies(tiny_dirs):
    return {fam: OmniPolicy.from_pretrained(tiny_dirs[fam]) for fam in FAMILIES}


def _sample(sid="s1", n_options=4, question="What colour was on screen when the beep sounded?", audio=None):
    return AVSample(id=sid, video=f"{sid}.mp4", question=question, answer="B", audio=audio,
                    options=["red", "green", "blue", "yellow", "white", "black"][:n_options])


def _clip(seed=0, frames=4, seconds=1.0, read_only=True):
    rng = np.random.RandomState(seed)
    clip = clip_from_arrays(rng.randint(0, 256, (frames, 64, 64, 3), dtype=np.uint8),
                            (0.1 * rng.randn(int(16_000 * seconds))).astype(np.float32), fps=2.0,
                            path=f"clip{seed}.mp4")
    if read_only:  # as ClipCache returns them
        clip.frames_THWC.flags.writeable = False
        clip.audio.flags.writeable = False
    return clip


# ---------------------------------------------------------------- shared-prefix sampling
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("modality,temperature,top_p", [("av", 1.0, 1.0), ("video", 0.7, 0.9), ("audio", 1.0, 0.8),
                                                        ("text", 1.3, 1.0)])
def test_shared_prefix_sampling_equals_plain_generate(policies, family, modality, temperature, top_p):
    policy = policies[family]
    # Two prompts of different lengths: the shared path must handle left padding and per-row rope deltas.
    prompts = [make_prompt(_sample("a"), _clip(0), modality),
               make_prompt(_sample("b", 6, "Which colour was on screen during the high beep?"),
                           _clip(1, frames=2, seconds=1.5), modality)]
    kw = dict(rollouts_per_prompt=3, max_new_tokens=16, temperature=temperature, top_p=top_p, generator_seed=11)
    plain = policy.sample(prompts, **kw)
    shared = policy.sample(prompts, **kw, share_prefix=True)
    assert [c.prompt_index for c in shared] == [0, 0, 0, 1, 1, 1]
    # Same sampler, same (P*G, V) draws under the same seed: identical unless rounding flips a CDF boundary,
    # which these tiny models do not hit.
    assert [c.token_ids for c in shared] == [c.token_ids for c in plain]
    assert [c.truncated for c in shared] == [c.truncated for c in plain]
    for a, b in zip(shared, plain):
        np.testing.assert_allclose(a.logp, b.logp, atol=1e-5)
    # And the sampler's log-probs are what teacher forcing (the trainer's scorer) gives.
    logp, _ = policy.logprobs([prompts[c.prompt_index] for c in shared], [c.token_ids for c in shared],
                              temperature=temperature)
    for row, c in enumerate(shared):
        np.testing.assert_allclose(logp[row, : len(c.token_ids)].detach().numpy(), c.logp, atol=1e-4)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("modality", ["av", "video"])
def test_greedy_answers_equal_generate(policies, family, modality):
    policy = policies[family]
    prompts = [make_prompt(_sample("a"), _clip(0), modality),
               make_prompt(_sample("b", 6, "Which colour was on screen during the high beep?"),
                           _clip(1, frames=2, seconds=1.5), modality),
               make_prompt(_sample("c", 3), _clip(2, frames=6), modality)]
    new_BT, _ = policy._generate(prompts, 1, 24, True, 1.0, 1.0, None, share_prefix=False, with_logp=False)
    plain = policy._split(new_BT, None, 1)
    assert any(c.token_ids for c in plain)
    assert policy.generate_text(prompts, max_new_tokens=24) == [c.text for c in plain]


def test_shared_prefix_sampling_is_seeded_and_leaves_no_state(policies):
    policy = policies["qwen3_omni"]
    prompt = make_prompt(_sample(), _clip(0), "av")
    a = policy.sample([prompt], 4, 12, generator_seed=5, share_prefix=True)
    b = policy.sample([prompt], 4, 12, generator_seed=5, share_prefix=True)
    c = policy.sample([prompt], 4, 12, generator_seed=6, share_prefix=True)
    assert [x.token_ids for x in a] == [x.token_ids for x in b] != [x.token_ids for x in c]
    # A plain forward after a shared-prefix rollout must not reuse the rollout's rope deltas.
    batch, flag = policy.encode([prompt])
    with torch.no_grad():
        after = policy.model(**batch, use_audio_in_video=flag).logits
        policy.model.model.rope_deltas = None
        fresh = policy.model(**batch, use_audio_in_video=flag).logits
    torch.testing.assert_close(after, fresh, atol=0, rtol=0)


@pytest.mark.parametrize("family", FAMILIES)
def test_groups_sampled_together_each_get_what_their_seed_gives_alone(policies, family):
    from omnivideo_r1.train.config import TrainConfig
    from omnivideo_r1.train.rollout_backends import HFSampler

    policy = policies[family]
    # Prompts of two lengths and both media layouts (video with its audio inside; video alone), interleaved.
    prompts = [make_prompt(_sample("a"), _clip(0), "av"),
               make_prompt(_sample("b", 6, "Which colour?"), _clip(1, frames=2, seconds=1.5), "video"),
               make_prompt(_sample("c", 3, "Which shape was shown during the longest beep?"), _clip(2, frames=6), "av"),
               make_prompt(_sample("d"), _clip(3), "video")]
    seeds = [21, 22, 23, 24]
    kw = dict(rollouts_per_prompt=3, max_new_tokens=20, temperature=1.0, top_p=0.95, share_prefix=True)
    alone = [policy.sample([p], **kw, generator_seed=s) for p, s in zip(prompts, seeds)]
    audible = [0, 2]
    together = policy.sample([prompts[i] for i in audible], **kw, generator_seed=[seeds[i] for i in audible])
    for k, i in enumerate(audible):
        rows = together[3 * k: 3 * k + 3]
        assert [c.prompt_index for c in rows] == [k] * 3
        assert [c.token_ids for c in rows] == [c.token_ids for c in alone[i]]
        for a, b in zip(rows, alone[i]):
            np.testing.assert_allclose(a.logp, b.logp, atol=1e-5)
    # The draws really are per prompt: a seed swap swaps what the prompts get.
    swapped = policy.sample([prompts[0], prompts[0]], **kw, generator_seed=[seeds[2], seeds[0]])
    assert [c.token_ids for c in swapped[3:]] == [c.token_ids for c in alone[0]]
    assert [c.token_ids for c in swapped[:3]] != [c.token_ids for c in alone[0]]
    with pytest.raises(ValueError, match="share_prefix"):
        policy.sample(prompts[:1], 2, 4, generator_seed=[1], share_prefix=False)
    with pytest.raises(ValueError, match="1 seeds for 2 prompts"):
        policy.sample(prompts[:3:2], 2, 4, generator_seed=[1], share_prefix=True)
    # The trainer's sampler: any batch size, mixed layouts, the groups in the order given.
    G = dict(rollouts_per_prompt=3, max_new_tokens=20, temperature=1.0, top_p=0.95)
    for per_batch in (1, 2, 8):
        cfg = TrainConfig()
        cfg.rollout.__dict__.update(G, hf_prompts_per_batch=per_batch)
        groups = HFSampler(policy, cfg).sample_groups(prompts, seeds)
        assert [[c.token_ids for c in g] for g in groups] == [[c.token_ids for c in g] for g in alone], per_batch


def test_reserved_kv_layer_holds_what_a_dynamic_layer_holds():
    from transformers.cache_utils import DynamicLayer

    from omnivideo_r1.policy.prefix_attention import ReservedKVLayer

    torch.manual_seed(0)
    prompt_k, prompt_v = torch.randn(3, 2, 5, 4), torch.randn(3, 2, 5, 4)
    plain = DynamicLayer()
    plain.update(prompt_k, prompt_v)
    reserved = ReservedKVLayer(prompt_k, prompt_v, reserve_tokens=2)
    assert reserved.get_seq_length() == plain.get_seq_length() == 5
    for step in range(6):  # past the reserve of 2: the buffers grow
        k, v = torch.randn(3, 2, 1 + step % 2, 4), torch.randn(3, 2, 1 + step % 2, 4)
        want_k, want_v = plain.update(k, v)
        got_k, got_v = reserved.update(k, v)
        assert torch.equal(got_k, want_k) and torch.equal(got_v, want_v)
        assert reserved.get_seq_length() == plain.get_seq_length()
        assert reserved.get_mask_sizes(1) == plain.get_mask_sizes(1)
    # Written in place, not concatenated: within the reserve the returned keys share one buffer.
    fresh = ReservedKVLayer(prompt_k, prompt_v, reserve_tokens=4)
    first, _ = fresh.update(k[:, :, :1], v[:, :, :1])
    second, _ = fresh.update(k[:, :, :1], v[:, :, :1])
    assert first.data_ptr() == second.data_ptr() == fresh._keys.data_ptr()
    # Rows leaving the batch keep their values and the reserve.
    plain.batch_select_indices(torch.tensor([2, 0]))
    reserved.batch_select_indices(torch.tensor([2, 0]))
    assert torch.equal(reserved.keys, plain.keys) and torch.equal(reserved.values, plain.values)
    k, v = torch.randn(2, 2, 1, 4), torch.randn(2, 2, 1, 4)
    assert torch.equal(reserved.update(k, v)[0], plain.update(k, v)[0])


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("greedy", [False, True])
def test_finished_rows_leaving_the_batch_change_nothing(policies, family, greedy, monkeypatch):
    from transformers.cache_utils import Cache

    from omnivideo_r1.policy import shared_prefix
    from omnivideo_r1.policy.shared_prefix import generate_shared_prefix

    policy = policies[family]
    prompts = [make_prompt(_sample(f"s{k}", 4 + k % 3), _clip(k, frames=2 + k % 3), "av") for k in range(4)]
    batch, flag = policy.encode(prompts, 1)
    config = policy._generation_config(24, greedy, 0.9, 1.0, output_logits=False)
    # A tenth of the vocabulary ends a row: rows finish at many different steps.
    vocab = policy.model.config.get_text_config().vocab_size
    eos = [t for t in range(3, vocab, 10) if t not in policy.suppress_ids]
    kept_rows = []
    select = Cache.batch_select_indices
    monkeypatch.setattr(Cache, "batch_select_indices",
                        lambda self, idx: (kept_rows.append(len(idx)), select(self, idx))[1])
    runs = {}
    for leave in (False, True):
        runs[leave] = generate_shared_prefix(policy.model, dict(batch), flag, 1 if greedy else 4, config, eos,
                                             policy.tokenizer.pad_token_id, 0.9,
                                             seeds_P=None if greedy else [3, 4, 5, 6], finished_leave=leave)
    (tokens, logp), (tokens_leave, logp_leave) = runs[False], runs[True]
    assert kept_rows and min(kept_rows) < tokens.shape[0], "no row left the batch: the test does not test leaving"
    assert all(n <= (1 - shared_prefix.FINISHED_SHARE_TO_LEAVE) * tokens.shape[0] for n in kept_rows[:1])
    assert torch.equal(tokens_leave, tokens)
    ends_B = [next((i for i, t in enumerate(row.tolist()) if t in eos), len(row)) + 1 for row in tokens]
    for row, end in enumerate(ends_B):  # log-probs only matter up to each row's end
        torch.testing.assert_close(logp_leave[row, :end], logp[row, :end], atol=1e-5, rtol=0)


# ---------------------------------------------------------------- shared-prefix scoring
@pytest.mark.parametrize("family", FAMILIES)
def test_shared_prefix_option_probs_equal_plain(policies, family):
    policy = policies[family]
    audio = make_prompt(_sample("a"), _clip(0), "audio")
    video = make_prompt(_sample("b", 6, "Which shape?"), _clip(1, frames=2), "video")
    prompts = [audio, video, audio, video, audio]
    prefixes = [[5, 6, 7], [], [9], [10, 11, 12, 13, 14], []]
    plain = policy.option_probs(prompts, prefixes)
    shared = policy.option_probs(prompts, prefixes, share_prefix=True)
    torch.testing.assert_close(shared, plain, atol=1e-5, rtol=0)


# ---------------------------------------------------------------- processed-input cache
def test_input_cache_returns_identical_tensors_and_respects_mutability(policies):
    policy = policies["qwen3_omni"]
    policy.input_cache.clear()
    prompt = make_prompt(_sample(), _clip(3), "av")
    calls = []
    real = policy._process
    policy._process = lambda *a, **k: calls.append(1) or real(*a, **k)
    try:
        first, _ = policy.encode([prompt] * 4)  # G rows of one prompt: processed once
        again, _ = policy.encode([prompt] * 4)  # a hit
        assert len(calls) == 1 and policy.input_cache.hits >= 1
        policy.input_cache.max_bytes = 0
        fresh, _ = policy.encode([prompt] * 4)  # cache off: processed again
        policy.input_cache.max_bytes = 1 << 30
        assert len(calls) == 2
        assert first.keys() == again.keys() == fresh.keys()
        for key in fresh:
            assert torch.equal(again[key], fresh[key]) and torch.equal(first[key], fresh[key]), key
        # A writable clip could change in place: never cached.
        writable = make_prompt(_sample(), _clip(4, read_only=False), "av")
        policy.encode([writable])
        policy.encode([writable])
        assert len(calls) == 4
        # Another processor setting is another key.
        before = policy.processor.position_id_per_seconds
        policy.processor.position_id_per_seconds = before + 1
        try:
            policy.encode([prompt])
        finally:
            policy.processor.position_id_per_seconds = before
        assert len(calls) == 5
        policy.encode([prompt])
        assert len(calls) == 5
    finally:
        del policy._process


def test_input_cache_is_bounded_lru():
    cache = ProcessedInputCache(max_bytes=3 * 400)
    item = lambda: {"x": torch.zeros(100)}  # noqa: E731  (400 bytes each)
    for k in range(5):
        cache.get_or_compute_for(("k", k), None, item)
    assert len(cache) == 3 and cache.nbytes <= cache.max_bytes
    hit = cache.get_or_compute_for(("k", 4), None, lambda: pytest.fail("should be cached"))
    assert hit["x"].shape == (100,)
    cache.get_or_compute_for(("k", 0), None, item)  # evicted earlier: recomputed
    assert cache.misses == 6
    assert ProcessedInputCache(0).get_or_compute_for(("k", 0), None, item) is not None


# ---------------------------------------------------------------- stage MA probes
def test_batched_modality_probes_equal_one_by_one(policies):
    from omnivideo_r1.train.config import TrainConfig
    from omnivideo_r1.train.rollout import PromptGroup, answer_prefix_ids, probe_modality_variants
    from omnivideo_r1.train.rollout_backends import HFSampler

    policy = policies["qwen3_omni"]
    sample, clip = _sample(), _clip(5, frames=4, seconds=2.0)
    prompt = make_prompt(sample, clip, "av")
    texts = ["<think>high beep</think><answer>B</answer>", "<think>x</think><answer>A</answer>", "no answer",
             "<think>the beep was high and short</think><answer>D</answer>"]
    comps = [Completion(0, [], t, [], False) for t in texts]
    group = PromptGroup(0, sample, clip, prompt, comps)
    probe_modality_variants(HFSampler(policy, TrainConfig()), [group], "confidence", TrainConfig(), step=0)
    got = group.probes
    for i, text in enumerate(texts):
        prefix = answer_prefix_ids(policy.tokenizer, text)
        if prefix is None:
            assert (got[i].answers, got[i].confidence) == ({}, {})
            continue
        letter = "BAXD"[i]
        for m in ("av", "audio", "video"):
            vprompt = prompt if m == "av" else make_prompt(sample, clip, m)
            probs = policy.option_probs([vprompt], [prefix])
            assert got[i].confidence[m] == pytest.approx(float(probs[0, "ABCD".index(letter)]), abs=1e-5)
