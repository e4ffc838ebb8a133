"""The demo's ablation report: per-arm accuracy table with Wilson 95% intervals, the paper's claims checked on it,
answer-letter collapse and entropy, reward curves, and the markdown / PNG the demo writes.

Pure functions of the evaluation rows and the arms' metrics; `train/demo.py` only calls them.
"""

from __future__ import annotations

import math
import os
from collections import Counter

from .listing_quality import listing_lines, listing_quality
from .report import MODALITY_NAMES, accuracy_stats, mcnemar_exact_p

ARMS = ("base", "qi", "ma", "qi_ma")
ARM_LABELS = {"base": "base", "qi": "QI only", "ma": "MA only", "qi_ma": "QI + MA"}
NEEDS = ("video", "audio", "both")
CURVE_KEYS = ("total", "format", "answer", "intent", "modality_attention")
COLLAPSE_SHARE = 0.8
"""An arm whose most frequent answer covers this share of the questions is reported as collapsed."""
VERDICT = {True: "yes", False: "**no**", None: "not measured"}


def ablation_table(rows: list[dict], modalities: list[str]) -> dict:
    """{arm label: {modality: stats, modality/needs: stats}} with Wilson 95% intervals."""
    table: dict[str, dict] = {}
    for arm in ARMS:
        label = ARM_LABELS[arm]
        entry = {}
        for modality in modalities:
            subset = [r for r in rows if r["model"] == label and r["modality"] == modality]
            entry[modality] = accuracy_stats(subset)
            for needs in NEEDS:
                part = [r for r in subset if r.get("modality_needs") == needs]
                if part:
                    entry[f"{modality}/{needs}"] = accuracy_stats(part)
        table[label] = entry
    return table


def base_perception(rows: list[dict], audio_only_rows: list[dict]) -> dict:
    """The base's single-sense perception: {"video-only questions, silent video": stats, "audio-only questions,
    audio alone": stats}, from the base's silent-video eval rows and its audio-only rows."""
    base = ARM_LABELS["base"]
    video = [r for r in rows if r["model"] == base and r["modality"] == "video" and r.get("modality_needs") == "video"]
    return {"video-only questions, silent video": accuracy_stats(video),
            "audio-only questions, audio alone": accuracy_stats(audio_only_rows)}


def paper_shape(table: dict) -> dict:
    """The paper's claims checked on point estimates: AV QI+MA > QI, MA > base; silent video not worse than base."""
    def acc(arm, modality):
        return table.get(ARM_LABELS[arm], {}).get(modality, {}).get("accuracy")

    out: dict = {"av_shape": None, "silent_not_worse": None}
    av = {a: acc(a, "av") for a in ARMS}
    if all(v is not None for v in av.values()):
        out["av_shape"] = bool(av["qi_ma"] > av["qi"] and av["qi_ma"] > av["ma"] and av["qi"] > av["base"]
                               and av["ma"] > av["base"])
    silent = {a: acc(a, "video") for a in ARMS}
    if all(v is not None for v in silent.values()):
        out["silent_not_worse"] = bool(all(silent[a] >= silent["base"] for a in ARMS))
        out["silent_worse_arms"] = [ARM_LABELS[a] for a in ARMS if silent[a] < silent["base"]]
    return out


PERCEPTION_TARGET = 0.80
"""The demo's bar for the base: accuracy on each kind of single-modality test question, asked with that sense only."""
BOTH_GAIN_TARGET = 0.20
"""The demo's bar for RL: QI+MA above the base on AV questions that need both senses, Wilson intervals separated."""


