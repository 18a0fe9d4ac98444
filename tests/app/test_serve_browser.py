"""The web chat in a real headless browser (Debian chromium via Playwright) against a real
uvicorn server on 127.0.0.1: a reply streams in, a crisis message gets the safety response
with 988, and markup from the user or the model is shown literally, never run."""
from __future__ import annotations

import asyncio
import shutil

import pytest

from hybridtune.app.engine import open_engine
from hybridtune.app.web import create_app
from hybridtune.llm import LLMPool
from hybridtune.llm.fake import FakeBackend
from tests.conftest import serve_in_thread

pytestmark = pytest.mark.browser
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
TOKEN = "browser-test-token"
EVIL = '<img src=x onerror="window.pwned=1"><b>bold</b>'


class SlowStream(FakeBackend):
    """Streams word by word with a pause, so the page must render a reply as it arrives."""

    async def stream(self, req):
        text = (await self.complete(req)).text
        for w in text.split(" "):
            await asyncio.sleep(0.05)
            yield w + " "


def _reply(req) -> str:
    last = req.messages[-1]["content"]
    return EVIL if "markup" in last else "I hear you. What has been on your mind this week?"


@pytest.fixture
def server(make_cfg):
    cfg = make_cfg("safety.use_model=false")
    pool = LLMPool(cfg.pool_config())
    pool.install("local", SlowStream(responder=_reply))
    base = open_engine(cfg, pool=pool)
    app = create_app(base.fork, token=TOKEN, max_chars=cfg.safety.max_chars, host="127.0.0.1")
    with serve_in_thread(app, "/api/info") as url:
        yield url, base


def test_chat_page_streams_screens_and_escapes(server):
    if not shutil.which(CHROMIUM):
        pytest.skip("Debian chromium not installed")
    from playwright.sync_api import expect, sync_playwright

    url, base = server
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{url}/#token={TOKEN}")
            expect(page.locator("#disclaimer")).to_contain_text("not a substitute for professional care")
            expect(page.locator("#who")).to_have_text("Talking to variant counselor, model smollm2")

            page.fill("#input", "I've had a hard week at work.")
            page.press("#input", "Enter")
            reply = page.locator(".msg.assistant").first
            expect(reply).to_contain_text("I hear you.")  # first words arrive before the last
            expect(reply).to_have_text("I hear you. What has been on your mind this week?", timeout=10_000)

            page.fill("#input", "I'm going to kill myself tonight.")
            page.click("#send")
            safety = page.locator(".msg.safety")
            expect(safety).to_have_count(1)
            expect(safety).to_contain_text("988 Suicide & Crisis Lifeline")
            expect(safety).to_contain_text("Are you safe right now?")

            page.fill("#input", f"markup test {EVIL}")
            page.click("#send")
            expect(page.locator(".msg.user").last).to_have_text(f"markup test {EVIL}")
            expect(page.locator(".msg.assistant").last).to_contain_text('<img src=x onerror="window.pwned=1">',
                                                                        timeout=10_000)
            assert page.evaluate("window.pwned") is None
            # the markup reply stops mid-sentence: marked; the first one ends with "?": not
            expect(page.locator(".msg.assistant").last.locator(".cut")).to_have_count(1)
            assert page.locator(".msg.assistant").first.locator(".cut").count() == 0
            assert page.locator("#log img, #log b").count() == 0

            page.click("#save")
            expect(page.locator("#status")).to_have_text("Saved.")
        finally:
            browser.close()
    assert "988" in base.out.file("sessions.jsonl").read_text()


def test_page_without_token_cannot_chat(server):
    if not shutil.which(CHROMIUM):
        pytest.skip("Debian chromium not installed")
    from playwright.sync_api import expect, sync_playwright

    url, _ = server
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{url}/")
            page.fill("#input", "hello")
            page.press("#input", "Enter")
            expect(page.locator(".msg.error")).to_contain_text("token")
            assert page.locator(".msg.assistant").count() == 0
        finally:
            browser.close()
