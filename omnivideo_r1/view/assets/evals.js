"use strict";
// Evaluation: accuracy table, a per-question browser with filters, and checkpoint / modality flips.

const PAGE_ROWS = 150;

function evalSummaryTable() {
  const E = SITE.eval;
  const several = new Set(E.summary.map(e => e.benchmark)).size > 1;
  const rows = E.summary.map(e => h("tr", {},
    h("td", {}, e.model), several ? h("td", {}, e.benchmark) : null, h("td", {}, modalityName(e.modality)),
    h("td", {}, accuracyCell(e.overall, chanceOf(e))), h("td", { class: "mono" }, `${e.overall.correct}/${e.overall.scored}`),
    h("td", { class: "mono" }, String(e.overall.unparseable)), h("td", { class: "mono" }, String(e.overall.skipped))));
  const table = h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "checkpoint"), several ? h("th", {}, "benchmark") : null,
    h("th", {}, "input"), h("th", {}, "accuracy · 95% CI (mark: chance)"), h("th", {}, "correct"), h("th", {}, "unparseable"),
    h("th", {}, "skipped (media)"))), h("tbody", {}, rows));
  const box = h("div", { class: "panel eval-summary" }, table);
  const cats = [...new Set(E.summary.flatMap(e => Object.keys(e.categories)))].sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
  if (cats.length > 1) {
    const det = h("details", { style: "margin-top:10px" }, h("summary", {}, `Per category (${cats.length})`));
    det.append(h("div", { style: "overflow-x:auto" }, h("table", { class: "heat" },
      h("thead", {}, h("tr", {}, h("th", {}, "category"), E.summary.map(e => h("th", {}, e.model, h("div", { class: "sub" }, modalityName(e.modality)))))),
      h("tbody", {}, cats.map(c => h("tr", {}, h("td", {}, c), E.summary.map(e => heatCell(e.categories[c]))))))));
    box.append(det);
  }
  return box;
}

// Accuracy as a tinted cell (darker = lower); the interval and counts are in the tooltip.
function heatCell(stats) {
  if (!stats || stats.accuracy === null || stats.accuracy === undefined) return h("td", { class: "sub" }, "–");
  const td = h("td", { title: `${pct(stats.accuracy)}% [${pct(stats.ci_low)}, ${pct(stats.ci_high)}] · ${stats.correct}/${stats.scored}` },
    pct(stats.accuracy), h("small", {}, " n=" + stats.scored));
  td.style.background = `rgba(122, 162, 255, ${(0.08 + 0.55 * stats.accuracy).toFixed(3)})`;
  return td;
}

function chanceOf(entry) {
  const qs = SITE.eval.questions.filter(q => q.benchmark === entry.benchmark && q.options.length);
  if (!qs.length) return null;
  return qs.reduce((a, q) => a + 1 / q.options.length, 0) / qs.length;
}

