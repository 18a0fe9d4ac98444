"""PII as people type it in chat (the kept-conversations issue, item 7): lowercase names and
schools, spelled-out e-mail addresses, handles, German streets with a post code, UK post codes;
and the ordinary words that look like them stay."""
from __future__ import annotations

import logging

import pytest

from hybridtune.real.config import PiiConfig
from hybridtune.real.pii import Scrubber


@pytest.fixture(scope="module")
def scrub():
    logging.disable(logging.WARNING)
    return Scrubber(PiiConfig(ner=False)).scrub_text  # the informal recognizers are patterns: no NER needed


@pytest.mark.parametrize("text,planted", [
    ("i talked to sarah connor yesterday", ["sarah", "connor"]),
    ("sarah said it was fine", ["sarah"]),
    ("write to sarah dot connor at gmail dot com please", ["connor", "gmail"]),
    ("dm me @jess_miller_89 on insta", ["jess_miller_89"]),
    ("my kid goes to lincoln elementary", ["lincoln"]),
    ("I live at Müllerstraße 12, 10115 now", ["Müllerstraße", "10115"]),
    ("the post code is SW1A 1AA", ["SW1A"]),
])
def test_informal_pii_is_replaced(scrub, text, planted):
    out = scrub(text)
    assert not [p for p in planted if p in out], out


@pytest.mark.parametrize("text", ["I was frank with her", "my high school was rough", "I went to community college",
                                  "we met at the university", "I sent an email at nine"])
def test_ordinary_words_stay(scrub, text):
    assert scrub(text) == text
