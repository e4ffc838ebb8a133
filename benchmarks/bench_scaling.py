"""Item 5: achieved FLOP/s of a GSPO training step vs this machine's matmul FLOP/s; step time vs clip length and G.

One step, as `train/gspo_train.py` does it for one prompt group: G shared-prefix rollouts (`sample`), old log-probs
(no grad), then the update: teacher-forced log-probs with entropy, `gspo_loss`, backward, AdamW step.
- Machine peak: median time of `torch.matmul` on 2048 x 2048 fp32 matrices (2 n^3 FLOPs), same thread count.
- Step FLOPs: counted with `torch.utils.flop_counter.FlopCounterMode` over one step (matmuls/convs/attention; the
  counted run is not timed), and the 6 x params x tokens estimate for the update + 2 x params x tokens for the
  rollouts and the old log-probs (params: the thinker's total; the MoE's 2-of-4 experts make the active count lower).
- Scaling: the same step at clip lengths 2, 5, 10, 20 s (G = 8) and G = 4, 8, 16 (10 s clip), configurations
  round-robin so load drifts hit all of them; median per configuration.

    python benchmarks/bench_scaling.py [--quick]
"""

from __future__ import annotations

import statistics
import time

import torch

from common import load_policy, main, n_params, prompt_tokens, sample_record, synthetic_clip

FPS, NEW_TOKENS = 2.0, 16


def matmul_flops(n: int = 2048, reps: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.matmul(a, b)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        torch.matmul(a, b)
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / statistics.median(times)


def gspo_step(policy, optimizer, prompt, G: int, seed: int = 0) -> dict[str, float]:
    """One group's rollout + update; returns phase times and token counts."""
    from omnivideo_r1.algo.gspo import gspo_loss

    t0 = time.perf_counter()
    policy.model.eval()
    comps = policy.sample([prompt], G, NEW_TOKENS, generator_seed=seed, share_prefix=True)
    ids = [c.token_ids for c in comps]
    t1 = time.perf_counter()
    with torch.no_grad():
        old_BT, _ = policy.logprobs([prompt] * G, ids)
    t2 = time.perf_counter()
    policy.model.train()
    logp_BT, mask_BT, _ = policy.logprobs([prompt] * G, ids, with_entropy=True)
    adv_B = torch.linspace(-1, 1, G)
    loss, _ = gspo_loss(logp_BT, old_BT, adv_B, mask_BT, num_sequences=G)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    t3 = time.perf_counter()
    return {"rollout": t1 - t0, "old_logp": t2 - t1, "update": t3 - t2, "step": t3 - t0,
            "completion_tokens": sum(len(i) for i in ids)}


def _counted_flops(policy, optimizer, prompt, G: int) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        gspo_step(policy, optimizer, prompt, G)
    return counter.get_total_flops()


def run(quick: bool = False, threads: int = 1) -> list[tuple[str, str, str, str]]:
    torch.set_num_threads(threads)
    peak = matmul_flops()
    rows = [("5 FLOP/s", f"torch.matmul 2048x2048 fp32, {threads} thread(s)", "machine matmul FLOP/s",
             f"{peak / 1e9:.1f} GFLOP/s")]

    # ---- achieved FLOP/s of one step, tiny and small ----
    for size, seconds, G in (("tiny", 10.0, 8), ("small", 2.0, 4)):
        if quick and size == "small":
            continue
        if quick:
            seconds = 5.0
        policy = load_policy(size)
        optimizer = torch.optim.AdamW(policy.model.parameters(), lr=1e-5)
        prompt = policy.make_prompt(sample_record(), synthetic_clip(seconds, fps=FPS), "av")
        L = prompt_tokens(policy, prompt)
        flops = _counted_flops(policy, optimizer, prompt, G)
        runs = [gspo_step(policy, optimizer, prompt, G, seed=s) for s in range(1 if quick else 2)]
        step = statistics.median(r["step"] for r in runs)
        upd = statistics.median(r["update"] for r in runs)
        N, T = n_params(policy.model), statistics.median(r["completion_tokens"] for r in runs)
        seq_tokens = G * L + T  # every row carries the full prompt in the teacher-forced passes
        est = 6 * N * seq_tokens + 2 * N * seq_tokens + 2 * N * (L + T)
        conf = f"{size} ({N / 1e6:.1f}M), {seconds:g}s clip = {L} prompt tokens, G={G}, {NEW_TOKENS} new tokens"
        rows += [
            ("5 FLOP/s", conf, "step FLOPs counted (FlopCounterMode) / 6ND-style estimate",
             f"{flops / 1e9:.1f} / {est / 1e9:.1f} GFLOP"),
            ("5 FLOP/s", conf, "achieved step FLOP/s (counted FLOPs / step time)",
             f"{flops / step / 1e9:.2f} GFLOP/s = {100 * flops / step / peak:.1f}% of matmul "
             f"(step {step:.2f}s, update {100 * upd / step:.0f}% of it)"),
        ]
        del policy, optimizer

    # ---- scaling with clip length and group size (tiny) ----
    policy = load_policy("tiny")
    optimizer = torch.optim.AdamW(policy.model.parameters(), lr=1e-5)
    lengths = (2.0, 5.0, 10.0, 20.0)
    groups = (4, 8, 16)
    configs = [(s, 8) for s in lengths] + [(10.0, g) for g in groups if g != 8]
    prompts = {s: policy.make_prompt(sample_record(), synthetic_clip(s, fps=FPS), "av") for s in lengths}
    gspo_step(policy, optimizer, prompts[lengths[0]], 4)  # warm-up: allocator, lazy init
    times: dict[tuple, list[dict]] = {c: [] for c in configs}
    # Steps take well under a second with the shared-prefix update: more rounds keep the medians steady under load.
    for r in range(2 if quick else 6):
        for c in (configs if r % 2 == 0 else configs[::-1]):
            times[c].append(gspo_step(policy, optimizer, prompts[c[0]], c[1], seed=r))
    base = statistics.median(x["step"] for x in times[(10.0, 8)])
    for s, G in configs:
        st = statistics.median(x["step"] for x in times[(s, G)])
        ro = statistics.median(x["rollout"] for x in times[(s, G)])
        rows.append(("5 scaling", f"tiny, {s:g}s clip ({prompt_tokens(policy, prompts[s])} tokens), G={G}",
                     "step time (x vs 10s, G=8)", f"{st:.2f}s ({st / base:.2f}x; rollout {100 * ro / st:.0f}%)"))
    return rows


if __name__ == "__main__":
    main(run, __doc__.splitlines()[0])
