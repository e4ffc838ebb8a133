"use strict";
// Training runs: overview cards, metric curves, and the recorded rollouts of each step on the clip's timeline.

const REWARD_KEY = /^reward\/([^/]+)\/mean$/;
const CURVE_GROUPS = [
  ["Policy update", ["loss", "clip_frac", "kl_to_old", "entropy", "grad_norm", "ratio_mean"]],
  ["Signal", ["reward/answer/accuracy", "adv/zero_std_group_frac", "reward/intent/ungrounded_rate", "adv/reward_std",
    "reward/total/n_nan"]],
  ["Throughput and schedule", ["step_time_s", "completion_tokens_per_s", "lr"]],
];

function rewardComponents(run) {
  return Object.keys(run.metrics.series).map(k => (k.match(REWARD_KEY) || [])[1]).filter(c => c && c !== "total");
}

function runSummary(run) {
  const total = run.metrics.series["reward/total/mean"] || [];
  const finite = total.filter(v => v !== null);
  return { first: finite.length ? finite[0] : null, last: finite.length ? finite[finite.length - 1] : null,
    steps: run.metrics.steps.length ? run.metrics.steps[run.metrics.steps.length - 1] : 0 };
}

function buildOverview(section) {
  section.append(h("h2", {}, "Overview"));
  if (SITE.runs.length) {
    const cards = h("div", { class: "grid cards" });
    SITE.runs.forEach((run, i) => {
      const sum = runSummary(run);
      cards.append(h("div", { class: "panel", style: "cursor:pointer", onclick: () => { location.hash = "run-" + i; } },
        h("div", { style: "display:flex;justify-content:space-between;align-items:center" },
          h("b", {}, run.name), h("span", { class: "badge" }, "stage " + (run.stage || "?").toUpperCase())),
        h("div", { class: "stat" }, fmt(sum.last, 3), h("small", {}, "reward at step " + sum.steps)),
        h("div", { class: "sub", style: "font-size:12px" }, "from " + fmt(sum.first, 3) + " at the first step · " +
          run.groups.length + " recorded groups"),
        sparkline(run.metrics.series["reward/total/mean"] || [], PALETTE[i % PALETTE.length])));
    });
    section.append(cards);
    if (SITE.runs.length > 1) {
      section.append(h("h3", {}, "Rewards, all runs (mean over rollouts)"));
      const wrap = h("div", { class: "grid charts" });
      for (const comp of ["total", ...new Set(SITE.runs.flatMap(rewardComponents))]) {
        const steps = [...new Set(SITE.runs.flatMap(r => r.metrics.steps))].sort((a, b) => a - b);
        const series = SITE.runs.filter(r => r.metrics.series[`reward/${comp}/mean`]).map(r => {
          const byStep = new Map(r.metrics.steps.map((st, j) => [st, r.metrics.series[`reward/${comp}/mean`][j]]));
          return { name: r.name, color: PALETTE[SITE.runs.indexOf(r) % PALETTE.length], values: steps.map(st => byStep.has(st) ? byStep.get(st) : null) };
        });
        if (series.length) wrap.append(lineChart({ title: `reward: ${comp}`, steps, series }));
      }
      section.append(wrap);
    }
  }
  if (SITE.eval) {
    section.append(h("h3", {}, "Evaluation"));
    section.append(evalSummaryTable());
  }
}

