"""Accuracy tables from per-question rows: overall and per category, Wilson 95% intervals, several checkpoints and
modalities side by side; written as markdown, summary.json, a PNG bar chart and the per-question JSONL.

Rows whose clip failed to decode (`media_error`) are skipped: they are counted, never scored as wrong, because a
broken file says nothing about the model. Unparseable answers are scored wrong and counted separately.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Iterable

from ..schema import write_jsonl
from .official_scoring import official_summary

Z95 = 1.959963984540054
"""Two-sided 95% normal quantile."""

EVAL_INPUTS = "eval_inputs.json"
"""Written next to results.jsonl by `omnivideo-r1 eval`: the benchmark and data the rows came from (the viewer joins
the rows with their samples through it, for clip media and reference timelines)."""

MODALITY_NAMES = {"av": "AV", "video": "silent video", "audio": "audio only"}
_MODALITY_ORDER = {"av": 0, "video": 1, "audio": 2}


def wilson_interval(correct: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion; unlike the normal interval it stays inside [0, 1] and is
    sensible at 0% and 100%, which small per-category counts hit often."""
    if n <= 0:
        raise ValueError(f"wilson_interval needs n > 0, got n={n}")
    if not 0 <= correct <= n:
        raise ValueError(f"wilson_interval: correct={correct} must be between 0 and n={n}")
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def mcnemar_exact_p(fixed: int, broke: int) -> float:
    """Two-sided exact McNemar p-value for two models scored on the same questions.

    fixed: questions only the second model gets right; broke: only the first. Under "no difference" each
    discordant question is a fair coin, so p = min(1, 2 * P[Binomial(fixed + broke, 1/2) <= min(fixed, broke)]).
    Paired, it separates a gain that overlapping Wilson intervals of the two accuracies cannot.
    """
    if fixed < 0 or broke < 0:
        raise ValueError(f"mcnemar_exact_p: counts must be >= 0, got fixed={fixed}, broke={broke}")
    n = fixed + broke
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(fixed, broke) + 1))
    return min(1.0, 2 * tail / 2**n)


