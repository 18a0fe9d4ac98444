"""One counselor conversation with the safety layer: the engine behind `chat` and `serve`.

Input: user texts, one per turn. Output: a stream of `ChatEvent`s per turn (safety text,
reply pieces, done/error), the history as a `Session` record, written only when the user asks
(`save()`: /save, the Save button) and scrubbed first, to runs/<name>/chat/sessions.jsonl, and
`SafetyEvent`s (runs/<name>/chat/safety_events.jsonl; evidence spans only). The chat folder is
0700 and its files 0600. With `conversations.keep` on, each reply is also kept, scrubbed, in
runs/<name>/conversations/ (hybridtune.app.conversations) unless the user opts the conversation
out (`engine.set_keep(False)`); an opted-out conversation is never written anywhere.

    engine = open_engine(cfg, variant="hybrid")        # a registered variant or the counselor role
    async for ev in engine.turn("I can't sleep"):
        print(ev.text, end="")
    engine.save()

Every user turn is screened first by the layered screen (hybridtune.safety.screen: rules,
learned layer, provider layers and rubric as configured). At `safety.crisis_level` the
counselor's reply is replaced by, or prefixed with, the fixed safe response. The history
sent to the model is trimmed from the oldest turns to fit the endpoint's context window.
"""
from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel

from ..config import ExperimentConfig
from ..context import open_run
from ..domain import Domain
from ..errors import UserError
from ..llm import LLM, LLMPool
from ..records import Message, Session, stable_id
from ..registry import counselor_llm, load_registry
from ..safety.policy import events_for, is_crisis, log_event, safe_response
from ..safety.rules import RiskResult
from ..safety.screen import Screener, build_screener, follow_up, validate_text
from ..store import StageDir
from .conversations import ConversationLog, privacy_scrubber

if TYPE_CHECKING:
    from ..real.pii import Scrubber

CHARS_PER_TOKEN = 3.0  # conservative for English BPE vocabularies: over-estimate, never overflow


class ChatEvent(BaseModel):
    type: Literal["safety", "token", "done", "error"]
    text: str = ""
    risk: str | None = None
    categories: list[str] = []
    index: int | None = None  # done: the reply's message index (what feedback refers to)
    kept: bool | None = None  # done: whether the conversation is being kept
    cut: bool | None = None  # done: the reply stopped mid-sentence (the length limit, max_tokens)


SENTENCE_END = re.compile(r"""[.!?…](["'”’)\]*_]*)\s*$""")


def unfinished(reply: str) -> bool:
    """Whether a reply stops mid-sentence (streams carry no finish reason; this is what the reader sees)."""
    return bool(reply.strip()) and not SENTENCE_END.search(reply)


def estimate_tokens(text: str) -> int:
    return int(len(text) / CHARS_PER_TOKEN) + 4  # + per-message template overhead


