"""The imminence check: `imminent` needs evidence of a plan, means at hand, a time tied to the act,
an act in progress or a farewell in the text itself.

Input: one user text and the screen's `RiskResult` for it. Output: the result with its level
settled: a learned, provider or rubric `imminent` with no such evidence becomes `high` (future
tense, medication and errands alone are not evidence: "My dad's birthday is tomorrow.", "The doc
said I've got to take pills for the rest of my life."), and a `high` with evidence becomes
`imminent` ("I just want it all to end tonight. I have the pills ready."). The phrase rules'
own imminent patterns already encode such evidence, so a rules `imminent` stands.

    from hybridtune.safety.imminence import evidence, settle
    evidence("I have the pills ready")        # -> ["have the pills ready"]
    settle(text, result)                      # the result with `imminence` noted when it changed

The check reads the text after `rules.normalize` (Unicode-clean, lower case), sentence by
sentence, so a time in one sentence and a risk word in an unrelated one do not combine.
"""
from __future__ import annotations

import re

from .rules import RiskResult, normalize

_DET = r"(?:(?:the|my|a|an|some|enough|all|all of|all the|these|those|his|her|mum's|mom's|dad's|\d+|a few|a lot of|plenty of|a bunch of|a bottle of|a box of|a pack of|sleeping|extra|spare|old)\s+)"
_MEANS = (r"(?:pills?|tablets?|meds|medication|painkillers|paracetamol|tylenol|sleeping pills|antidepressants|rope|noose|"
          r"belt|cord|gun|pistol|rifle|shotgun|bullets?|razors?|blades?|knife|knives|charcoal|poison|bleach|antifreeze|"
          r"helium|exit bag|ladder)")
_CUE = (r"(?:end(?:ing)? (?:it|it all|things|everything|my life)|(?:it|this|everything|things|it all|my life) (?:to )?end|"
        r"die|dying|dead|kill(?:ing)? myself|suicide|do it|go through with it|jump|overdose|take them all|"
        r"take all of them|not (?:be )?(?:here|around|alive)|be gone|won'?t wake up|hang myself|slit|cut (?:deep|my wrists?))")
_TIME = (r"(?:tonight|today|right now|this (?:evening|afternoon|morning|weekend|week)|tomorrow(?: night| morning)?|"
         r"in (?:an|a few|\d+|a couple of) (?:hours?|minutes?|days?)|before (?:morning|the weekend|sunrise|dawn)|"
         r"when (?:everyone|they|he|she)(?:'s| is| are)? (?:asleep|gone|out|at work)|on (?:friday|saturday|sunday|monday|"
         r"tuesday|wednesday|thursday)|(?:at|by) (?:midnight|\d{1,2}(?::\d\d)?\s*(?:am|pm)?))")

KINDS: dict[str, list[str]] = {
    "plan": [
        r"\b(?:have|got|made|making|with) (?:a|my|the) plan\b(?! (?:for|to (?:get|go|see|stop|quit|cut|eat|sleep|call|study|work|save|move|visit|apply)))",
        r"\bplanned (?:it|it all|it out|everything|how|when|where|the day)\b",
        r"\bknow (?:exactly )?(?:how|when|where) (?:i'?d|i would|i'?ll|i will|i'?m going to|to) (?:do it|end it|kill myself|die)\b",
        r"\b(?:decided|worked out|figured out|know exactly|picked) (?:how|when|where|the (?:day|date|place|spot|method))\b",
        r"\b(?:suicide|goodbye) (?:notes?|letters?)\b|\b(?:wrote|written|writing|left) (?:my |a |the )?(?:notes?|letters?) (?:to|for) (?:my|everyone|them)\b",
        r"\bgiv(?:e|en|ing|ven) away (?:my|all my|all of my|the rest of my) (?:things|stuff|belongings|possessions|cat|dog|pets?)\b",
        r"\b(?:put|putting|got|getting) my affairs in order\b|\b(?:wrote|updated|made) my will\b|\bsaid (?:my )?goodbyes?\b",
    ],
    "means": [
        rf"\b(?:i have|i've got|i got|i've|i bought|i've bought|bought|saved up|stockpiled|stockpiling|collected|collecting|"
        rf"hoarded|hoarding|holding|sitting here with|i'm holding|got hold of|here with)\s+(?!to\b){_DET}{{0,3}}{_MEANS}\b",
        rf"\b{_MEANS}\s+(?:are|is|'s|'re)?\s*(?:ready|here|next to me|beside me|in front of me|in my (?:hand|hands|pocket|bag)|"
        rf"lined up|counted out|set up|tied)\b",
        r"\b(?:tied|tying|hung|hanging up) (?:a|the) (?:rope|noose|belt|cord)\b|\bloaded (?:the|my|a) gun\b",
    ],
    "time": [rf"\b{_CUE}\b.{{0,60}}\b{_TIME}\b", rf"\b{_TIME}\b.{{0,60}}\b{_CUE}\b",
             r"\btonight'?s the night\b|\btoday'?s the day\b|\bthis is it\b"],
    "act": [
        r"\bi (?:just |already |have just |'ve just |'ve already )?(?:took|taken|swallowed|drank|overdosed)\b.{0,40}\b(?:pills?|tablets?|all of|everything|the bottle|the rest|bleach|poison)\b",
        r"\b(?:i'?m|i am) (?:standing|sitting|up) (?:on|at) (?:the )?(?:edge|ledge|bridge|roof|tracks|platform|cliff|railing)\b",
        r"\b(?:i'?m|i am) (?:cutting|bleeding|overdosing|hanging)\b|\b(?:rope|noose|belt) (?:is )?(?:around my neck|up|tied)\b",
    ],
    "farewell": [
        r"\bthis is (?:my )?(?:goodbye|good bye|last (?:message|post|note))\b|\bgoodbye (?:everyone|all|world|forever)\b",
        r"\bby the time (?:you|anyone|someone) (?:read|reads|see|sees) this\b|\bwon'?t be (?:here|around|alive) (?:tomorrow|much longer|by)\b",
        r"\b(?:my )?last (?:night|day|message|post) (?:alive|on earth|here)\b",
    ],
}
_COMPILED = {kind: [re.compile(p) for p in pats] for kind, pats in KINDS.items()}
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")


def evidence(text: str) -> list[str]:
    """`kind: span` for each piece of evidence of imminence in the text (empty: none)."""
    out: list[str] = []
    for sentence in _SENTENCE.split(normalize(text)):
        for kind, rxs in _COMPILED.items():
            for rx in rxs:
                m = rx.search(sentence)
                if m and f"{kind}: {m.group(0).strip()}" not in out:
                    out.append(f"{kind}: {m.group(0).strip()}")
    return out


def settle(text: str, r: RiskResult) -> RiskResult:
    """`r` with `imminent` kept, lowered or raised by the evidence in `text` (see the module docstring)."""
    if r.risk not in ("high", "imminent") or (r.risk == "imminent" and r.source == "rules"):
        return r
    found = evidence(text)
    if r.risk == "imminent" and not found:
        return r.model_copy(update={"risk": "high", "imminence": "lowered: no plan, means, time, act or farewell in the text"})
    if r.risk == "high" and found:
        return r.model_copy(update={"risk": "imminent", "imminence": "raised: " + "; ".join(found)[:200],
                                    "evidence": [*r.evidence, *(f.split(": ", 1)[1] for f in found)][:10]})
    return r
