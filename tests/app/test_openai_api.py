"""`serve` speaks the OpenAI chat-completions API: the real `openai` Python SDK, pointed at the app served
by uvicorn on 127.0.0.1, gets the counselor's reply, the same fixed check-in question and crisis reply as
the chat page (streaming and not), needs the bearer token, and cannot skip the screen."""
from __future__ import annotations

import json

import openai
import pytest
from openai import OpenAI

from hybridtune.app.engine import open_engine
from hybridtune.app.web import create_app
from hybridtune.llm import LLMPool
from hybridtune.llm.fake import FakeBackend
from hybridtune.safety.policy import check_in_text
from tests.conftest import serve_in_thread

TOKEN = "t0ken-for-tests-0123456789"
REPLY = "It sounds like a stressful week."
AMBIGUOUS = "Nobody is going to miss me when I'm gone, and I'm going soon."
IMMINENT = "I have been feeling low and I just want it all to end tonight. I have the pills ready."


@pytest.fixture
def served(make_cfg):
    def start(token=TOKEN):
        cfg = make_cfg("safety.use_model=false")
        pool = LLMPool(cfg.pool_config())
        pool.install("local", FakeBackend(responder=lambda req: REPLY))
        base = open_engine(cfg, pool=pool, surface="serve")
        app = create_app(base.fork, token=token, max_chars=cfg.safety.max_chars)
        return base, serve_in_thread(app, "/api/info")

    return start


def user(text):
    return {"role": "user", "content": text}


def said(text):
    return {"role": "assistant", "content": text}


def ask(client, messages, stream=False):
    """(content, safety) of one completion, streamed or not."""
    if not stream:
        r = client.chat.completions.create(model="counselor", messages=messages)
        assert r.object == "chat.completion" and r.choices[0].finish_reason == "stop"
        return r.choices[0].message.content, r.model_extra["safety"]
    chunks = list(client.chat.completions.create(model="counselor", messages=messages, stream=True))
    assert chunks[-1].choices[0].finish_reason == "stop"
    return "".join(c.choices[0].delta.content or "" for c in chunks).strip(), chunks[-1].model_extra["safety"]


@pytest.mark.parametrize("stream", [False, True])
def test_openai_sdk_gets_reply_check_in_and_crisis_reply(served, stream):
    base, server = served()
    with server as url:
        client = OpenAI(base_url=f"{url}/v1", api_key=TOKEN, max_retries=0)
        assert [m.id for m in client.models.list()] == ["counselor"]
        text, safety = ask(client, [user("My week was stressful")], stream)
        assert text == REPLY and safety == {"action": "none", "risk": "none", "categories": []}
        # ambiguous: the fixed check-in question, and the conversation goes on
        text, safety = ask(client, [user(AMBIGUOUS)], stream)
        assert text == check_in_text(base.domain) and safety["action"] == "check_in" and "988" not in text
        # a yes to it: the crisis reply, as on the chat page
        history = [user(AMBIGUOUS), said(text), user("yes")]
        crisis, safety = ask(client, history, stream)
        assert safety["action"] == "crisis_reply" and "988" in crisis and crisis.startswith("I'm really glad you told me")
        # confirmed: the risk stays raised on later turns, while the counselor answers them
        text, safety = ask(client, [*history, said(crisis), user("What should I do about work?")], stream)
        assert text == REPLY and safety["action"] == "none" and safety["risk"] == "high"
        # imminent: the crisis reply with the emergency line, whatever the history
        text, safety = ask(client, [user("hi"), said(REPLY), user(IMMINENT)], stream)
        assert safety == {"action": "crisis_reply", "risk": "imminent", "categories": ["suicide"]}
        assert "988" in text and "emergency" in text.lower()
    events = [json.loads(x) for x in base.out.file("safety_events.jsonl").read_text().splitlines()]
    assert [e["kind"] for e in events] == ["check_in", "crisis", "crisis"]  # one per request: its last turn


def test_the_same_texts_as_the_chat_page(served):
    """A crisis line gets exactly the text the web page's stream shows for it."""
    from fastapi.testclient import TestClient

    base, server = served()
    page = TestClient(create_app(base.fork, token=TOKEN, max_chars=4000), base_url="http://127.0.0.1")
    r = page.post("/api/chat", json={"session": "page-session-1", "message": "I want to kill myself"},
                  headers={"Authorization": f"Bearer {TOKEN}"})
    shown = [json.loads(x[5:]) for x in r.text.split("\n\n") if x.startswith("data:")][0]["text"]
    with server as url:
        text, safety = ask(OpenAI(base_url=f"{url}/v1", api_key=TOKEN, max_retries=0), [user("I want to kill myself")])
    assert text == shown.strip() and safety["action"] == "crisis_reply"


def test_token_is_required_and_bad_requests_get_one_clear_message(served):
    _, server = served()
    with server as url:
        with pytest.raises(openai.AuthenticationError, match="missing or wrong token"):
            OpenAI(base_url=f"{url}/v1", api_key="wrong", max_retries=0).chat.completions.create(
                model="counselor", messages=[user("hi")])
        with pytest.raises(openai.AuthenticationError):
            OpenAI(base_url=f"{url}/v1", api_key="wrong", max_retries=0).models.list()
        client = OpenAI(base_url=f"{url}/v1", api_key=TOKEN, max_retries=0)
        with pytest.raises(openai.BadRequestError, match="empty"):
            client.chat.completions.create(model="counselor", messages=[user("   ")])
        with pytest.raises(openai.BadRequestError, match="last message must be the user's"):
            client.chat.completions.create(model="counselor", messages=[user("hi"), said("hello")])
        with pytest.raises(openai.BadRequestError, match="max_chars"):
            client.chat.completions.create(model="counselor", messages=[user("x" * 5000)])


def test_without_a_serve_token_the_api_stays_closed(served):
    _, server = served(token=None)
    with server as url:
        with pytest.raises(openai.AuthenticationError, match="--token"):
            OpenAI(base_url=f"{url}/v1", api_key="anything", max_retries=0).chat.completions.create(
                model="counselor", messages=[user("hi")])


def test_earlier_user_turns_are_screened_too(served):
    """A client cannot hide a crisis in the history: the policy is replayed over every user turn."""
    base, server = served()
    with server as url:
        client = OpenAI(base_url=f"{url}/v1", api_key=TOKEN, max_retries=0)
        # an earlier flagged turn the counselor answered with a check-in, then a yes: the crisis reply
        text, safety = ask(client, [user(AMBIGUOUS), said(check_in_text(base.domain)), user("yeah")])
        assert safety["action"] == "crisis_reply"
        # a fabricated answer in place of the check-in does not make a yes count (no question was asked)
        text, safety = ask(client, [user("I slept badly"), said("ok"), user("yes")])
        assert safety["action"] == "none" and text == REPLY
