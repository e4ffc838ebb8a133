"""Item 1: one GSPO group (G rollouts of one omni prompt) with a shared prefix vs plain generation.

Variants, on the same policy, prompt, seed and sampler settings, timed alternately:
- `nrs`:    `thinker.generate(**one_prompt_batch, num_return_sequences=G)` (HF expands the inputs G times: the vision
            and audio encoders and the whole prompt prefill run for G identical rows);
- `plain`:  `OmniPolicy.sample(share_prefix=False)` (G repeated rows through generate, plus the log-prob bookkeeping);
- `shared`: `OmniPolicy.sample(share_prefix=True)` (encoders + prefill once, KV cache copied G times).
All three get the processed inputs from the same warm input cache, so the ratio is the model-side work. The run
also checks that `shared` sampled exactly the same tokens as `plain` and `nrs` for the seed.

Item 1b, one step's rollouts (P prompts of different clips, G each, every prompt its own seed), as the trainer's hf
sampler takes them (`rollout.hf_prompts_per_batch`):
- `per_group`: one sampling loop per prompt (hf_prompts_per_batch=1);
- `together`:  all P groups in one loop (hf_prompts_per_batch=P), each prompt's keys and values held once and read
  once for its G rows by the decode attention (policy/prefix_attention.py);
- `together_copied`: the same batch with the prompt's cache copied to each of its G rows, in buffers reserved for
  the whole rollout (as before the prefix-shared attention);
- `together_concat`: copied, and grown by concatenation at every step (`DynamicCache`, as before the reserved
  cache), to show what the reservation is worth once P*G rows share a loop.
The run checks that the four sampled the same tokens.

Item 1c, finished rows leaving the decode batch: the demo's packaged perception base on P questions of a freshly
generated synthetic world (the demo's clip size and frames), G each, every prompt its own seed, all in one loop;
completions end at different lengths, and the loop runs until the longest ends.
- `leave`: finished rows leave the batch once they are a quarter of it (the default);
- `keep`:  every row is computed to the end, on padding once finished (before).
The run checks that both sampled the same tokens and reports the completions' mean and longest length.

    python benchmarks/bench_rollout.py [--quick]
"""

from __future__ import annotations

import torch

from common import interleaved, load_policy, main, n_params, prompt_tokens, sample_record, synthetic_clip


def run(quick: bool = False, threads: int = 1) -> list[tuple[str, str, str, str]]:
    torch.set_num_threads(threads)
    G = 8
    # (size, clip seconds, frames per second, new tokens, repetitions): the small model at a shorter clip and
    # fewer new tokens keeps the whole suite within its 10-minute budget on 2 busy cores.
    configs = [("tiny", 5.0, 2.0, 32, 1), ("small", 2.0, 2.0, 16, 1)] if quick else \
        [("tiny", 10.0, 4.0, 32, 2), ("small", 5.0, 2.0, 16, 1)]
    rows = []
    for size, seconds, fps, new_tokens, reps in configs:
        policy = load_policy(size)
        prompt = policy.make_prompt(sample_record(), synthetic_clip(seconds, fps=fps), "av")
        L = prompt_tokens(policy, prompt)
        cfg = policy._generation_config(new_tokens, False, 1.0, 1.0)
        outputs = {}

        def nrs():
            batch, flag = policy.encode([prompt])
            with torch.no_grad(), torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                out = policy.model.generate(**batch, generation_config=cfg, use_audio_in_video=flag,
                                            num_return_sequences=G)
            outputs["nrs"] = out.sequences[:, batch["input_ids"].shape[1]:].tolist()

        def sampler(share):
            def fn():
                comps = policy.sample([prompt], G, new_tokens, generator_seed=0, share_prefix=share)
                outputs["shared" if share else "plain"] = [c.token_ids for c in comps]
            return fn

        t = interleaved({"nrs": nrs, "plain": sampler(False), "shared": sampler(True)}, reps=reps)
        same = outputs["plain"] == outputs["shared"] and all(
            row[: len(ids)] == ids for row, ids in zip(outputs["nrs"], outputs["shared"]))
        conf = f"{size} ({n_params(policy.model) / 1e6:.1f}M), {seconds:g}s clip = {L} prompt tokens, G={G}, " \
               f"{new_tokens} new tokens"
        rows += [
            ("1 shared-prefix rollout", conf, "speed-up vs generate(num_return_sequences=G)",
             f"{t['nrs'] / t['shared']:.2f}x ({t['nrs']:.2f}s -> {t['shared']:.2f}s)"),
            ("1 shared-prefix rollout", conf, "speed-up vs G repeated rows (old sample())",
             f"{t['plain'] / t['shared']:.2f}x ({t['plain']:.2f}s -> {t['shared']:.2f}s)"),
            ("1 shared-prefix rollout", conf, "same tokens as plain paths (seed 0)", "yes" if same else "NO"),
        ]
    return rows + step_of_groups(quick) + finished_rows_leave(quick)


