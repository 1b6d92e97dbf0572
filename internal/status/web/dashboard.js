// The resync dashboard: reads /status every second, keeps about five
// minutes of samples in memory, and draws them. It reads nothing else and
// builds every element from text (never HTML): the status carries key
// names and error messages.
"use strict";

(function () {
  const POLL_MS = 1000;
  const WINDOW_MS = 5 * 60 * 1000;
  const MIN_SPAN_MS = 30 * 1000;

  const samples = []; // {t, lag (ms or null), ops (per second or null)}
  let prev = null; // the last document's {at (its server time), commands}

  const $ = (id) => document.getElementById(id);

  function el(tag, props, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else if (k.startsWith("data-")) e.setAttribute(k, v);
      else e[k] = v;
    }
    for (const c of children) {
      if (c !== null && c !== undefined) e.append(c);
    }
    return e;
  }

  const nf = new Intl.NumberFormat("en-US");
  const num = (v) => (v === null || v === undefined ? "–" : nf.format(v));

  function bytes(v) {
    if (v === null || v === undefined) return "–";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (Math.abs(v) >= 1024 && i < units.length - 1) {
      v /= 1024;
      i++;
    }
    return (i === 0 ? v : v.toFixed(v < 10 ? 2 : 1)) + " " + units[i];
  }

  function lag(ms) {
    if (ms === null || ms === undefined) return "unknown";
    if (ms < 1000) return ms + " ms";
    if (ms < 60000) return (ms / 1000).toFixed(1) + " s";
    return Math.floor(ms / 60000) + " m " + Math.round((ms % 60000) / 1000) + " s";
  }

  function rate(v) {
    if (v === null || v === undefined) return "–";
    return v >= 100 ? nf.format(Math.round(v)) : v.toFixed(1);
  }

  const pad = (n) => String(n).padStart(2, "0");
  function when(iso) {
    const d = new Date(iso);
    if (isNaN(d)) return iso;
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " +
      pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
  }

  function stateBadge(state, small) {
    return el("span", { class: "state" + (small ? " small" : ""), "data-state": state || "", text: (state || "unknown").replace("_", " ") });
  }

  function pct(part, whole) {
    if (!whole) return 0;
    return Math.max(0, Math.min(100, (100 * part) / whole));
  }

  function bar(kind, percent, unknown) {
    const fill = el("span");
    fill.style.width = percent.toFixed(1) + "%";
    return el("div", { class: "bar " + kind + (unknown ? " unknown" : "") }, fill);
  }

  // A shard's full sync: while it runs, snapshot bytes received and
  // applied against its size, which a diskless transfer does not
  // announce; once done, what it took.
  function fullSync(sh) {
    const fs = sh.full_sync || {};
    const total = fs.rdb_bytes_total;
    const recv = fs.rdb_bytes_received || 0;
    const appl = fs.rdb_bytes_applied || 0;
    if (sh.state !== "full_sync") {
      if (recv === 0) return el("span", { class: "muted", text: "–" });
      return el("span", {}, el("span", { class: "done", text: "done" }),
        el("span", { class: "muted", text: " · " + bytes(recv) + " snapshot" }));
    }
    const box = el("div", { class: "progress" });
    if (total !== null && total !== undefined) {
      box.append(el("span", { class: "what", text: "received" }), bar("received", pct(recv, total)));
      box.append(el("span", { class: "what", text: "applied" }), bar("applied", pct(appl, total)));
      box.append(el("span", { class: "caption",
        text: bytes(recv) + " received, " + bytes(appl) + " applied of " + bytes(total) +
          " (" + pct(appl, total).toFixed(0) + "%)" }));
    } else {
      // Unknown size: the applied bar is relative to what has arrived.
      box.append(el("span", { class: "what", text: "received" }), bar("received", recv ? 100 : 0, true));
      box.append(el("span", { class: "what", text: "applied" }), bar("applied", pct(appl, recv), true));
      box.append(el("span", { class: "caption",
        text: bytes(recv) + " received, " + bytes(appl) + " applied; size not announced (diskless)" }));
    }
    return box;
  }

  function spool(sp) {
    sp = sp || {};
    const cell = el("div", { class: "stack" }, el("span", { text: bytes(sp.memory_bytes || 0) + " in memory" }));
    if (sp.disk_bytes) cell.append(el("span", { text: bytes(sp.disk_bytes) + " on disk" }));
    if (sp.back_pressure) {
      cell.append(el("span", {}, el("span", { class: "tag", text: "back-pressure",
        title: "memory and spool are full: resync has stopped reading the source" })));
    }
    return cell;
  }

  function renderShards(shards, taskLag) {
    const body = $("shards");
    body.replaceChildren();
    for (const sh of shards || []) {
      const shLag = sh.lag_ms !== undefined ? sh.lag_ms : taskLag;
      const replid = sh.replid || "";
      body.append(el("tr", {},
        el("td", {}, el("div", { class: "stack" },
          el("span", { class: "mono", text: sh.source }),
          el("span", { class: "mono muted small", text: "replid " + (replid ? replid.slice(0, 12) + "…" : "–"), title: replid }))),
        el("td", {}, stateBadge(sh.state, true)),
        el("td", { class: "num", text: num(sh.received_offset) }),
        el("td", { class: "num", text: num(sh.applied_offset) }),
        el("td", { class: "num", text: bytes(Math.max(0, sh.received_offset - sh.applied_offset)) }),
        el("td", { class: "num", text: lag(shLag) }),
        el("td", { class: "num", text: num((sh.full_sync || {}).keys_written) }),
        el("td", { class: "wide" }, fullSync(sh)),
        el("td", {}, spool(sh.spool)),
      ));
    }
    const n = (shards || []).length;
    $("shardcount").textContent = n === 1 ? "1 shard" : n + " shards";
  }

  // throttle says a target's bounds and the time writes waited on them.
  function throttle(t) {
    if (!t || (!t.max_ops && !t.max_bytes)) return "none";
    const parts = [];
    if (t.max_ops) parts.push(t.max_ops.toLocaleString() + " ops/s");
    if (t.max_bytes) parts.push(bytes(t.max_bytes) + "/s");
    return parts.join(", ") + " · waited " + t.throttled_seconds.toFixed(1) + " s";
  }

  function renderTargets(targets) {
    const body = $("targets");
    body.replaceChildren();
    for (const tg of targets || []) {
      body.append(el("tr", {},
        el("td", { class: "mono", text: tg.address }),
        el("td", {}, stateBadge(tg.state, true)),
        el("td", { class: "num", text: lag(tg.lag_ms) }),
        el("td", { class: "muted", text: throttle(tg.throttle) }),
        // The last error stays listed once the target is healthy again,
        // quietly.
        tg.last_error ? el("td", { class: "error" + (tg.state === "retrying" || tg.state === "failed" ? "" : " past"), text: tg.last_error })
          : el("td", { class: "muted", text: "–" }),
      ));
    }
  }

  function renderErrors(d) {
    const list = $("errors");
    const errs = (d.errors || []).slice().reverse(); // newest first
    list.replaceChildren(...errs.map((e) =>
      el("li", {}, el("time", { dateTime: e.time, text: when(e.time) }), el("span", { class: "text", text: e.text }))));
    $("noerrors").hidden = errs.length > 0;
    const total = d.errors_total || errs.length;
    $("errhint").textContent = total > errs.length ? total + " in all, the last " + errs.length + " shown" : "";
  }

  function render(d, ops) {
    document.title = (d.state || "") + " · " + d.name + " · resync";
    $("name").textContent = d.name;
    const st = $("state");
    st.textContent = (d.state || "unknown").replace("_", " ");
    st.setAttribute("data-state", d.state || "");
    $("mode").textContent = d.mode ? "mode " + d.mode : "";
    $("lag").textContent = lag(d.lag_ms);
    $("lag").classList.toggle("unknown", d.lag_ms === null || d.lag_ms === undefined);
    $("ops").textContent = rate(ops);
    $("commands").textContent = num(d.commands_applied);
    $("keys").textContent = num(d.keys_written);
    $("retries").textContent = num(d.retries);
    $("errtotal").textContent = num(d.errors_total);
    $("errtotal").classList.toggle("bad", d.errors_total > 0);
    renderShards(d.shards, d.lag_ms);
    renderTargets(d.targets);
    renderErrors(d);
  }

  function connection(ok, text) {
    const c = $("conn");
    c.setAttribute("data-ok", ok ? "yes" : "no");
    c.textContent = text;
  }

  // A value's axis: a round maximum and its ticks.
  function axis(max, floor) {
    max = Math.max(max, floor);
    const step0 = max / 4;
    const mag = Math.pow(10, Math.floor(Math.log10(step0)));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= step0);
    return { max: step * 4, step: step };
  }

  function short(v) {
    if (v >= 1e6) return (v / 1e6).toFixed(v % 1e6 ? 1 : 0) + "M";
    if (v >= 1e3) return (v / 1e3).toFixed(v % 1e3 ? 1 : 0) + "k";
    return String(Math.round(v * 10) / 10);
  }

  function draw() {
    const canvas = $("chart");
    const css = getComputedStyle(document.documentElement);
    const color = (name) => css.getPropertyValue(name).trim();
    const dpr = window.devicePixelRatio || 1;
    const w = canvas.clientWidth, h = canvas.clientHeight;
    if (!w || !h) return;
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
      canvas.width = Math.round(w * dpr);
      canvas.height = Math.round(h * dpr);
    }
    const g = canvas.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);

    const left = 52, right = 52, top = 10, bottom = 26;
    const pw = w - left - right, ph = h - top - bottom;
    const now = samples.length ? samples[samples.length - 1].t : Date.now();
    // The axis spans the samples kept, up to five minutes: a page just
    // opened shows its few seconds across the width.
    const span = Math.min(WINDOW_MS, Math.max(MIN_SPAN_MS, samples.length ? now - samples[0].t : 0));
    const x = (t) => left + pw * (1 - (now - t) / span);

    const lagAxis = axis(Math.max(0, ...samples.map((s) => s.lag || 0)), 10);
    const opsAxis = axis(Math.max(0, ...samples.map((s) => s.ops || 0)), 10);
    const yLag = (v) => top + ph * (1 - v / lagAxis.max);
    const yOps = (v) => top + ph * (1 - v / opsAxis.max);

    g.font = "11px system-ui, sans-serif";
    g.lineWidth = 1;
    g.strokeStyle = color("--grid");
    for (let i = 0; i <= 4; i++) {
      const y = Math.round(top + (ph * i) / 4) + 0.5;
      g.beginPath();
      g.moveTo(left, y);
      g.lineTo(left + pw, y);
      g.stroke();
      g.textBaseline = "middle";
      g.fillStyle = color("--lag");
      g.textAlign = "right";
      g.fillText(short(lagAxis.max - lagAxis.step * i), left - 8, y);
      g.fillStyle = color("--ops");
      g.textAlign = "left";
      g.fillText(short(opsAxis.max - opsAxis.step * i), left + pw + 8, y);
    }
    // Time ticks, counted back from the newest sample.
    const tick = [5, 10, 15, 30, 60, 120].map((s) => s * 1000).find((s) => span / s <= 6) || 60000;
    g.fillStyle = color("--muted");
    g.textAlign = "center";
    g.textBaseline = "top";
    for (let back = 0; back <= span; back += tick) {
      const xx = Math.round(x(now - back)) + 0.5;
      g.strokeStyle = color("--grid");
      g.beginPath();
      g.moveTo(xx, top);
      g.lineTo(xx, top + ph);
      g.stroke();
      const label = back === 0 ? "now" : back % 60000 === 0 ? "-" + back / 60000 + "m" : "-" + back / 1000 + "s";
      g.fillText(label, xx, top + ph + 7);
    }

    g.save();
    g.beginPath();
    g.rect(left, top - 2, pw, ph + 4);
    g.clip();
    // ops/s: a line over a light fill; lag: a line. A missing value
    // (unknown lag, no rate yet) breaks the line.
    line(g, samples, (s) => s.ops, x, yOps, color("--ops"), top + ph);
    line(g, samples, (s) => s.lag, x, yLag, color("--lag"), null);
    g.restore();

    const drawn = samples.filter((s) => s.lag !== null || s.ops !== null).length;
    canvas.setAttribute("data-points", String(drawn));
  }

  function line(g, pts, value, x, y, stroke, base) {
    let run = [];
    const flush = () => {
      if (!run.length) return;
      if (base !== null) {
        g.beginPath();
        g.moveTo(run[0][0], base);
        for (const [px, py] of run) g.lineTo(px, py);
        g.lineTo(run[run.length - 1][0], base);
        g.closePath();
        g.globalAlpha = 0.12;
        g.fillStyle = stroke;
        g.fill();
        g.globalAlpha = 1;
      }
      g.beginPath();
      run.forEach(([px, py], i) => (i ? g.lineTo(px, py) : g.moveTo(px, py)));
      g.strokeStyle = stroke;
      g.lineWidth = 2;
      g.lineJoin = "round";
      g.stroke();
      if (run.length === 1) {
        g.fillStyle = stroke;
        g.beginPath();
        g.arc(run[0][0], run[0][1], 2.5, 0, 2 * Math.PI);
        g.fill();
      }
      run = [];
    };
    for (const s of pts) {
      const v = value(s);
      if (v === null || v === undefined) flush();
      else run.push([x(s.t), y(v)]);
    }
    flush();
  }

  function sample(d) {
    const t = Date.now();
    let ops = null;
    const commands = d.commands_applied;
    // The rate is over resync's own clock, which stamps each document:
    // the time a request takes does not count. A counter that went back
    // (another process answered) starts over.
    const at = Date.parse(d.time);
    if (prev && commands >= prev.commands && at > prev.at) {
      ops = ((commands - prev.commands) * 1000) / (at - prev.at);
    }
    prev = { at: at, commands: commands };
    samples.push({ t: t, lag: d.lag_ms === undefined ? null : d.lag_ms, ops: ops });
    while (samples.length && samples[0].t < t - WINDOW_MS) samples.shift();
    const span = samples.length ? t - samples[0].t : 0;
    $("span").textContent = span >= WINDOW_MS - POLL_MS ? "last 5 minutes" : "last " + Math.max(1, Math.round(span / 1000)) + " s (up to 5 minutes)";
    return ops;
  }

  async function poll() {
    const started = Date.now();
    try {
      const resp = await fetch("/status", { cache: "no-store", credentials: "same-origin" });
      if (!resp.ok) throw new Error("/status answered " + resp.status);
      const d = await resp.json();
      render(d, sample(d));
      connection(true, "live · updated " + when(new Date().toISOString()).slice(11));
    } catch (err) {
      connection(false, "no answer from resync (" + err.message + "): retrying");
    }
    draw();
    setTimeout(poll, Math.max(0, POLL_MS - (Date.now() - started)));
  }

  window.addEventListener("resize", draw);
  poll();
})();
