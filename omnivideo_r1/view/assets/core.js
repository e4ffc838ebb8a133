"use strict";
// Shared helpers: DOM/SVG builders, number formats, tooltip, completion-text highlighting, the clip timeline.

const SITE = JSON.parse(document.getElementById("site-data").textContent);
const SVGNS = "http://www.w3.org/2000/svg";

function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  setAttrs(node, attrs);
  append(node, children);
  return node;
}

function s(tag, attrs, ...children) {
  const node = document.createElementNS(SVGNS, tag);
  setAttrs(node, attrs);
  append(node, children);
  return node;
}

function setAttrs(node, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.setAttribute("class", v);
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
}

function append(node, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    node.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

function fmt(v, digits = 3) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(2);
  if (a >= 1000) return v.toFixed(0);
  if (a >= 100) return v.toFixed(1);
  return Number(v.toFixed(digits)).toString();
}

function pct(v) { return v === null || v === undefined ? "–" : (100 * v).toFixed(1); }
function signed(v) { return v === null || v === undefined ? "–" : (v > 0 ? "+" : "") + v.toFixed(2); }
function seconds(t) { return t === null || t === undefined ? "?" : (Math.round(t * 100) / 100).toString() + "s"; }
const MODALITY_NAMES = { av: "AV", video: "silent video", audio: "audio only" };
const INPUT_NAMES = { av: "AV", video: "video only", audio: "audio only" };  // MA probes: one sense each
function modalityName(m) { return MODALITY_NAMES[m] || m; }
function condName(c) { return c.model + " · " + modalityName(c.modality); }
const LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";

// ---------------------------------------------------------------- tooltip
const tip = document.getElementById("tooltip");
function showTip(event, content) {
  tip.replaceChildren(...(Array.isArray(content) ? content : [content]));
  tip.hidden = false;
  const pad = 14, r = tip.getBoundingClientRect();
  let x = event.clientX + pad, y = event.clientY + pad;
  if (x + r.width > window.innerWidth - 8) x = event.clientX - r.width - pad;
  if (y + r.height > window.innerHeight - 8) y = event.clientY - r.height - pad;
  tip.style.left = x + "px";
  tip.style.top = y + "px";
}
function hideTip() { tip.hidden = true; }

// ---------------------------------------------------------------- completion text with its tags coloured
const TAG_RE = /<(\/?)(time|caption|thinking|answer)>/g;
function highlightCompletion(text, truncated) {
  const out = h("div", { class: "text" });
  let last = 0, open = null, m;
  TAG_RE.lastIndex = 0;
  while ((m = TAG_RE.exec(text)) !== null) {
    if (m.index > last) out.appendChild(h("span", { class: open ? "t-" + open : "" }, text.slice(last, m.index)));
    out.appendChild(h("span", { class: "tag" }, m[0]));
    open = m[1] ? null : m[2];
    last = m.index + m[0].length;
  }
  if (last < text.length) out.appendChild(h("span", { class: open ? "t-" + open : "" }, text.slice(last)));
  if (!text) out.appendChild(h("span", { class: "tag" }, "(empty completion)"));
  if (truncated) out.appendChild(h("span", { class: "cut" }, " … (cut here; the full text is longer)"));
  return out;
}

// ---------------------------------------------------------------- reference events
const EVENT_COLOURS = { red: "#e5605f", green: "#4fcf7b", blue: "#5f8cf2", yellow: "#f0d052" };
const SOUND_COLOURS = { low: "#3fb7b0", mid: "#63d3e0", high: "#a8f0ff", noise: "#9aa3b5" };
const SOUND_LABELS = { low: "low beep", mid: "mid beep", high: "high beep", noise: "noise" };

// Reference lanes: the synthetic world's timeline (what is on screen, what sounds) or generic time-captions.
function referenceLanes(reference, timeline) {
  if (timeline && (timeline.visual || timeline.audio)) {
    const visual = (timeline.visual || []).map(e => ({ start: e.start, end: e.end, fill: EVENT_COLOURS[e.colour] || "#8892a8",
      label: e.shape + " " + (e.position === "center" ? "C" : e.position[0].toUpperCase()),
      caption: `A ${e.colour} ${e.shape} appears ${e.position === "center" ? "in the center" : "on the " + e.position}.` }));
    const audio = (timeline.audio || []).map(e => ({ start: e.start, end: e.end, fill: SOUND_COLOURS[e.sound] || "#9aa3b5",
      label: SOUND_LABELS[e.sound] || e.sound,
      caption: e.sound === "noise" ? "A burst of noise sounds." : `A ${e.sound}-pitched beep sounds.` }));
    return [{ label: "on screen", events: visual }, { label: "sound", events: audio }];
  }
  if (!reference || !reference.length) return [];
  const rows = [];
  for (const r of [...reference].sort((a, b) => a.start - b.start)) {
    let row = rows.find(rw => rw[rw.length - 1].end <= r.start + 1e-9);
    if (!row) { if (rows.length >= 4) row = rows[rows.length - 1]; else { row = []; rows.push(row); } }
    row.push({ start: r.start, end: r.end, fill: "#8d7ee8", label: r.caption, caption: r.caption });
  }
  return rows.map((events, i) => ({ label: i ? "" : "reference", events }));
}

