"""Item 2: the MA reward's modality-variant probes (confidence mode) for one group, batched vs one variant at a time.

Stage MA scores each of the G rollouts' answer letters under the av, audio-only and video-only inputs, teacher-forced
after the rollout's own text up to `<answer>`.
- `old`: one `option_probs([variant] * G, prefixes)` per variant (3 passes, each encoding G identical prompts);
- `new`: what `train/rollout_backends.HFSampler.option_probs` does now: the variants that share the use_audio_in_video flag
  in one pass (audio-only and video-only always do; av joins them when its audio is a separate file), each distinct
  prompt encoded and prefilled once with its KV cache copied to its G rows (`share_prefix=True`).
Fewer passes are not possible without breaking correctness: `use_audio_in_video` is one flag per forward, and the
av prompt of a clip with in-video audio needs True while audio-only/video-only need False. The run also reports the
largest difference between the two sets of probabilities.

    python benchmarks/bench_modality_variants.py [--quick]
"""

from __future__ import annotations


import torch

from common import interleaved, load_policy, main, prompt_tokens, sample_record, synthetic_clip


def _probes(policy, prompts: dict, prefixes: list[list[int]], batched: bool) -> tuple[dict, int]:
    """{modality: probs (G, K)} and the number of forward passes used."""
    out, passes = {}, 0
    with torch.no_grad():
        if not batched:
            for m, p in prompts.items():
                out[m] = policy.option_probs([p] * len(prefixes), prefixes)
                passes += 1
            return out, passes
        by_flag: dict[bool, list[str]] = {}
        for m, p in prompts.items():
            by_flag.setdefault(p.use_audio_in_video, []).append(m)
        for ms in by_flag.values():
            probs = policy.option_probs([prompts[m] for m in ms for _ in prefixes], prefixes * len(ms),
                                        share_prefix=True)
            passes += 1
            for k, m in enumerate(ms):
                out[m] = probs[k * len(prefixes): (k + 1) * len(prefixes)]
    return out, passes


def run(quick: bool = False, threads: int = 1) -> list[tuple[str, str, str, str]]:
    torch.set_num_threads(threads)
    G = 8
    configs = [("tiny", 5.0, 2.0, 1)] if quick else [("tiny", 10.0, 4.0, 2), ("small", 2.0, 2.0, 1)]
    rows = []
    for size, seconds, fps, reps in configs:
        policy = load_policy(size)
        clip = synthetic_clip(seconds, fps=fps)
        prompts = {m: policy.make_prompt(sample_record(), clip, m) for m in ("av", "audio", "video")}
        # Rollout texts up to "<answer>" of different lengths, as the G completions of a group would have.
        texts = [f"<think>{'the beep is high ' * (k + 1)}</think><answer>" for k in range(G)]
        prefixes = [policy.tokenizer.encode(t, add_special_tokens=False) for t in texts]
        res = {}

        def variant(batched):
            def fn():
                res[batched] = _probes(policy, prompts, prefixes, batched)
            return fn

        t = interleaved({"old": variant(False), "new": variant(True)}, reps=reps)
        diff = max(float((res[False][0][m] - res[True][0][m]).abs().max()) for m in prompts)
        conf = f"{size}, {seconds:g}s clip (av prompt {prompt_tokens(policy, prompts['av'])} tokens), G={G}, " \
               "variants av+audio+video"
        rows += [
            ("2 modality-variant probes", conf, "forward passes old -> new", f"{res[False][1]} -> {res[True][1]}"),
            ("2 modality-variant probes", conf, "speed-up (batched + shared prefix)",
             f"{t['old'] / t['new']:.2f}x ({t['old']:.2f}s -> {t['new']:.2f}s)"),
            ("2 modality-variant probes", conf, "max abs prob difference", f"{diff:.1e}"),
        ]
    return rows


if __name__ == "__main__":
    main(run, __doc__.splitlines()[0])
