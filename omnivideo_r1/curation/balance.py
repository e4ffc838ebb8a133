"""Category balancing: prune long-tail categories, cap over-full ones (pure, seeded, deterministic).

Records are plain dicts {"id", "category", "composite", "scores"}. The result depends only on the set of records
and the seed, not on their order: within a category samples are ranked by (full AV dependency first when
`prefer_full_dependency`, then composite score, then a seeded hash of the id).

The paper: "long-tail categories are pruned to balance the distribution". The released
`filter_and_balance_categories.py`: drop label "none" and categories with < 10 samples, cap the largest category
at 3x the second largest, preferring video = audio = 10, then the composite score. `cap_reference` picks the
released rule ("second_largest") or a cap relative to the median category size ("median", our default: it also
trims the second largest when several categories dwarf the rest).
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass
class BalanceConfig:
    min_per_category: int = 10
    """Categories with fewer samples are dropped entirely (reason "long_tail"); released code: 10."""
    cap_reference: Literal["median", "second_largest", "none"] = "median"
    """What the ratio cap is relative to: "median" (median category size), "second_largest" (released), "none"."""
    max_ratio: float = 3.0
    """Cap = floor(max_ratio x reference size); samples over it are dropped (reason "balance_cap")."""
    absolute_cap: int | None = None
    """Optional absolute per-category cap, applied together with the ratio cap (the smaller wins)."""
    prefer_full_dependency: bool = False
    """Rank samples with top video and audio dependency first when capping (released code does)."""
    drop_labels: list[str] = field(default_factory=lambda: ["none"])
    """Labels rejected outright (reason "dropped_label"); the released code drops "none"."""
    seed: int = 0
    """Seed of the tie-breaking hash: equal scores are ordered the same way on every run."""


@dataclass
class BalanceResult:
    kept: list[str]
    """Ids kept, in the order of the input records."""
    rejected: dict[str, str]
    """Id -> reason ("dropped_label", "long_tail", "balance_cap")."""
    cap: int | None
    """The per-category cap that was applied (None if no cap)."""
    sizes_before: dict[str, int]
    sizes_after: dict[str, int]


def check_balance_config(cfg: BalanceConfig) -> None:
    """Value checks of the balance section; ValueError names the key and the fix."""
    if cfg.min_per_category < 0:
        raise ValueError(f"balance.min_per_category={cfg.min_per_category}: must be >= 0 (0 keeps every category)")
    if cfg.max_ratio <= 0:
        raise ValueError(f"balance.max_ratio={cfg.max_ratio}: must be > 0")
    if cfg.absolute_cap is not None and cfg.absolute_cap < 1:
        raise ValueError(f"balance.absolute_cap={cfg.absolute_cap}: must be >= 1, or null for no absolute cap")


def tie_hash(seed: int, uid: str) -> str:
    """Seeded, platform-independent tie breaker (Python's hash() is salted per process)."""
    return hashlib.sha256(f"{seed}:{uid}".encode("utf-8")).hexdigest()


def _median(values: list[int]) -> float:
    s = sorted(values)
    n = len(s)
    return float(s[n // 2]) if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2.0


def compute_cap(sizes: dict[str, int], cfg: BalanceConfig) -> int | None:
    """The per-category cap for these (post-pruning) sizes, or None for no cap."""
    caps = []
    if sizes and cfg.cap_reference == "median":
        caps.append(math.floor(cfg.max_ratio * _median(list(sizes.values()))))
    elif len(sizes) >= 2 and cfg.cap_reference == "second_largest":
        caps.append(math.floor(cfg.max_ratio * sorted(sizes.values(), reverse=True)[1]))
    elif cfg.cap_reference not in ("median", "second_largest", "none"):
        raise ValueError(f"balance.cap_reference {cfg.cap_reference!r}: use 'median', 'second_largest' or 'none'")
    if cfg.absolute_cap is not None:
        caps.append(cfg.absolute_cap)
    # A cap below the long-tail threshold would re-create the long tail it is meant to prevent.
    return max(min(caps), cfg.min_per_category, 1) if caps else None


def _full_dependency(rec: dict[str, Any]) -> bool:
    scores = rec.get("scores") or {}
    return scores.get("video_dependency", 0.0) >= 1.0 - 1e-9 and scores.get("audio_dependency", 0.0) >= 1.0 - 1e-9


def balance(records: list[dict[str, Any]], cfg: BalanceConfig) -> BalanceResult:
    """Drop labels, prune long tails, cap categories; every input id is in exactly one of kept/rejected."""
    ids = [r["id"] for r in records]
    if len(set(ids)) != len(ids):
        raise ValueError("balance(): record ids must be unique")
    drop = {d.lower() for d in cfg.drop_labels}
    rejected: dict[str, str] = {}
    by_cat: dict[str, list[dict[str, Any]]] = {}
    for rec in records:
        if str(rec["category"]).lower() in drop:
            rejected[rec["id"]] = "dropped_label"
        else:
            by_cat.setdefault(rec["category"], []).append(rec)
    sizes_before = Counter({c: len(v) for c, v in by_cat.items()})
    for cat in [c for c, v in by_cat.items() if len(v) < cfg.min_per_category]:
        for rec in by_cat.pop(cat):
            rejected[rec["id"]] = "long_tail"
    cap = compute_cap({c: len(v) for c, v in by_cat.items()}, cfg)
    if cap is not None:
        for cat, recs in by_cat.items():
            if len(recs) <= cap:
                continue
            ranked = sorted(recs, key=lambda r: (not (cfg.prefer_full_dependency and _full_dependency(r)),
                                                 -float(r["composite"]), tie_hash(cfg.seed, r["id"])))
            for rec in ranked[cap:]:
                rejected[rec["id"]] = "balance_cap"
    kept = [i for i in ids if i not in rejected]
    cat_of = {r["id"]: r["category"] for r in records}
    sizes_after = Counter(cat_of[i] for i in kept)
    assert len(kept) + len(rejected) == len(ids), "balance lost or duplicated a record"
    return BalanceResult(kept, rejected, cap, dict(sorted(sizes_before.items())), dict(sorted(sizes_after.items())))
