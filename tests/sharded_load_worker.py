"""One process of a 2-process FSDP2 load (started by `accelerate launch --config_file fsdp_cpu_2proc.yaml` from
test_release_layout.py).

Loads CHECKPOINT through the trainer's `load_policy` (FSDP with cpu_ram_efficient_loading: only the main process
reads weights), prepares it as the trainer does, and writes OUT/rank<N>.json: what this process held before
sharding, its peak RSS, and the largest difference between the sharded model's logits and an unsharded reference.
Usage: sharded_load_worker.py CHECKPOINT OUT
"""

from __future__ import annotations

import json
import os
import resource
import sys

import torch


def main(checkpoint: str, out: str) -> None:
    from omnivideo_r1.config import load_config
    from omnivideo_r1.policy.lora import trainable_by_module
    from omnivideo_r1.policy.omni import OmniPolicy
    from omnivideo_r1.train.config import TrainConfig
    from omnivideo_r1.train.distributed import build_accelerator, prepare_policy
    from omnivideo_r1.train.policy_setup import load_policy

    torch.set_num_threads(1)
    accelerator = build_accelerator()
    cfg = load_config(TrainConfig, None, [f"model.path={checkpoint}", "model.lora_rank=4", "model.lora_alpha=8",
                                          f"run.out_dir={out}"])
    policy = load_policy(cfg, accelerator)
    params = list(policy.model.parameters())
    held = {"bytes_before_prepare": sum(p.numel() * p.element_size() for p in params if not p.is_meta),
            "meta_parameters_before_prepare": sum(p.is_meta for p in params), "parameters": len(params)}
    optimizer = torch.optim.AdamW([p for p in params if p.requires_grad], lr=1e-3)
    prepared, optimizer = prepare_policy(accelerator, policy, optimizer, backwards_per_update=1,
                                         sequences_per_backward=2)
    ids = torch.arange(24).view(2, 12) + 3
    with torch.no_grad():
        logits = prepared(lambda model, input_ids: model(input_ids=input_ids).logits, ids)
        logits = logits.full_tensor() if hasattr(logits, "full_tensor") else logits
        reference = OmniPolicy.from_pretrained(checkpoint).model(input_ids=ids).logits
    result = {**held, "max_abs_diff": float((logits - reference).abs().max()),
              "trainable_by_module": trainable_by_module(policy.model),
              "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    with open(os.path.join(out, f"rank{accelerator.process_index}.json"), "w", encoding="utf-8") as fh:
        json.dump(result, fh)
    accelerator.wait_for_everyone()
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:3])
