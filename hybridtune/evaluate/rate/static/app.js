// hybridtune rate page: plain JS, no build step. All data is inserted with textContent (never
// parsed as HTML), so reply text cannot inject markup. Variant names never reach this page.
"use strict";
const $ = (id) => document.getElementById(id);
const token = new URLSearchParams(location.hash.slice(1)).get("token") || sessionStorage.getItem("ht-token") || "";
if (token) sessionStorage.setItem("ht-token", token);
let task = null, metrics = [];

async function api(path, opts = {}) {
  const headers = { "Content-Type": "application/json" };
  if (token) headers["Authorization"] = "Bearer " + token;
  const r = await fetch(path, { ...opts, headers });
  if (!r.ok) { const b = await r.json().catch(() => ({})); throw new Error(b.detail || r.statusText); }
  return r.json();
}
function el(tag, text, cls) { const e = document.createElement(tag); if (text != null) e.textContent = String(text); if (cls) e.className = cls; return e; }
function toast(msg) { const t = $("toast"); t.textContent = msg; t.classList.add("show"); setTimeout(() => t.classList.remove("show"), 2000); }
function rater() { return $("rater").value.trim(); }

function scoreInputs() {
  for (const box of document.querySelectorAll(".scores")) {
    box.replaceChildren();
    for (const m of metrics) {
      const lab = el("label", m + " ");
      const inp = el("input"); inp.type = "number"; inp.min = 1; inp.max = 10; inp.size = 3;
      inp.id = `${box.dataset.side}-${m}`; lab.append(inp); box.append(lab);
    }
  }
}
function show(r) {
  $("progress").textContent = `${r.done} / ${r.total} rated`;
  task = r.task;
  $("main").hidden = !task; $("finished").hidden = !!task;
  if (!task) return;
  const c = $("context"); c.replaceChildren();
  for (const m of task.context) {
    const d = el("div", null, "msg " + m.role); d.append(el("div", m.role === "user" ? "Client" : "Counselor", "role"), el("div", m.content, "content"));
    c.append(d);
  }
  $("left").textContent = task.left; $("right").textContent = task.right;
  scoreInputs();
}
async function next() {
  if (!rater()) { $("progress").textContent = "enter your rater id to start"; $("main").hidden = true; return; }
  try { show(await api("/api/next?" + new URLSearchParams({ rater: rater() }))); } catch (e) { toast(e.message); }
}
function side(s) {
  const out = {};
  for (const m of metrics) { const v = $(`${s}-${m}`).value; if (v) out[m] = parseInt(v, 10); }
  return out;
}
async function pick(choice) {
  if (!task) return;
  try {
    show(await api("/api/rate", { method: "POST", body: JSON.stringify(
      { task: task.id, rater: rater(), choice, left: side("left"), right: side("right") }) }));
    toast("saved");
  } catch (e) { toast(e.message); }
}
document.addEventListener("keydown", (e) => {
  if (e.target.tagName === "INPUT" && e.target.id === "rater") return;
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  const k = { "1": "left", "2": "right", "t": "tie", "0": "tie" }[e.key];
  if (k && e.target.type !== "number") { e.preventDefault(); pick(k); }
});
$("pick-left").onclick = () => pick("left");
$("pick-right").onclick = () => pick("right");
$("pick-tie").onclick = () => pick("tie");
$("rater").addEventListener("change", () => { localStorage.setItem("ht-rater", rater()); next(); });
(async () => {
  const m = await api("/api/meta");
  metrics = m.metrics; $("run").textContent = m.run;
  $("rater").value = localStorage.getItem("ht-rater") || m.rater || "";
  next();
})();
