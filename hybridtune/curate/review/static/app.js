// hybridtune review page: plain JS, no build step. All data is inserted with textContent
// (never parsed as HTML), so transcript text cannot inject markup.
"use strict";
const $ = (id) => document.getElementById(id);
const token = new URLSearchParams(location.hash.slice(1)).get("token") || sessionStorage.getItem("ht-token") || "";
if (token) sessionStorage.setItem("ht-token", token);
let rows = [], current = null, detail = null, focusIdx = null, editing = false;

async function api(path, opts = {}) {
  const headers = { "Content-Type": "application/json" };
  if (token) headers["Authorization"] = "Bearer " + token;
  const r = await fetch(path, { ...opts, headers });
  if (!r.ok) { const b = await r.json().catch(() => ({})); throw new Error(b.detail || r.statusText); }
  return r.json();
}
function el(tag, text, cls) { const e = document.createElement(tag); if (text != null) e.textContent = String(text); if (cls) e.className = cls; return e; }
function toast(msg) { const t = $("toast"); t.textContent = msg; t.classList.add("show"); setTimeout(() => t.classList.remove("show"), 1500); }
function reviewer() { return $("reviewer").value.trim(); }

async function loadMeta() {
  const m = await api("/api/meta");
  $("run").textContent = m.run;
  $("reviewer").value = localStorage.getItem("ht-reviewer") || m.reviewer || "";
  for (const f of m.flags) $("f-flag").append(new Option(f, f));
  for (const t of m.techniques) $("f-tech").append(new Option(t, t));
}
async function loadList() {
  const q = new URLSearchParams({ status: $("f-status").value, flag: $("f-flag").value, technique: $("f-tech").value });
  if ($("f-min").value) q.set("min_score", $("f-min").value);
  if ($("f-max").value) q.set("max_score", $("f-max").value);
  rows = await api("/api/sessions?" + q);
  const body = $("rows"); body.replaceChildren();
  for (const r of rows) {
    const tr = el("tr"); tr.dataset.id = r.id;
    if (r.id === current) tr.className = "current";
    tr.append(el("td", r.id), el("td", r.source), el("td", r.mean == null ? "-" : r.mean.toFixed(2)),
      el("td", [...r.flags, ...r.reasons].join(", ")), el("td", (r.verdict || "") + (r.edited ? " (edited)" : "")));
    tr.addEventListener("click", () => open(r.id));
    body.append(tr);
  }
  $("count").textContent = rows.length + " sessions";
}
async function open(id) {
  current = id; focusIdx = null; editing = false;
  detail = await api("/api/sessions/" + encodeURIComponent(id));
  render(); for (const tr of $("rows").children) tr.classList.toggle("current", tr.dataset.id === id);
}
function render() {
  const d = detail, box = $("detail"); box.replaceChildren();
  box.append(el("h3", d.id));
  const info = el("p"); info.append(el("span", `${d.source} · status ${d.status} · decision ${d.verdict || "none"} · risk ${d.risk || "-"} · `));
  for (const f of d.flags) info.append(el("span", f, "flag"));
  box.append(info, el("p", "Reasons: " + (d.reasons.join(", ") || "-")), el("p", "Techniques: " + (d.techniques.join(", ") || "-")));
  const t = el("table"); t.append(el("tr"));
  for (const [k, v] of Object.entries(d.scores)) { const tr = el("tr"); tr.append(el("td", k), el("td", v ?? "-"), el("td", d.rationales[k] || "")); t.append(tr); }
  box.append(t);
  const acts = el("p", null, "actions");
  const acc = el("button", "Accept (a)"); acc.id = "accept"; acc.onclick = () => decide("accept");
  const rej = el("button", "Reject (x)"); rej.id = "reject"; rej.onclick = () => decide("reject");
  acts.append(acc, rej); box.append(acts);
  d.messages.forEach((m, i) => {
    const div = el("div", null, `msg ${m.role}` + (m.edited ? " edited" : "") + (i === focusIdx ? " focused" : ""));
    div.dataset.index = i;
    const head = el("div", `${i} · ${m.role}`, "role");
    const eb = el("button", "edit"); eb.className = "edit"; eb.onclick = (ev) => { ev.stopPropagation(); focusIdx = i; startEdit(); };
    head.append(" ", eb);
    div.append(head, el("div", m.content, "content"));
    const fb = (d.feedback || {})[i];
    if (fb) div.append(el("div", `user feedback: ${fb.rating === "up" ? "helpful" : fb.rating === "down" ? "not helpful" : "no rating"}` +
                                 (fb.comment ? ` · "${fb.comment}"` : ""), "feedback"));
    div.addEventListener("click", () => { focusIdx = i; render(); });
    box.append(div);
  });
  if (d.history.length) { box.append(el("h4", "History")); for (const h of d.history) box.append(el("div", `${h.time} ${h.reviewer}: ${h.action}${h.index != null ? " turn " + h.index : ""}`)); }
}
function startEdit() {
  if (!detail) return;
  if (focusIdx == null) focusIdx = detail.messages.findIndex((m) => m.role === "assistant");
  if (focusIdx < 0) return;
  render(); editing = true;
  const div = document.querySelector(`.msg[data-index="${focusIdx}"]`);
  const ta = el("textarea"); ta.id = "editor"; ta.value = detail.messages[focusIdx].content;
  const save = el("button", "Save (Ctrl+Enter)"); save.id = "save"; save.onclick = saveEdit;
  const cancel = el("button", "Cancel (Esc)"); cancel.onclick = () => { editing = false; render(); };
  div.querySelector(".content").replaceWith(ta); div.append(save, cancel); ta.focus();
}
async function saveEdit() {
  const content = $("editor").value;
  editing = false;  // before the await: keys pressed while saving act on the page, not the editor
  try { await send({ action: "edit", index: focusIdx, content }); } catch (e) { editing = true; return; }
  toast("edit saved");
}
async function decide(action) { await send({ action }); toast(action === "accept" ? "accepted" : "rejected"); }
// a kept conversation grows while it waits: a decision names the snapshot (its number of turns) shown
function snapshotOf(d) { return d && d.source === "conversation" ? d.turns : undefined; }
async function send(body) {
  if (!reviewer()) { toast("enter your reviewer name first"); $("reviewer").focus(); throw new Error("no reviewer"); }
  try { detail = await api(`/api/sessions/${encodeURIComponent(current)}/decision`, { method: "POST", body: JSON.stringify({ ...body, reviewer: reviewer(), snapshot: snapshotOf(detail) }) }); }
  catch (e) { toast("not saved: " + e.message); throw e; }
  render(); await loadList();
}
function move(step) {
  if (!rows.length) return;
  let i = rows.findIndex((r) => r.id === current); i = Math.min(rows.length - 1, Math.max(0, i + step));
  open(rows[i].id);
}
document.addEventListener("keydown", (ev) => {
  if (editing) {
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) { ev.preventDefault(); saveEdit(); }
    else if (ev.key === "Escape") { editing = false; render(); }
    return;
  }
  if (["INPUT", "SELECT", "TEXTAREA"].includes(document.activeElement.tagName)) return;
  const k = ev.key;
  if (k === "j") move(1); else if (k === "k") move(-1);
  else if (k === "a" && current) decide("accept"); else if (k === "x" && current) decide("reject");
  else if (k === "e" && current) { ev.preventDefault(); startEdit(); }
});
$("reviewer").addEventListener("change", () => localStorage.setItem("ht-reviewer", reviewer()));
for (const id of ["f-status", "f-flag", "f-tech", "f-min", "f-max"]) $(id).addEventListener("change", loadList);
loadMeta().then(loadList).catch((e) => toast("error: " + e.message));