def demo_targets(table: dict, perception: dict | None = None, spread: dict | None = None,
                 paired: dict | None = None) -> list[dict]:
    """The demo's acceptance bars checked on one run: [{"target", "met" (True / False / None: not measured),
    "measured"}]. Single stages "beat" the base on point estimates, with the paired McNemar p from `paired`
    (`paired_vs_base`) in the measured text, so a win within noise reads as one; the QI+MA bar also needs separated
    intervals."""
    def stats(arm: str, column: str) -> dict:
        return table.get(ARM_LABELS[arm], {}).get(column) or {}

    def pct(s: dict) -> str:
        return f"{100 * s['accuracy']:.1f}" if s.get("accuracy") is not None else "n/a"

    out = []
    for name in ("video-only questions, silent video", "audio-only questions, audio alone"):
        s = (perception or {}).get(name) or {}
        out.append({"target": f"base: {name} >= {100 * PERCEPTION_TARGET:.0f}%",
                    "met": None if s.get("accuracy") is None else s["accuracy"] >= PERCEPTION_TARGET,
                    "measured": pct(s)})
    base, qi_ma = stats("base", "av/both"), stats("qi_ma", "av/both")
    gain = (qi_ma["accuracy"] - base["accuracy"] if qi_ma.get("accuracy") is not None
            and base.get("accuracy") is not None else None)
    apart = separated(qi_ma, base)
    out.append({"target": f"QI + MA above the base on AV, needs both, by >= {100 * BOTH_GAIN_TARGET:.0f} points, "
                          "intervals separated",
                # 1e-9: 0.60 - 0.40 is 0.1999... in floats, and 20.0 points is on the bar
                "met": None if gain is None else bool(gain >= BOTH_GAIN_TARGET - 1e-9 and apart),
                "measured": "n/a" if gain is None else f"{100 * gain:+.1f} points, intervals "
                                                       f"{'separated' if apart else 'overlapping'}"})
    for arm in ("qi", "ma"):
        s = stats(arm, "av/both")
        met = None if s.get("accuracy") is None or base.get("accuracy") is None else s["accuracy"] > base["accuracy"]
        flips = (paired or {}).get(ARM_LABELS[arm], {}).get("av/both")
        out.append({"target": f"{ARM_LABELS[arm]} above the base on AV, needs both", "met": met,
                    "measured": f"{pct(s)} against {pct(base)}" + (f", paired p {flips['p']:.2g}" if flips else "")})
    floor = stats("base", "video/video").get("ci_low")
    silent = {ARM_LABELS[a]: stats(a, "video/video").get("accuracy") for a in ARMS[1:]}
    below = [label for label, acc in silent.items() if acc is not None and floor is not None and acc < floor]
    scored = [label for label, acc in silent.items() if acc is not None]
    out.append({"target": "every arm's video-only accuracy on silent video inside or above the base's 95% interval",
                "met": None if floor is None or not scored else not below,
                "measured": ("n/a" if floor is None else f"floor {100 * floor:.1f}; " + ", ".join(
                    f"{label} {100 * acc:.1f}" for label, acc in silent.items() if acc is not None))})
    shares = {label: per["av"]["top_share"] for label, per in (spread or {}).items() if "av" in per}
    out.append({"target": f"no arm collapsed (most frequent AV answer < {100 * COLLAPSE_SHARE:.0f}% of questions)",
                "met": None if not shares else all(v < COLLAPSE_SHARE for v in shares.values()),
                "measured": ", ".join(f"{label} {100 * v:.0f}%" for label, v in shares.items()) or "n/a"})
    return out


def paired_vs_base(rows: list[dict], modalities: list[str]) -> dict:
    """{arm label: {column: {"fixed", "broke", "p", "n"}}} for each RL arm against the base, question by question.

    Columns as in `ablation_table` (modality, modality/needs). fixed: right now, wrong for the base; broke: the
    reverse; p: exact McNemar. Only questions both models were scored on (no media error) are paired.
    """
    def scored(label: str) -> dict:
        return {(r["modality"], r["id"]): r for r in rows if r["model"] == label and not r.get("media_error")}

    base = scored(ARM_LABELS["base"])
    out: dict = {}
    for arm in ARMS[1:]:
        mine = scored(ARM_LABELS[arm])
        for modality in modalities:
            for needs in (None, *NEEDS):
                keys = [k for k in base if k[0] == modality and k in mine
                        and (needs is None or base[k].get("modality_needs") == needs)]
                if not keys:
                    continue
                fixed = sum(1 for k in keys if mine[k].get("correct") and not base[k].get("correct"))
                broke = sum(1 for k in keys if base[k].get("correct") and not mine[k].get("correct"))
                column = modality if needs is None else f"{modality}/{needs}"
                out.setdefault(ARM_LABELS[arm], {})[column] = {
                    "fixed": fixed, "broke": broke, "p": mcnemar_exact_p(fixed, broke), "n": len(keys)}
    return out