def accuracy_stats(rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """n (all rows), skipped (media errors), scored, correct, unparseable, accuracy and its 95% CI.

    accuracy and the CI are None when nothing was scored."""
    rows = list(rows)
    scored = [r for r in rows if not r.get("media_error")]
    correct = sum(1 for r in scored if r.get("correct"))
    stats: dict[str, Any] = {"n": len(rows), "skipped": len(rows) - len(scored), "scored": len(scored),
                             "correct": correct, "unparseable": sum(1 for r in scored if r.get("unparseable")),
                             "accuracy": None, "ci_low": None, "ci_high": None}
    if scored:
        low, high = wilson_interval(correct, len(scored))
        stats.update(accuracy=correct / len(scored), ci_low=low, ci_high=high)
    return stats


def summarize(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per (model, benchmark, modality): {"model", "benchmark", "modality", "overall", "categories",
    "official"}; "official" is the benchmark script's aggregation of its own scores (None for our JSONL)."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for row in rows:
        key = (str(row.get("model", "model")), str(row.get("benchmark", "?")), str(row.get("modality", "av")))
        groups.setdefault(key, []).append(row)
    out = []
    for (model, bench, modality), group in groups.items():
        categories: dict[str, list[dict[str, Any]]] = {}
        for row in group:
            categories.setdefault(str(row.get("category", "uncategorized")), []).append(row)
        out.append({"model": model, "benchmark": bench, "modality": modality, "overall": accuracy_stats(group),
                    "categories": {c: accuracy_stats(r) for c, r in sorted(categories.items())},
                    "official": official_summary(group)})
    return out


def _pct(stats: dict[str, Any], with_n: bool = True) -> str:
    if stats is None or stats.get("accuracy") is None:
        return "–"
    text = f"{100 * stats['accuracy']:.1f} [{100 * stats['ci_low']:.1f}, {100 * stats['ci_high']:.1f}]"
    return f"{text} (n={stats['scored']})" if with_n else text


def _column_label(entry: dict[str, Any], several_models: bool, several_benchmarks: bool) -> str:
    parts = [entry["model"]] if several_models else []
    if several_benchmarks:
        parts.append(entry["benchmark"])
    parts.append(MODALITY_NAMES.get(entry["modality"], entry["modality"]))
    return " · ".join(parts)


def _ordered(summary: list[dict[str, Any]]) -> list[dict[str, Any]]:
    models = list(dict.fromkeys(e["model"] for e in summary))  # keep the order models were given in
    return sorted(summary, key=lambda e: (models.index(e["model"]), e["benchmark"],
                                          _MODALITY_ORDER.get(e["modality"], 9), e["modality"]))


def markdown_report(summary: list[dict[str, Any]], title: str = "Evaluation",
                    load_skipped: dict[str, int] | None = None, load_notes: dict[str, int] | None = None) -> str:
    """Overall table, AV vs silent vs audio-only table (with the silent-video drop), per-category table."""
    summary = _ordered(summary)
    lines = [f"# {title}", "", "Accuracy in % with the Wilson 95% interval. Skipped = clip failed to decode (not "
             "scored); unparseable answers count as wrong.", "", "## Overall", "",
             "| model | benchmark | modality | accuracy [95% CI] | scored | correct | unparseable | skipped |",
             "|---|---|---|---|---|---|---|---|"]
    for e in summary:
        o = e["overall"]
        lines.append(f"| {e['model']} | {e['benchmark']} | {MODALITY_NAMES.get(e['modality'], e['modality'])} | "
                     f"{_pct(o, False)} | {o['scored']} | {o['correct']} | {o['unparseable']} | {o['skipped']} |")
    modalities = sorted({e["modality"] for e in summary}, key=lambda m: (_MODALITY_ORDER.get(m, 9), m))
    if len(modalities) > 1:
        by_key = {(e["model"], e["benchmark"], e["modality"]): e["overall"] for e in summary}
        pairs = list(dict.fromkeys((e["model"], e["benchmark"]) for e in summary))
        drop = "av" in modalities and "video" in modalities
        head = [MODALITY_NAMES.get(m, m) for m in modalities] + (["AV − silent (points)"] if drop else [])
        lines += ["", "## AV vs silent video vs audio only", "", "| model | benchmark | " + " | ".join(head) + " |",
                  "|---|---|" + "---|" * len(head)]
        for model, bench in pairs:
            cells = [_pct(by_key.get((model, bench, m)), False) for m in modalities]
            if drop:
                av, silent = by_key.get((model, bench, "av")), by_key.get((model, bench, "video"))
                ok = av and silent and av["accuracy"] is not None and silent["accuracy"] is not None
                cells.append(f"{100 * (av['accuracy'] - silent['accuracy']):+.1f}" if ok else "–")
            lines.append(f"| {model} | {bench} | " + " | ".join(cells) + " |")
    several_models = len({e["model"] for e in summary}) > 1
    several_benchmarks = len({e["benchmark"] for e in summary}) > 1
    categories = sorted({c for e in summary for c in e["categories"]})
    labels = [_column_label(e, several_models, several_benchmarks) for e in summary]
    lines += ["", "## Per category", "", "| category | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    for cat in categories:
        lines.append(f"| {cat} | " + " | ".join(_pct(e["categories"].get(cat)) for e in summary) + " |")
    lines.append("| **overall** | " + " | ".join(_pct(e["overall"]) for e in summary) + " |")
    lines += _official_section(summary)
    if load_skipped:
        lines += ["", "## Skipped at load time", "", "| reason | records |", "|---|---|"]
        lines += [f"| {reason} | {count} |" for reason, count in sorted(load_skipped.items())]
    if load_notes:
        lines += ["", "## Load notes (questions kept)", "", "| note | records |", "|---|---|"]
        lines += [f"| {_NOTES.get(kind, kind)} | {count} |" for kind, count in sorted(load_notes.items())]
    return "\n".join(lines) + "\n"


_NOTES = {"audio_from_video": "audio from the video's own track (no separate wav)",
          "relabelled_options": "options lettered by position (labels out of order in the file)",
          "answer_text_mismatch": "answer text differs from the option the answer letter names (letter used)"}


def _official_pct(stats: dict[str, Any] | None) -> str:
    if not stats or stats.get("accuracy") is None:
        return "–"
    return f"{100 * stats['accuracy']:.1f} (n={stats['n']})"


def _official_section(summary: list[dict[str, Any]]) -> list[str]:
    """The benchmark scripts' own scoring of the same replies: overall and per field they break accuracy down by."""
    entries = [e for e in summary if e.get("official")]
    if not entries:
        return []
    lines = ["", "## Official scoring", "",
             "Each benchmark's released answer extraction and aggregation applied to the same replies (numbers "
             "comparable with published ones; see docs/benchmarks.md). n = questions the script counts.", "",
             "| model | benchmark | modality | scorer | official accuracy | not counted |", "|---|---|---|---|---|---|"]
    for e in entries:
        o = e["official"]
        lines.append(f"| {e['model']} | {e['benchmark']} | {MODALITY_NAMES.get(e['modality'], e['modality'])} | "
                     f"{o['scorer']} | {_official_pct(o['overall'])} | {o['overall']['not_counted']} |")
    several_models = len({e["model"] for e in entries}) > 1
    several_benchmarks = len({e["benchmark"] for e in entries}) > 1
    labels = [_column_label(e, several_models, several_benchmarks) for e in entries]
    keys = sorted({(axis, value) for e in entries for axis, values in e["official"]["axes"].items() for value in values})
    if keys:
        lines += ["", "| field | value | " + " | ".join(labels) + " |", "|---|---|" + "---|" * len(labels)]
        for axis, value in keys:
            cells = [_official_pct(e["official"]["axes"].get(axis, {}).get(value)) for e in entries]
            lines.append(f"| {axis} | {value} | " + " | ".join(cells) + " |")
    return lines


def plot_accuracy(summary: list[dict[str, Any]], path: str, title: str = "Accuracy") -> str:
    """Grouped bars (overall + each category) per model/modality, with Wilson 95% error bars; writes a PNG."""
    import matplotlib

    matplotlib.use("Agg")  # no display on training/eval machines
    import matplotlib.pyplot as plt

    summary = _ordered(summary)
    several_models = len({e["model"] for e in summary}) > 1
    several_benchmarks = len({e["benchmark"] for e in summary}) > 1
    groups = ["overall"] + sorted({c for e in summary for c in e["categories"]})
    width = 0.8 / max(1, len(summary))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(groups) * max(1, len(summary)) ** 0.5 + 2), 4.5))
    for j, entry in enumerate(summary):
        heights, low_err, high_err = [], [], []
        for g in groups:
            stats = entry["overall"] if g == "overall" else entry["categories"].get(g)
            if stats is None or stats["accuracy"] is None:
                heights.append(0.0), low_err.append(0.0), high_err.append(0.0)
                continue
            acc = 100 * stats["accuracy"]
            heights.append(acc)
            # max(0, .) because at 0% or 100% float rounding can leave a tiny negative error
            low_err.append(max(0.0, acc - 100 * stats["ci_low"]))
            high_err.append(max(0.0, 100 * stats["ci_high"] - acc))
        xs = [i + (j - (len(summary) - 1) / 2) * width for i in range(len(groups))]
        ax.bar(xs, heights, width, yerr=[low_err, high_err], capsize=3,
               label=_column_label(entry, several_models, several_benchmarks))
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 105)
    ax.set_title(title)
    # Below the axes: inside, the legend hides the bars that reach 100%.
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=min(4, max(1, len(summary))))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def write_report(rows: list[dict[str, Any]], out_dir: str, title: str = "Evaluation",
                 load_skipped: dict[str, int] | None = None,
                 load_notes: dict[str, int] | None = None) -> dict[str, str]:
    """Write results.jsonl, summary.json, report.md and accuracy.png under `out_dir`; returns their paths."""
    os.makedirs(out_dir, exist_ok=True)
    summary = summarize(rows)
    paths = {name: os.path.join(out_dir, name)
             for name in ("results.jsonl", "summary.json", "report.md", "accuracy.png")}
    write_jsonl(paths["results.jsonl"], rows)
    with open(paths["summary.json"], "w", encoding="utf-8") as fh:
        json.dump({"title": title, "results": _ordered(summary), "load_skipped": load_skipped or {},
                   "load_notes": dict(load_notes or {})}, fh, indent=2)
    with open(paths["report.md"], "w", encoding="utf-8") as fh:
        fh.write(markdown_report(summary, title, load_skipped, load_notes))
    plot_accuracy(summary, paths["accuracy.png"], title)
    return paths
