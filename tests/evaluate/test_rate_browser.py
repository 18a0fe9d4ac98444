"""The rating page in a real headless browser (Debian chromium driven by Playwright) against a
real `hybridtune rate` server: blind pairs, keyboard choices, optional scores, progress, and
reply markup shown as text, never run."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hybridtune.evaluate.rate import ratings as R
from hybridtune.store import StageDir
from tests.conftest import free_port, start_cli_server, stop_server

from .test_pairwise import sim

pytestmark = pytest.mark.browser
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
EVIL = '<img src=x onerror="window.pwned=1"><b>bold</b>'


def write_run(tmp_path: Path) -> Path:
    d = tmp_path / "runs" / "demo"
    ss = [s for i in range(2) for s in (sim("hybrid", f"sc{i}", f"It sounds like you are worn out {i}."),
                                        sim("base", f"sc{i}", f"OK {i}. {EVIL}"))]
    StageDir(d / "simulate", "simulate").write_records("sessions.jsonl", ss)
    return d


def test_blind_keyboard_rating_with_scores_and_progress(tmp_path):
    if not shutil.which(CHROMIUM):
        pytest.skip("Debian chromium not installed (make browser)")
    from playwright.sync_api import expect, sync_playwright

    d = write_run(tmp_path)
    port, log = free_port(), tmp_path / "server.log"
    proc = start_cli_server(["rate", str(d), "--rater", "tester"], port, log, "/api/meta")
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}/")
            expect(page.locator("#progress")).to_have_text("0 / 2 rated")
            expect(page.locator("#rater")).to_have_value("tester")
            expect(page.locator("#context")).to_contain_text("I can't sleep since the move.")
            shown = page.locator("main").inner_text()
            assert "hybrid" not in shown and "base" not in shown  # blind: no variant names
            # the markup-laden reply is text: no image, no bold element, no script run
            expect(page.locator("#pair")).to_contain_text('<img src=x onerror="window.pwned=1">')
            assert page.evaluate("window.pwned") is None and page.locator("#pair img, #pair b").count() == 0
            warm_left = "sounds like" in page.locator("#left").inner_text()
            warm, cold = ("left", "right") if warm_left else ("right", "left")
            page.locator(f"#{warm}-empathy").fill("9")
            page.locator(f"#{cold}-empathy").fill("3")
            page.locator("body").click()  # leave the score field, then choose with the keyboard
            page.keyboard.press("1" if warm_left else "2")
            expect(page.locator("#progress")).to_have_text("1 / 2 rated")
            page.keyboard.press("t")
            expect(page.locator("#progress")).to_have_text("2 / 2 rated")
            expect(page.locator("#finished")).to_be_visible()
            page.reload()  # progress comes from the stored ratings
            expect(page.locator("#progress")).to_have_text("2 / 2 rated")
            browser.close()
    finally:
        stop_server(proc)
    got = sorted(R.load_ratings(d), key=lambda r: r.at)
    assert [r.rater for r in got] == ["tester", "tester"]
    assert got[0].winner == "hybrid" and got[0].scores["hybrid"].empathy == 9 and got[0].scores["base"].empathy == 3
    assert got[1].winner == "tie" and got[1].scores == {}
