"""Peak memory of one GSPO step vs completion length, ours vs TRL's GRPOTrainer, at two vocabulary sizes.

Setting (both sides, benchmarks/bench_vs_trl.py's child processes): the in-code Qwen3 text LM (hidden 256, 4
layers) with V vocabulary rows, 1 prompt x G=4 completions forced to exactly T tokens, one step (generation, log-probs
and entropies of the completions, GSPO loss "sequence" level, backward, AdamW), float32 on CPU, gradient
checkpointing of the decoder layers on both sides (TRL's default). Ours scores the
completions as the trainer does: hidden states through the LM head in chunks of at most
policy/forward.py:MAX_LOGIT_ELEMENTS logits (algo/logprobs.py:chunked_token_logprobs, recomputed chunk by chunk in
the backward); TRL 1.16 materialises the (B, T, V) logits. Each (side, V, T) runs in its own fresh process; the
measure is peak RSS during the step minus RSS just before it (model, optimizer, data already built), sampled every
millisecond. Growth per token = (peak at the longest T - peak at the shortest T) / (extra completion tokens).

    python benchmarks/bench_memory.py [--quick]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
G = 4
VOCABS = (8192, 32768)
WORDS = 18  # a ~20-token prompt: the completions dominate


def _measure(side: str, T: int, vocab: int, threads: int) -> int:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "TRANSFORMERS_VERBOSITY": "error",
           "TOKENIZERS_PARALLELISM": "false", "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, os.path.join(HERE, "bench_vs_trl.py"), "--child", side, "--T", str(T), "--words",
           str(WORDS), "--P", "1", "--G", str(G), "--vocab", str(vocab), "--steps", "1", "--threads", str(threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=HERE)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"bench_memory child {side} T={T} V={vocab} failed:\n{out.stdout[-2000:]}\n"
                           f"{out.stderr[-3000:]}")
    return int(json.loads(lines[-1])["peak_rss"])


def run(quick: bool = False, threads: int = 1) -> list[tuple[str, str, str, str]]:
    lengths = (256, 1024) if quick else (256, 1024, 4096)
    peak: dict[tuple[str, int, int], int] = {}
    for vocab in VOCABS:
        for i, T in enumerate(lengths):
            for side in (("trl", "ours") if i % 2 == 0 else ("ours", "trl")):
                peak[side, vocab, T] = _measure(side, T, vocab, threads)
    mib = 2**20
    rows = []
    for vocab in VOCABS:
        conf = f"Qwen3 text LM, V={vocab}, 1 prompt x G={G}"
        for T in lengths:
            ours, trl = peak["ours", vocab, T], peak["trl", vocab, T]
            rows.append(("memory: one GSPO step", f"{conf}, T={T}", "peak RSS increase ours / TRL",
                         f"{ours / trl:.2f}x ({ours / mib:.0f} MiB vs {trl / mib:.0f} MiB)"))
    extra_tokens = G * (lengths[-1] - lengths[0])
    growth = {(side, vocab): (peak[side, vocab, lengths[-1]] - peak[side, vocab, lengths[0]]) / extra_tokens
              for side in ("ours", "trl") for vocab in VOCABS}
    span = f"T {lengths[0]} -> {lengths[-1]}"
    for side in ("ours", "trl"):
        a, b = growth[side, VOCABS[0]], growth[side, VOCABS[1]]
        rows.append(("memory: growth per completion token", f"{side}, {span}",
                     f"V={VOCABS[1]} / V={VOCABS[0]}",
                     f"{b / a:.2f}x ({b / 1024:.0f} KiB vs {a / 1024:.0f} KiB per token)"))
    worst = max(peak["ours", v, T] / peak["trl", v, T] for v in VOCABS for T in lengths)
    at_longest = {v: peak["ours", v, lengths[-1]] / peak["trl", v, lengths[-1]] for v in VOCABS}
    rows.append(("memory: summary", f"T={lengths[0]}..{lengths[-1]}, V={VOCABS[0]} and {VOCABS[1]}", "result",
                 f"ours / TRL <= {worst:.2f}x everywhere (goal <= 1.0x: {'met' if worst <= 1.0 else 'MISSED'}); "
                 f"at T={lengths[-1]}: " + ", ".join(f"{at_longest[v]:.2f}x (V={v})" for v in VOCABS) +
                 f"; our growth per token changes {growth['ours', VOCABS[1]] / growth['ours', VOCABS[0]]:.2f}x "
                 f"when V grows {VOCABS[1] // VOCABS[0]}x, TRL's "
                 f"{growth['trl', VOCABS[1]] / growth['trl', VOCABS[0]]:.2f}x"))
    return rows


if __name__ == "__main__":
    sys.path.insert(0, HERE)
    from common import main

    main(run, __doc__.splitlines()[0], last_line=lambda rows: f"SUMMARY: {rows[-1][3]}")
