"use strict";
// Line charts of metrics over steps (inline SVG) and small accuracy interval bars.

const PALETTE = ["#7aa2ff", "#39c98a", "#f2b33d", "#ff7aa8", "#b58cff", "#5ee0c0", "#ff9f5a", "#9aa3b5"];

// opts: title, steps, series: [{name, values, color}], marks (steps with recorded rollouts), onMark(step),
// height, compact (no legend).
function lineChart(opts) {
  const W = opts.width || (opts.wide ? 900 : 420), H = opts.height || 190, L = 44, R = 10, T = 8, B = 22;
  const pts = [];
  for (const ser of opts.series) ser.values.forEach((v, i) => { if (v !== null && v !== undefined) pts.push(v); });
  const steps = opts.steps;
  const box = h("div", { class: "chart" });
  const last = opts.series.length === 1 ? lastValue(opts.series[0].values) : null;
  box.append(h("div", { class: "chart-title" }, h("span", { class: "name", title: opts.title }, opts.title),
    last !== null ? h("span", { class: "last" }, "last " + fmt(last)) : null));
  if (!pts.length || !steps.length) {
    box.append(h("div", { class: "sub", style: "padding:20px 0;font-size:12px" }, "no finite values"));
    return box;
  }
  let lo = Math.min(...pts), hi = Math.max(...pts);
  if (hi - lo < 1e-12) { const pad = Math.abs(hi) * 0.1 || 0.5; lo -= pad; hi += pad; }
  const span = hi - lo; lo -= span * 0.06; hi += span * 0.06;
  const s0 = steps[0], s1 = steps[steps.length - 1] === s0 ? s0 + 1 : steps[steps.length - 1];
  const x = st => L + (st - s0) / (s1 - s0) * (W - L - R);
  const y = v => T + (1 - (v - lo) / (hi - lo)) * (H - T - B);
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}` });
  const axis = s("g", { class: "axis" });
  const yStep = niceStep((hi - lo) / 4);
  for (let v = Math.ceil(lo / yStep) * yStep; v <= hi; v += yStep) {
    axis.append(s("line", { class: "gridline", x1: L, x2: W - R, y1: y(v), y2: y(v) }),
      s("text", { x: L - 6, y: y(v) + 3, "text-anchor": "end" }, fmt(v, 3)));
  }
  const xStep = Math.max(1, niceStep((s1 - s0) / 6));
  for (let st = Math.ceil(s0 / xStep) * xStep; st <= s1; st += xStep) {
    axis.append(s("text", { x: x(st), y: H - 6, "text-anchor": "middle" }, st));
  }
  svg.append(axis);
  for (const ser of opts.series) {
    let d = "", pen = false, single = [];
    ser.values.forEach((v, i) => {
      if (v === null || v === undefined) { pen = false; return; }
      d += (pen ? "L" : "M") + x(steps[i]).toFixed(1) + " " + y(v).toFixed(1);
      if (!pen) single.push(i);
      pen = true;
    });
    svg.append(s("path", { d, fill: "none", stroke: ser.color, "stroke-width": ser.width || 1.8, "stroke-linejoin": "round",
      opacity: ser.dim ? 0.55 : 1 }));
    if (ser.values.length <= 60) {
      ser.values.forEach((v, i) => { if (v !== null && v !== undefined) svg.append(s("circle", { cx: x(steps[i]), cy: y(v), r: 2.2, fill: ser.color })); });
    }
  }
  for (const st of opts.marks || []) {
    if (st < s0 || st > s1) continue;
    const m = s("path", { class: "rollout-mark", d: `M${x(st)} ${H - B - 7}l4 7h-8z` });
    m.addEventListener("click", () => opts.onMark && opts.onMark(st));
    hover(m, () => h("div", {}, "rollouts recorded at step " + st + (opts.onMark ? " (click to open)" : "")));
    svg.append(m);
  }
  const cursor = s("line", { class: "cursor", x1: 0, x2: 0, y1: T, y2: H - B, stroke: "#fff", opacity: 0.35, visibility: "hidden" });
  svg.append(cursor);
  svg.addEventListener("mousemove", ev => {
    if (ev.target.closest(".hov")) return;
    const r = svg.getBoundingClientRect();
    const px = (ev.clientX - r.left) * W / r.width;
    if (px < L) return;
    let best = 0;
    steps.forEach((st, i) => { if (Math.abs(x(st) - px) < Math.abs(x(steps[best]) - px)) best = i; });
    cursor.setAttribute("x1", x(steps[best])); cursor.setAttribute("x2", x(steps[best])); cursor.setAttribute("visibility", "visible");
    showTip(ev, [h("div", { class: "tt-time" }, "step " + steps[best]),
      ...opts.series.map(ser => h("div", {}, h("span", { style: `color:${ser.color}` }, "● "), ser.name + ": " + fmt(ser.values[best], 4)))]);
  });
  svg.addEventListener("mouseleave", () => { cursor.setAttribute("visibility", "hidden"); hideTip(); });
  box.append(svg);
  if (!opts.compact && opts.series.length > 1) {
    box.append(h("div", { class: "legend" }, opts.series.map(ser => h("span", {}, h("i", { style: `background:${ser.color}` }), ser.name))));
  }
  return box;
}

function lastValue(values) {
  for (let i = values.length - 1; i >= 0; i--) if (values[i] !== null && values[i] !== undefined) return values[i];
  return null;
}

// Accuracy with its Wilson 95% interval on a 0-100% track; a faint mark at chance when given.
function accuracyCell(stats, chance) {
  if (!stats || stats.accuracy === null || stats.accuracy === undefined) return h("span", { class: "sub" }, "–");
  const ci = h("div", { class: "ci" });
  ci.append(h("div", { class: "range", style: `left:${100 * stats.ci_low}%;width:${100 * (stats.ci_high - stats.ci_low)}%` }),
    h("div", { class: "point", style: `left:${100 * stats.accuracy}%` }));
  if (chance) ci.append(h("div", { class: "chance", style: `left:${100 * chance}%`, title: "chance" }));
  const cell = h("div", { class: "acc-cell", title: `${pct(stats.accuracy)}% [${pct(stats.ci_low)}, ${pct(stats.ci_high)}] · ${stats.correct}/${stats.scored}` },
    h("span", { class: "num" }, pct(stats.accuracy) + "%"), ci);
  return cell;
}

// A tiny trend line without axes, for overview cards.
function sparkline(values, color) {
  const W = 240, H = 44, finite = values.filter(v => v !== null && v !== undefined);
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, style: "width:100%;height:44px" });
  if (finite.length < 2) return svg;
  const lo = Math.min(...finite), hi = Math.max(...finite), span = hi - lo || 1;
  let d = "", pen = false;
  values.forEach((v, i) => {
    if (v === null || v === undefined) { pen = false; return; }
    d += (pen ? "L" : "M") + (i / (values.length - 1) * (W - 4) + 2).toFixed(1) + " " + (H - 4 - (v - lo) / span * (H - 8)).toFixed(1);
    pen = true;
  });
  svg.append(s("path", { d, fill: "none", stroke: color, "stroke-width": 2 }));
  return svg;
}