function iou(a, b) {
  const inter = Math.max(0, Math.min(a.end, b.end) - Math.max(a.start, b.start));
  const union = Math.max(a.end, b.end) - Math.min(a.start, b.start);
  return union > 0 ? inter / union : 0;
}

function bestMatch(seg, refLanes) {
  let best = null;
  for (const lane of refLanes) for (const e of lane.events) {
    const v = iou(seg, e);
    if (!best || v > best.iou) best = { iou: v, event: e };
  }
  return best;
}

function matchColour(match) {
  if (!match) return "#7aa2ff";
  if (match.iou >= 0.5) return "#39c98a";
  if (match.iou > 0) return "#f2b33d";
  return "#ff6b6b";
}

// ---------------------------------------------------------------- the clip timeline
// opts: duration, media (thumbnail meta or null), reference, timeline, lanes: [{id, label, sub, subClass, segments}],
// onLaneHover(id or null). Predicted segments are coloured by their best overlap (IoU) with a reference event.
function clipTimeline(opts) {
  const W = 1000, L = 150, R = 10, plotW = W - L - R;
  const duration = Math.max(opts.duration || 0, 1e-6);
  const x = t => L + Math.max(0, Math.min(1, t / duration)) * plotW;
  const media = opts.media && !opts.media.error ? opts.media : null;
  const refLanes = referenceLanes(opts.reference, opts.timeline);
  const svg = s("svg", { viewBox: "0 0 1000 100", role: "img", "aria-label": "clip timeline" });
  const layers = { bg: s("g"), content: s("g"), top: s("g") };
  svg.append(layers.bg, layers.content, layers.top);
  let y = 0;
  // time axis
  const axis = s("g", { class: "axis" });
  const step = niceStep(duration / 8);
  for (let t = 0; t <= duration + 1e-9; t += step) {
    axis.append(s("line", { x1: x(t), x2: x(t), y1: 14, y2: 18 }),
      s("text", { x: x(t), y: 11, "text-anchor": "middle" }, fmt(t, 2) + "s"));
  }
  layers.content.append(axis);
  y = 20;
  const rows = [];  // [y0, y1, kind] for the hover readout
  if (media && media.frames) {
    const n = Math.max(1, media.frame_times.length);
    const [fh, fw] = media.frame_size || [1, 1];
    const hStrip = Math.max(28, Math.min(84, (plotW / n) * fh / fw));
    layers.content.append(s("text", { class: "lane-label", x: 0, y: y + hStrip / 2 + 4 }, "frames"),
      s("image", { class: "frame-strip", href: media.frames, x: L, y, width: plotW, height: hStrip, preserveAspectRatio: "none" }));
    rows.push({ y0: y, y1: y + hStrip, kind: "frames", n });
    y += hStrip + 4;
  }
  if (media && media.spectrogram) {
    layers.content.append(s("text", { class: "lane-label", x: 0, y: y + 26 }, "spectrogram"),
      s("image", { href: media.spectrogram, x: L, y, width: plotW, height: 44, preserveAspectRatio: "none" }));
    y += 46;
  }
  if (media && media.envelope && media.envelope.length) {
    const env = media.envelope, peak = Math.max(0.1, ...env), mid = y + 13, n = env.length;
    let d = "";
    env.forEach((v, i) => { d += (i ? "L" : "M") + (L + (i + 0.5) * plotW / n).toFixed(1) + " " + (mid - 12 * v / peak).toFixed(1); });
    for (let i = n - 1; i >= 0; i--) d += "L" + (L + (i + 0.5) * plotW / n).toFixed(1) + " " + (mid + 12 * env[i] / peak).toFixed(1);
    layers.content.append(s("text", { class: "lane-label", x: 0, y: mid + 4 }, "waveform"),
      s("path", { d: d + "Z", fill: "#5a6b93", opacity: 0.9 }));
    y += 28;
  }
  if (!media && opts.mediaError) {
    layers.content.append(s("text", { class: "lane-label", x: L, y: y + 14, fill: "#f2b33d" }, "media unavailable: " + opts.mediaError.slice(0, 110)));
    y += 22;
  }
  // reference lanes
  for (const lane of refLanes) {
    const hLane = 22;
    layers.bg.append(s("rect", { class: "lane-bg", x: L, y, width: plotW, height: hLane, rx: 4 }));
    layers.content.append(s("text", { class: "lane-label", x: 0, y: y + 15 }, lane.label));
    for (const e of lane.events) {
      const g = s("g", { class: "ref-event" });
      const wPx = Math.max(2, x(e.end) - x(e.start));
      g.append(s("rect", { class: "seg ref", x: x(e.start), y: y + 2, width: wPx, height: hLane - 4, fill: e.fill, rx: 4 }));
      if (wPx > 34) g.append(s("text", { class: "seg-label", x: x(e.start) + 5, y: y + 15 }, clipText(e.label, wPx / 6.2)));
      hover(g, ev => [h("div", {}, e.caption), h("div", { class: "tt-time" }, seconds(e.start) + " – " + seconds(e.end))]);
      layers.content.append(g);
    }
    y += hLane + 2;
  }
  if (refLanes.length || media) y += 6;
  // prediction lanes: overlapping segments of one reply go to extra rows so none hides another
  for (const lane of opts.lanes) {
    const rowsOfLane = [];
    for (const seg of [...lane.segments].sort((a, b) => a.start - b.start)) {
      let row = rowsOfLane.find(rw => rw[rw.length - 1].end <= seg.start + 1e-9);
      if (!row) { row = []; rowsOfLane.push(row); }
      row.push(seg);
    }
    const hRow = 18, hLane = Math.max(1, rowsOfLane.length) * hRow + 4;
    const bg = s("rect", { class: "lane-bg", x: L, y, width: plotW, height: hLane, rx: 4, "data-lane": lane.id });
    layers.bg.append(bg);
    const label = s("text", { class: "lane-label strong", x: 0, y: y + 15 }, lane.label);
    if (lane.sub) label.append(s("tspan", { class: lane.subClass || "", dx: 8, "font-weight": 400 }, lane.sub));
    layers.content.append(label);
    if (!lane.segments.length) layers.content.append(s("text", { class: "lane-label", x: L + 8, y: y + 15, opacity: 0.7 }, "no segments"));
    rowsOfLane.forEach((row, r) => row.forEach(seg => {
      const match = refLanes.length ? bestMatch(seg, refLanes) : null;
      const beyond = seg.end > duration + 1e-6;
      const wPx = Math.max(3, x(Math.min(seg.end, duration)) - x(seg.start));
      const top = y + 3 + r * hRow;
      const g = s("g");
      g.append(s("rect", { class: "seg pred", x: x(seg.start), y: top, width: wPx, height: hRow - 2, rx: 4,
        fill: matchColour(match), "fill-opacity": 0.85, stroke: beyond ? "#ff6b6b" : "none", "stroke-dasharray": beyond ? "3 2" : null,
        "data-start": seg.start, "data-end": seg.end }));
      if (wPx > 40) g.append(s("text", { class: "seg-label", x: x(seg.start) + 5, y: top + 12 }, clipText(seg.caption, wPx / 6.2)));
      hover(g, () => {
        const parts = [h("div", { class: "tt-time" }, seconds(seg.start) + " – " + seconds(seg.end) + (beyond ? "  (beyond the clip)" : "")),
          h("div", {}, seg.caption || "(empty caption)")];
        if (match) parts.push(h("div", { class: "tt-time" }, "best reference overlap: IoU " + match.iou.toFixed(2) +
          (match.iou > 0 ? " · " + match.event.caption : "")));
        return parts;
      });
      layers.content.append(g);
    }));
    if (opts.onLaneHover) {
      bg.addEventListener("mouseenter", () => opts.onLaneHover(lane.id));
      bg.addEventListener("mouseleave", () => opts.onLaneHover(null));
    }
    y += hLane + 2;
  }
  const height = y + 4;
  svg.setAttribute("viewBox", `0 0 ${W} ${height}`);
  // cursor: a vertical line and the time under the mouse; over the frame strip, the frame itself enlarged
  const cursor = s("line", { class: "cursor", x1: 0, x2: 0, y1: 18, y2: height, visibility: "hidden" });
  layers.top.append(cursor);
  svg.addEventListener("mousemove", ev => {
    const box = svg.getBoundingClientRect();
    const px = (ev.clientX - box.left) * W / box.width, py = (ev.clientY - box.top) * height / box.height;
    if (px < L || px > L + plotW) { cursor.setAttribute("visibility", "hidden"); return; }
    cursor.setAttribute("x1", px); cursor.setAttribute("x2", px); cursor.setAttribute("visibility", "visible");
    const t = (px - L) / plotW * duration;
    const strip = rows.find(r => r.kind === "frames" && py >= r.y0 && py <= r.y1);
    if (ev.target.closest(".hov")) return;
    if (strip) {
      const i = Math.min(strip.n - 1, Math.floor((px - L) / plotW * strip.n));
      const zoom = h("div", { class: "frame-zoom" });
      zoom.style.backgroundImage = `url("${media.frames}")`;
      zoom.style.backgroundSize = `${strip.n * 100}% 100%`;
      zoom.style.backgroundPosition = `${strip.n > 1 ? (i / (strip.n - 1)) * 100 : 0}% 0`;
      showTip(ev, [h("div", { class: "tt-time" }, "frame " + (i + 1) + "/" + strip.n + " at " + seconds(media.frame_times[i])), zoom]);
    } else {
      showTip(ev, h("div", { class: "tt-time" }, seconds(t)));
    }
  });
  svg.addEventListener("mouseleave", () => { cursor.setAttribute("visibility", "hidden"); hideTip(); });
  const legend = h("div", { class: "tl-legend" });
  if (opts.lanes.some(l => l.segments.length)) {
    legend.append(h("span", {}, "predicted segments:"));
    if (refLanes.length) {
      for (const [c, t] of [["#39c98a", "IoU ≥ 0.5 with a reference event"], ["#f2b33d", "partial overlap"], ["#ff6b6b", "no overlap"]]) {
        legend.append(h("span", {}, h("i", { style: `background:${c}` }), t));
      }
    } else legend.append(h("span", {}, h("i", { style: "background:#7aa2ff" }), "no reference events for this clip"));
    legend.append(h("span", {}, h("i", { class: "dashed" }), "runs past the clip's end"));
  }
  return h("div", { class: "timeline" }, svg, legend);
}

