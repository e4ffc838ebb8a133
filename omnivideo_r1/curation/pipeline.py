"""The curation pipeline: sources -> media check -> judge scores -> rule filter -> category -> balance -> outputs.

Every input question ends in exactly one of kept.jsonl / rejected.jsonl (asserted). Judge results are cached under
`<out>/judge_cache`, so a rerun, or a run resumed after a crash, sends no request twice and writes byte-identical
kept/rejected files (nothing in them depends on time or on which results came from the cache).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

from ..config import ConfigError
from ..errors import InputError
from ..judges.base import CURATION_DIMENSIONS, Judge, JudgeRequest, JudgeResult
from ..judges.cache import CachedJudge
from ..judges.config import JudgeConfig, build_judge
from ..schema import AVSample, write_jsonl, write_samples
from ..taxonomy import OTHER, CategorySpec, default_taxonomy, normalize_label, validate_taxonomy
from .balance import BalanceConfig, balance, check_balance_config
from .filters import RuleSet, composite_score, filter_record
from .report import build_report, write_report
from .sources import SourceItem, read_sources


@dataclass
class CurationConfig:
    rules: RuleSet = field(default_factory=RuleSet)
    """Score thresholds; the default is the paper's rule set (see curation/filters.py for the scale mapping)."""
    composite_weights: dict[str, float] = field(
        default_factory=lambda: {k: 1.0 for k in CURATION_DIMENSIONS})
    """Weights of the four judge dimensions in the composite score (normalised; default: plain mean)."""
    taxonomy: list[CategorySpec] = field(default_factory=default_taxonomy)
    """Categories a sample may be assigned; must contain "other"."""
    unknown_label: Literal["other", "reject"] = "other"
    """What to do with a category label outside the taxonomy: "other" (relabel) or "reject"."""
    balance: BalanceConfig = field(default_factory=BalanceConfig)
    """Long-tail pruning and per-category caps."""
    require_audio: bool = True
    """Reject clips without an audio track ("no_audio"): audio-visual training needs sound."""
    video_root: str | None = None
    """Folder that relative video paths in LLaVA-Video/VideoVista JSON resolve against (default: the JSON's folder)."""
    video_roots: dict[str, str] = field(default_factory=dict)
    """Per-input media roots, keyed by the input path as given (LLaVA subsets and VideoVista keep clips in different
    trees); an input not listed uses `video_root`."""
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    """Which judge scores and categorises the samples (embedded: offline heuristics; http: an LLM server).
    Results are always cached, under judge.cache_dir or else <out>/judge_cache, so reruns send nothing twice."""
    judge_batch_size: int = 64
    """Requests per judge call; also the granularity at which results reach the cache (what a crash can lose)."""

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Value and cross-field checks (run when a recipe is loaded and when a run starts); ValueError names the
        key and the fix."""
        validate_taxonomy(self.taxonomy, "taxonomy")
        composite_score({k: 0.0 for k in CURATION_DIMENSIONS}, self.composite_weights)  # checks the weights
        check_balance_config(self.balance)
        if self.rules.scale <= 0 or self.rules.tolerance < 0:
            raise ValueError(f"rules.scale={self.rules.scale} must be > 0 and rules.tolerance={self.rules.tolerance} "
                             ">= 0")
        if self.judge_batch_size < 1:
            raise ValueError(f"judge_batch_size={self.judge_batch_size}: must be >= 1")


@dataclass
class CurationResult:
    kept: list[AVSample]
    rejected: list[dict[str, Any]]
    report: dict[str, Any]
    judge_stats: dict[str, int]
    """Cache hits and misses of this run's judge calls (misses = requests sent to the judge)."""


def check_media(sample: AVSample, require_audio: bool, probe_cache: dict[str, Any]) -> tuple[str, str] | None:
    """(reason, detail) if the sample's media is unusable, else None; probes each file once per run."""
    from ..media.decode import probe_media
    from ..media.types import MediaError

    def probe(path: str) -> Any:
        if path not in probe_cache:
            if not os.path.isfile(path):
                probe_cache[path] = ("missing_media", f"{path}: file not found")
            else:
                try:
                    probe_cache[path] = probe_media(path)
                except MediaError as exc:
                    probe_cache[path] = ("corrupt_media", str(exc))
                except Exception as exc:  # noqa: BLE001 - any decoder failure is this one clip's problem
                    probe_cache[path] = ("corrupt_media", f"{path}: {type(exc).__name__}: {exc}")
        return probe_cache[path]

    info = probe(sample.video)
    if isinstance(info, tuple):
        return info
    if info.get("video") is None:
        return "no_video_stream", f"{sample.video}: has no video stream"
    audio_info = info
    if sample.audio:
        audio_info = probe(sample.audio)
        if isinstance(audio_info, tuple):
            return audio_info
    if require_audio and audio_info.get("audio") is None:
        return "no_audio", f"{sample.audio or sample.video}: has no audio track; AV training needs sound"
    if sample.duration is None and info.get("duration"):
        sample.duration = float(info["duration"])
    return None


