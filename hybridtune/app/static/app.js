// hybridtune web chat client. Every model or user text is put on the page with textContent
// (never innerHTML), so markup in a message is shown literally and never parsed.
"use strict";
(function () {
  const token = new URLSearchParams(location.hash.slice(1)).get("token") || "";
  const sid = (crypto.randomUUID ? crypto.randomUUID() : String(Math.random()).slice(2) + Date.now()).replace(/[^A-Za-z0-9_-]/g, "");
  const log = document.getElementById("log");
  const form = document.getElementById("form");
  const input = document.getElementById("input");
  const status = document.getElementById("status");
  const sendBtn = document.getElementById("send");

  function headers() {
    const h = { "Content-Type": "application/json" };
    if (token) h["Authorization"] = "Bearer " + token;
    return h;
  }
  function bubble(cls, text) {
    const div = document.createElement("div");
    div.className = "msg " + cls;
    div.textContent = text;
    log.appendChild(div);
    div.scrollIntoView({ block: "end" });
    return div;
  }
  async function post(path, payload) {
    return fetch(path, { method: "POST", headers: headers(), body: JSON.stringify(payload) });
  }
  async function errorText(resp) {
    try { return (await resp.json()).error || resp.statusText; } catch (e) { return resp.statusText; }
  }

  const keepBox = document.getElementById("keep");
  let keeping = false;  // conversations are kept on this server: every message carries the box's state
  fetch("/api/info").then(r => r.json()).then(info => {
    document.getElementById("disclaimer").textContent = info.disclaimer;
    document.getElementById("who").textContent = "Talking to " + info.who;
    input.maxLength = info.max_chars;
    if (info.keep) {  // conversations are kept: say so, and offer the opt-out
      keeping = true;
      const notice = document.getElementById("notice");
      notice.textContent = info.notice;
      notice.hidden = false;
      document.getElementById("keepbox").hidden = false;
    }
  }).catch(() => {});
  keepBox.addEventListener("change", async () => {
    const r = await post("/api/keep", { session: sid, keep: keepBox.checked });
    status.textContent = r.ok ? (keepBox.checked ? "This conversation is kept." : "Not kept; what was kept is deleted.")
                              : "Could not change: " + await errorText(r);
    for (const f of log.querySelectorAll(".feedback")) f.hidden = !keepBox.checked;
  });

  // thumbs up/down and a comment under a reply of a kept conversation
  function feedbackBar(index) {
    const bar = document.createElement("div");
    bar.className = "feedback";
    const send = async (payload, msg) => {
      const r = await post("/api/feedback", { session: sid, index, ...payload });
      status.textContent = r.ok ? msg : "Feedback not saved: " + await errorText(r);
      return r.ok;
    };
    for (const [rating, label, name] of [["up", "\u{1F44D}", "helpful"], ["down", "\u{1F44E}", "not helpful"]]) {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = label;
      b.className = "rate-" + rating;
      b.setAttribute("aria-label", name);
      b.setAttribute("aria-pressed", "false");
      b.addEventListener("click", async () => {
        if (await send({ rating }, "Thanks for the feedback.")) {
          for (const x of bar.querySelectorAll("button[aria-pressed]")) x.setAttribute("aria-pressed", String(x === b));
        }
      });
      bar.appendChild(b);
    }
    const comment = document.createElement("input");
    comment.type = "text";
    comment.placeholder = "Comment on this reply (optional)";
    comment.setAttribute("aria-label", "comment on this reply");
    comment.maxLength = 2000;
    const go = document.createElement("button");
    go.type = "button";
    go.textContent = "Send comment";
    go.className = "send-comment";
    go.addEventListener("click", async () => {
      if (comment.value.trim() && await send({ comment: comment.value }, "Comment saved.")) comment.value = "";
    });
    bar.append(comment, go);
    log.appendChild(bar);
  }

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const text = input.value;
    if (!text.trim()) return;
    input.value = "";
    sendBtn.disabled = true;
    status.textContent = "…";
    bubble("user", text);
    let reply = null;
    try {
      const resp = await post("/api/chat", { session: sid, message: text, keep: keeping ? keepBox.checked : undefined });
      if (!resp.ok) { bubble("error", "Not sent: " + await errorText(resp)); return; }
      const reader = resp.body.getReader();
      const dec = new TextDecoder();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let cut;
        while ((cut = buf.indexOf("\n\n")) >= 0) {
          const line = buf.slice(0, cut).trim();
          buf = buf.slice(cut + 2);
          if (!line.startsWith("data:")) continue;
          const ev = JSON.parse(line.slice(5));
          if (ev.type === "safety") bubble("safety", ev.text);
          else if (ev.type === "token") {
            if (!reply) reply = bubble("assistant", "");
            reply.textContent += ev.text;
          } else if (ev.type === "error") bubble("error", ev.text);
          else if (ev.type === "done") {
            if (ev.cut && reply) {  // stopped mid-sentence at the length limit: say so, visibly
              const mark = document.createElement("span");
              mark.className = "cut";
              mark.textContent = " [… cut off at the reply length limit]";
              reply.appendChild(mark);
            }
            if (ev.kept && ev.index !== null) feedbackBar(ev.index);
          }
        }
      }
    } catch (err) {
      bubble("error", "Connection problem: " + err);
    } finally {
      sendBtn.disabled = false;
      status.textContent = "";
      input.focus();
    }
  });
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); form.requestSubmit(); }
  });
  document.getElementById("reset").addEventListener("click", async () => {
    await post("/api/reset", { session: sid });
    log.replaceChildren();
    keepBox.checked = true;  // a new conversation: kept again unless opted out
  });
  document.getElementById("save").addEventListener("click", async () => {
    const r = await post("/api/save", { session: sid });
    status.textContent = r.ok ? "Saved." : "Save failed: " + await errorText(r);
  });
})();