function buildRun(run, index) {
  return section => {
    const sum = runSummary(run);
    const recorded = [...new Set(run.groups.map(g => g.step))].sort((a, b) => a - b);
    section.append(h("h2", {}, run.name, " ", h("span", { class: "badge" }, "stage " + (run.stage || "?").toUpperCase())),
      h("div", { class: "sub", style: "margin:-8px 0 14px;font-family:var(--mono);font-size:12px" }, run.path));
    const comps = rewardComponents(run);
    const series = run.metrics.series;
    const stats = h("div", { class: "run-stats" },
      h("div", { class: "panel" }, h("div", { class: "sub" }, "total reward"), h("div", { class: "stat" }, fmt(sum.last, 3),
        h("small", {}, "from " + fmt(sum.first, 3)))),
      h("div", { class: "panel" }, h("div", { class: "sub" }, "steps logged"), h("div", { class: "stat" }, String(sum.steps),
        h("small", {}, recorded.length + " with recorded rollouts"))),
      series["reward/answer/accuracy"] ? h("div", { class: "panel" }, h("div", { class: "sub" }, "answer accuracy (rollouts)"),
        h("div", { class: "stat" }, pct(lastValue(series["reward/answer/accuracy"])) + "%")) : null);
    const goTo = st => { location.hash = `run-${index}/s${st}`; };
    const headChart = series["reward/total/mean"] ? lineChart({ title: "reward, mean over rollouts (▲ steps with recorded rollouts)",
      steps: run.metrics.steps, marks: recorded, onMark: goTo, height: 190, wide: true,
      series: [{ name: "total", values: series["reward/total/mean"], color: "#e7eaf1", width: 2.4 },
        ...comps.map((c, i) => ({ name: c, values: series[`reward/${c}/mean`], color: PALETTE[i % PALETTE.length] }))] }) : h("div", {});
    section.append(h("div", { class: "run-head" }, stats, headChart));
    const pages = { rollouts: h("div", {}), curves: h("div", {}) };
    const pageTabs = h("div", { class: "subtabs" });
    for (const [name, labelText] of [["rollouts", `Rollouts (${recorded.length} steps)`], ["curves", "All curves"]]) {
      pageTabs.append(h("button", { class: "subtab", "data-page": name, onclick: () => { location.hash = `run-${index}/${name}`; } }, labelText));
    }
    section.append(pageTabs, pages.rollouts, pages.curves);
    const showPage = name => {
      for (const [k, el] of Object.entries(pages)) el.hidden = k !== name;
      for (const b of pageTabs.children) b.classList.toggle("active", b.dataset.page === name);
      if (name === "curves" && !pages.curves.childElementCount) buildCurves(pages.curves, run, comps, recorded, goTo);
    };

    const stepBar = h("div", { class: "steps" }), groupsBox = h("div", {});
    pages.rollouts.append(stepBar, groupsBox);
    if (!recorded.length) {
      groupsBox.append(h("div", { class: "empty" }, "No rollouts recorded in this run (rollouts.jsonl is absent or empty; " +
        "it is written every run.log_rollouts_every steps)."));
    }
    let current = null;
    const show = st => {
      if (!recorded.length) return;
      if (!recorded.includes(st)) st = recorded[recorded.length - 1];
      if (st === current) return;
      current = st;
      for (const b of stepBar.children) b.classList.toggle("active", Number(b.dataset.step) === st);
      groupsBox.replaceChildren(...run.groups.filter(g => g.step === st).map(groupCard));
    };
    stepBar.append(h("span", { class: "sub", style: "font-size:12px;align-self:center;margin-right:4px" }, "step · mean reward (← → keys)"));
    for (const st of recorded) {
      const totals = run.groups.filter(g => g.step === st).flatMap(g => g.completions.map(c => c.total)).filter(v => v !== null);
      const mean = totals.length ? totals.reduce((a, b) => a + b, 0) / totals.length : null;
      stepBar.append(h("button", { class: "step-btn", "data-step": st, onclick: () => goTo(st) }, String(st), h("span", {}, fmt(mean, 2))));
    }
    show(recorded[recorded.length - 1]);
    showPage("rollouts");
    // left/right arrows step through the recorded steps while this run is on screen
    document.addEventListener("keydown", ev => {
      if (!section.classList.contains("active") || pages.rollouts.hidden || ev.target.closest("input, select, textarea")) return;
      const k = recorded.indexOf(current) + (ev.key === "ArrowRight" ? 1 : ev.key === "ArrowLeft" ? -1 : 0);
      if (k !== recorded.indexOf(current) && k >= 0 && k < recorded.length) goTo(recorded[k]);
    });
    return arg => {
      if (arg === "curves") return showPage("curves");
      showPage("rollouts");
      if (arg && arg[0] === "s") show(Number(arg.slice(1)));
    };
  };
}