def curation_request(item: SourceItem) -> JudgeRequest:
    s = item.sample
    assert s is not None
    # The annotated modality need (synthetic world) is the best evidence a text-only scorer can get.
    hint = f"modality_needs: {s.modality_needs}" if s.modality_needs != "unknown" else ""
    return JudgeRequest(task="curation", question=s.question, options=tuple(s.options),
                        reference_answer=item.raw_answer, response=hint, video=s.video, audio=s.audio,
                        references=tuple(s.time_captions))


def category_request(item: SourceItem, names: Sequence[str]) -> JudgeRequest:
    s = item.sample
    assert s is not None
    answer = s.answer_text if len(s.answer) == 1 else ""
    return JudgeRequest(task="category", question=s.question, options=tuple(names), reference_answer=answer)


def judge_in_batches(judge: Judge, requests: list[JudgeRequest], batch_size: int) -> list[JudgeResult]:
    results: list[JudgeResult] = []
    for i in range(0, len(requests), max(1, batch_size)):
        batch = requests[i:i + batch_size]
        out = judge.judge(batch)
        if len(out) != len(batch):
            raise RuntimeError(f"judge {judge.judge_id} returned {len(out)} results for {len(batch)} requests")
        results.extend(out)
    return results


def _valid_scores(res: JudgeResult) -> str | None:
    """Why a curation result is unusable, or None."""
    if res.error or res.score is None:
        return res.error or "judge returned no score"
    bad = [k for k in CURATION_DIMENSIONS if not isinstance(res.scores.get(k), (int, float))
           or not 0.0 <= float(res.scores[k]) <= 1.0]
    return f"missing or out-of-range scores {bad}" if bad else None


def _rejection(item: SourceItem, stage: str, reason: str, detail: str, **more: Any) -> dict[str, Any]:
    row = {"id": item.uid, "record_id": item.record_id, "turn": item.turn, "source": item.source,
           "where": item.where, "stage": stage, "reason": reason, "detail": detail}
    row.update(more)
    return row


def run_curation(inputs: list[str], out_dir: str, cfg: CurationConfig, judge: Judge | None = None) -> CurationResult:
    """Curate `inputs` into out_dir (kept.jsonl, rejected.jsonl, report.json/.md, categories.png)."""
    cfg.check()  # again: the config may have been changed after it was built
    os.makedirs(out_dir, exist_ok=True)
    base_judge = judge if judge is not None else build_judge(cfg.judge, cache_dir="")
    cached = CachedJudge(base_judge, cfg.judge.cache_dir or os.path.join(out_dir, "judge_cache"))
    try:
        return _run(inputs, out_dir, cfg, cached)
    finally:
        cached.close()


