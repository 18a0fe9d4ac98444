"""Safety policy: what the counselor does with each user turn (none, check-in, crisis reply), and the event log.

Input: a `RiskResult` for the user's turn, the conversation's `SafetyState` and the `safety`
config. Output: a `Decision` with the turn's action (`none`, `check_in`: the fixed caring
question of prompts/safety_check_in.yaml, or `crisis_reply`: the safe response, fixed,
reviewed wording from prompts/safety_response.yaml with the locale's crisis resources from
resources.yaml) and `SafetyEvent` records appended to a JSONL log.

    d = decide(text, result, cfg.safety, state)             # the action, and the conversation's next state
    if d.action == "crisis_reply":
        reply = safe_response(d.result, cfg.safety, domain)  # replaces or prefixes the counselor's reply
    elif d.action == "check_in":
        reply = check_in_text(domain)                        # the fixed question; the conversation goes on
    for ev in events_for(d.result, cfg.safety, "chat", action=d.action):
        log_event(path, ev)
    state = d.state

Both texts are deliberately not model-generated: a fine-tuned 135M model (or any model)
must not be what stands between a person in crisis and a helpline number. Chat, serve
(its web page and /v1/chat/completions) and `safety check` all decide with `decide`.
"""
from __future__ import annotations

import re
import time
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..domain import Domain, load_domain, read_yaml
from ..errors import UserError, first_error
from ..records import Record, stable_id
from ..store import dump_json, open_append
from .config import SafetyConfig
from .normalize import clean
from .rules import RISK_ORDER, RiskResult, risk_cue

RESOURCES_FILE = Path(__file__).parent / "resources.yaml"


