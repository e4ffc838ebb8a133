"""What the replies list, against the synthetic world's own timelines: grounding quality per sense, and for the
cross-modal ("both") questions whether the listing carries the answer and whether the answer follows it.

A grounded reply lists `<time>s-e</time><caption>...</caption>` segments before it answers. On the synthetic world
every clip's true timeline is known, so each reply's listing can be read back into events
(`rewards/listing.listed_timeline`) and compared with it:
    found(sense)     = true events of that sense that the listing names, overlapping them in time / true events
    listed(sense)    = events of that sense the listing names / true events      (below 1: events left out)
    precise(sense)   = listed events that name a true event they overlap / listed events
An event is named by what a cross-modal question can ask of it: a shape's colour and shape (its screen position is
not required), a sound's kind. For a "both" question:
    implies_right    = the listing's events imply exactly one option (the world's solver on the listed timeline),
                       and it is the right one
    follows          = of the replies whose listing implies exactly one option, the share that answer it
So a gain on "both" can be split into a better listing (implies_right) and a better read-out of it (follows); an
accuracy well above implies_right means the answers come from somewhere other than the listing.

Rows and samples are plain records (eval rows as `eval/runner.py` writes them, `AVSample`s); samples that were not
written by `omnivideo-r1 synth` are skipped (counted), since no true timeline exists for them.
"""

from __future__ import annotations

from collections import defaultdict

from ..answers import extract_answer_block, parse_choice
from ..rewards.listing import listed_timeline
from ..schema import AVSample
from ..synth.questions import candidate_answers, is_world_question
from ..synth.scene import Timeline, VisualEvent, overlap

SENSES = ("video", "audio")
SHOWN = {"av": ("video", "audio"), "video": ("video",), "audio": ("audio",)}
"""The senses an input condition shows (eval rows' "modality"): only those can be listed from the input."""


def _name(event) -> tuple:
    """What a cross-modal question can ask of an event: (colour, shape) on screen, the kind of sound heard."""
    return (event.colour, event.shape) if isinstance(event, VisualEvent) else (event.sound,)


def _matches(a, b) -> bool:
    return _name(a) == _name(b) and overlap(a.start, a.end, b.start, b.end) > 0


def reply_listing(output: str, sample: AVSample, shown: tuple[str, ...] = SENSES) -> dict | None:
    """Counts for one reply (see the module docstring) for the senses `shown`, or None when `sample` has no true
    timeline. The "both" counts only when both senses are shown (a one-sense listing cannot imply a cross-modal
    answer)."""
    if not is_world_question(sample):
        return None
    truth = Timeline.from_dict(sample.extra["timeline"])
    listed = listed_timeline(output or "", truth)
    counts: dict = {}
    for sense, true_events, listed_events in (("video", truth.visual, listed.visual),
                                              ("audio", truth.audio, listed.audio)):
        if sense not in shown:
            continue
        counts[sense] = {
            "true": len(true_events), "listed": len(listed_events),
            "found": sum(any(_matches(t, e) for e in listed_events) for t in true_events),
            "precise": sum(any(_matches(e, t) for t in true_events) for e in listed_events)}
    if sample.modality_needs == "both" and set(SENSES) <= set(shown):
        implied = candidate_answers(sample, "both", listed) if listed.visual or listed.audio else set()
        answer = parse_choice(extract_answer_block(output or "") or "", sample.options)
        counts["both"] = {"implies_one": len(implied) == 1, "implies_right": implied == {sample.answer},
                          "follows": len(implied) == 1 and answer in implied}
    return counts


def listing_quality(rows: list[dict], samples: list[AVSample]) -> dict:
    """{model label: {modality: {"found_video", "listed_video", "precise_video", (the same for audio), "n",
    "both": {"n", "implies_right", "follows", "n_implies_one"}}}} as shares in [0, 1] (None where nothing to
    divide), from eval rows ("model", "modality", "id", "output") and the samples they were asked on.

    An input condition has shares only for the senses it shows (silent video: no audio shares, no "both").
    """
    by_id = {s.id: s for s in samples}
    sums: dict = defaultdict(lambda: defaultdict(float))
    skipped = 0
    for row in rows:
        sample = by_id.get(row.get("id"))
        shown = SHOWN.get(row.get("modality"), SENSES)
        counts = reply_listing(row.get("output", ""), sample, shown) \
            if sample is not None and not row.get("media_error") else None
        if counts is None:
            skipped += 1
            continue
        acc = sums[(row["model"], row["modality"])]
        acc["n"] += 1
        for sense in shown:
            for key, value in counts[sense].items():
                acc[f"{key}_{sense}"] += value
        if "both" in counts:
            acc["both_n"] += 1
            for key, value in counts["both"].items():
                acc[f"both_{key}"] += value

    def share(a: float, b: float) -> float | None:
        return a / b if b else None

    out: dict = {}
    for (model, modality), acc in sums.items():
        entry = {"n": int(acc["n"])}
        for sense in SHOWN.get(modality, SENSES):
            entry[f"found_{sense}"] = share(acc[f"found_{sense}"], acc[f"true_{sense}"])
            entry[f"listed_{sense}"] = share(acc[f"listed_{sense}"], acc[f"true_{sense}"])
            entry[f"precise_{sense}"] = share(acc[f"precise_{sense}"], acc[f"listed_{sense}"])
        if acc["both_n"]:
            entry["both"] = {"n": int(acc["both_n"]), "implies_right": acc["both_implies_right"] / acc["both_n"],
                             "n_implies_one": int(acc["both_implies_one"]),
                             "follows": share(acc["both_follows"], acc["both_implies_one"])}
        out.setdefault(model, {})[modality] = entry
    if skipped:
        out["_skipped_rows"] = skipped
    return out


def listing_lines(quality: dict, modality_names: dict[str, str]) -> list[str]:
    """Markdown for the ablation report: one row per model and input condition ("-" where it does not apply)."""
    models = [m for m in quality if not m.startswith("_")]
    if not models:
        return []

    def pct(v: float | None) -> str:
        return "-" if v is None else f"{100 * v:.1f}"

    def per_event(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}"

    lines = ["What the replies list, against each test clip's true timeline. An event is found when the reply names "
             "it (a shape by colour and shape, a sound by kind) overlapping it in time; listed: events named per true "
             "event (below 1.00: events left out). For the cross-modal questions: how often the listing implies "
             "exactly the right option, and how often the answer is the option the listing implies (of the replies "
             "whose listing implies one). An accuracy on those questions well above the first means the answers do "
             "not come from the listing.", "",
             "| model | input | video found | video listed | audio found | audio listed | \"both\": listing implies "
             "the right option | \"both\": answer follows the listing |", "|---|---|---|---|---|---|---|---|"]
    for model in models:
        for modality, e in quality[model].items():
            both = e.get("both")
            follows = f"{pct(both['follows'])} (of {both['n_implies_one']})" if both else "-"
            lines.append(f"| {model} | {modality_names.get(modality, modality)} | {pct(e.get('found_video'))} | "
                         f"{per_event(e.get('listed_video'))} | {pct(e.get('found_audio'))} | "
                         f"{per_event(e.get('listed_audio'))} | {pct(both and both['implies_right'])} | {follows} |")
    if quality.get("_skipped_rows"):
        lines.append(f"({quality['_skipped_rows']} rows without a synthetic-world timeline or with a media error "
                     "were left out.)")
    return lines + [""]