function buildCurves(box, run, comps, recorded, goTo) {
  const series = run.metrics.series;
  const shown = new Set(["reward/total/mean"]);
  const rewardGrid = h("div", { class: "grid small-charts" });
  comps.forEach((c, i) => {
    shown.add(`reward/${c}/mean`);
    rewardGrid.append(lineChart({ title: `reward: ${c}`, steps: run.metrics.steps, marks: recorded, onMark: goTo, height: 150, width: 340,
      series: [{ name: c, values: series[`reward/${c}/mean`], color: PALETTE[i % PALETTE.length] }] }));
  });
  box.append(h("h3", {}, "Reward components"), rewardGrid);
  for (const [title, keys] of CURVE_GROUPS) {
    const present = keys.filter(k => series[k]);
    if (!present.length) continue;
    const grid = h("div", { class: "grid small-charts" });
    present.forEach((k, i) => { shown.add(k); grid.append(lineChart({ title: k, steps: run.metrics.steps, height: 150, width: 340,
      series: [{ name: k, values: series[k], color: PALETTE[(i + 1) % PALETTE.length] }] })); });
    box.append(h("h3", {}, title), grid);
  }
  const rest = Object.keys(series).filter(k => !shown.has(k));
  if (rest.length) {
    box.append(h("h3", {}, `Other metrics (${rest.length})`), h("div", { class: "grid small-charts" }, rest.map(k => lineChart({ title: k,
      steps: run.metrics.steps, height: 140, width: 340, compact: true, series: [{ name: k, values: series[k], color: "#8fa3d6" }] }))));
  }
  if (run.config_text) box.append(h("h3", {}, "Run configuration"), h("pre", { class: "config" }, run.config_text));
}

function groupCard(group) {
  const p = group.prompt, comps = group.completions;
  const media = mediaFor(p.media);
  const duration = p.clip_duration || (media && media.duration) || (p.timeline && p.timeline.duration) ||
    Math.max(1, ...comps.flatMap(c => c.segments.map(sg => sg.end)));
  const picks = {};
  comps.forEach((c, i) => { if (c.parsed) (picks[c.parsed] = picks[c.parsed] || []).push(i + 1); });
  const totals = comps.map(c => c.total).filter(v => v !== null);
  const mean = totals.length ? totals.reduce((a, b) => a + b, 0) / totals.length : null;
  const card = h("article", { class: "group", "data-step": group.step, "data-slot": group.slot, "data-id": p.id });
  const window_ = p.start !== null && p.start !== undefined ? ` [${seconds(p.start)}–${seconds(p.end)}]` : "";
  card.append(h("div", { class: "group-head" },
    h("div", { class: "group-meta" }, h("span", { class: "badge" }, "step " + group.step), h("span", { class: "mono" }, p.id),
      h("span", { class: "chip" }, p.category), h("span", { class: "chip accent" }, "needs " + p.modality_needs),
      h("span", { class: "chip" }, "input " + modalityName(p.modality)),
      h("span", { class: "mono", title: p.video }, shortPath(p.video) + window_), clipLink(p.video),
      h("span", { style: "margin-left:auto" }, "group mean reward ", h("b", {}, fmt(mean, 3)))),
    h("div", { class: "question" }, p.question),
    h("div", { class: "options" }, p.options.map((o, i) => h("span", { class: "option" + (p.answer.includes(LETTERS[i]) ? " correct" : "") },
      h("b", {}, LETTERS[i]), o, picks[LETTERS[i]] ? h("span", { class: "pickers" }, "← #" + picks[LETTERS[i]].join(" #")) : null)))));
  const cards = [];
  const highlight = id => cards.forEach((c, i) => c.classList.toggle("hl", i === id));
  const lanes = comps.map((c, i) => ({ id: i, label: "#" + (i + 1), sub: signed(c.advantage),
    subClass: c.advantage > 1e-9 ? "adv-pos" : c.advantage < -1e-9 ? "adv-neg" : "", segments: c.segments }));
  card.append(h("div", { class: "media-block" }, clipTimeline({ duration, media, reference: p.reference, timeline: p.timeline,
    lanes, onLaneHover: highlight, mediaError: media && media.error })));
  const list = h("div", { class: "completions" });
  comps.forEach((c, i) => {
    const el = completionCard(c, i, p, group.weights || {});
    // hovering a reply lights its lane on the timeline (and hovering a lane lights the reply)
    el.addEventListener("mouseenter", () => card.querySelectorAll(`rect.lane-bg[data-lane="${i}"]`).forEach(r => r.classList.add("hl")));
    el.addEventListener("mouseleave", () => card.querySelectorAll("rect.lane-bg.hl").forEach(r => r.classList.remove("hl")));
    cards.push(el);
    list.append(el);
  });
  card.append(list);
  return card;
}

