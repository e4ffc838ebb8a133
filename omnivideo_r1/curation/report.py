"""Curation report: counts per stage and reason, categories before/after balancing, a histogram PNG.

Deliberately free of timestamps and timings, so a rerun gives byte-identical report.json / report.md.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from typing import Any

STAGES = ("source", "media", "judge", "filter", "category", "balance")
"""Pipeline stages in order; every rejected record names the stage that dropped it."""


def build_report(units: int, records: int, kept_categories: list[str], rejected: list[dict[str, Any]],
                 categories_before: dict[str, int], meta: dict[str, Any]) -> dict[str, Any]:
    """The report as a plain dict: flow through the stages, rejections by stage/reason, category counts."""
    by_stage: dict[str, Counter] = {s: Counter() for s in STAGES}
    for row in rejected:
        by_stage.setdefault(row["stage"], Counter())[row["reason"]] += 1
    flow = []
    remaining = units
    for stage in STAGES:
        dropped = sum(by_stage[stage].values())
        flow.append({"stage": stage, "in": remaining, "rejected": dropped, "out": remaining - dropped})
        remaining -= dropped
    after = dict(sorted(Counter(kept_categories).items()))
    return {
        **meta,
        "input_records": records,
        "input_questions": units,
        "kept": len(kept_categories),
        "rejected": len(rejected),
        "flow": flow,
        "rejected_by_stage": {s: dict(sorted(c.items())) for s, c in by_stage.items() if c},
        "categories_before_balance": dict(sorted(categories_before.items())),
        "categories_after_balance": after,
    }


def report_markdown(report: dict[str, Any]) -> str:
    lines = ["# Curation report", ""]
    for key in ("rule_set", "judge", "inputs"):
        if key in report:
            lines.append(f"- {key}: {report[key]}")
    lines += [f"- input records: {report['input_records']}, questions: {report['input_questions']}",
              f"- kept: {report['kept']}, rejected: {report['rejected']}", "", "## Flow", "",
              "| stage | in | rejected | out |", "|---|---:|---:|---:|"]
    lines += [f"| {f['stage']} | {f['in']} | {f['rejected']} | {f['out']} |" for f in report["flow"]]
    lines += ["", "## Rejections", "", "| stage | reason | count |", "|---|---|---:|"]
    for stage, reasons in report["rejected_by_stage"].items():
        lines += [f"| {stage} | {reason} | {n} |" for reason, n in reasons.items()]
    lines += ["", "## Categories", "", "| category | before balance | after |", "|---|---:|---:|"]
    before, after = report["categories_before_balance"], report["categories_after_balance"]
    for cat in sorted(set(before) | set(after)):
        lines.append(f"| {cat} | {before.get(cat, 0)} | {after.get(cat, 0)} |")
    return "\n".join(lines) + "\n"


def plot_histogram(before: dict[str, int], after: dict[str, int], path: str) -> str:
    """Grouped bars per category, before vs after balancing (matplotlib Agg: no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cats = sorted(set(before) | set(after)) or ["(none)"]
    xs = range(len(cats))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.6 * len(cats) + 2), 4.0))
    ax.bar([x - 0.2 for x in xs], [before.get(c, 0) for c in cats], width=0.4, label="before balance")
    ax.bar([x + 0.2 for x in xs], [after.get(c, 0) for c in cats], width=0.4, label="kept")
    ax.set_xticks(list(xs))
    ax.set_xticklabels(cats, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("samples")
    ax.set_title("Samples per category")
    ax.legend()
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def write_report(out_dir: str, report: dict[str, Any]) -> dict[str, str]:
    """report.json, report.md and categories.png under out_dir; returns their paths."""
    paths = {"json": os.path.join(out_dir, "report.json"), "md": os.path.join(out_dir, "report.md"),
             "png": os.path.join(out_dir, "categories.png")}
    with open(paths["json"], "w", encoding="utf-8") as fh:
        json.dump(report, fh, indent=2, ensure_ascii=False)
        fh.write("\n")
    with open(paths["md"], "w", encoding="utf-8") as fh:
        fh.write(report_markdown(report))
    plot_histogram(report["categories_before_balance"], report["categories_after_balance"], paths["png"])
    return paths
