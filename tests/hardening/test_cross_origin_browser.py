"""Cross-site attacks on the two local web apps from a real browser (issue 14, items 1 and 2).

A page served from another origin on 127.0.0.1 (another port) is opened in headless Debian
Chromium (Playwright, never a downloaded browser). Its script tries what any web page the
user visits could: `no-cors` fetch POSTs with a JSON body sent as text/plain, a CORS JSON
POST, and a `<form enctype="text/plain">` POST, against real `hybridtune review` and
`hybridtune serve` servers (subprocesses). DNS rebinding is played by mapping `rebind.test`
to 127.0.0.1 in the browser's resolver. Asserted: nothing changes (no decision appended, no
chat turn run or saved), the rebound name reads no transcript, and the apps' own pages still
work (so the requests do reach the servers)."""
from __future__ import annotations

import http.server
import json
import shutil
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import free_port, start_cli_server, stop_server
from tests.curate.helpers import session, write_curated

pytestmark = pytest.mark.browser
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--host-resolver-rules=MAP rebind.test 127.0.0.1"]

ATTACK = """<!doctype html><html><body><iframe name="sink"></iframe><script>
const R = {};
async function tryit(name, p) {
  try { const r = await p; R[name] = "status " + r.status + " " + r.type; } catch (e) { R[name] = "error " + e; }
}
function form(url, body) {  // enctype text/plain: name=value is sent as-is, so the body parses as JSON
  const f = document.createElement("form");
  f.method = "POST"; f.action = url; f.enctype = "text/plain"; f.target = "sink";
  const i = document.createElement("input");
  i.name = body.slice(0, -2) + ',"pad":"'; i.value = '"}';
  f.appendChild(i); document.body.appendChild(f); f.submit();
}
(async () => {
  for (const [url, body] of TARGETS) {
    await tryit(url + " text/plain", fetch(url, {method: "POST", mode: "no-cors", headers: {"Content-Type": "text/plain"}, body}));
    await tryit(url + " json", fetch(url, {method: "POST", headers: {"Content-Type": "application/json"}, body}));
    await tryit(url + " read", fetch(url.replace(/\\/api\\/.*/, "/api/sessions")).then(r => r.text()));
    form(url, body);
    await new Promise(r => setTimeout(r, 300));
  }
  window.results = R; window.done = true;
})();
</script></body></html>"""


def _attacker(folder: Path, targets: list[tuple[str, str]]) -> tuple[http.server.ThreadingHTTPServer, int]:
    """A static 'evil' site on another port of 127.0.0.1 (so another origin)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "index.html").write_text(ATTACK.replace("TARGETS", json.dumps(targets)))
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(folder), **k)  # noqa: E731
    http.server.SimpleHTTPRequestHandler.log_message = lambda *a: None
    port = free_port()
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, port


def _run_attack(page, port: int) -> dict:
    page.goto(f"http://127.0.0.1:{port}/")
    page.wait_for_function("window.done === true", timeout=30_000)
    time.sleep(0.5)  # let the form posts land, if they were going to
    return page.evaluate("window.results")


@pytest.fixture
def browser():
    if not shutil.which(CHROMIUM):
        pytest.skip("Debian chromium not installed (make browser)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def test_review_app_ignores_other_origins_and_rebinding(tmp_path, browser):
    run = tmp_path / "runs" / "demo"
    target = session(1, words="a private transcript line", mean=5)
    write_curated(run, review=[target])
    decisions = run / "curate" / "decisions.jsonl"
    port = free_port()
    proc = start_cli_server(["review", str(run), "--reviewer", "tester"], port, tmp_path / "review.log", "/api/meta")
    evil, evil_port = _attacker(tmp_path / "evil", [
        (f"http://127.0.0.1:{port}/api/sessions/{target.id}/decision",
         json.dumps({"action": "edit", "index": 1, "content": "POISONED", "reviewer": "evil"})),
        (f"http://localhost:{port}/api/sessions/{target.id}/decision",
         json.dumps({"action": "reject", "reviewer": "evil"})),
    ])
    try:
        page = browser.new_page()
        results = _run_attack(page, evil_port)
        assert not decisions.exists(), (results, decisions.read_text())
        # DNS rebinding: the attacker's name now points at 127.0.0.1, so the browser treats the app as
        # same-origin with the attacker's page; the Host header gives it away
        r = page.goto(f"http://rebind.test:{port}/api/sessions?status=all")
        assert r.status == 400 and "private transcript" not in page.content()
        r = page.goto(f"http://rebind.test:{port}/api/sessions/{target.id}")
        assert r.status == 400 and "private transcript" not in page.content()
        # the app's own page still decides (the guard refuses only foreign requests)
        page.goto(f"http://127.0.0.1:{port}/")
        status = page.evaluate("""async (u) => (await fetch(u, {method: "POST", headers: {"Content-Type": "application/json"},
            body: JSON.stringify({action: "accept", reviewer: "tester"})})).status""",
                               f"/api/sessions/{target.id}/decision")
        assert status == 200
        lines = [json.loads(x) for x in decisions.read_text().splitlines()]
        assert [(d["action"], d["reviewer"]) for d in lines] == [("accept", "tester")]
    finally:
        evil.shutdown()
        stop_server(proc)


def test_serve_app_ignores_cross_site_posts(tmp_path, browser):
    port = free_port()
    runs = tmp_path / "runs"
    proc = start_cli_server(["serve", "--set", f"runs_dir={runs}", "--set", "endpoints.local.backend=fake",
                   "--set", "safety.use_model=false"], port, tmp_path / "serve.log", "/api/info")
    sid = "attacker-session-1"
    evil, evil_port = _attacker(tmp_path / "evil", [
        (f"http://127.0.0.1:{port}/api/chat", json.dumps({"session": sid, "message": "spend your budget"})),
        (f"http://127.0.0.1:{port}/api/save", json.dumps({"session": sid})),
        (f"http://127.0.0.1:{port}/api/reset", json.dumps({"session": sid})),
    ])
    saved = runs / "demo" / "chat" / "sessions.jsonl"
    try:
        page = browser.new_page()
        results = _run_attack(page, evil_port)
        assert not saved.exists(), (results, saved.read_text())
        # rebinding: the chat API under a foreign Host is refused
        page.goto(f"http://rebind.test:{port}/")
        status = page.evaluate("""async () => (await fetch("/api/chat", {method: "POST",
            headers: {"Content-Type": "application/json"}, body: JSON.stringify({session: "rebound-1", message: "hi"})})).status""")
        assert status == 400
        # the real page still chats and saves, so the attacks above did reach a working server
        page.goto(f"http://127.0.0.1:{port}/")
        status = page.evaluate("""async () => {
            const h = {"Content-Type": "application/json"};
            await (await fetch("/api/chat", {method: "POST", headers: h, body: JSON.stringify({session: "legit-session-1", message: "hello"})})).text();
            return (await fetch("/api/save", {method: "POST", headers: h, body: JSON.stringify({session: "legit-session-1"})})).status; }""")
        assert status == 200 and saved.exists()
        assert sid not in saved.read_text() and "spend your budget" not in saved.read_text()
    finally:
        evil.shutdown()
        stop_server(proc)
