// The live page of a PBFT cluster: the replicas' trace events (GET /v1/trace, server-sent
// events) drawn as a sequence diagram in the style of Castro & Liskov's figure 1: one
// lifeline per replica (and one for the client), time flowing down, one block per round
// (view, sequence number) with a row per phase. No build step, no dependencies.
//
// Elements carry data attributes so that tests can find what was drawn:
//   g.round[data-seq][data-view][data-digest]          one block per (view, seq)
//   line.msg[data-kind][data-from][data-to]            a delivered message
//   .mark[data-type=prepared|committed|executed][data-node]
//   rect.cert[data-node][data-phase][data-count][data-quorum]
//   g.band.viewchange[data-view], g.band.checkpoint[data-seq]
//   .replica[data-node][data-fault][data-lagging][data-view]
"use strict";

const SVGNS = "http://www.w3.org/2000/svg";
const ROW = 30;                 // height of one phase row
const PHASES = ["request", "preprepare", "prepare", "commit", "reply"];
const ROUND_H = ROW * PHASES.length + 22;
const BAND_H = 2 * ROW + 22;
const MAX_BLOCKS = 60;          // older blocks leave the page
const MAX_QUEUE = 20000;        // events waiting while paused
const LAG = 8;                  // sequence numbers behind the leader that count as lagging
const STALE_MS = 2500;          // no summary for this long: the replica looks unreachable
const ROUNDS_PER_S = 30;        // new rounds drawn per second at most; the rest are skipped

const S = {
  hello: null,
  cols: [],                     // column names: client, then replicas
  x: {},                        // column name -> x
  width: 0,
  blocks: [],                   // rounds and bands in page order
  rounds: new Map(),            // "view:seq" -> round
  bands: new Map(),             // "vc:view" / "cp:seq" -> band
  pendingRequests: [],          // request deliveries waiting for their round
  nodes: {},                    // replica -> state from its events
  queue: [],
  dropped: 0,
  paused: false,
  slow: false,
  lastSlow: 0,
  msgId: 1,
  client: "browser-" + Math.random().toString(36).slice(2, 8),
  height: 0,
  roundTokens: ROUNDS_PER_S,
  skipped: new Set(),           // rounds not drawn because too many came at once
  skippedRounds: 0,
};

const $ = (id) => document.getElementById(id);

function el(name, attrs, parent) {
  const e = document.createElementNS(SVGNS, name);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
}

// ---- connection ----------------------------------------------------------------------

function connect() {
  const es = new EventSource("/v1/trace");
  es.addEventListener("hello", (m) => setup(JSON.parse(m.data)));
  es.onopen = () => { $("conn").textContent = "live"; $("conn").dataset.state = "open"; };
  es.onerror = () => { $("conn").textContent = "reconnecting"; $("conn").dataset.state = "closed"; };
  es.onmessage = (m) => {
    for (const line of m.data.split("\n")) {
      if (!line) continue;
      let e;
      try { e = JSON.parse(line); } catch { continue; }
      if (S.queue.length >= MAX_QUEUE) { S.queue.shift(); S.dropped++; }
      S.queue.push(e);
    }
  };
}

function setup(h) {
  const first = !S.hello;
  S.hello = h;
  $("cluster").textContent = h.cluster;
  $("n").textContent = h.n;
  $("f").textContent = h.f;
  $("q-prepare").textContent = h.prepare_quorum;
  $("q-commit").textContent = h.commit_quorum;
  // Embedded replicas trace as the gateway's PBFT_TRACE says; external ones publish (or
  // not) by their own PBFT_TRACE, and whatever they publish is drawn.
  $("tracing").textContent = h.trace === "off" && h.embedded ?
    "off (start the gateway with PBFT_TRACE=on to see rounds)" :
    h.trace === "replicas" ? "as the replicas publish (their PBFT_TRACE=on)" : h.trace;
  $("tracing").dataset.state = h.trace;
  if (!first) return;
  S.cols = ["client"].concat(h.nodes);
  const gap = Math.max(130, Math.min(200, 900 / h.nodes.length));
  S.cols.forEach((c, i) => { S.x[c] = 70 + i * gap; });
  S.titleX = 70 + (S.cols.length - 1) * gap + 110;
  S.width = S.titleX + 360;
  for (const id of h.nodes) S.nodes[id] = { view: 0, active: true, lastExec: 0, stable: 0, fault: "", seen: 0 };
  drawHeads();
  drawCards();
  layout();
}