class Resource(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    contact: str
    url: str | None = None
    categories: list[str] = Field(default_factory=list)  # empty = for every crisis


class Locale(BaseModel):
    model_config = ConfigDict(extra="forbid")
    emergency: str
    resources: list[Resource]


class Resources(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int | str = 1
    emergency_note: str
    locales: dict[str, Locale]


@lru_cache(maxsize=8)
def _load(path: str) -> Resources:
    data = read_yaml(Path(path))
    try:
        res = Resources.model_validate(data)
    except ValidationError as e:
        raise UserError(f"{path}: {first_error(e)}; see hybridtune/safety/resources.yaml") from None
    if "INTL" not in res.locales:
        raise UserError(f"{path}: locales.INTL missing; add an international fallback entry")
    return res


def load_resources(cfg: SafetyConfig) -> Resources:
    return _load(str(Path(cfg.resources_file).expanduser() if cfg.resources_file else RESOURCES_FILE))


def resources_for(cfg: SafetyConfig, categories: list[str]) -> tuple[Locale, list[Resource]]:
    """The locale's entry (INTL when unknown) and the resources fitting these categories."""
    res = load_resources(cfg)
    loc = res.locales.get(cfg.locale.upper()) or res.locales["INTL"]
    chosen = [r for r in loc.resources if not r.categories or set(r.categories) & set(categories)]
    return loc, chosen or loc.resources


def is_crisis(result: RiskResult, cfg: SafetyConfig) -> bool:
    return RISK_ORDER[result.risk] >= RISK_ORDER[cfg.crisis_level]


Action = Literal["none", "check_in", "crisis_reply"]


class SafetyState(BaseModel):
    """One conversation's safety memory, updated after every user turn (`Decision.state`)."""

    confirmed: bool = False  # the person said yes to the check-in: risk stays raised from then on
    asked: bool = False  # the counselor's last turn was the check-in question
    last: RiskResult | None = None  # the previous turn's verdict when it got the crisis reply (whose question a yes answers)


class Decision(BaseModel):
    """What the counselor does with one user turn: the action, the turn's verdict read in the
    conversation's context, why, and the conversation's safety state after it."""

    action: Action
    result: RiskResult
    reason: str
    state: SafetyState


def _rule_match(r: RiskResult, cfg: SafetyConfig) -> bool:
    """The phrase rules alone reached the crisis level (their patterns are explicit statements)."""
    rules = (r.model_extra or {}).get("rules_risk", r.risk if r.source == "rules" else "none")
    return RISK_ORDER[rules] >= RISK_ORDER[cfg.crisis_level]


def _weak(text: str, r: RiskResult, cfg: SafetyConfig) -> bool:
    """A flag of the learned layer alone that counts as no flag (no check-in): on a short turn
    (`safety.check_in_short_words`) one that names no risk to the speaker (rules.risk_cue); on a longer one, one
    under `safety.check_in_min_score` that names none. The head's false alarms look so: everyday turns that name
    no risk ("I didn't go. I got to the door and turned around.", "It's been six months since my mum died");
    on the training side of the Reddit users, the at-risk users reached only by such short turns were reached by
    posts written to support someone else."""
    p = r.scores.get("learned")
    if (p is None or r.source != "learned" or r.risk == "imminent" or _rule_match(r, cfg)
            or (r.model_extra or {}).get("carried_over") or risk_cue(text)):
        return False
    return len(clean(text).split()) <= cfg.check_in_short_words or p < cfg.check_in_min_score


def _raised(r: RiskResult, why: str) -> RiskResult:
    """`r` at least `high` for suicide: a confirmed risk the turn itself need not repeat."""
    if RISK_ORDER[r.risk] >= RISK_ORDER["high"]:
        return r
    return r.model_copy(update={"risk": "high", "categories": [*r.categories, *(["suicide"] if "suicide" not in r.categories else [])],
                                "settled": True, "carried_over": True, "evidence": [*r.evidence, why]})


def decide(text: str, result: RiskResult, cfg: SafetyConfig, state: SafetyState | None = None) -> Decision:
    """Detect, confirm, guide: the action for one user turn given the screen's verdict and the conversation so far.

    crisis_reply (the fixed safe response): imminent risk, a rule match, a yes to the check-in, an
    affirmative answer to the safe response's own question, a new flag once risk is confirmed, or a
    second flag straight after the check-in. check_in (the fixed question): a flag at the crisis level
    that none of those backs, i.e. the learned or another statistical layer is the only one that saw
    it and there is no evidence of imminence. Once confirmed, every later turn's risk is at least high.
    With `safety.check_in` off, every flag at the crisis level gets the crisis reply.
    """
    from .answers import affirmative, follow_up

    st = state or SafetyState()
    r = result if st.asked else follow_up(st.last, text, result)  # follow_up reads answers to "Are you safe right now?"
    flagged = is_crisis(r, cfg) and not _weak(text, r, cfg)
    if st.asked and affirmative(text, "check_in"):
        action, reason, r = "crisis_reply", "yes to the check-in", _raised(r, "yes to the check-in: " + text.strip()[:60])
    elif st.confirmed:
        action, reason = ("crisis_reply", "a new flag after confirmed risk") if flagged else ("none", "confirmed risk, no new flag")
        r = _raised(r, "risk confirmed earlier in the conversation")
    elif not flagged:
        action, reason = "none", ("a learned-only flag on a short turn or under safety.check_in_min_score, no risk word"
                                  if is_crisis(r, cfg) else "below the crisis level")
    elif r.risk == "imminent":
        action, reason = "crisis_reply", "imminent"
    elif _rule_match(r, cfg):
        action, reason = "crisis_reply", "rule match"
    elif (r.model_extra or {}).get("carried_over"):
        action, reason = "crisis_reply", "affirmative answer to the safety question"
    elif st.asked:
        action, reason = "crisis_reply", "flagged again right after the check-in"
    elif not cfg.check_in:
        action, reason = "crisis_reply", "flag at the crisis level (check-in off)"
    else:
        action, reason = "check_in", "flagged by the statistical layers only, no evidence of imminence"
    confirmed = st.confirmed or reason in ("yes to the check-in", "affirmative answer to the safety question")
    return Decision(action=action, result=r, reason=reason,
                    state=SafetyState(confirmed=confirmed, asked=action == "check_in",
                                      last=r if action == "crisis_reply" else None))


ACTION_ORDER: dict[str, int] = {"none": 0, "check_in": 1, "crisis_reply": 2}


def transcript_actions(texts: list[str], results: list[RiskResult], cfg: SafetyConfig) -> list[Action]:
    """The action `decide` gives each user turn of a recorded transcript, each read as a first turn:
    its counselor never asked the check-in, so no later turn is an answer to one. A session is a crisis session
    (sent to review at ingest and curation) only when one turn gets `crisis_reply` (imminent, a rule match);
    a flag of the statistical layers alone is a `check_in`, recorded but not flagged."""
    return [decide(t, r, cfg).action for t, r in zip(texts, results, strict=True)]


def check_in_text(domain: Domain | None = None) -> str:
    """The fixed check-in question (the pack's prompts/safety_check_in.yaml)."""
    return (domain or load_domain("cbt")).prompt("safety_check_in").render()[-1]["content"].strip()


def safe_response(result: RiskResult, cfg: SafetyConfig, domain: Domain | None = None) -> str:
    """The caring, resource-giving reply for a crisis turn (deterministic)."""
    loc, chosen = resources_for(cfg, result.categories)
    tpl = (domain or load_domain("cbt")).prompt("safety_response")
    msgs = tpl.render(
        risk=result.risk, categories=result.categories, resources=[r.model_dump() for r in chosen],
        emergency=loc.emergency, emergency_note=load_resources(cfg).emergency_note,
    )
    return msgs[-1]["content"]


def fixed_texts(cfg: SafetyConfig, domain: Domain | None = None) -> list[str]:
    """Every line of fixed safety wording this domain can show (the check-in question, and the safe
    response in every locale and for every risk level and category): what the PII scrubber must never
    rewrite (a kept conversation or an ingested transcript that carries a crisis reply must keep the
    real helpline numbers)."""
    from .rules import CATEGORIES

    lines: set[str] = {x.strip() for x in check_in_text(domain).splitlines()}
    for locale in load_resources(cfg).locales:
        loc_cfg = cfg.model_copy(update={"locale": locale})
        for risk in RISK_ORDER:
            for cats in ([], *([c] for c in CATEGORIES)):
                text = safe_response(RiskResult(risk=risk, categories=cats), loc_cfg, domain)
                lines.update(x.strip() for x in text.splitlines())
    return sorted((x for x in lines if len(x) >= 4), key=len, reverse=True)


def apply_policy(reply: str, result: RiskResult, cfg: SafetyConfig, domain: Domain | None = None) -> str:
    """The reply to show: unchanged, replaced, or prefixed (config `safety.response_mode`)."""
    if not is_crisis(result, cfg):
        return reply
    safe = safe_response(result, cfg, domain)
    return safe if cfg.response_mode == "replace" or not reply.strip() else f"{safe}\n\n{reply}"


_CONTACT = re.compile(r"\S+@\S+|https?://\S+|\+?\d[\d\s().-]{5,}\d")


def scrub_span(span: str) -> str:
    """Evidence spans are short risk phrases; still mask anything that looks like contact data."""
    return _CONTACT.sub("[contact]", span)[:120]


class SafetyEvent(Record):
    """One logged safety event. Holds the matched evidence spans, never the whole message."""

    time: float
    kind: Literal["crisis", "check_in", "degraded", "flag"]
    where: str  # chat | serve | check | <stage>
    risk: str
    categories: list[str] = Field(default_factory=list)
    evidence: list[str] = Field(default_factory=list)
    source: str = "rules"
    ref: str = ""  # session id / input id
    detail: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def of(cls, result: RiskResult, kind: str, where: str, ref: str = "", **detail: Any) -> SafetyEvent:
        t = time.time()
        extra = {k: v for k, v in (result.model_extra or {}).items()
                 if k in ("error", "degraded", "model_risk", "model_confidence")}
        extra.update(layers=result.layers, scores=result.scores)
        return cls(id=stable_id("safety", where, ref, t), time=t, kind=kind, where=where, risk=result.risk,
                   categories=result.categories, evidence=[scrub_span(e) for e in result.evidence], source=result.source,
                   ref=ref, detail={**extra, **detail})


def events_for(result: RiskResult, cfg: SafetyConfig, where: str, ref: str = "",
               action: Action | None = None) -> list[SafetyEvent]:
    """The events one screened turn produces (crisis or check_in, and/or degraded); `action` as `decide` gave it."""
    out = []
    if action == "check_in":
        out.append(SafetyEvent.of(result, "check_in", where, ref, action=action))
    elif is_crisis(result, cfg) if action is None else action == "crisis_reply":
        out.append(SafetyEvent.of(result, "crisis", where, ref, response_mode=cfg.response_mode, locale=cfg.locale,
                                  **({"action": action} if action else {})))
    if result.source == "degraded":
        out.append(SafetyEvent.of(result, "degraded", where, ref))
    return out


def log_event(path: Path, event: SafetyEvent) -> None:
    """Append one event to a JSONL log (created with its folder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open_append(path) as f:  # owner-only: it says who was at risk when
        f.write(dump_json(event) + "\n")