def _run(inputs: list[str], out_dir: str, cfg: CurationConfig, judge: CachedJudge) -> CurationResult:
    unknown = sorted(set(cfg.video_roots) - set(inputs))
    if unknown:
        raise ConfigError(f"video_roots names {unknown}, which are not inputs; inputs are {list(inputs)}")
    try:
        items = read_sources(inputs, cfg.video_root, cfg.video_roots)
    except ValueError as exc:  # sources raise ValueError only for an unreadable input file, naming it
        raise InputError(str(exc)) from None
    rejected: dict[str, dict[str, Any]] = {}

    # Stage "source": records that did not parse into a question.
    for it in items:
        if it.sample is None:
            rejected[it.uid] = _rejection(it, "source", it.reason or "unparseable", it.detail)

    # Stage "media": every referenced file exists, decodes, and has sound.
    probe_cache: dict[str, Any] = {}
    alive = [it for it in items if it.uid not in rejected]
    for it in alive:
        problem = check_media(it.sample, cfg.require_audio, probe_cache)
        if problem:
            rejected[it.uid] = _rejection(it, "media", problem[0], problem[1])

    # Stage "judge": four-dimension scores; a failure is a rejection (retried next run: failures are not cached).
    alive = [it for it in items if it.uid not in rejected]
    results = judge_in_batches(judge, [curation_request(it) for it in alive], cfg.judge_batch_size)
    scored: dict[str, tuple[dict[str, float], float]] = {}
    for it, res in zip(alive, results):
        why = _valid_scores(res)
        if why:
            rejected[it.uid] = _rejection(it, "judge", "judge_failed", why)
            continue
        scores = {k: float(res.scores[k]) for k in CURATION_DIMENSIONS}
        scored[it.uid] = (scores, composite_score(scores, cfg.composite_weights))

    # Stage "filter": the rule set's thresholds.
    for it in [it for it in items if it.uid in scored]:
        scores, comp = scored[it.uid]
        keep, reason, detail = filter_record({"scores": scores}, cfg.rules, cfg.composite_weights)
        if not keep:
            rejected[it.uid] = _rejection(it, "filter", reason, detail, scores=scores, composite=round(comp, 6))

    # Stage "category": one taxonomy label per surviving sample.
    names = [c.name for c in cfg.taxonomy]
    alive = [it for it in items if it.uid not in rejected]
    results = judge_in_batches(judge, [category_request(it, names) for it in alive], cfg.judge_batch_size)
    labels: dict[str, str] = {}
    for it, res in zip(alive, results):
        scores, comp = scored[it.uid]
        if res.error or not res.label:
            rejected[it.uid] = _rejection(it, "category", "judge_failed", res.error or "no label",
                                          scores=scores, composite=round(comp, 6))
            continue
        label = normalize_label(res.label, names)
        if label is None and cfg.unknown_label == "reject":
            rejected[it.uid] = _rejection(it, "category", "unknown_category",
                                          f"label {res.label!r} is not in the taxonomy", scores=scores,
                                          composite=round(comp, 6))
            continue
        labels[it.uid] = label or OTHER

    # Stage "balance": long-tail pruning and caps.
    records = [{"id": uid, "category": labels[uid], "composite": scored[uid][1], "scores": scored[uid][0]}
               for uid in [it.uid for it in items if it.uid in labels]]
    bal = balance(records, cfg.balance)
    by_uid = {it.uid: it for it in items}
    for uid, reason in bal.rejected.items():
        scores, comp = scored[uid]
        rejected[uid] = _rejection(by_uid[uid], "balance", reason, f"category {labels[uid]} (cap {bal.cap})",
                                   scores=scores, composite=round(comp, 6), category=labels[uid])

    kept_ids = set(bal.kept)
    kept: list[AVSample] = []
    for it in items:
        if it.uid not in kept_ids:
            continue
        s = it.sample
        scores, comp = scored[it.uid]
        if s.category not in ("uncategorized", labels[it.uid]):
            s.extra = {**s.extra, "original_category": s.category}
        s.category = labels[it.uid]
        s.extra = {**s.extra, "curation": {"scores": scores, "composite": round(comp, 6), "rule_set": cfg.rules.name}}
        kept.append(s)

    # The invariant: every question unit is in exactly one of kept / rejected.
    all_ids = [it.uid for it in items]
    assert len(set(all_ids)) == len(all_ids), "source ids are not unique"
    assert kept_ids.isdisjoint(rejected), f"ids both kept and rejected: {sorted(kept_ids & set(rejected))[:5]}"
    assert kept_ids | set(rejected) == set(all_ids), \
        f"ids in neither output: {sorted(set(all_ids) - kept_ids - set(rejected))[:5]}"
    rejected_rows = [rejected[uid] for uid in all_ids if uid in rejected]

    write_samples(os.path.join(out_dir, "kept.jsonl"), kept)
    write_jsonl(os.path.join(out_dir, "rejected.jsonl"), rejected_rows)
    meta = {"inputs": [os.path.basename(p) for p in inputs], "rule_set": cfg.rules.name, "judge": judge.judge_id,
            "balance_cap": bal.cap}
    report = build_report(len(items), len({(it.where, it.record_id) for it in items}),
                          [s.category for s in kept], rejected_rows, bal.sizes_before, meta)
    write_report(out_dir, report)
    stats = {"hits": judge.hits, "misses": judge.misses}
    return CurationResult(kept, rejected_rows, report, stats)

