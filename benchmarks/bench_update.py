"""Shared-prefix update: one GSPO update of G = 8 completions of a 2 / 5 / 10 / 20 s clip prompt, one full row per completion
(`plain`, gspo.shared_prefix=false) vs the prompt run once with its completions attending to it (`shared`, the
default; policy/grouped_prefix.py).

One update as `train/gspo_train.py` makes it for one prompt group: old log-probs (no grad), then teacher-forced
log-probs with entropy, `gspo_loss`, backward and an AdamW step. Tiny Qwen3-Omni thinker, av prompt with the clip's
own audio track (use_audio_in_video), the same 8 ragged completions on both sides (33-64 tokens, fixed seed).
- Time: after one warm-up update per variant, the (clip, variant) configurations run round-robin, the order reversed
  every other round; median per configuration.
- Memory: each (clip, variant) in a fresh process with glibc's mmap threshold fixed at 64 KiB (so freed tensors go
  back to the OS and RSS follows live memory instead of the allocator's high-water mark): one warm-up update (AdamW
  state), then the peak RSS during the second update (sampled every millisecond) minus the RSS just before it; and
  the bytes autograd saves for backward in the update's forward (distinct storages), the activation memory proper.
- Scaling: the shared update's time at each clip length relative to 10 s, next to the prompt-token ratio.
The last line printed is `shared-prefix update speed-up at 10 s, G=8: X.XXx`.

    python benchmarks/bench_update.py [--quick]
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np
import torch

from common import PeakRSS, load_policy, n_params, prompt_tokens, sample_record, synthetic_clip

G = 8
CLIP_SECONDS = (2.0, 5.0, 10.0, 20.0)
COMPLETION_TOKENS = (64, 48, 57, 33, 64, 40, 61, 52)


def completions(policy) -> list[list[int]]:
    """The G completions scored on both sides: ordinary text ids (no special or media tokens), ragged lengths."""
    banned = set(policy.suppress_ids) | set(policy.eos_token_ids) | set(policy.tokenizer.all_special_ids)
    ids = np.array([i for i in range(len(policy.tokenizer)) if i not in banned])
    rng = np.random.RandomState(0)
    return [rng.choice(ids, n).tolist() for n in COMPLETION_TOKENS]


def update(policy, optimizer, prompt, comps: list[list[int]], share: bool) -> None:
    from omnivideo_r1.algo.gspo import gspo_loss

    prompts = [prompt] * len(comps)
    with torch.no_grad():
        old_BT, _ = policy.logprobs(prompts, comps, share_prefix=share)
    logp_BT, mask_BT, _ = policy.logprobs(prompts, comps, with_entropy=True, share_prefix=share)
    loss, _ = gspo_loss(logp_BT, old_BT, torch.linspace(-1, 1, len(comps)), mask_BT, num_sequences=len(comps))
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def _setup(seconds: float):
    policy = load_policy("tiny")
    policy.model.train()
    optimizer = torch.optim.AdamW(policy.model.parameters(), lr=1e-5)
    return policy, optimizer, policy.make_prompt(sample_record(), synthetic_clip(seconds), "av")


def saved_for_backward_bytes(policy, prompt, comps: list[list[int]], share: bool) -> int:
    """Bytes of the distinct storages autograd keeps for the backward pass of one update's forward."""
    storages: dict[int, int] = {}

    def pack(t):
        storage = t.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        policy.logprobs([prompt] * len(comps), comps, with_entropy=True, share_prefix=share)
    return sum(storages.values())


def _child(variant: str, seconds: float, threads: int) -> dict:
    torch.set_num_threads(threads)
    policy, optimizer, prompt = _setup(seconds)
    comps = completions(policy)
    update(policy, optimizer, prompt, comps, variant == "shared")
    mem = PeakRSS()
    update(policy, optimizer, prompt, comps, variant == "shared")
    peak = mem.stop()
    return {"peak_rss_mib": peak / 2**20,
            "saved_mib": saved_for_backward_bytes(policy, prompt, comps, variant == "shared") / 2**20}


def memory_mib(variant: str, seconds: float, threads: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MALLOC_MMAP_THRESHOLD_": str(64 * 1024)}
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", variant, str(seconds), str(threads)],
                         env=env, capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        raise RuntimeError(f"memory child {variant} {seconds}s failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(quick: bool = False, threads: int = 1) -> list[tuple[str, str, str, str]]:
    torch.set_num_threads(threads)
    policy, optimizer, _ = _setup(CLIP_SECONDS[0])
    comps = completions(policy)
    prompts = {s: policy.make_prompt(sample_record(), synthetic_clip(s), "av") for s in CLIP_SECONDS}
    tokens = {s: prompt_tokens(policy, prompts[s]) for s in CLIP_SECONDS}
    for share in (False, True):  # warm-up: allocator, AdamW state, lazy initialisation
        update(policy, optimizer, prompts[CLIP_SECONDS[0]], comps, share)
    configs = [(s, share) for s in CLIP_SECONDS for share in (False, True)]
    times: dict[tuple, list[float]] = {c: [] for c in configs}
    for r in range(1 if quick else 2):
        for s, share in (configs if r % 2 == 0 else configs[::-1]):
            t0 = time.perf_counter()
            update(policy, optimizer, prompts[s], comps, share)
            times[(s, share)].append(time.perf_counter() - t0)
    median = {c: statistics.median(v) for c, v in times.items()}

    rows = []
    memory_at = (10.0,) if quick else CLIP_SECONDS
    for s in CLIP_SECONDS:
        plain, shared = median[(s, False)], median[(s, True)]
        conf = (f"tiny ({n_params(policy.model) / 1e6:.1f}M), {s:g}s clip = {tokens[s]} prompt tokens, G={G}, "
                f"{min(COMPLETION_TOKENS)}-{max(COMPLETION_TOKENS)}-token completions")
        rows.append(("shared-prefix update", conf, "update time plain -> shared",
                     f"{plain:.2f}s -> {shared:.2f}s ({plain / shared:.2f}x)"))
        if s in memory_at:
            mem = {v: memory_mib(v, s, threads) for v in ("plain", "shared")}
            rows.append(("shared-prefix update", conf, "peak RSS increase / saved for backward, plain -> shared",
                         f"{mem['plain']['peak_rss_mib']:.0f} -> {mem['shared']['peak_rss_mib']:.0f} MiB / "
                         f"{mem['plain']['saved_mib']:.0f} -> {mem['shared']['saved_mib']:.0f} MiB"))
        rows.append(("shared-prefix update", conf, "shared update time / prompt tokens, x vs 10 s",
                     f"{shared / median[(10.0, True)]:.2f}x / {tokens[s] / tokens[10.0]:.2f}x"))
    return rows


def headline(rows) -> str:
    """The line this benchmark ends with, read from its 10 s update-time row."""
    for item, conf, measure, value in rows:
        if item == "shared-prefix update" and " 10s clip" in conf and measure == "update time plain -> shared":
            return f"shared-prefix update speed-up at 10 s, G={G}: {value.rsplit('(', 1)[1].rstrip(')')}"
    raise ValueError("bench_update produced no 10 s update row")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        from common import quiet

        quiet()
        print(json.dumps(_child(sys.argv[2], float(sys.argv[3]), int(sys.argv[4]))))
    else:
        from common import main

        main(run, __doc__.splitlines()[0], last_line=headline)
