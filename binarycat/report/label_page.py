"""The labelling page: one HTML document with its CSS and JavaScript inline (no build step).

The script asks ``/api/state`` for the current item and draws its stamp first, then the same
source's stamps from the other surveys, each at one
angular scale (``PX_PER_ARCSEC`` CSS pixels per arcsec, pixelated, so every stamp pixel is
visible) with an SVG overlay: the survey's PSF FWHM as a blue circle in the lower-left
corner, the 2.5" radius of the binary definition as a dashed ring, a 1" scale bar. Keys
``b``, ``n``, ``s`` and ``u`` are queued and sent one at a time, so fast typing loses nothing;
``document.body.dataset.seq`` counts finished actions and ``dataset.ready`` is set once the
first state has been drawn (the browser test waits on both).
"""

from __future__ import annotations

__all__ = ["PAGE", "PX_PER_ARCSEC"]

PX_PER_ARCSEC = 30

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>binarycat labelling</title>
<style>
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; background: #16181d; color: #e8e8e8; }
header { padding: 8px 18px; background: #232733; display: flex; gap: 24px; align-items: baseline; flex-wrap: wrap; }
header h1 { font-size: 17px; margin: 0; }
main { padding: 10px 18px; }
.keys kbd { background: #3a3f4d; border-radius: 3px; padding: 1px 6px; font-weight: bold; }
#item h2 { font-size: 18px; margin: 4px 0 8px 0; }
#item h2 .target { color: #ffcf5c; }
.stamps { display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start; }
.stamp { background: #0d0e11; border: 2px solid #333; border-radius: 4px; padding: 6px; }
.stamp.target { border-color: #ffcf5c; }
.stamp .cap { font-size: 13px; margin-bottom: 4px; }
.stamp .cap b { font-size: 14px; }
.frame { position: relative; }
.frame img { position: absolute; inset: 0; width: 100%; height: 100%; image-rendering: pixelated; }
.frame svg { position: absolute; inset: 0; width: 100%; height: 100%; overflow: visible; }
.controls button { font-size: 15px; margin-right: 8px; padding: 5px 12px; border-radius: 4px; border: 1px solid #555;
                   background: #2c313d; color: #eee; cursor: pointer; }
.controls button:disabled { opacity: .4; cursor: default; }
.side { display: flex; gap: 30px; flex-wrap: wrap; margin-top: 14px; }
table.counts { border-collapse: collapse; }
table.counts th, table.counts td { border: 1px solid #3a3f4d; padding: 2px 9px; text-align: right; }
table.counts th:first-child, table.counts td:first-child { text-align: left; }
#error { color: #ff8080; min-height: 1.4em; }
#last { color: #9fd3ff; }
.done { font-size: 18px; color: #9fe89f; padding: 30px 0; }
</style></head>
<body>
<header>
  <h1>binarycat labelling</h1>
  <span>labeller <b id="labeller"></b></span>
  <span>queue <b id="queue"></b> &middot; <span id="progress"></span></span>
  <span class="keys"><kbd>b</kbd> binary &nbsp;<kbd>n</kbd> not binary &nbsp;<kbd>s</kbd> skip &nbsp;<kbd>u</kbd> undo</span>
</header>
<main>
  <div class="controls">
    <button id="btn-b" data-key="b">binary (b)</button><button id="btn-n" data-key="n">not binary (n)</button>
    <button id="btn-s" data-key="s">skip (s)</button><button id="btn-u" data-key="u">undo (u)</button>
    <span id="last"></span>
  </div>
  <div id="error"></div>
  <div id="item"></div>
  <div class="side">
    <div><h3>Labels per survey</h3><div id="counts"></div></div>
    <div><h3>This session</h3><p>answered <b id="answered">0</b>, skipped <b id="skipped">0</b></p>
      <p style="max-width:430px;color:#aaa">A pair is two stars within 2.5&Prime; (dashed ring) that this survey
      resolves; the blue circle is the survey's PSF FWHM. Every stamp is shown at the same scale, north up.</p></div>
  </div>
</main>
<script>
"use strict";
const PX_PER_ARCSEC = __PX_PER_ARCSEC__;
let state = null, seq = 0, chain = Promise.resolve();
const $ = (id) => document.getElementById(id);
const fmt = (v, d) => (v === null || v === undefined) ? "&ndash;" : Number(v).toFixed(d);
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));

function overlay(s, w, h) {
  if (!s.pixel_scale_arcsec) return "";
  const W = s.width * s.pixel_scale_arcsec, H = s.height * s.pixel_scale_arcsec;
  let svg = `<svg viewBox="${-W / 2} ${-H / 2} ${W} ${H}" preserveAspectRatio="none">`;
  svg += `<circle cx="0" cy="0" r="2.5" fill="none" stroke="white" stroke-width="1" stroke-dasharray="4 4" vector-effect="non-scaling-stroke"/>`;
  if (s.fwhm_arcsec) {
    const r = s.fwhm_arcsec / 2, m = 0.04 * W + r;
    svg += `<circle class="psf" cx="${-W / 2 + m}" cy="${H / 2 - m}" r="${r}" fill="none" stroke="#6fd3ff" stroke-width="2" vector-effect="non-scaling-stroke"/>`;
  }
  const y = H / 2 - 0.05 * H, x1 = W / 2 - 0.05 * W;
  svg += `<line x1="${x1 - 1}" y1="${y}" x2="${x1}" y2="${y}" stroke="white" stroke-width="3" vector-effect="non-scaling-stroke"/>`;
  svg += `</svg><div style="position:absolute;right:${0.05 * w}px;bottom:${0.05 * h + 6}px;font-size:11px;color:white">1&Prime;</div>`;
  return svg;
}

function stampHtml(s) {
  const scale = s.pixel_scale_arcsec;
  const w = scale ? Math.round(s.width * scale * PX_PER_ARCSEC) : 300;
  const h = scale ? Math.round(s.height * scale * PX_PER_ARCSEC) : 300;
  const label = s.label === null || s.label === undefined ? "unlabelled"
      : (s.label ? "labelled binary" : "labelled not") + (s.labeller ? ` (${esc(s.labeller)})` : "");
  const psf = s.fwhm_arcsec ? `PSF ${fmt(s.fwhm_arcsec, 2)}&Prime;` : "";
  return `<div class="stamp${s.target ? " target" : ""}" data-survey="${esc(s.survey)}" style="width:${w}px">
    <div class="cap"><b>${esc(s.survey)}</b>${s.target ? " &larr; label this one" : ""}<br>
      p_binary ${fmt(s.p_binary, 2)} &middot; ${label} &middot; ${psf} ${scale ? `&middot; ${fmt(scale, 3)}&Prime;/px` : ""}</div>
    <div class="frame" style="width:${w}px;height:${h}px">
      <img src="/stamp/${encodeURIComponent(s.stamp_id)}.png" alt="${esc(s.survey)} stamp">${overlay(s, w, h)}</div>
  </div>`;
}

function render() {
  $("labeller").textContent = state.labeller;
  $("queue").textContent = state.queue + (state.survey ? ` (${state.survey})` : "");
  $("progress").textContent = `${Math.min(state.position + 1, state.total)} of ${state.total}, ${state.remaining} left`;
  $("answered").textContent = state.answered;
  $("skipped").textContent = state.skipped;
  $("btn-u").disabled = !state.can_undo;
  for (const k of ["b", "n", "s"]) $("btn-" + k).disabled = !state.item;
  const words = {b: "binary", n: "not binary", s: "skipped"};
  $("last").innerHTML = state.last ? `last: ${esc(state.last.source_id)} ${esc(state.last.survey)} &rarr; ${words[state.last.answer]}` : "";
  const it = state.item;
  if (!it) {
    $("item").innerHTML = `<div class="done" id="done">Nothing left to label in this queue.</div>`;
  } else {
    $("item").innerHTML = `<h2 id="current" data-stamp-id="${esc(it.stamp_id)}">Source ${esc(it.source_id)}
      &middot; label the <span class="target">${esc(it.survey)}</span> stamp
      <small>(RA ${fmt(it.ra, 5)}, Dec ${fmt(it.dec, 5)}; p_binary ${fmt(it.p_binary, 3)})</small></h2>
      <div class="stamps">${[...it.stamps.filter((s) => s.target), ...it.stamps.filter((s) => !s.target)]
        .map(stampHtml).join("")}</div>`;
  }
  let rows = state.counts.map((c) => `<tr><td>${esc(c.survey)}</td><td>${c.binary}</td><td>${c.not_binary}</td>` +
                                     `<td>${c.mine_binary}</td><td>${c.mine_not_binary}</td></tr>`).join("");
  $("counts").innerHTML = `<table class="counts" id="counts-table"><tr><th>survey</th><th>binary</th><th>not binary</th>` +
    `<th>yours: binary</th><th>yours: not</th></tr>${rows || '<tr><td colspan="5">no labels yet</td></tr>'}</table>`;
}

async function post(url, payload) {
  const res = await fetch(url, {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(payload)});
  const body = await res.json();
  if (!res.ok) $("error").textContent = body.error || `HTTP ${res.status}`; else $("error").textContent = "";
  if (body.state) { state = body.state; render(); }
}

function act(key) {
  chain = chain.then(async () => {
    if (key === "u") return post("/api/undo", {});
    if (!state || !state.item) return;
    return post("/api/answer", {stamp_id: state.item.stamp_id, answer: key});
  }).catch((e) => { $("error").textContent = String(e); })
    .finally(() => { seq += 1; document.body.dataset.seq = String(seq); });
}

document.addEventListener("keydown", (e) => {
  if (e.ctrlKey || e.metaKey || e.altKey || e.repeat) return;
  const k = e.key.toLowerCase();
  if (["b", "n", "s", "u"].includes(k)) { e.preventDefault(); act(k); }
});
for (const b of document.querySelectorAll("button[data-key]")) b.addEventListener("click", () => act(b.dataset.key));

fetch("/api/state").then((r) => r.json()).then((s) => {
  state = s; render(); document.body.dataset.seq = "0"; document.body.dataset.ready = "1";
}).catch((e) => { $("error").textContent = "Cannot reach the labelling server: " + e; });
</script>
</body></html>
""".replace("__PX_PER_ARCSEC__", str(PX_PER_ARCSEC))