function hover(node, content) {
  node.classList.add("hov");  // the timeline's own readout stays quiet over these
  node.addEventListener("mousemove", ev => showTip(ev, content(ev)));
  node.addEventListener("mouseleave", hideTip);
}

function clipText(text, chars) {
  text = text || "";
  const n = Math.max(0, Math.floor(chars));
  return text.length <= n ? text : text.slice(0, Math.max(0, n - 1)) + "…";
}

function niceStep(raw) {
  const p = Math.pow(10, Math.floor(Math.log10(raw || 1)));
  const m = raw / p;
  return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 2.5 ? 2.5 : m <= 5 ? 5 : 10) * p;
}

// A link that opens the source clip in the browser's own player (works while the file stays where it was).
function clipLink(path, label) {
  if (!path) return null;
  return h("a", { href: "file://" + encodeURI(path), target: "_blank", rel: "noopener", title: path, class: "clip-link" }, label || "open clip ↗");
}

function mediaFor(key) { return key && SITE.media ? SITE.media[key] || null : null; }

// ---------------------------------------------------------------- tabs and routing (#tab or #tab/arg)
const VIEWS = [];  // {id, label, kind, render(arg) -> section content, section}
function addView(id, label, kind, build) { VIEWS.push({ id, label, kind, build }); }

