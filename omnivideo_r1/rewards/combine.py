"""Weighted sum of reward components into the scalar the group baseline uses.

A None in any component with a non-zero weight makes that rollout's total NaN: the advantage code excludes NaN
rewards from the group mean/std instead of treating a judge failure as a 0 (the released trainer's `nansum` would
silently drop the failed component and keep the rest).
"""

from __future__ import annotations

import math

from .types import RewardOutput


def combine_rewards(outputs: dict[str, RewardOutput], weights: dict[str, float]) -> tuple[list[float], dict[str, float]]:
    """total_i = sum_name weights[name] * outputs[name].scores[i]; NaN when a weighted score is None/NaN.

    Metrics: "<name>/<metric>" for every component's own metrics, plus "total/mean" (over non-NaN totals) and
    "total/n_nan".
    """
    missing = [name for name in outputs if name not in weights]
    if missing:
        raise KeyError(f"no weight for reward(s) {missing}; add them to rewards.weights (weights: {sorted(weights)})")
    unused = [name for name, w in weights.items() if w != 0 and name not in outputs]
    if unused:
        raise KeyError(f"reward(s) {unused} have a weight but were not computed; computed: {sorted(outputs)}")
    lengths = {name: len(out.scores) for name, out in outputs.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"reward outputs differ in length: {lengths}")
    n = next(iter(lengths.values()), 0)

    totals: list[float] = []
    for i in range(n):
        total = 0.0
        for name, out in outputs.items():
            w = weights[name]
            if w == 0:
                continue
            score = out.scores[i]
            if score is None or math.isnan(score):
                total = math.nan
                break
            total += w * score
        totals.append(total)

    metrics: dict[str, float] = {}
    for name, out in outputs.items():
        metrics.update({f"{name}/{k}": v for k, v in out.metrics.items()})
    valid = [t for t in totals if not math.isnan(t)]
    metrics["total/mean"] = sum(valid) / len(valid) if valid else math.nan
    metrics["total/n_nan"] = float(n - len(valid))
    return totals, metrics