@dataclass
class ChatEngine:
    cfg: ExperimentConfig
    counselor: LLM
    domain: Domain
    out: StageDir  # runs/<name>/chat/
    screener: Screener = field(default_factory=Screener)  # built once per engine, shared by its forks
    variant: str = "counselor"
    model: str = ""  # what answers, in words: the model, and its adapter for a trained variant
    messages: list[Message] = field(default_factory=list)
    turn_risks: list[dict] = field(default_factory=list)
    started: float = field(default_factory=time.time)
    saved_len: int = 0
    last_risk: RiskResult | None = None  # the previous user turn's verdict (answers to the safety question)
    log: ConversationLog | None = None  # set when conversations.keep is on
    keep: bool = True  # this conversation's choice (the user can opt out)
    kept_from: int = 0  # after an opt-out and back in, only messages from here on may be kept
    surface: str = "chat"
    _scrubber: Scrubber | None = None

    @property
    def who(self) -> str:
        """The line that tells the user whom they talk to."""
        return f"variant {self.variant}, model {self.model or self.counselor.model}"

    @property
    def system_prompt(self) -> str:
        return (self.cfg.system_prompt or self.domain.system_prompt).strip()

    def budget(self) -> int:
        """Prompt tokens we may send: the context window minus the reply's max_tokens."""
        n_ctx = self.counselor.backend.endpoint.n_ctx
        return max(256, n_ctx - self.counselor.cfg.max_tokens - 64)

    def context(self) -> list[dict[str, str]]:
        """System prompt + the most recent turns that fit the budget (the last user turn always)."""
        system = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        left = self.budget() - sum(estimate_tokens(m["content"]) for m in system)
        kept: list[dict[str, str]] = []
        for m in reversed(self.messages):
            cost = estimate_tokens(m.content)
            if kept and cost > left:
                break
            kept.append({"role": m.role, "content": m.content})
            left -= cost
        kept.reverse()
        while kept and kept[0]["role"] != "user":  # chat templates expect user first after system
            kept.pop(0)
        return system + kept

    async def check(self, text: str) -> RiskResult:
        validate_text(text, self.cfg.safety.max_chars)  # BadText -> caller shows the message
        return await self.screener.screen(text)

    async def turn(self, text: str) -> AsyncIterator[ChatEvent]:
        """Screen, answer (streamed) and record one user turn."""
        risk = follow_up(self.last_risk, text, await self.check(text))
        self.last_risk = risk
        self.messages.append(Message(role="user", content=text))
        index = len(self.messages) - 1
        self.turn_risks.append({"index": index, "risk": risk.risk, "categories": risk.categories, "source": risk.source})
        for ev in events_for(risk, self.cfg.safety, "chat", ref=self.session_id):
            log_event(self.out.file("safety_events.jsonl"), ev)
        shown = ""
        crisis = is_crisis(risk, self.cfg.safety)
        if crisis:
            shown = safe_response(risk, self.cfg.safety, self.domain)
            yield ChatEvent(type="safety", text=shown, risk=risk.risk, categories=risk.categories)
        if not crisis or self.cfg.safety.response_mode == "prefix":
            reply = ""
            try:
                async for piece in self.counselor.stream(self.context()):
                    reply += piece
                    yield ChatEvent(type="token", text=piece)
            except Exception as e:  # a failing model must not end the conversation
                yield ChatEvent(type="error", text=f"the counselor model failed ({type(e).__name__}); try again")
            shown = f"{shown}\n\n{reply.strip()}" if shown else reply.strip()
        if shown:
            self.messages.append(Message(role="assistant", content=shown))
        else:  # keep user/assistant alternation for the chat template
            self.messages.pop()
        if self.kept and shown:  # scrubbing loads spaCy and takes a moment: off the event loop
            try:
                await asyncio.to_thread(self.log.save, self, self.surface)
            except Exception as e:  # keeping is a side duty: the conversation goes on, unkept text is never written
                yield ChatEvent(type="error", text=f"this reply could not be kept ({type(e).__name__})")
        yield ChatEvent(type="done", risk=risk.risk, categories=risk.categories,
                        index=len(self.messages) - 1 if shown else None, kept=self.kept,
                        cut=bool(shown) and unfinished(shown))

    @property
    def kept(self) -> bool:
        return self.log is not None and self.keep

    @property
    def opted_out(self) -> bool:
        return self.log is not None and not self.keep

    def set_keep(self, keep: bool) -> None:
        """The user's per-conversation choice; opting out deletes what was kept of it, opting back
        in keeps only what is said from now on."""
        if self.log is None or keep == self.keep:
            self.keep = keep
            return
        self.keep = keep
        if keep:
            self.kept_from = len(self.messages)
            self.log.rejoin(self.session_id)
        else:
            self.log.forget(self.session_id)

    def rate(self, index: int, rating: str | None, comment: str = ""):
        """Feedback on reply `index` of this conversation (kept conversations only)."""
        if not self.kept:
            raise UserError("feedback is kept only with conversations kept (conversations.keep) and not opted out")
        if not (self.kept_from <= index < len(self.messages) and self.messages[index].role == "assistant"):
            raise UserError(f"reply {index}: no kept counselor reply at that position")
        if len(comment) > self.cfg.conversations.max_comment_chars:
            raise UserError(f"comment longer than {self.cfg.conversations.max_comment_chars} characters; shorten it")
        return self.log.feedback(self.session_id, index - self.kept_from, rating, comment)

    @property
    def scrubber(self) -> Scrubber:
        if self._scrubber is None:
            self._scrubber = self.log.scrubber if self.log is not None else privacy_scrubber(self.cfg, self.domain)
        return self._scrubber

    @property
    def session_id(self) -> str:
        return stable_id("chat", self.variant, self.started)

    def session(self) -> Session:
        """The conversation so far with every turn scrubbed (the system prompt and the fixed safety
        wording are left as they are)."""
        texts, _ = self.scrubber.scrub_session([m.content for m in self.messages], key=self.session_id)
        scrubbed = [Message(role=m.role, content=t) for m, t in zip(self.messages, texts, strict=True)]
        msgs = ([Message(role="system", content=self.system_prompt)] if self.system_prompt else []) + scrubbed
        return Session(
            id=stable_id("chat", self.variant, self.started, len(self.messages)), source="simulated", messages=msgs,
            meta={"kind": "chat", "chat_id": self.session_id, "variant": self.variant, "started": self.started,
                  "saved": time.time(), "safety": self.turn_risks},
        )

    def save(self) -> Session | None:
        """The user asked to save: append the scrubbed conversation so far (a snapshot; later saves
        get a new id) to chat/sessions.jsonl. An opted-out conversation is never saved."""
        if self.opted_out:
            raise UserError("this conversation is opted out, so nothing of it is saved; /keep (or tick "
                            "\"Keep this conversation\") to keep what you say from now on")
        if not self.messages:
            return None
        s = self.session()
        self.out.append("sessions.jsonl", s)
        self.saved_len = len(self.messages)
        return s

    @property
    def unsaved(self) -> bool:
        return len(self.messages) != self.saved_len

    def fork(self) -> ChatEngine:
        """A new, empty conversation sharing this engine's models (one per web session)."""
        return ChatEngine(cfg=self.cfg, counselor=self.counselor, domain=self.domain, out=self.out,
                          screener=self.screener, variant=self.variant, model=self.model, log=self.log,
                          surface=self.surface, _scrubber=self._scrubber)

    def reset(self) -> None:
        self.messages, self.turn_risks, self.started, self.saved_len = [], [], time.time(), 0
        self.last_risk, self.keep, self.kept_from = None, True, 0