function buildEval(section) {
  const E = SITE.eval, conds = E.conditions;
  section.append(h("h2", {}, "Evaluation"), evalSummaryTable(), h("h3", {}, "Questions"));
  const uniq = key => [...new Set(E.questions.map(q => q[key]))].sort();
  const select = (label, options, all = "all") => {
    const el = h("select", {}, all ? h("option", { value: "" }, all) : null, options.map(([v, t]) => h("option", { value: v }, t)));
    return [h("label", {}, label, el), el];
  };
  const [benchL, bench] = select("benchmark", uniq("benchmark").map(v => [v, v]));
  const [catL, cat] = select("category", uniq("category").map(v => [v, v]));
  const [needL, need] = select("needs", uniq("modality_needs").map(v => [v, v]));
  const [inputL, input] = select("input", [...new Set(conds.map(c => c.modality))].map(m => [m, modalityName(m)]));
  const [condL, cond] = select("right/wrong under", conds.map((c, i) => [String(i), condName(c)]), null);
  const [resL, res] = select("result", [["right", "right"], ["wrong", "wrong"], ["unparseable", "unparseable"],
    ["media_error", "media error"], ["disagree", "answers differ"]]);
  // the benchmark's own breakdown fields (e.g. Video-MME's duration), one filter each
  const groupKeys = [...new Set(E.questions.flatMap(q => Object.keys(q.groups || {})))].sort();
  const groupFilters = groupKeys.map(k => [k, ...select(k, [...new Set(E.questions.map(q => (q.groups || {})[k]).filter(v => v !== undefined))].sort().map(v => [v, v]))]);
  const search = h("input", { type: "search", placeholder: "id or question text" });
  const count = h("span", { class: "count" });
  section.append(h("div", { class: "filters" }, benchL, catL, needL, groupFilters.map(g => g[1]), inputL, condL, resL,
    h("label", {}, "search", search), count));
  const table = h("table", { class: "qtable" });
  const body = h("tbody", {});
  let visibleConds = conds.map((_, i) => i);
  const head = h("thead", {});
  table.append(head, body);
  const more = h("button", { class: "more" }, "show more");
  section.append(table, more);
  let filtered = [], shown = 0;
  const open = new Set();

  const renderHead = () => {
    head.replaceChildren(h("tr", {}, h("th", {}, "id"), h("th", {}, "category"), h("th", {}, "needs"), h("th", {}, "question"),
      h("th", {}, "key"), visibleConds.map(i => h("th", { class: "cond", title: condName(conds[i]) }, conds[i].model,
        h("div", { class: "sub", style: "font-size:10.5px" }, modalityName(conds[i].modality))))));
  };
  const rowFor = qi => {
    const q = E.questions[qi];
    const tr = h("tr", { class: "q" + (open.has(qi) ? " open" : ""), "data-q": qi },
      h("td", { class: "mono", style: "font-size:12px" }, q.id), h("td", {}, h("span", { class: "chip" }, q.category)),
      h("td", {}, q.modality_needs), h("td", { class: "qtext", title: q.question }, q.question),
      h("td", { class: "mono" }, q.answer || "?"),
      visibleConds.map(i => h("td", { style: "text-align:center" }, resultDot(q.results[i], i === Number(cond.value)))));
    tr.addEventListener("click", () => { open.has(qi) ? open.delete(qi) : open.add(qi); render(false); });
    const rows = [tr];
    if (open.has(qi)) rows.push(h("tr", { class: "qdetail" }, h("td", { colspan: 5 + visibleConds.length }, questionDetail(q, visibleConds))));
    return rows;
  };
  const render = reset => {
    if (reset) {
      const c = Number(cond.value), term = search.value.trim().toLowerCase();
      visibleConds = conds.map((_, i) => i).filter(i => !input.value || conds[i].modality === input.value);
      filtered = E.questions.map((q, i) => i).filter(i => {
        const q = E.questions[i], r = q.results[c];
        if (bench.value && q.benchmark !== bench.value) return false;
        if (cat.value && q.category !== cat.value) return false;
        if (need.value && q.modality_needs !== need.value) return false;
        if (groupFilters.some(([k, , el]) => el.value && (q.groups || {})[k] !== el.value)) return false;
        if (term && !(q.id.toLowerCase().includes(term) || q.question.toLowerCase().includes(term))) return false;
        if (res.value === "disagree") return new Set(visibleConds.map(j => q.results[j] && q.results[j].parsed)).size > 1;
        if (!res.value) return true;
        if (!r) return false;
        if (res.value === "media_error") return !!r.media_error;
        if (r.media_error) return false;
        if (res.value === "right") return r.correct;
        if (res.value === "wrong") return !r.correct;
        return r.unparseable;
      });
      shown = Math.min(PAGE_ROWS, filtered.length);
      renderHead();
    }
    body.replaceChildren(...filtered.slice(0, shown).flatMap(rowFor));
    count.textContent = `${filtered.length} of ${E.questions.length} questions` + (shown < filtered.length ? ` (showing ${shown})` : "");
    more.hidden = shown >= filtered.length;
  };
  more.addEventListener("click", () => { shown = Math.min(filtered.length, shown + PAGE_ROWS); render(false); });
  for (const el of [bench, cat, need, input, cond, res, ...groupFilters.map(g => g[2])]) el.addEventListener("change", () => render(true));
  search.addEventListener("input", () => render(true));
  render(true);
  return arg => {
    if (arg && arg[0] === "q") {
      const qi = Number(arg.slice(1));
      if (!E.questions[qi]) return;
      for (const el of [bench, cat, need, input, res, ...groupFilters.map(g => g[2])]) el.value = "";
      search.value = E.questions[qi].id;
      open.add(qi);
      render(true);
    }
  };
}

