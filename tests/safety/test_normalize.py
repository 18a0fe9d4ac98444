"""Unicode normalisation before every layer of the screen: full-width, zero-width, bidi and
look-alike-letter variants of a crisis line score exactly like the plain line (rules and the real
learned layer), and the provider layers are sent the normalised text."""
from __future__ import annotations

import asyncio

import pytest

from hybridtune.safety.config import SafetyConfig
from hybridtune.safety.learned import load_learned
from hybridtune.safety.normalize import clean
from hybridtune.safety.providers import ProviderVerdict
from hybridtune.safety.rules import rule_screen
from hybridtune.safety.screen import Screener

PLAIN = "I want to kill myself"
FULL_WIDTH = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else "\u3000" for c in PLAIN)  # Ｉ　ｗａｎｔ...
VARIANTS = {
    "full-width": FULL_WIDTH,
    "zero-width": "I want to k\u200bi\u200cl\u200dl my\u2060self\ufeff",
    "soft hyphen": "I want to kil\u00adl my\u00adself",
    "bidi marks": "I want to \u2066kill\u2069 \u200emyself\u200f",
    "bidi override": "\u202e" + PLAIN[::-1] + "\u202c",  # shown reversed, so it reads as the plain line
    "look-alike letters": "I w\u0430nt t\u043e k\u0456ll mys\u0435lf",  # Cyrillic a, o, i, e
}


def test_full_width_line_is_the_one_the_issue_reports():
    assert FULL_WIDTH == "Ｉ　ｗａｎｔ　ｔｏ　ｋｉｌｌ　ｍｙｓｅｌｆ"


@pytest.mark.parametrize("name", VARIANTS)
def test_variants_normalise_to_the_plain_line(name):
    assert clean(VARIANTS[name]) == PLAIN
    assert clean(clean(VARIANTS[name])) == clean(VARIANTS[name])


@pytest.mark.parametrize("name", VARIANTS)
def test_rules_score_variants_like_the_plain_line(name):
    plain, variant = rule_screen(PLAIN), rule_screen(VARIANTS[name])
    assert plain.risk == "high" and (variant.risk, variant.categories) == (plain.risk, plain.categories)


def test_learned_layer_scores_variants_like_the_plain_line():
    plain, *rest = load_learned().score([PLAIN, *VARIANTS.values()])
    assert all(s.p_risk == plain.p_risk and s.risk == plain.risk for s in rest), [s.p_risk for s in rest]


def test_the_whole_screen_rates_variants_like_the_plain_line():
    plain, *rest = asyncio.run(Screener(SafetyConfig()).screen_many([PLAIN, *VARIANTS.values()]))
    assert plain.is_crisis
    assert all((r.risk, r.scores) == (plain.risk, plain.scores) for r in rest)


class Recorder:
    """A provider layer that records what it was sent (the real ones are tested against the mock server)."""

    name = "recorder"

    def __init__(self):
        self.seen: list[str] = []

    async def check(self, text: str) -> ProviderVerdict:
        self.seen.append(text)
        return ProviderVerdict(layer=self.name, risk="none", score=0.0)


def test_provider_layers_are_sent_the_normalised_text():
    rec = Recorder()
    asyncio.run(Screener(SafetyConfig(learned=False), providers=[rec]).screen_many(list(VARIANTS.values())))
    assert rec.seen == [PLAIN] * len(VARIANTS)


def test_ordinary_non_latin_text_is_left_readable():
    assert clean("café, naïve, 東京") == "café, naïve, 東京"
    assert clean("plain ascii stays as is") == "plain ascii stays as is"