def step_of_groups(quick: bool) -> list[tuple[str, str, str, str]]:
    """Item 1b: P groups one loop each vs together (prompt keys once / copied and reserved / concatenated)."""
    from unittest import mock

    from omnivideo_r1.policy import shared_prefix

    P, G, seconds, new_tokens = (4, 8, 5.0, 64) if quick else (8, 8, 5.0, 128)
    policy = load_policy("tiny")
    prompts = [policy.make_prompt(sample_record(f"bench{k}"), synthetic_clip(seconds, seed=k), "av") for k in range(P)]
    seeds = list(range(100, 100 + P))
    outputs = {}

    def per_group():
        outputs["per_group"] = [c.token_ids for p, s in zip(prompts, seeds)
                                for c in policy.sample([p], G, new_tokens, generator_seed=s, share_prefix=True)]

    def together(name="together"):
        outputs[name] = [c.token_ids for c in policy.sample(prompts, G, new_tokens, generator_seed=seeds,
                                                            share_prefix=True)]

    def together_copied():
        with mock.patch.object(shared_prefix, "share_prefix_cache", lambda *args: False):
            together("together_copied")

    def together_concat():
        with mock.patch.object(shared_prefix, "share_prefix_cache", lambda *args: False), \
                mock.patch.object(shared_prefix, "reserve_kv_cache", lambda cache, tokens: None):
            together("together_concat")

    t = interleaved({"per_group": per_group, "together": together, "together_copied": together_copied,
                     "together_concat": together_concat}, reps=1)
    same = all(outputs[k] == outputs["per_group"] for k in ("together", "together_copied", "together_concat"))
    conf = (f"tiny, {P} prompts x G={G} ({seconds:g}s clips, {prompt_tokens(policy, prompts[0])} prompt tokens), "
            f"{new_tokens} new tokens")
    return [
        ("1b a step's groups", conf, "speed-up: all groups in one loop vs one loop per group",
         f"{t['per_group'] / t['together']:.2f}x ({t['per_group']:.2f}s -> {t['together']:.2f}s)"),
        ("1b a step's groups", conf, "speed-up: prompt keys read once per prompt vs copied to its G rows",
         f"{t['together_copied'] / t['together']:.2f}x ({t['together_copied']:.2f}s -> {t['together']:.2f}s)"),
        ("1b a step's groups", conf, "speed-up: reserved KV cache vs concatenated, copied rows, all in one loop",
         f"{t['together_concat'] / t['together_copied']:.2f}x "
         f"({t['together_concat']:.2f}s -> {t['together_copied']:.2f}s)"),
        ("1b a step's groups", conf, "same tokens in all four", "yes" if same else "NO"),
    ]


def finished_rows_leave(quick: bool) -> list[tuple[str, str, str, str]]:
    """Item 1c: finished rows leave the decode batch vs stay to the end, on the packaged base's own kind of prompt."""
    import contextlib
    import io
    import os
    import tempfile
    from unittest import mock

    from omnivideo_r1.media.cache import ClipCache
    from omnivideo_r1.policy import shared_prefix
    from omnivideo_r1.policy.omni import OmniPolicy
    from omnivideo_r1.schema import read_samples
    from omnivideo_r1.synth.world import generate_world
    from omnivideo_r1.train.demo import PACKAGED_BASE_DIR, DemoConfig

    P, G, new_tokens = (4, 8, 208) if quick else (8, 8, 208)
    demo = DemoConfig()
    world = os.path.join(tempfile.mkdtemp(prefix="bench_world_"), "world")
    generate_world(world, P + 4, seed=7, config=demo.world)
    samples = read_samples(os.path.join(world, "train.jsonl"))[:P]
    with contextlib.redirect_stderr(io.StringIO()):
        policy = OmniPolicy.from_pretrained(PACKAGED_BASE_DIR)
    cache = ClipCache(1 << 28)
    prompts = [policy.make_prompt(s, cache.get_or_load(s.video, fps=2.0, max_frames=demo.max_frames,
                                                       max_pixels=demo.max_pixels), "av") for s in samples]
    seeds = list(range(200, 200 + P))
    outputs = {}

    def sample(name: str, share_to_leave: float):
        def fn():
            with mock.patch.object(shared_prefix, "FINISHED_SHARE_TO_LEAVE", share_to_leave):
                outputs[name] = [c.token_ids for c in policy.sample(prompts, G, new_tokens, temperature=0.7,
                                                                    generator_seed=seeds, share_prefix=True)]
        return fn

    # A share of 1 never lets a row leave: every row to the end.
    t = interleaved({"keep": sample("keep", 1.0), "leave": sample("leave", shared_prefix.FINISHED_SHARE_TO_LEAVE)},
                    reps=1)
    lengths = [len(ids) for ids in outputs["leave"]]
    conf = (f"packaged base, {P} synthetic-world questions x G={G} ({prompt_tokens(policy, prompts[0])} prompt "
            f"tokens), up to {new_tokens} new tokens (mean {sum(lengths) / len(lengths):.0f}, longest {max(lengths)})")
    return [
        ("1c finished rows leave", conf, "speed-up: finished rows leave the batch vs stay to the end",
         f"{t['keep'] / t['leave']:.2f}x ({t['keep']:.2f}s -> {t['leave']:.2f}s)"),
        ("1c finished rows leave", conf, "same tokens", "yes" if outputs["keep"] == outputs["leave"] else "NO"),
    ]


if __name__ == "__main__":
    main(run, __doc__.splitlines()[0])
