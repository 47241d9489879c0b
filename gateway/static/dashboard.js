// servelab gateway dashboard: polls /servelab/meta and /servelab/timeseries twice a second
// and draws the charts on canvases (no libraries).  What it drew is mirrored on <body>
// (data-updates, data-windows, data-markers, data-last-t) so a headless browser test can read it.
"use strict";

const POLL_MS = 500;
const COLORS = ["#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"];
const MARKER = "#ff7f0e";
const state = { updates: 0, markers: 0, lastT: null };
window.servelabDashboard = state;

function $(id) { return document.getElementById(id); }

function fmtMs(s) { return s == null ? "–" : (s * 1000).toFixed(s < 0.01 ? 2 : 0) + " ms"; }

function setup(canvas) {
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.font = "11px system-ui, sans-serif";
  return ctx;
}

// A time-series chart: series = [{label, color, values}], xs = window end times (s).
function lineChart(canvas, xs, series, switches, opts) {
  const ctx = setup(canvas);
  const W = canvas.width, H = canvas.height, L = 50, R = 10, T = 10, B = 20;
  if (xs.length === 0) { ctx.fillText("waiting for traffic…", L, H / 2); return 0; }
  const x0 = xs[0], x1 = Math.max(xs[xs.length - 1], x0 + 1);
  let ymax = 0;
  for (const s of series) for (const v of s.values) if (v != null && v > ymax) ymax = v;
  ymax = ymax > 0 ? ymax * 1.1 : 1;
  const X = (t) => L + (W - L - R) * (t - x0) / (x1 - x0);
  const Y = (v) => H - B - (H - T - B) * v / ymax;
  ctx.strokeStyle = "#ccc"; ctx.fillStyle = "#666";
  for (let i = 0; i <= 4; i++) {
    const v = ymax * i / 4, y = Y(v);
    ctx.beginPath(); ctx.moveTo(L, y); ctx.lineTo(W - R, y); ctx.stroke();
    ctx.fillText(opts.fmt(v), 2, y + 4);
  }
  ctx.fillText(x0.toFixed(0) + " s", L, H - 4);
  ctx.fillText(x1.toFixed(0) + " s", W - R - 40, H - 4);
  let markers = 0;
  for (const sw of switches) {
    if (sw.t < x0 || sw.t > x1 || sw.from < 0) continue;
    const x = X(sw.t);
    ctx.strokeStyle = MARKER; ctx.setLineDash([4, 3]);
    ctx.beginPath(); ctx.moveTo(x, T); ctx.lineTo(x, H - B); ctx.stroke();
    ctx.setLineDash([]); ctx.fillStyle = MARKER;
    ctx.fillText("→ " + sw.to_label, Math.min(x + 3, W - 120), T + 24 + 12 * (markers % 3));
    markers++;
  }
  series.forEach((s) => {
    ctx.strokeStyle = s.color; ctx.lineWidth = 1.6; ctx.beginPath();
    let pen = false;
    s.values.forEach((v, i) => {
      if (v == null) { pen = false; return; }
      if (pen) ctx.lineTo(X(xs[i]), Y(v)); else ctx.moveTo(X(xs[i]), Y(v));
      pen = true;
    });
    ctx.stroke(); ctx.lineWidth = 1;
  });
  series.forEach((s, i) => {
    ctx.fillStyle = s.color; ctx.fillText(s.label, L + 6 + 70 * i, T + 10);
  });
  return markers;
}

function mixChart(canvas, windows, models) {
  const ctx = setup(canvas);
  const W = canvas.width, H = canvas.height, L = 50, R = 90;
  if (windows.length === 0) return;
  const bw = (W - L - R) / windows.length;
  windows.forEach((w, i) => {
    let y = H;
    models.forEach((m, k) => {
      const h = (w.mix[m] || 0) * H;
      ctx.fillStyle = COLORS[k % COLORS.length];
      ctx.fillRect(L + i * bw, y - h, Math.ceil(bw), h);
      y -= h;
    });
  });
  models.forEach((m, k) => {
    ctx.fillStyle = COLORS[k % COLORS.length];
    ctx.fillText(m, W - R + 6, 14 + 14 * k);
  });
}

