"""Host memory of loading a released-layout checkpoint: 1 process vs 2 processes.

A Qwen3-Omni-shaped thinker widened to ~0.4B parameters (bf16, 0.8 GB) is written once in the released layout
(sharded safetensors, `thinker.` prefix, one tensor per expert, talker/code2wav tensors). Each variant then loads it
through the trainer's `load_policy` in fresh processes (accelerate launch, gloo on CPU):
- 1 process (in a 1-process gloo group, the same loading path as the others);
- 2 processes that each load the weights (what DDP needs, and what FSDP does without cpu_ram_efficient_loading);
- 2 FSDP2 processes with cpu_ram_efficient_loading: only the main process reads the weights, the other builds the
  thinker on the meta device, and accelerate broadcasts the weights shard by shard while sharding.
Each process reports its RSS growth over the RSS before loading (after imports and process-group set-up): right after
`load_policy`, and its peak (ru_maxrss) until the model is prepared (FSDP variant: sharded); plus its private memory
(USS: pages no other process maps) right after loading. RSS counts the checkpoint's memory-mapped file pages in every
process that touched them, although the page cache holds them once.

    python benchmarks/bench_loading.py [--quick]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
def write_checkpoint(out_dir: str, quick: bool) -> tuple[str, int]:
    """The widened thinker in the released layout; returns (dir, thinker parameters)."""
    import torch

    from omnivideo_r1.policy.tiny import TinyOmniSpec, build_tiny_release_files, thinker_config
    from omnivideo_r1.policy.tokenizer import build_tokenizer
    from transformers import Qwen3OmniMoeThinkerForConditionalGeneration

    spec = TinyOmniSpec(family="qwen3_omni", size="small")
    config = thinker_config(spec, build_tokenizer(spec.family, vocab_size=spec.vocab_size))
    text = config.text_config
    text.hidden_size, text.num_attention_heads, text.head_dim = 1024, 8, 128
    text.num_hidden_layers, text.num_experts, text.moe_intermediate_size = (4 if quick else 8), 16, 1024
    text.rope_parameters["mrope_section"] = [16, 24, 24]
    config.vision_config.out_hidden_size = config.audio_config.output_dim = 1024
    torch.manual_seed(0)
    thinker = Qwen3OmniMoeThinkerForConditionalGeneration(config).to(torch.bfloat16).eval()
    build_tiny_release_files(out_dir, spec, max_shard_size="200MB", thinker=thinker)
    return out_dir, sum(p.numel() for p in thinker.parameters())


def worker(variant: str, checkpoint: str, out: str) -> None:
    """One process of a variant: load, prepare, report RSS growth."""
    import psutil
    import torch

    from omnivideo_r1.config import load_config
    from omnivideo_r1.train.config import TrainConfig
    from omnivideo_r1.train.distributed import build_accelerator, prepare_policy
    from omnivideo_r1.train.policy_setup import load_policy

    torch.set_num_threads(1)
    accelerator = build_accelerator()
    proc = psutil.Process()
    base = proc.memory_info().rss
    cfg = load_config(TrainConfig, None, [f"model.path={checkpoint}", "model.dtype=bfloat16", "model.lora_rank=8",
                                          f"run.out_dir={out}"])
    policy = load_policy(cfg, accelerator)
    after_load = proc.memory_info().rss
    private = proc.memory_full_info().uss  # pages of this process alone (file pages shared with others excluded)
    optimizer = torch.optim.AdamW([p for p in policy.model.parameters() if p.requires_grad], lr=1e-4)
    prepare_policy(accelerator, policy, optimizer, backwards_per_update=1, sequences_per_backward=1)
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    with open(os.path.join(out, f"{variant}_rank{accelerator.process_index}.json"), "w", encoding="utf-8") as fh:
        json.dump({"after_load": after_load - base, "peak": peak - base, "private_after_load": private}, fh)


def _launch(variant: str, checkpoint: str, out: str) -> list[dict]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}
    script = [os.path.abspath(__file__), "--worker", variant, checkpoint, out]
    if variant == "single":
        # A 1-process gloo group, so the single process takes the same loading path as the 2-process runs (without
        # a process group this transformers version keeps ~0.75 GB more after loading the same checkpoint).
        env.update(WORLD_SIZE="1", RANK="0", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT="29672")
        cmd = [sys.executable, *script]
    else:
        name = "fsdp_cpu_2proc.yaml" if variant == "fsdp_efficient" else "ddp_cpu_2proc.yaml"
        config = os.path.join(REPO, "omnivideo_r1", "recipes", "accelerate", name)
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", config, "--main_process_port",
               "29671", *script]
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"{variant} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    ranks = 1 if variant == "single" else 2
    results = []
    for r in range(ranks):
        with open(os.path.join(out, f"{variant}_rank{r}.json"), encoding="utf-8") as fh:
            results.append(json.load(fh))
    return results


def run(quick: bool = False, threads: int = 1) -> list[tuple[str, str, str, str]]:
    mib = 2**20
    with tempfile.TemporaryDirectory(prefix="bench_loading_") as tmp:
        checkpoint, n = write_checkpoint(os.path.join(tmp, "ckpt"), quick)
        size = sum(os.path.getsize(os.path.join(checkpoint, f)) for f in os.listdir(checkpoint)
                   if f.endswith(".safetensors"))
        conf = f"{n / 1e6:.0f}M-parameter thinker, bf16, released layout ({size / mib:.0f} MiB of safetensors)"
        rows = []
        results = {v: _launch(v, checkpoint, tmp) for v in ("single", "each_loads", "fsdp_efficient")}
        single = results["single"][0]["peak"]
        for variant, label in (("single", "1 process"), ("each_loads", "2 processes, each loads"),
                               ("fsdp_efficient", "2 FSDP2 processes, main process loads")):
            ranks = results[variant]
            per_rank = " + ".join(f"{r['peak'] / mib:.0f}" for r in ranks)
            total = sum(r["peak"] for r in ranks)
            rows.append(("loading", f"{conf}; {label}", "peak RSS growth per process (MiB), sum / 1 process",
                         f"{per_rank} MiB; {total / single:.2f}x"))
            after = " + ".join(f"{r['after_load'] / mib:.0f}" for r in ranks)
            private = " + ".join(f"{r['private_after_load'] / mib:.0f}" for r in ranks)
            rows.append(("loading", f"{conf}; {label}", "right after load_policy: RSS growth; private memory (MiB)",
                         f"{after}; {private}"))
    return rows


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(*sys.argv[2:5])
    else:
        sys.path.insert(0, HERE)
        from common import main

        main(lambda quick, threads: run(quick, threads), __doc__.splitlines()[0])
