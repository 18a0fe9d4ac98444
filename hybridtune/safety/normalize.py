"""Text normalisation before every layer of the crisis screen (rules, learned layer, providers, rubric).

Input: one user text. Output: the same text as the layers should read it: Unicode NFKC
(full-width "Ｉ　ｗａｎｔ" -> "I want", ligatures, compatibility forms), format characters
removed (zero-width spaces and joiners, soft hyphens, word joiners, BOM) and bidirectional
controls removed (LRE/RLE/PDF/LRO/RLO, LRI/RLI/FSI/PDI, LRM/RLM/ALM), and Latin look-alike
letters from Cyrillic, Greek and other scripts mapped to the Latin letter they imitate.

    from hybridtune.safety.normalize import clean
    clean("I\u200b want to k\u0456ll myself")   # -> "I want to kill myself"

Idempotent (clean(clean(t)) == clean(t)) and cheap (a few microseconds per turn). It changes
only what the screen reads; the conversation keeps the user's own text.
"""
from __future__ import annotations

import re
import unicodedata

# Letters of other scripts drawn like Latin ones (the subset of Unicode's confusables.txt that maps a
# single letter to a single ASCII letter, for the scripts seen in homoglyph tricks). Kept here rather
# than a package: these ~60 letters are the whole need, and the package tables map to skeletons that
# are not always Latin.
CONFUSABLES: dict[str, str] = {
    # Cyrillic
    "а": "a", "в": "b", "с": "c", "ԁ": "d", "е": "e", "һ": "h", "і": "i", "ј": "j", "к": "k", "ӏ": "l",
    "м": "m", "н": "h", "о": "o", "р": "p", "ԛ": "q", "ѕ": "s", "т": "t", "ц": "u", "ѵ": "v", "ԝ": "w",
    "х": "x", "у": "y", "ү": "y", "ё": "e", "ї": "i",
    "А": "A", "В": "B", "С": "C", "Е": "E", "Н": "H", "І": "I", "Ј": "J", "К": "K", "М": "M", "О": "O",
    "Р": "P", "Ѕ": "S", "Т": "T", "Х": "X", "У": "Y", "Ү": "Y", "Ԁ": "D", "Ԛ": "Q", "Ԝ": "W",
    # Greek
    "α": "a", "ε": "e", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t", "υ": "u", "χ": "x",
    "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N", "Ο": "O",
    "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
    # Armenian, Latin extensions and symbols used as letters
    "օ": "o", "ս": "u", "ɑ": "a", "ı": "i", "ȷ": "j", "ℓ": "l", "ǀ": "l",
}
# Bidirectional controls (explicit embeddings, overrides, isolates and marks): invisible, they split words
# for a pattern or a tokenizer without changing what a reader sees.
BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")
_TABLE = str.maketrans({**CONFUSABLES, **dict.fromkeys(BIDI, None)})
# A right-to-left override shows its span reversed: "\u202eflesym llik\u202c" reads "kill myself" on screen.
_RLO = re.compile("\u202e([^\u202a-\u202e\u2066-\u2069]*)(?:\u202c|$)")


def _drop_format(text: str) -> str:
    """Without invisible format characters (category Cf: zero-width space/joiners, soft hyphen, BOM...)."""
    return "".join(ch for ch in text if unicodedata.category(ch) != "Cf")


def clean(text: str) -> str:
    """The text the screen reads (see the module docstring)."""
    if text.isascii():
        return text  # the common case: nothing to normalise
    t = _RLO.sub(lambda m: m.group(1)[::-1], unicodedata.normalize("NFKC", text))
    t = _drop_format(t.translate(_TABLE))
    return unicodedata.normalize("NFKC", t)