function resultDot(r, selected) {
  if (!r) return h("span", { class: "dot none", title: "not evaluated" }, "·");
  if (r.media_error) return h("span", { class: "dot none" + (selected ? " sel" : ""), title: "media error: " + r.media_error }, "!");
  return h("span", { class: "dot " + (r.correct ? "right" : "wrong") + (selected ? " sel" : ""),
    title: r.unparseable ? "unparseable answer" : "answered " + r.parsed }, r.parsed || "?");
}

function questionDetail(q, condIdx) {
  const conds = SITE.eval.conditions;
  const media = mediaFor(q.media);
  const picks = {};
  condIdx.forEach(i => { const r = q.results[i]; if (r && r.parsed) for (const l of r.parsed) (picks[l] = picks[l] || []).push(i); });
  const inner = h("div", { class: "inner" });
  inner.append(h("div", { class: "question" }, q.question, " ", q.video ? clipLink(q.video) : null));
  if (q.options.length) {
    inner.append(h("div", { class: "options" }, q.options.map((o, i) => h("span", { class: "option" + ((q.answer || "").includes(LETTERS[i]) ? " correct" : "") },
      h("b", {}, LETTERS[i]), o, picks[LETTERS[i]] ? h("span", { class: "pickers" }, "← " + picks[LETTERS[i]].map(j => conds[j].model + " " + modalityName(conds[j].modality)).join(", ")) : null))));
  }
  const withSegments = condIdx.filter(i => q.results[i]);
  const duration = (media && media.duration) || (q.timeline && q.timeline.duration) ||
    Math.max(1, ...withSegments.flatMap(i => q.results[i].segments.map(sg => sg.end)), ...(q.reference || []).map(r => r.end));
  if (media || (q.reference && q.reference.length) || withSegments.some(i => q.results[i].segments.length)) {
    inner.append(clipTimeline({ duration, media, reference: q.reference, timeline: q.timeline, mediaError: media && media.error,
      lanes: withSegments.map(i => ({ id: i, label: clipText(conds[i].model, 16), sub: modalityName(conds[i].modality), segments: q.results[i].segments })) }));
  }
  inner.append(h("div", { class: "outputs" }, withSegments.map(i => {
    const r = q.results[i];
    return h("div", { class: "output-card" }, h("h4", {}, h("span", {}, condName(conds[i])), resultDot(r, false)),
      r.media_error ? h("div", { class: "media-error" }, "media error: " + r.media_error) : highlightCompletion(r.output, r.truncated));
  })));
  return inner;
}