function route() {
  const [id, arg] = decodeURIComponent(location.hash.slice(1)).split("/");
  const view = VIEWS.find(v => v.id === id) || VIEWS[0];
  const switched = view !== route.current;
  route.current = view;
  for (const v of VIEWS) {
    v.section.classList.toggle("active", v === view);
    v.tab.classList.toggle("active", v === view);
  }
  if (view.onRoute) view.onRoute(arg);
  if (switched) window.scrollTo(0, 0);
}

function startViewer() {
  document.getElementById("top-title").textContent = SITE.source;
  document.getElementById("top-title").title = SITE.source + " · generated " + SITE.generated;
  const main = document.getElementById("main"), tabs = document.getElementById("tabs");
  if (SITE.notes && SITE.notes.length) main.append(h("div", { class: "notes" }, SITE.notes.map(n => h("div", {}, n))));
  for (const v of VIEWS) {
    v.section = h("section", { class: "view", id: "view-" + v.id });
    v.tab = h("button", { class: "tab", onclick: () => { location.hash = v.id; } },
      v.kind ? h("span", { class: "tab-kind" }, v.kind) : null, v.label);
    tabs.append(v.tab);
    main.append(v.section);
    try {
      v.onRoute = v.build(v.section) || null;
    } catch (err) {  // one broken view must not take the others down; the banner shows the error
      console.error("view " + v.id + ": " + (err && err.stack ? err.stack : err));
      v.section.append(h("div", { class: "empty" }, "This view failed to render: " + err));
    }
  }
  if (!VIEWS.length) main.append(h("div", { class: "empty" }, "Nothing to show: the folder has no metrics, rollouts or eval results."));
  window.addEventListener("hashchange", route);
  if (VIEWS.length) route();
  document.body.setAttribute("data-ready", "1");
}
