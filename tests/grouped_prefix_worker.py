"""One process of a 2-process check of the shared-prefix scorer under an engine (started by `accelerate launch` from
test_grouped_prefix.py with the DDP or the FSDP2 CPU config).

Every process builds the same float64 tiny Qwen3-Omni policy from CHECKPOINT (vision encoder frozen, audio encoder
trained), prepares it with the trainer's own plumbing (train/distributed.py) and scores its own prompt group (a clip
seeded by its rank) twice through the prepared module: one full row per completion, then with the prompt shared,
each pass followed by one backward, in which the engine reduces the gradients (DDP: all-reduced; FSDP2:
reduce-scattered into this process's shards). Writes OUT/rank<N>.json: the loss of both passes, and per parameter
the norm of the plain pass's gradient and of the difference (this process's shard under FSDP2).
Usage: grouped_prefix_worker.py CHECKPOINT OUT
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from helpers import clip_from_arrays  # noqa: E402


def local(t: torch.Tensor) -> torch.Tensor:
    return t.to_local() if hasattr(t, "to_local") else t


def main(checkpoint: str, out: str) -> None:
    from omnivideo_r1.algo.gspo import gspo_loss
    from omnivideo_r1.policy.lora import freeze_encoders
    from omnivideo_r1.policy.omni import OmniPolicy, make_prompt
    from omnivideo_r1.schema import AVSample
    from omnivideo_r1.train.distributed import build_accelerator, prepare_policy

    torch.set_num_threads(1)
    accelerator = build_accelerator()
    rank = accelerator.process_index
    policy = OmniPolicy.from_pretrained(checkpoint, dtype=torch.float64)
    policy.model.set_experts_implementation("eager")  # the grouped-GEMM MoE kernel has no float64
    freeze_encoders(policy.model, freeze_vision=True, freeze_audio=False)
    optimizer = torch.optim.SGD([p for p in policy.model.parameters() if p.requires_grad], lr=0.0)
    model, _ = prepare_policy(accelerator, policy, optimizer, backwards_per_update=1, sequences_per_backward=4)
    model.train()

    rng = np.random.RandomState(rank)
    clip = clip_from_arrays(rng.randint(0, 256, (4, 64, 64, 3), dtype=np.uint8),
                            (0.1 * rng.randn(16_000)).astype(np.float32), fps=2.0, path=f"clip{rank}.mp4")
    sample = AVSample(id=f"s{rank}", video=f"s{rank}.mp4", question="Which colour was on screen at the beep?",
                      options=["red", "green", "blue", "yellow"], answer="B")
    prompts = [make_prompt(sample, clip, "av")] * 4
    completions = [rng.randint(5, 300, n).tolist() for n in (9, 0, 4, 13)]
    adv_B = torch.tensor([1.0, -0.5, 0.3, -1.0], dtype=torch.float64)

    results, old_BT = {}, None
    for share in (False, True):
        model.zero_grad(set_to_none=True)
        logp_BT, mask_BT = policy.logprobs(prompts, completions, temperature=0.9, model=model, share_prefix=share)
        if old_BT is None:  # ratios off 1 both ways, some clipped, all 1e-4 away from the clip range's edges
            old_BT = logp_BT.detach() + torch.tensor([-2e-3, 1e-4, 0.0, 1e-3])[:, None]
        loss, _ = gspo_loss(logp_BT, old_BT, adv_B, mask_BT, num_sequences=len(prompts))
        accelerator.backward(loss)
        grads = {n: local(p.grad).clone() for n, p in model.named_parameters() if p.grad is not None}
        results[share] = (float(loss), grads)
    (loss0, g0), (loss1, g1) = results[False], results[True]
    report = {"loss": [loss0, loss1], "same_parameters": sorted(g0) == sorted(g1),
              "grads": {n: [float(g0[n].norm()), float((g1[n] - g0[n]).norm())] for n in g0 if n in g1}}
    with open(os.path.join(out, f"rank{rank}.json"), "w", encoding="utf-8") as fh:
        json.dump(report, fh)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