function buildCompare(section) {
  const E = SITE.eval, conds = E.conditions;
  section.append(h("h2", {}, "Compare two checkpoints (or an input condition)"));
  if (!E.flips.length) {
    section.append(h("div", { class: "empty" }, "Only one checkpoint and one input condition: nothing to compare."));
    return null;
  }
  const label = f => condName(conds[f.a]) + "  →  " + condName(conds[f.b]);
  const models = [...new Set(conds.map(c => c.model))];
  let initial = E.flips.findIndex(f => conds[f.a].model === models[0] && conds[f.b].model === models[models.length - 1]);
  if (initial < 0) initial = 0;
  const pick = h("select", {}, E.flips.map((f, i) => h("option", { value: i, selected: i === initial }, label(f))));
  section.append(h("div", { class: "pair-pick" }, h("label", {}, "A → B (questions scored under both)", pick),
    h("span", { class: "sub", style: "font-size:12.5px" }, "A flip is a question one side answered right and the other wrong.")));
  const box = h("div", {});
  section.append(box);
  const render = () => {
    const f = E.flips[Number(pick.value)];
    const a = conds[f.a], b = conds[f.b];
    const accA = f.n ? (f.both_right + f.b_broke.length) / f.n : null, accB = f.n ? (f.both_right + f.b_fixed.length) / f.n : null;
    const panel = (lbl, value, cls, sub) => h("div", { class: "panel" }, h("div", { class: "label" }, lbl),
      h("div", { class: "stat", style: cls ? `color:var(--${cls})` : "" }, String(value), sub ? h("small", {}, sub) : null));
    box.replaceChildren(
      h("div", { class: "contingency", "data-fixed": f.b_fixed.length, "data-broke": f.b_broke.length, "data-n": f.n },
        panel("accuracy A → B", pct(accA) + " → " + pct(accB), null, "% of " + f.n),
        panel("fixed by B (A wrong, B right)", f.b_fixed.length, "good"),
        panel("broken by B (A right, B wrong)", f.b_broke.length, "bad"),
        panel("unchanged", f.both_right + " right · " + f.both_wrong + " wrong", null,
          "· McNemar exact p = " + fmt(mcnemar(f.b_fixed.length, f.b_broke.length), 3))),
      h("div", { class: "flip-cols" },
        flipList("Fixed by B", f.b_fixed, f, "good"), flipList("Broken by B", f.b_broke, f, "bad")));
  };
  pick.addEventListener("change", render);
  render();
  return null;
}

function flipList(title, indices, f, tone) {
  const E = SITE.eval, conds = E.conditions;
  const list = h("div", { class: "flip-list" }, h("h3", { style: "margin-top:0" }, `${title} (${indices.length})`));
  if (!indices.length) list.append(h("div", { class: "empty" }, "none"));
  for (const qi of indices.slice(0, 300)) {
    const q = E.questions[qi], ra = q.results[f.a], rb = q.results[f.b];
    const card = h("div", { class: "flip", "data-qid": q.id },
      h("div", { class: "fq" }, q.question),
      h("div", { class: "fmeta" }, h("span", { class: "mono" }, q.id), h("span", { class: "chip" }, q.category),
        "key " + (q.answer || "?"), " · A ", resultDot(ra, false), " → B ", resultDot(rb, false),
        h("a", { href: "#eval/q" + qi, style: "margin-left:auto", onclick: ev => ev.stopPropagation() }, "in Questions")));
    let detail = null;
    card.addEventListener("click", ev => {
      if (detail && detail.contains(ev.target)) return;
      if (detail) { detail.remove(); detail = null; card.classList.remove("open"); return; }
      detail = questionDetail(q, [f.a, f.b]);  // A and B side by side: timeline lanes and outputs
      card.classList.add("open");
      card.append(detail);
    });
    list.append(card);
  }
  if (indices.length > 300) list.append(h("div", { class: "sub" }, `… and ${indices.length - 300} more (filter in Questions)`));
  return list;
}

// Two-sided exact McNemar test: the discordant pairs as a fair-coin binomial.
function mcnemar(b, c) {
  const n = b + c;
  if (!n) return 1;
  const k = Math.min(b, c);
  let logc = 0, tail = 0;
  for (let i = 0; i <= k; i++) {
    if (i > 0) logc += Math.log(n - i + 1) - Math.log(i);
    tail += Math.exp(logc - n * Math.LN2);
  }
  return Math.min(1, 2 * tail);
}

// ---------------------------------------------------------------- the views of this site
(function registerViews() {
  const collection = SITE.runs.length > 1 || (SITE.runs.length && SITE.eval);
  if (collection) addView("overview", "Overview", "", buildOverview);
  SITE.runs.forEach((run, i) => addView("run-" + i, run.name, "run", buildRun(run, i)));
  if (SITE.eval) {
    addView("eval", "Questions", "eval", buildEval);
    addView("compare", "Compare", "eval", buildCompare);
  }
  startViewer();
})();