// ---- columns and cards -----------------------------------------------------------------

function drawHeads() {
  const heads = $("heads");
  heads.setAttribute("width", S.width);
  heads.replaceChildren();
  for (const c of S.cols) {
    const g = el("g", { class: "head", "data-node": c }, heads);
    const t = el("text", { x: S.x[c], y: 22 }, g);
    t.textContent = c === "client" ? "client (" + S.hello.client + ")" : c;
  }
  const svg = $("diagram");
  svg.setAttribute("width", S.width);
  svg.replaceChildren();
  S.lifelines = el("g", { id: "lifelines" }, svg);
  S.layer = el("g", { id: "blocks" }, svg);
  for (const c of S.cols) {
    el("line", { class: "lifeline" + (c === "client" ? " client" : ""), "data-node": c,
      x1: S.x[c], x2: S.x[c], y1: 0, y2: 0 }, S.lifelines);
  }
}

function drawCards() {
  const box = $("replicas");
  box.replaceChildren();
  for (const id of S.hello.nodes) {
    const d = document.createElement("div");
    d.className = "replica";
    d.dataset.node = id;
    d.innerHTML = `<div><span class="name"></span> <span class="role"></span> <span class="faultname"></span></div>
      <div class="progress"></div><div class="buttons"></div>`;
    d.querySelector(".name").textContent = id;
    for (const f of ["crash", "recover", "silent", "equivocate", "none"]) {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = f === "none" ? "honest" : f;
      b.dataset.faultAction = f;
      b.disabled = !S.hello.embedded;
      b.title = S.hello.embedded ? "pbft_fault " + f : "faults need the embedded cluster";
      b.onclick = () => fault(id, f);
      d.querySelector(".buttons").appendChild(b);
    }
    box.appendChild(d);
  }
  refreshCards();
}

function currentView() {
  let v = 0;
  for (const st of Object.values(S.nodes)) if (st.active && st.fault !== "crash" && st.view > v) v = st.view;
  return v;
}

function refreshCards() {
  if (!S.hello) return;
  const view = currentView();
  const primary = S.hello.nodes[view % S.hello.n];
  $("view").textContent = view;
  $("view").dataset.view = view;
  $("primary").textContent = primary;
  $("primary").dataset.primary = primary;
  let lead = 0;
  for (const st of Object.values(S.nodes)) lead = Math.max(lead, st.lastExec);
  const now = Date.now();
  for (const id of S.hello.nodes) {
    const st = S.nodes[id];
    const d = document.querySelector(`.replica[data-node="${id}"]`);
    const lagging = lead - st.lastExec >= LAG || (st.seen > 0 && now - st.seen > STALE_MS);
    d.dataset.fault = st.fault || "none";
    d.dataset.lagging = String(lagging);
    d.dataset.view = st.view;
    d.classList.toggle("primary", id === primary);
    d.querySelector(".role").textContent = id === primary ? "primary" : "backup";
    d.querySelector(".faultname").textContent = st.fault && st.fault !== "none" ? st.fault : "";
    d.querySelector(".progress").textContent =
      `view ${st.view}${st.active ? "" : " (changing)"} · executed ${st.lastExec} · stable ${st.stable}` +
      (lagging ? ` · lagging ${lead - st.lastExec}` : "") +
      (st.sampleEvery > 1 ? ` · sampling 1/${st.sampleEvery}` : "") +
      (st.dropped ? ` · ${st.dropped} dropped` : "");
    const life = S.lifelines && S.lifelines.querySelector(`line[data-node="${id}"]`);
    if (life) life.setAttribute("class", "lifeline" + (st.fault === "crash" ? " crash" : lagging ? " lagging" : ""));
    const head = $("heads").querySelector(`g[data-node="${id}"]`);
    if (head) head.setAttribute("class", "head" + (id === primary ? " primary" : "") + (st.fault === "crash" ? " crash" : ""));
  }
  $("queued").dataset.queued = S.queue.length;
  $("queued").dataset.applied = S.applied || 0;
  $("queued").textContent = (S.queue.length ? S.queue.length + " events queued" : "") +
    (S.dropped ? ` · ${S.dropped} dropped by the page` : "") +
    (S.skippedRounds ? ` · ${S.skippedRounds} rounds not drawn (over ${ROUNDS_PER_S}/s)` : "");
}

