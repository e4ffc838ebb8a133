"""Item 6: one GSPO step split into sync / rollout / probes / update, with rollout.backend=hf and =vllm.

Both runs train the tiny Qwen3-Omni thinker with LoRA on the same synthetic clips, stage MA (accuracy mode, so the
audio-only and video-only probes sample completions too), reading the trainer's own per-step phase timings
(`time/*_s` in metrics.jsonl). The vllm backend talks to tests/vllm_server.py: the same tiny model behind vLLM's
HTTP API in a thread of this process, so on a CPU its numbers measure what the backend adds (media encoding,
HTTP, the server-side processor, adapter save and reload, the prompt-id check), not vLLM's speed on a GPU; see
docs/performance.md for the estimate at the paper's scale. Runs alternate (hf, vllm, vllm, hf, ...); the first
step of each run is dropped (model load, caches), medians over the remaining steps.

    python benchmarks/bench_backends.py [--quick]
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile

import torch

from common import REPO, main

sys.path.insert(0, os.path.join(REPO, "tests"))

PHASES = ("sync", "rollout", "probes", "rewards", "update")


def _world(root: str) -> tuple[str, str]:
    from omnivideo_r1.policy.tiny import TinyOmniSpec, build_tiny_policy_files
    from omnivideo_r1.synth.world import generate_world

    generate_world(os.path.join(root, "world"), 8, seed=0)
    model = build_tiny_policy_files(os.path.join(root, "model"), TinyOmniSpec(family="qwen3_omni", seed=0))
    return os.path.join(root, "world", "train.jsonl"), model


def _run(backend: str, data: str, model: str, out: str, steps: int, G: int, tokens: int) -> list[dict]:
    from vllm_server import start_vllm_server

    from omnivideo_r1.config import load_config
    from omnivideo_r1.train.config import TrainConfig
    from omnivideo_r1.train.gspo_train import train
    from omnivideo_r1.train.metrics_log import read_metrics

    with start_vllm_server(model) as server:
        over = ["run.stage=ma", f"run.out_dir={out}", f"run.steps={steps}", "run.progress=false",
                "run.tensorboard=false", f"model.path={model}", f"data.train_path={data}", "data.max_frames=4",
                "data.audio_layout=separate", "rollout.prompts_per_step=2", f"rollout.rollouts_per_prompt={G}",
                f"rollout.max_new_tokens={tokens}", "gspo.minibatches_per_rollout=1", "model.lora_rank=8",
                "optim.lr=1e-3", f"rollout.backend={backend}", f"rollout.vllm.base_url={server.base_url}",
                "reward_options={format: {partial_credit: true}, modality_attention: {mode: accuracy}}"]
        train(load_config(TrainConfig, None, over))
    return read_metrics(os.path.join(out, "metrics.jsonl"))[1:]


def run(quick: bool = False, threads: int = 1) -> list[tuple[str, str, str, str]]:
    torch.set_num_threads(threads)
    steps, G, tokens, rounds = (3, 4, 24, 1) if quick else (4, 8, 48, 2)
    root = tempfile.mkdtemp(prefix="bench_backends_")
    data, model = _world(root)
    rows_by: dict[str, list[dict]] = {"hf": [], "vllm": []}
    for r in range(rounds):
        for backend in (("hf", "vllm") if r % 2 == 0 else ("vllm", "hf")):
            rows_by[backend] += _run(backend, data, model, os.path.join(root, f"{backend}{r}"), steps, G, tokens)
    med = {b: {p: statistics.median(row.get(f"time/{p}_s", 0.0) for row in rows) for p in PHASES}
           for b, rows in rows_by.items()}
    total = {b: statistics.median(row["step_time_s"] for row in rows) for b, rows in rows_by.items()}
    gap = max(row.get("rollout/logp_gap_max", 0.0) for row in rows_by["vllm"])
    conf = (f"tiny (0.4M) + LoRA r8, stage MA accuracy, 2 prompts x G={G}, {tokens} new tokens, "
            f"{len(rows_by['hf'])} steps per backend")
    out = []
    for b in ("hf", "vllm"):
        split = " / ".join(f"{med[b][p]:.2f}" for p in PHASES)
        share = " / ".join(f"{100 * med[b][p] / total[b]:.0f}%" for p in PHASES)
        out.append(("6 rollout backends", conf, f"{b}: sync / rollout / probes / rewards / update (s)",
                    f"{split} (step {total[b]:.2f}s; {share})"))
    for p in ("rollout", "probes", "update"):
        out.append(("6 rollout backends", conf, f"{p} time vllm / hf", f"{med['vllm'][p] / med['hf'][p]:.2f}x"))
    out.append(("6 rollout backends", conf, "step time vllm / hf", f"{total['vllm'] / total['hf']:.2f}x"))
    out.append(("6 rollout backends", conf, "max |logp_server - logp_trainer| over the run", f"{gap:.1e}"))
    return out


if __name__ == "__main__":
    main(run, __doc__.splitlines()[0])