function armChart(canvas, arms, current) {
  const ctx = setup(canvas);
  const W = canvas.width, L = 170, R = 60;
  const shown = arms.filter((a) => a.estimate != null || a.live_windows > 0 || a.arm === current)
    .sort((a, b) => (b.estimate ?? -1) - (a.estimate ?? -1)).slice(0, 14);
  let vmax = 0;
  for (const a of shown) vmax = Math.max(vmax, a.estimate ?? 0, a.live_mean_reward ?? 0);
  vmax = vmax > 0 ? vmax : 1;
  const rowH = 17;
  shown.forEach((a, i) => {
    const y = 6 + i * rowH;
    ctx.fillStyle = a.arm === current ? "#d62728" : "#333";
    ctx.fillText(a.label, 2, y + 11);
    if (a.estimate != null) {
      ctx.fillStyle = a.arm === current ? "#f4a3a3" : "#9ecae1";
      ctx.fillRect(L, y, (W - L - R) * a.estimate / vmax, rowH - 4);
      ctx.fillStyle = "#333";
      ctx.fillText(a.estimate.toFixed(3), L + (W - L - R) * a.estimate / vmax + 4, y + 11);
    }
    if (a.live_mean_reward != null) {
      ctx.fillStyle = "#000"; ctx.beginPath();
      ctx.arc(L + (W - L - R) * a.live_mean_reward / vmax, y + (rowH - 4) / 2, 3.5, 0, 6.3);
      ctx.fill();
    }
  });
}

function switchTable(switches) {
  const body = $("switches").tBodies[0];
  const rows = switches.slice(-30).reverse().map((s) =>
    `<tr><td>${s.t.toFixed(1)}</td><td>${s.from_label ?? "–"}</td><td>${s.to_label}</td>` +
    `<td>${s.kind}</td><td>${s.seconds.toFixed(3)} s</td>` +
    `<td class="reason">${escapeHtml(s.reason)}</td></tr>`);
  body.innerHTML = rows.join("");
}

function escapeHtml(s) {
  return String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
}

function render(meta, windows) {
  const cur = meta.current;
  $("current").textContent = cur ? cur.label : "–";
  $("policy").textContent = `policy ${meta.policy.name}` +
    (meta.policy.last_reason ? ` — ${meta.policy.last_reason}` : "") +
    (meta.switching ? " (switching…)" : "");
  const last = windows[windows.length - 1];
  if (last) {
    $("rate").textContent = `${last.offered.toFixed(1)} req/s`;
    $("mix").textContent = Object.entries(last.mix).sort((a, b) => b[1] - a[1])
      .map(([m, v]) => `${m} ${(v * 100).toFixed(0)}%`).join(", ") || "no arrivals";
    $("latency").textContent = `p50 ${fmtMs(last.p50_s)} · p99 ${fmtMs(last.p99_s)}`;
    $("throughput").textContent = `throughput ${last.throughput.toFixed(1)}/s, ` +
      `reward ${last.norm == null ? "–" : last.norm.toFixed(3)}, CPU ${(last.cpu * 100).toFixed(0)}%`;
  }
  const xs = windows.map((w) => w.t1);
  const ms = (k) => windows.map((w) => (w[k] == null ? null : w[k] * 1000));
  const markers = lineChart($("chart-latency"), xs, [
    { label: "p50", color: COLORS[0], values: ms("p50_s") },
    { label: "p99", color: "#d62728", values: ms("p99_s") },
  ], meta.switches, { fmt: (v) => v.toFixed(v < 10 ? 1 : 0) });
  lineChart($("chart-throughput"), xs, [
    { label: "throughput", color: COLORS[1], values: windows.map((w) => w.throughput) },
    { label: "offered", color: "#999", values: windows.map((w) => w.offered) },
  ], meta.switches, { fmt: (v) => v.toFixed(0) });
  const models = [...new Set(windows.flatMap((w) => Object.keys(w.mix)))].sort();
  mixChart($("chart-mix"), windows, models);
  armChart($("chart-arms"), meta.arms, cur ? cur.arm : -1);
  switchTable(meta.switches.filter((s) => s.from >= 0));
  state.updates += 1;
  state.markers = markers;
  state.lastT = last ? last.t1 : null;
  const d = document.body.dataset;
  d.updates = state.updates; d.windows = windows.length; d.markers = markers;
  d.lastT = state.lastT == null ? "" : state.lastT.toFixed(3);
  $("status").textContent = `updated ${new Date().toLocaleTimeString()} · ${meta.windows} windows`;
}

async function poll() {
  try {
    const [meta, windows] = await Promise.all([
      fetch("/servelab/meta").then((r) => r.json()),
      fetch("/servelab/timeseries?n=120").then((r) => r.json()),
    ]);
    render(meta, windows);
  } catch (err) {
    $("status").textContent = "gateway unreachable: " + err;
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

poll();