// ---- blocks: rounds and bands ------------------------------------------------------------

function layout() {
  let y = 8;
  for (const b of S.blocks) {
    b.y = y;
    b.g.setAttribute("transform", `translate(0,${y})`);
    y += b.h;
  }
  S.height = y + 20;
  const svg = $("diagram");
  svg.setAttribute("height", S.height);
  if (S.lifelines) for (const l of S.lifelines.children) l.setAttribute("y2", S.height);
}

function addBlock(b) {
  S.blocks.push(b);
  S.layer.appendChild(b.g);
  while (S.blocks.length > MAX_BLOCKS) {
    const old = S.blocks.shift();
    old.g.remove();
    if (old.key) (old.kind === "round" ? S.rounds : S.bands).delete(old.key);
  }
  const sc = $("scroll");
  const atBottom = sc.scrollTop + sc.clientHeight >= sc.scrollHeight - 40;
  layout();
  if (atBottom) sc.scrollTop = sc.scrollHeight;
}

function round(view, seq) {
  const key = view + ":" + seq;
  let r = S.rounds.get(key);
  if (r) return r;
  if (S.skipped.has(key)) return null;
  if (S.roundTokens <= 0) {
    if (S.skipped.size > 10000) S.skipped.clear();
    S.skipped.add(key);
    S.skippedRounds++;
    return null;
  }
  S.roundTokens--;
  const g = el("g", { class: "round", "data-seq": seq, "data-view": view, "data-digest": "" });
  el("line", { class: "sep", x1: 0, x2: S.width, y1: 0, y2: 0 }, g);
  const title = el("text", { class: "title", x: S.titleX, y: 16 }, g);
  r = { kind: "round", key, g, h: ROUND_H, view, seq, title, digest: "", batch: 0, primary: "",
        votes: {}, marks: {}, certs: {}, arrows: new Set() };
  setTitle(r);
  S.rounds.set(key, r);
  addBlock(r);
  return r;
}

// ordered draws, in round r, the deliveries of requests of client that were waiting for
// the pre-prepare that orders them.
function ordered(r, client) {
  if (!client) return;
  S.pendingRequests = S.pendingRequests.filter((p) => {
    if (p.client !== client) return true;
    arrow(r, "request", p.from, p.to, false, p.client);
    return false;
  });
}

function setTitle(r) {
  r.title.textContent = `#${r.seq} · view ${r.view}` + (r.digest ? ` · d=${r.digest}` : "") +
    (r.batch ? ` · ${r.batch} req` : "") + (r.primary ? ` · primary ${r.primary}` : "") +
    (!r.digest && r.view > 0 ? " · pre-prepared by the new-view" : "");
}

function rowY(kind) {
  const i = PHASES.indexOf(kind);
  return 20 + (i < 0 ? 2 : i) * ROW;
}

function colOf(name) {
  return name in S.x ? name : "client";
}

