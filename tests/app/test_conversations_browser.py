"""Conversations that come back, in a real headless browser (Debian chromium via Playwright):
a conversation in `serve` with logging on (the notice shown), a thumbs up and a comment on the
reply, then the conversation visible beside a synthetic session in the review app, with its
feedback, and accepted there into the real-data source."""
from __future__ import annotations

import shutil

import pytest

from hybridtune.app import conversations as C
from hybridtune.app.engine import open_engine
from hybridtune.app.web import create_app
from hybridtune.curate.review.app import create_app as review_app
from hybridtune.llm import LLMPool
from hybridtune.llm.fake import FakeBackend
from tests.conftest import serve_in_thread
from tests.curate.helpers import session, write_curated

pytestmark = pytest.mark.browser
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


def test_kept_conversation_with_feedback_is_reviewed_and_accepted(make_cfg):
    if not shutil.which(CHROMIUM):
        pytest.skip("Debian chromium not installed")
    from playwright.sync_api import expect, sync_playwright

    cfg = make_cfg("safety.use_model=false", "real.pii.ner=false", "conversations.keep=true")
    pool = LLMPool(cfg.pool_config())
    pool.install("local", FakeBackend(responder=lambda req: "That sounds hard, Maria. What went through your mind?"))
    base = open_engine(cfg, pool=pool, surface="serve")
    write_curated(cfg.run_dir, review=[session(7, mean=5.5)])  # a synthetic session waiting for review
    chat = serve_in_thread(create_app(base.fork, max_chars=cfg.safety.max_chars, host="127.0.0.1"), "/api/info")
    with chat as chat_url, serve_in_thread(review_app(cfg.run_dir), "/api/meta") as rev_url:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            try:
                page = browser.new_page()
                page.goto(f"{chat_url}/")
                expect(page.locator("#notice")).to_contain_text("kept to improve the counselor")
                expect(page.locator("#keep")).to_be_checked()
                page.fill("#input", "I'm Maria Lopez and my exams went badly, I feel like a failure.")
                page.press("#input", "Enter")
                expect(page.locator(".msg.assistant").first).to_contain_text("What went through your mind?")
                # the reply is kept (scrubbed) before its feedback bar shows: the first scrub loads the analyzer
                expect(page.locator(".feedback .rate-up")).to_be_visible(timeout=120_000)
                page.click(".feedback .rate-up")
                expect(page.locator("#status")).to_have_text("Thanks for the feedback.")
                page.fill(".feedback input", "This question helped me.")
                page.click(".feedback .send-comment")
                expect(page.locator("#status")).to_have_text("Comment saved.")

                page.goto(f"{rev_url}/")
                page.fill("#reviewer", "ana")
                expect(page.locator("#rows tr")).to_have_count(2)  # the conversation beside the synthetic session
                row = page.locator("#rows tr", has_text="conversation")
                expect(row).to_have_count(1)
                row.click()
                expect(page.locator("#detail")).to_contain_text("1 helpful, 0 not helpful")
                expect(page.locator("#detail .feedback")).to_contain_text('helpful · "This question helped me."')
                expect(page.locator("#detail")).not_to_contain_text("Lopez")  # scrubbed before it was kept
                page.click("#accept")
                expect(page.locator("#detail")).to_contain_text("decision accept")
            finally:
                browser.close()
    folder = C.folder_of(cfg)
    accepted = (folder / "accepted.jsonl").read_text()
    assert accepted.count("\n") == 1 and "exams went badly" in accepted and "Lopez" not in accepted
