"""The review page in a real headless browser (Debian chromium driven by Playwright) against a
real `hybridtune review` server: keyboard review, an edit that survives a server restart, and
transcript markup shown as text, never run."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import free_port, start_cli_server, stop_server

from .helpers import session, write_curated

pytestmark = pytest.mark.browser
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


def _start(run_dir: Path, port: int, log: Path) -> subprocess.Popen:
    return start_cli_server(["review", str(run_dir), "--reviewer", "tester"], port, log, "/api/meta")


def test_keyboard_review_and_edit_survives_restart(tmp_path):
    if not shutil.which(CHROMIUM):
        pytest.skip("Debian chromium not installed (make browser)")
    from playwright.sync_api import expect, sync_playwright

    run_dir = tmp_path / "runs" / "demo"
    evil = session(1, words='<img src=x onerror="window.pwned=1"><b>bold</b>', mean=5.2)
    write_curated(run_dir, review=[evil, session(2, mean=5.8, flags=("repetition",))], selected=[session(3, mean=8)])
    port, log = free_port(), tmp_path / "server.log"
    proc = _start(run_dir, port, log)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}/")
            expect(page.locator("#rows tr")).to_have_count(2)
            expect(page.locator("#reviewer")).to_have_value("tester")
            page.locator("body").press("j")  # first row: the lowest score, the markup-laden session
            expect(page.locator("#detail h3")).to_have_text(evil.id)
            expect(page.locator(".msg .content").first).to_contain_text('<img src=x onerror="window.pwned=1">')
            assert page.evaluate("window.pwned") is None and page.locator("#detail img, #detail b").count() == 0
            page.locator(".msg").nth(1).click()
            page.locator("body").press("e")
            page.locator("#editor").fill("A calmer, edited counselor reply.")
            page.locator("#editor").press("Control+Enter")
            expect(page.locator(".msg.edited .content")).to_have_text("A calmer, edited counselor reply.")
            page.locator("body").press("a")
            expect(page.locator("#rows tr")).to_have_count(1)  # accepted: leaves the to-review queue
            page.select_option("#f-flag", "repetition")
            expect(page.locator("#rows tr")).to_have_count(1)
            page.locator("body").press("j")
            page.locator("body").press("x")
            expect(page.locator("#rows tr")).to_have_count(0)
            stop_server(proc)
            proc = _start(run_dir, port, log)  # a restarted server: everything came from the run store
            page.reload()
            page.select_option("#f-status", "decided")
            expect(page.locator("#rows tr")).to_have_count(2)
            page.locator("#rows tr", has_text=evil.id).click()
            expect(page.locator(".msg.edited .content")).to_have_text("A calmer, edited counselor reply.")
            expect(page.locator("#detail")).to_contain_text("decision accept")
            expect(page.locator("#detail")).to_contain_text("tester: edit turn 1")
            browser.close()
    finally:
        stop_server(proc)
    lines = (run_dir / "curate" / "decisions.jsonl").read_text().splitlines()
    assert len(lines) == 3 and all('"reviewer":"tester"' in x for x in lines)