def ablation_summary(rows: list[dict], modalities: list[str], perception: dict, samples: list) -> dict:
    """The measured part of an ablation.json (the demo's run and a fresh world's re-check): the accuracy table, the
    paper's shape, the base's perception, the targets, the answer spread, the paired flips against the base, and
    what the replies list against the true timelines of `samples` (the evaluated questions; eval/listing_quality.py)."""
    table = ablation_table(rows, modalities)
    spread, paired = answer_spread(rows, modalities), paired_vs_base(rows, modalities)
    return {"table": table, "shape": paper_shape(table), "base_perception": perception,
            "targets": demo_targets(table, perception, spread, paired), "answer_spread": spread,
            "paired_vs_base": paired, "listing": listing_quality(rows, samples)}


def separated(a: dict | None, b: dict | None) -> bool:
    """True when a's Wilson interval lies entirely above b's."""
    return bool(a and b and a.get("ci_low") is not None and b.get("ci_high") is not None
                and a["ci_low"] > b["ci_high"])


def answer_entropy_bits(answers: list) -> float:
    """Shannon entropy (bits) of the parsed answers; no answer counts as its own outcome. 2.0 = four letters
    equally often (up to log2(5) with unparseable answers), 0.0 = one answer for every question."""
    counts = Counter(answers)
    n = sum(counts.values())
    return -sum(c / n * math.log2(c / n) for c in counts.values()) if n else float("nan")


def answer_spread(rows: list[dict], modalities: list[str]) -> dict:
    """{arm label: {modality: {"top": answer, "top_share": share, "entropy_bits": H}}}.

    A policy that does not perceive the clip can still move accuracy by collapsing onto one letter: it then scores
    that letter's share of the test answers. Reporting the share and the entropy makes such a shift visible.
    """
    out: dict = {}
    for arm in ARMS:
        label = ARM_LABELS[arm]
        for m in modalities:
            answers = [r.get("parsed") for r in rows if r["model"] == label and r["modality"] == m]
            if answers:
                top, count = Counter(answers).most_common(1)[0]
                out.setdefault(label, {})[m] = {"top": top, "top_share": count / len(answers),
                                                "entropy_bits": answer_entropy_bits(answers)}
    return out


def read_curves(path: str) -> dict[str, list[tuple[int, float]]]:
    """{reward name: [(step, mean over rollouts)]} from an arm's metrics.jsonl (NaN / missing points dropped)."""
    from ..train.metrics_log import read_metrics

    if not os.path.exists(path):
        return {}
    out: dict[str, list[tuple[int, float]]] = {}
    for r in read_metrics(path):
        for key in CURVE_KEYS:
            v = r.get(f"reward/{key}/mean")
            if isinstance(v, (int, float)) and v == v:
                out.setdefault(key, []).append((int(r["step"]), float(v)))
    return out


def trailing_mean(values: list[float], window: int) -> list[float]:
    """Mean of each value and the (window - 1) before it (fewer at the start)."""
    if window < 1:
        raise ValueError(f"trailing_mean: window must be >= 1, got {window}")
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def column_title(column: str) -> str:
    """"av/both" -> "AV: needs both": the name of an ablation-table column (modality, or modality/needs)."""
    modality, _, needs = column.partition("/")
    return MODALITY_NAMES.get(modality, modality) + (f": needs {needs}" if needs else "")


def _cell(s: dict | None) -> str:
    if not s or s.get("accuracy") is None:
        return "-"
    return f"{100 * s['accuracy']:.1f} [{100 * s['ci_low']:.0f}-{100 * s['ci_high']:.0f}] (n={s['scored']})"