function arrow(block, kind, from, to, faulty, client) {
  const f = colOf(from), t = colOf(to);
  const id = kind + "|" + from + "|" + to;
  if (block.arrows.has(id)) return;
  block.arrows.add(id);
  const y = block.kind === "round" ? rowY(kind) : (kind === "newview" ? 20 + ROW : 20);
  const x1 = S.x[f], x2 = S.x[t];
  const dir = x2 >= x1 ? 1 : -1;
  const line = el("line", { class: "msg " + kind + (faulty ? " faulty" : ""), "data-kind": kind,
    "data-from": from, "data-to": to, "data-seq": block.seq || "", "data-view": block.view,
    x1, y1: y + 2, x2: x2 - dir * 4, y2: y + ROW - 6, "marker-end": `url(#arrow-${kind})` }, block.g);
  if (client) line.setAttribute("data-client", client);
  ensureMarker(kind);
}

function ensureMarker(kind) {
  if (document.getElementById("arrow-" + kind)) return;
  const svg = $("diagram");
  let defs = svg.querySelector("defs");
  if (!defs) defs = el("defs", {}, svg);
  const m = el("marker", { id: "arrow-" + kind, viewBox: "0 0 10 10", refX: 9, refY: 5,
    markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" }, defs);
  const colour = getComputedStyle(document.documentElement).getPropertyValue("--" + kind) || "#555";
  el("path", { d: "M0,0 L10,5 L0,10 z", fill: colour.trim() || "#555" }, m);
}

// votes counts a replica's matching prepares or commits in a round, its own included.
function vote(r, node, phase, from, digest) {
  const v = (r.votes[node] ||= { prepare: new Set(), commit: new Set(), digest: "" });
  if (v.digest && digest && digest !== v.digest) return;
  v[phase].add(from);
  cert(r, node, phase, v[phase].size);
}

function cert(r, node, phase, count) {
  if (!(node in S.x)) return;
  const quorum = phase === "prepare" ? S.hello.prepare_quorum : S.hello.commit_quorum;
  const key = node + "|" + phase;
  let c = r.certs[key];
  const w = 44, x = S.x[node] + 8, y = rowY(phase) + ROW - 12;
  if (!c) {
    el("rect", { class: "cert-bg", x, y, width: w, height: 6 }, r.g);
    const bar = el("rect", { class: "cert " + phase, "data-node": node, "data-phase": phase,
      "data-quorum": quorum, "data-count": 0, x, y, width: 0, height: 6 }, r.g);
    const label = el("text", { class: "cert-label", x: x + w + 4, y: y + 6 }, r.g);
    c = r.certs[key] = { bar, label, count: 0 };
  }
  if (count <= c.count) return;
  c.count = count;
  c.bar.setAttribute("data-count", count);
  c.bar.setAttribute("width", Math.min(1, count / quorum) * w);
  c.label.textContent = `${count}/${quorum}`;
}

function mark(r, node, type) {
  if (!(node in S.x) || r.marks[node + type]) return;
  r.marks[node + type] = true;
  const x = S.x[node];
  let shape;
  if (type === "prepared") {
    const y = rowY("commit") + 2;
    shape = el("path", { d: `M${x},${y - 6} L${x + 6},${y} L${x},${y + 6} L${x - 6},${y} z` }, r.g);
  } else if (type === "committed") {
    shape = el("circle", { cx: x, cy: rowY("reply") + 2, r: 5 }, r.g);
  } else {
    shape = el("rect", { x: x - 5, y: rowY("reply") + 10, width: 10, height: 10 }, r.g);
  }
  shape.setAttribute("class", "mark " + type);
  shape.setAttribute("data-type", type);
  shape.setAttribute("data-node", node);
  const t = el("title", {}, shape);
  t.textContent = `${node} ${type} #${r.seq}`;
}

function band(kind, key, label, attrs) {
  let b = S.bands.get(key);
  if (b) return b;
  const g = el("g", Object.assign({ class: "band " + kind }, attrs));
  el("rect", { class: "bg", x: 0, y: 2, width: S.width, height: BAND_H - 6 }, g);
  const title = el("text", { class: "title", x: S.titleX, y: 18 }, g);
  title.textContent = label;
  b = { kind: "band", key, g, h: BAND_H, view: attrs["data-view"] || "", seq: attrs["data-seq"] || "",
        title, arrows: new Set(), marks: {} };
  S.bands.set(key, b);
  addBlock(b);
  return b;
}

function bandMark(b, node, cls, text) {
  if (!(node in S.x) || b.marks[node + cls]) return;
  b.marks[node + cls] = true;
  const m = el("g", { class: "bandmark " + cls, "data-node": node }, b.g);
  el("circle", { class: cls === "entered" || cls === "stable" ? "mark-cp" : "mark-vc",
    cx: S.x[node], cy: cls === "entered" ? 20 + 2 * ROW - 8 : 14, r: 5 }, m);
  const t = el("text", { x: S.x[node] + 8, y: (cls === "entered" ? 20 + 2 * ROW - 4 : 18) }, m);
  t.textContent = text;
}

// ---- events ---------------------------------------------------------------------------------

function apply(e) {
  S.applied = (S.applied || 0) + 1;
  const st = S.nodes[e.node];
  if (st) st.seen = Date.now();
  switch (e.type) {
    case "replica":
      if (!st) return;
      Object.assign(st, { view: e.view, active: !!e.active, lastExec: e.last_executed || 0,
        stable: e.stable || 0, fault: e.fault || "", dropped: e.dropped || 0, sampleEvery: e.sample_every || 1 });
      return;
    case "send":
      if (st && e.fault) st.fault = e.fault;
      return onSend(e);
    case "recv":
      return onRecv(e);
    case "prepared":
    case "committed": {
      const r = round(e.view, e.seq);
      if (!r) return;
      mark(r, e.node, e.type);
      cert(r, e.node, e.type === "prepared" ? "prepare" : "commit", e.count || 0);
      return;
    }
    case "executed": {
      if (st) st.lastExec = Math.max(st.lastExec, e.seq);
      // The round executed is the one of the latest view that ordered it.
      let r = null;
      for (const cand of S.rounds.values()) if (cand.seq === e.seq && (!r || cand.view > r.view)) r = cand;
      if (r) mark(r, e.node, "executed");
      return;
    }
    case "transfer":
      if (st) st.lastExec = Math.max(st.lastExec, e.seq);
      bandMark(band("checkpoint", "cp:" + e.seq, `state transfer to #${e.seq}`,
        { "data-seq": e.seq }), e.node, "stable", "state installed");
      return;
    case "checkpoint":
      if (st) st.stable = Math.max(st.stable, e.seq);
      bandMark(band("checkpoint", "cp:" + e.seq, `checkpoint #${e.seq} stable`, { "data-seq": e.seq }),
        e.node, "stable", "stable");
      return;
    case "viewchange":
      if (st) { st.view = e.view; st.active = false; }
      bandMark(vcBand(e.view), e.node, "started", "view change");
      return;
    case "newview":
      if (st) { st.view = e.view; st.active = true; }
      bandMark(vcBand(e.view), e.node, "entered", "in view " + e.view);
      return;
  }
}

function vcBand(view) {
  const primary = S.hello.nodes[view % S.hello.n];
  return band("viewchange", "vc:" + view, `view change to view ${view} (primary ${primary})`, { "data-view": view });
}

function roundKind(kind) { return PHASES.includes(kind); }

function onSend(e) {
  if (!roundKind(e.kind)) return;
  if (e.kind === "request") return;       // drawn when it arrives
  const r = round(e.view, e.seq);
  if (!r) return;
  if (e.kind === "preprepare") {
    r.digest = e.digest || ""; r.batch = e.count || 0; r.primary = e.node;
    r.g.setAttribute("data-digest", r.digest);
    r.g.setAttribute("data-primary", e.node);
    setTitle(r);
    (r.votes[e.node] ||= { prepare: new Set(), commit: new Set(), digest: "" }).digest = e.digest || "";
    ordered(r, e.client);
  }
  if (e.kind === "reply") arrow(r, "reply", e.node, e.to, !!e.fault, e.client);
  if (e.kind === "prepare" || e.kind === "commit") vote(r, e.node, e.kind, e.node, e.digest);
}

function onRecv(e) {
  if (e.kind === "request") {
    // A request has no number yet: it is drawn in the round that orders it next.
    S.pendingRequests.push({ from: e.from, to: e.node, client: e.client });
    if (S.pendingRequests.length > 64) S.pendingRequests.shift();
    return;
  }
  if (roundKind(e.kind)) {
    const r = round(e.view, e.seq);
    if (!r) return;
    const sender = S.nodes[e.from];
    arrow(r, e.kind, e.from, e.node, !!sender && sender.fault === "equivocate");
    if (e.kind === "preprepare") {
      const v = (r.votes[e.node] ||= { prepare: new Set(), commit: new Set(), digest: "" });
      v.digest = e.digest || "";
      if (!r.digest) { r.digest = v.digest; r.batch = e.count || 0; r.primary = e.from; setTitle(r);
        r.g.setAttribute("data-digest", r.digest); r.g.setAttribute("data-primary", e.from); }
      ordered(r, e.client);
    }
    if (e.kind === "prepare" || e.kind === "commit") vote(r, e.node, e.kind, e.from, e.digest);
    return;
  }
  if (e.kind === "viewchange" || e.kind === "newview") {
    arrow(vcBand(e.view), e.kind, e.from, e.node, false);
  } else if (e.kind === "checkpoint") {
    arrow(band("checkpoint", "cp:" + e.seq, `checkpoint #${e.seq} stable`, { "data-seq": e.seq }),
      "checkpoint", e.from, e.node, false);
  }
}

// ---- playback -------------------------------------------------------------------------------

function pump() {
  const now = performance.now();
  if (S.hello) {
    let n = 0;
    if (!S.paused) {
      if (S.slow) {
        if (now - S.lastSlow > 120 && S.queue.length) { apply(S.queue.shift()); S.lastSlow = now; n = 1; }
      } else {
        while (S.queue.length && n < 3000) { apply(S.queue.shift()); n++; }
      }
    }
    if (n || now - (S.lastCards || 0) > 500) { refreshCards(); S.lastCards = now; }
  }
}

$("pause").onclick = () => {
  S.paused = !S.paused;
  $("pause").textContent = S.paused ? "Resume" : "Pause";
  $("pause").dataset.paused = String(S.paused);
  $("step").disabled = !S.paused;
};
$("step").onclick = () => { if (S.queue.length) { apply(S.queue.shift()); refreshCards(); } };
$("slow").onchange = (ev) => { S.slow = ev.target.checked; };
$("clear").onclick = () => {
  for (const b of S.blocks) b.g.remove();
  S.blocks = []; S.rounds.clear(); S.bands.clear(); S.pendingRequests = [];
  layout();
};

// ---- controls -------------------------------------------------------------------------------

async function post(body) {
  body.msg_id = S.msgId++;
  const resp = await fetch("/v1/messages", { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body) });
  const out = await resp.json();
  if (out.type === "error") throw new Error(out.text || "error " + out.code);
  return out;
}

$("send").onsubmit = async (ev) => {
  ev.preventDefault();
  const res = $("send-result");
  res.className = "";
  res.textContent = "…";
  delete res.dataset.seq;
  try {
    const out = await post({ type: "pbft_execute", operation: $("op").value, client: S.client });
    res.textContent = `#${out.sequence_number} in view ${out.view}: ${JSON.stringify(out.result)} (${out.replies} replies)`;
    res.dataset.seq = out.sequence_number;
    res.dataset.view = out.view;
  } catch (err) {
    res.className = "error";
    res.textContent = String(err.message || err);
  }
};

async function fault(node, f) {
  const res = $("send-result");
  try {
    await post({ type: "pbft_fault", node, fault: f });
    if (S.nodes[node]) S.nodes[node].fault = f === "recover" ? "" : f;
    res.className = "";
    res.textContent = `${node}: ${f}`;
  } catch (err) {
    res.className = "error";
    res.textContent = String(err.message || err);
  }
  refreshCards();
}

connect();
setInterval(pump, 40);
setInterval(() => { S.roundTokens = ROUNDS_PER_S; }, 1000);
