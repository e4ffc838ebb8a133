"""Learning-rate schedule factors (multipliers of the peak rate), for torch.optim.lr_scheduler.LambdaLR."""

from __future__ import annotations

import math


def warmup_cosine(step: int, warmup_steps: int, decay_steps: int, floor: float) -> float:
    """Linear warm-up over `warmup_steps`, then cosine decay from 1 to `floor` over `decay_steps`, then `floor`.

    factor = (step + 1) / warmup_steps                                  while step < warmup_steps
    factor = floor + (1 - floor) * (1 + cos(pi * p)) / 2,  p = min(1, (step - warmup_steps) / decay_steps)
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, decay_steps))
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