def open_engine(cfg: ExperimentConfig, variant: str | None = None, pool: LLMPool | None = None,
                surface: str = "chat") -> ChatEngine:
    """An engine for a registered variant (runs/<name>/models.json) or, without one, the counselor role.

    No run lock is taken: chatting must not block (or be blocked by) a pipeline run.
    """
    with open_run(cfg, pool=pool, lock=False) as ctx:
        store, pool, domain = ctx.store, ctx.llms, ctx.domain
    reg = load_registry(store)
    if variant:
        if variant not in reg:
            known = ", ".join(reg) or f"none (no {store.path('models.json')}; run the train stage)"
            raise UserError(f"--variant {variant}: not registered; known variants: {known}; or omit --variant")
        llm, name = counselor_llm(ctx, reg[variant]), variant
        e = reg[variant]
        model = f"{e.model} + LoRA adapter {e.adapter}" if e.adapter else e.model
    else:
        llm, name = ctx.llm("counselor"), "counselor"
        model = llm.model or ""
    screener = build_screener(cfg, pool, domain)
    if cfg.safety.learned:
        screener.cpu(["warm-up"])  # load the embedder now, not on the first person's turn
    return ChatEngine(cfg=cfg, counselor=llm, domain=domain, out=store.stage("chat", private=True), screener=screener,
                      variant=name, model=model, log=ConversationLog.open(cfg, domain), surface=surface)