function completionCard(c, i, prompt, weights) {
  const adv = c.advantage;
  const advClass = adv === null ? "zero" : adv > 1e-9 ? "pos" : adv < -1e-9 ? "neg" : "zero";
  const width = adv === null ? 0 : Math.min(50, Math.abs(adv) / 2.5 * 50);
  const bar = h("div", { class: "adv-bar" }, h("i", { style: `left:${adv >= 0 ? 50 : 50 - width}%;width:${width}%;background:${adv >= 0 ? "var(--good)" : "var(--bad)"}` }));
  const side = h("div", { class: "comp-side" }, h("span", { class: "comp-index" }, "rollout #" + (i + 1)),
    h("div", { class: "adv" }, h("span", { class: "sub", style: "font-size:11px" }, "advantage"),
      h("span", { class: "adv-value " + advClass }, signed(adv)), bar));
  const rewards = h("div", { class: "rewards" });
  rewards.append(rewardChip("total", c.total, null, true));
  for (const [name, v] of Object.entries(c.rewards)) rewards.append(rewardChip(name, v, weights[name]));
  const correct = c.parsed && c.parsed === [...prompt.answer].sort().join("");
  rewards.append(h("span", { class: "chip " + (c.parsed ? (correct ? "good" : "bad") : "warn") },
    "answer ", h("b", {}, c.parsed || "none"), c.parsed ? (correct ? " ✓" : " ✗") : ""));
  const main = h("div", { class: "comp-main" }, rewards);
  const variants = Object.entries(c.variants || {});
  const conf = Object.entries(c.confidence || {});
  if (variants.length || conf.length) {
    const box = h("div", { class: "variants" }, h("span", { class: "sub" }, "modality probes:"));
    for (const [m, v] of variants) {
      const ok = v.parsed && v.parsed === [...prompt.answer].sort().join("");
      box.append(h("span", { class: "chip " + (v.parsed ? (ok ? "good" : "bad") : "warn"), title: v.text }, (INPUT_NAMES[m] || m) + " → ", h("b", {}, v.parsed || "none")));
    }
    for (const [m, p] of conf) box.append(h("span", { class: "chip accent" }, "p(" + (c.parsed || "?") + " | " + (INPUT_NAMES[m] || m) + ") ", h("b", {}, fmt(p, 3))));
    main.append(box);
  }
  if (c.problems && c.problems.length) {
    main.append(h("div", { class: "problems" }, c.problems.map(pr => h("span", { class: "chip warn" }, pr.replace(/_/g, " ")))));
  }
  main.append(highlightCompletion(c.text, c.truncated));
  return h("div", { class: "completion", "data-advantage": adv === null ? "" : adv }, side, main);
}

function rewardChip(name, value, weight, isTotal) {
  const none = value === null || value === undefined;
  const frac = none ? 0 : Math.max(0, Math.min(1, value));
  return h("span", { class: "reward" + (none ? " none" : "") + (isTotal ? " total" : ""),
    title: none ? name + ": not scored (judge failure or missing data); excluded from the group baseline" : name + " = " + value },
    h("span", { class: "name" }, name + (weight !== undefined && weight !== null && weight !== 1 ? " ×" + weight : "")),
    h("span", { class: "meter" }, h("i", { style: `width:${100 * frac}%` })),
    h("span", { class: "val" }, none ? "n/a" : fmt(value, 3)));
}

function shortPath(p) {
  if (!p) return "";
  const parts = p.split("/");
  return parts.length > 2 ? "…/" + parts.slice(-2).join("/") : p;
}