def _by_type(stats: dict) -> str:
    """" (colour_of_nth 100.0% of 34, ...)" from a measure's per-query-type stats, or "" without them."""
    parts = [f"{kind} {100 * s['accuracy']:.1f}% of {s['n']}" for kind, s in stats.get("by_type", {}).items()
             if s.get("accuracy") is not None]
    return f" ({', '.join(parts)})" if parts else ""


def _mean(vals: list[float]) -> float:
    return sum(vals) / len(vals) if vals else float("nan")


def render_markdown(table: dict, modalities: list[str], *, config: dict, timings: dict, sft_losses: list[float],
                    curves: dict | None = None, rows: list[dict] | None = None,
                    perception: dict | None = None, listing: dict | None = None,
                    title: str = "OmniVideo-R1 demo: ablation on the synthetic world (test split)") -> str:
    """The demo's ablation.md: accuracy table, the paper's claims, answer spread, what the replies list
    (`listing`: listing_quality's result), reward curves, timings, config."""
    cols = []
    for m in modalities:
        cols.append(m)
        cols += [f"{m}/{n}" for n in NEEDS if any(f"{m}/{n}" in e for e in table.values())]

    lines = [f"# {title}", "",
             "| model | " + " | ".join(column_title(c) for c in cols) + " |", "|---|" + "---|" * len(cols)]
    for label, entry in table.items():
        lines.append(f"| {label} | " + " | ".join(_cell(entry.get(c)) for c in cols) + " |")
    lines += ["", "Accuracy in %, [Wilson 95% interval], (n = scored questions); chance is 25%. Each arm is greedy-"
              "decoded once on the held-out test split, which nothing in the run was tuned on.", ""]
    paired = paired_vs_base(rows, modalities) if rows else {}
    if paired:
        lines += ["Each RL arm against the base on the same questions: right now and wrong for the base / the reverse, "
                  "and the exact McNemar p (paired, so it can separate a gain whose intervals above overlap):", "",
                  "| arm | " + " | ".join(column_title(c) for c in cols) + " |", "|---|" + "---|" * len(cols)]
        for label, entry in paired.items():
            lines.append(f"| {label} | " + " | ".join(
                f"+{e['fixed']} / -{e['broke']}, p={e['p']:.3g}" if (e := entry.get(c)) else "-" for c in cols) + " |")
        lines.append("")
    if perception:
        lines += ["Base perception (before RL), single-modality test questions: " + "; ".join(
            f"{name} {_cell(stats)}" for name, stats in perception.items() if "accuracy" in stats) + "."]
        for key, lead in (("caption_words", "Caption content words predicted right (teacher-forced, test clips)"),
                          ("listing_readout", "Right option ranked first when the correct listing of the input's "
                           "events is given (teacher-forced; near 100% means the answer is read out of the listing, "
                           "near the accuracy above means it comes from the media tokens)")):
            if perception.get(key):
                lines.append(f"{lead}: " + ", ".join(f"{sense} {100 * s['accuracy']:.1f}% of {s['n']}{_by_type(s)}"
                                                     for sense, s in perception[key].items()
                                                     if s.get("accuracy") is not None) + ".")
        alone = perception.get("audio_listing_audio_alone")
        if alone and alone.get("found_audio") is not None:
            lines.append(f"Sounds the base's replies list from audio alone (audio-only questions; as in the listing "
                         f"table below): {100 * alone['found_audio']:.1f}% found, {alone['listed_audio']:.2f} listed "
                         f"per sound, over {alone['n']} replies.")
        lines.append("")
    if listing:
        lines += listing_lines(listing, MODALITY_NAMES)
    spread = answer_spread(rows, modalities) if rows else None
    targets = demo_targets(table, perception, spread, paired)
    lines += ["The demo's targets checked on this run:", "", "| target | met | measured |", "|---|---|---|"]
    lines += [f"| {t['target']} | {VERDICT[t['met']]} | {t['measured']} |" for t in targets]
    lines.append("")
    shape = paper_shape(table)
    av = {a: table[ARM_LABELS[a]]["av"] for a in ARMS if "av" in table.get(ARM_LABELS[a], {})}
    if shape["av_shape"] is not None:
        pct = ", ".join(f"{ARM_LABELS[a]} {100 * av[a]['accuracy']:.1f}" for a in ARMS)
        lines.append(f"**Paper's shape on AV (QI+MA > each single stage > base): "
                     f"{'yes' if shape['av_shape'] else 'no'}** ({pct}).")
        significant = separated(av["qi_ma"], av["base"]) or separated(av["base"], av["qi_ma"])
        lines.append(f"QI+MA vs base on AV: the 95% intervals {'do not' if significant else 'do'} overlap"
                     f"{'' if significant else ', so the difference is within noise at this sample size'}.")
        both = {a: table[ARM_LABELS[a]].get("av/both") for a in ARMS}
        if both["qi_ma"] and both["base"]:
            gain = 100 * (both["qi_ma"]["accuracy"] - both["base"]["accuracy"])
            pair = paired.get(ARM_LABELS["qi_ma"], {}).get("av/both")
            lines.append(f"QI+MA vs base on AV questions that need both senses: {gain:+.1f} points, intervals "
                         f"{'separated' if separated(both['qi_ma'], both['base']) else 'overlapping'}"
                         + (f", McNemar p={pair['p']:.3g}" if pair else "") + ".")
        if not shape["av_shape"]:
            lines.append("The paper's ordering did not appear in this run; docs/demo-results.md records what was "
                         "measured and tried.")
    if shape["silent_not_worse"] is not None:
        worse = shape.get("silent_worse_arms", [])
        base_silent = table[ARM_LABELS["base"]]["video"]
        below = [label for label in worse if table[label]["video"]["accuracy"] < base_silent.get("ci_low", 0.0)]
        inside = (f"; {'below' if below else 'all inside'} the base's 95% interval "
                  f"[{100 * base_silent['ci_low']:.0f}-{100 * base_silent['ci_high']:.0f}]"
                  f"{': ' + ', '.join(below) if below else ''}" if worse and "ci_low" in base_silent else "")
        lines.append(f"**Silent video not worse than base: {'yes' if not worse else 'no'}**"
                     f"{'' if not worse else ' (lower point estimate: ' + ', '.join(worse) + inside + ')'}.")
    if rows:
        lines += ["", "Most frequent parsed answer per arm (share of questions; entropy of the answers in bits, 2.0 "
                  "= the four letters equally often, above 2.0 only with unparseable answers as a fifth outcome): "
                  + "; ".join(
                      f"{label}: " + ", ".join(
                          f"{MODALITY_NAMES.get(m, m)} {s['top'] or 'none'} {100 * s['top_share']:.0f}% "
                          f"H={s['entropy_bits']:.2f}" for m, s in per.items())
                      for label, per in spread.items()) + "."]
        collapsed = [label for label, per in spread.items()
                     if any(s["top_share"] >= COLLAPSE_SHARE for s in per.values())]
        if collapsed:
            lines.append(f"Collapsed onto one answer (>= {100 * COLLAPSE_SHARE:.0f}% of questions): "
                         f"{', '.join(collapsed)}. Such an arm scores about that letter's share of the test answers "
                         "whatever it perceives, so its accuracy differences are not evidence of better perception.")
    if curves:
        lines += ["", "Training reward per arm (mean over rollouts; first 3 steps -> last 3 steps):", "",
                  "| arm | " + " | ".join(k.replace("_", " ") for k in CURVE_KEYS) + " |",
                  "|---|" + "---|" * len(CURVE_KEYS)]
        for arm, comp in curves.items():
            cells = []
            for key in CURVE_KEYS:
                vals = [v for _, v in comp.get(key, [])]
                cells.append(f"{_mean(vals[:3]):.3f} -> {_mean(vals[-3:]):.3f}" if vals else "-")
            lines.append(f"| {ARM_LABELS[arm]} | " + " | ".join(cells) + " |")
    lines += ["", "Timings (s): " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()),
              f"The base's supervised loss (perception or format warm start), first -> last step: "
              f"{sft_losses[0]:.2f} -> {sft_losses[-1]:.2f}" if sft_losses else "",
              "", "Config: " + ", ".join(f"{k}={v}" for k, v in config.items()), ""]
    return "\n".join(lines)


def plot_demo(path: str, curves: dict, sft_losses: list[float], table: dict, modalities: list[str],
              perception: dict | None = None) -> str:
    """One PNG: warm-start loss, total reward per arm, reward components per arm, test accuracy bars with Wilson
    intervals per arm and input condition (plus the base's single-modality perception when measured)."""
    import matplotlib

    matplotlib.use("Agg")  # no display on training machines
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(21, 4.8))
    axes[0].plot(range(1, len(sft_losses) + 1), sft_losses)
    axes[0].set(title="supervised base (perception or format warm start)", xlabel="step", ylabel="token NLL")
    colours = {"qi": "tab:blue", "ma": "tab:orange", "qi_ma": "tab:green"}
    # A step's reward is a mean over a few prompts, so single steps jump by more than a whole run's trend; the
    # trend is drawn as a trailing mean over a tenth of the run, the steps faintly behind it.
    def trend(values: list[float]) -> list[float]:
        return trailing_mean(values, max(1, len(values) // 10))

    for arm, comp in curves.items():
        total = comp.get("total", [])
        if total:
            steps, values = [s for s, _ in total], [r for _, r in total]
            axes[1].plot(steps, values, color=colours.get(arm), alpha=0.25, linewidth=0.8)
            axes[1].plot(steps, trend(values), color=colours.get(arm), linewidth=2, label=ARM_LABELS[arm])
    axes[1].set(title="RL reward (total; bold: trailing mean over 1/10 of the run)", xlabel="step",
                ylabel="reward")
    if axes[1].lines:
        axes[1].legend()
    styles = {"format": "-", "answer": "--", "intent": ":", "modality_attention": "-."}
    for arm, comp in curves.items():
        for key, style in styles.items():
            pts = comp.get(key, [])
            if pts:
                axes[2].plot([s for s, _ in pts], trend([r for _, r in pts]), style, color=colours.get(arm),
                             label=f"{ARM_LABELS[arm]}: {key}")
    axes[2].set(title="RL reward components (trailing means)", xlabel="step", ylabel="reward")
    if axes[2].lines:
        axes[2].legend(fontsize=7, ncol=2)

    shown = [*modalities, *(f"{m}/both" for m in modalities[:1])]  # the cross-modal questions RL is judged on
    bars = {label: {m: entry[m] for m in shown if m in entry} for label, entry in table.items()}
    if perception:
        bars["base perception"] = {k: v for k, v in perception.items() if "accuracy" in v}
    present = {m for per in bars.values() for m in per}
    series = [m for m in shown if m in present] + sorted(present - set(shown))
    labels = list(bars)
    width = 0.8 / max(1, len(series))
    for j, m in enumerate(series):
        stats = [bars[label].get(m) or {} for label in labels]
        accs = [100 * (s.get("accuracy") or 0) for s in stats]
        # max(0, .): at 0% or 100% float rounding leaves a tiny negative error, which matplotlib rejects
        lo = [max(0.0, a - 100 * (s.get("ci_low") or 0)) if s else 0.0 for a, s in zip(accs, stats)]
        hi = [max(0.0, 100 * (s.get("ci_high") or 0) - a) if s else 0.0 for a, s in zip(accs, stats)]
        axes[3].bar([i + j * width for i in range(len(labels))], accs, width, yerr=[lo, hi], capsize=3,
                    label=column_title(m))
    axes[3].axhline(25, color="grey", linestyle=":", label="chance")
    axes[3].set_xticks([i + width * (len(series) - 1) / 2 for i in range(len(labels))], labels, rotation=15)
    axes[3].set(title="test accuracy (95% CI)", ylabel="%", ylim=(0, 105))
    axes[3].legend(fontsize=7)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
