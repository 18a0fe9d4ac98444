"""Fast, model-free crisis screen: curated phrase patterns with negation handling.

Input: one text (a client/user turn). Output: `RiskResult` (risk level, categories,
evidence spans, source="rules", settled = whether the rules are confident).

    from hybridtune.safety.rules import rule_screen
    rule_screen("I'm going to kill myself tonight").risk   # -> "imminent"
    rule_screen("I'm not suicidal, just tired").risk        # -> "none" (settled=False)

Levels follow a C-SSRS-like ladder: passive wish to be dead / history -> low; active
ideation, self-harm, threats, ongoing abuse -> high; plan, means, timeframe or an act in
progress -> imminent. Pure Python and a few microseconds per turn, so the real-data and
curation stages can run it on every turn. Anything the rules only half-recognise (a
negated cue, a lone risky word, a third party) comes back `settled=False` so the layered
`hybridtune.safety.screen.screen` can ask a model.
"""
from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .normalize import clean

Risk = Literal["none", "low", "high", "imminent"]
CATEGORIES = ("suicide", "self_harm", "harm_to_others", "abuse", "medical_emergency")
RISK_ORDER: dict[str, int] = {"none": 0, "low": 1, "high": 2, "imminent": 3}


class RiskResult(BaseModel):
    """The screen's verdict for one text."""

    model_config = ConfigDict(extra="allow")
    risk: Risk = "none"
    categories: list[str] = Field(default_factory=list)
    evidence: list[str] = Field(default_factory=list)  # matched spans, verbatim from the input
    source: str = "rules"  # the layer that set the level: rules | learned | moderation | guard | model; or degraded
    settled: bool = True  # True when the layers that ran are confident (no rubric model needed)
    layers: list[str] = Field(default_factory=list)  # the layers that ran, in order
    scores: dict[str, float] = Field(default_factory=dict)  # each scoring layer's score (learned: p_risk)

    @property
    def is_crisis(self) -> bool:
        return RISK_ORDER[self.risk] >= RISK_ORDER["high"]


# --- patterns -------------------------------------------------------------------------
# Each entry: (category, risk, regex). Patterns are matched per clause on normalised,
# lower-cased text. `ME` = first-person object/reflexive forms.
_ME = r"(?:myself|my self)"
_SELF_VERB = r"(?:kill|hang|shoot|drown|poison|off)"
_TIME = r"(?:tonight|today|right now|now|this (?:evening|weekend|week)|tomorrow|soon|after (?:this|you|we)|when (?:everyone|they|he|she)\b)"
_MEANS = r"(?:pills?|tablets?|meds|medication|sleeping pills|gun|rope|knife|razor|blade|bridge|ledge|roof|train tracks|overdose)"

PATTERNS: list[tuple[str, str, str]] = [
    # suicide: imminent (plan, means, timeframe, act in progress, farewell)
    ("suicide", "imminent", rf"\b(?:going to|gonna|about to|will|am going to|i'?ll|planning to|plan to|decided to|want to|wanna)\s+(?:\w+\s+){{0,2}}(?:kill|end)\s+(?:{_ME}|my life|it all)\b.{{0,40}}\b{_TIME}\b"),
    ("suicide", "imminent", rf"\b{_TIME}\b.{{0,40}}\b(?:kill|end)\s+(?:{_ME}|my life|it all)\b"),
    ("suicide", "imminent", rf"\b(?:i have|i've got|i got|i bought|i've been (?:saving|collecting|stockpiling)|i'm holding|i am holding|sitting here with|i've saved up)\s+(?:\w+\s+){{0,4}}{_MEANS}\b.{{0,60}}\b(?:kill|end|die|do it|take them all|take all of them|jump)"),
    ("suicide", "imminent", rf"\b(?:kill|end)\s+(?:{_ME}|my life|it all)\b.{{0,60}}\b(?:i have|i've got|i got|i bought|with)\s+(?:\w+\s+){{0,3}}{_MEANS}\b"),
    ("suicide", "imminent", r"\b(?:i (?:just )?took|i've (?:just )?taken|i swallowed)\s+(?:\w+\s+){0,3}(?:all|whole bottle|bottle|handful|bunch|lots?|too many|a lot)\b.{0,30}\b(?:pills?|tablets?|meds|medication|paracetamol|tylenol)"),
    ("suicide", "imminent", r"\b(?:i'?m|i am)\s+(?:standing|sitting)\s+(?:on|at)\s+(?:the\s+)?(?:edge|ledge|bridge|roof|tracks|platform)"),
    ("suicide", "imminent", r"\b(?:this is|consider this) (?:my )?(?:goodbye|good bye|last message|final message)\b|\bwrote (?:my|a) (?:suicide|goodbye) note\b|\bi'?ve written (?:my|a) (?:suicide|goodbye) note\b"),
    ("suicide", "imminent", r"\b(?:i have|i've got|i made|i've made) a plan to (?:kill|end|die)"),
    ("suicide", "imminent", rf"\b{_MEANS}\b.{{0,60}}\b(?:use (?:it|them) on myself|on myself (?:tonight|today|now))"),
    ("suicide", "imminent", r"\b(?:already |just )?(?:took|taken|swallowed) (?:\d+|dozens|a handful|a bunch|all|the rest)\b.{0,25}\b(?:pills?|tablets?|meds|antidepressants|painkillers|sleeping pills|paracetamol|tylenol|of my \w+)\b"),
    ("suicide", "imminent", r"\b(?:tablets?|pills?|meds|rope|gun|razor|blade|note|letters?)\b.{0,50}\b(?:tonight'?s the night|it'?s time|this is it|i'?m ready)\b|\b(?:i'?m|i am) (?:on|at) (?:the )?(?:roof|edge|ledge|bridge|tracks|cliff)\b.{0,40}\bjump\b"),
    ("suicide", "imminent", r"\b(?:written|wrote|left|writing) (?:\w+ )?(?:letters?|notes?|goodbyes?) (?:to|for) (?:my|everyone)\b.{0,60}\b(?:do it|go|end it|be gone|won'?t be)\b"),
    # suicide: high (active ideation)
    ("suicide", "high", r"\b(?:want|wanting|wanna|going|thinking about|think about|ready|tempted) (?:to )?(?:end|ending) (?:things|it|everything)(?: all)?\b(?! (?:with|between|off)\b)"),
    ("suicide", "high", r"\b(?:i'?d|i would) rather (?:be dead|die|not be alive|not exist)\b|\b(?:relief|peaceful|easier) (?:to be|if i was|if i were|being) (?:gone|dead|not here)\b|\bkilling myself\b"),
    ("suicide", "high", r"\b(?:don'?t|do not|can'?t|cannot) (?:see|imagine) myself (?:alive|being alive|being here|still here|around)\b|\bseriously consider(?:ing)? (?:suicide|ending|killing)\b"),
    ("suicide", "high", rf"\b(?:{_SELF_VERB})\s+{_ME}\b|\bkilling myself\b|\bend(?:ing)? my (?:own )?life\b|\btak(?:e|ing) my (?:own )?life\b|\bcommit(?:ting)? suicide\b"),
    ("suicide", "high", r"\bsuicid(?:al|e)\b"),
    ("suicide", "high", r"\b(?:want|wanna|wish|going|planning|thinking about|think about|thought about|tempted) (?:to )?(?:just )?(?:die|be dead|end it(?: all)?)\b"),
    ("suicide", "high", r"\b(?:don'?t|do not|no longer) want to (?:live|be alive|be here|exist|go on)\b(?!\s+(?:with|in|at|near|on|together|alone|there|here|abroad|far|without))|\bdon'?t want to be (?:alive|here) (?:anymore|any more)\b"),
    ("suicide", "high", r"\bbetter off (?:dead|without me|if i (?:was|were) (?:dead|gone|not here))\b|\bno (?:reason|point) (?:to|in) (?:live|living|going on|being alive)\b"),
    ("suicide", "high", r"\b(?:can'?t|cannot) (?:go on|do this) (?:anymore|any more|any longer)\b.{0,40}\b(?:die|dead|end|over)\b|\bend it all\b|\bjump(?:ing)? (?:off|in front of)\b"),
    ("suicide", "high", r"\b(?:how many|what) (?:pills|tablets)\b.{0,30}\b(?:to die|would kill|lethal|fatal|overdose)\b|\bpainless(?:ly)? (?:\w+ ){0,2}(?:to )?(?:die|death|suicide)\b"),
    # suicide: low (someone else at risk: worth a look, not a crisis of the speaker)
    ("suicide", "low", r"\b(?:kill|hurt|harm|cut|end)\w* (?:himself|herself|themselves|themself)\b|\b(?:he|she|they)(?:'s| is| are| was| were) suicidal\b"),
    # suicide: low (passive ideation, history)
    ("suicide", "low", r"\b(?:wish(?:ed)? i (?:was|were) (?:dead|never born)|wish i could (?:disappear|just disappear|fall asleep and not wake up|not wake up|vanish)|don'?t (?:want|care if i) (?:to )?wake up)\b"),
    ("suicide", "low", r"\b(?:tried|attempted) (?:to )?(?:kill myself|suicide|end my life)\b|\bsuicide attempt\b|\boverdosed\b(?! on (?:coffee|sugar|caffeine))"),
    ("suicide", "low", r"\b(?:what'?s|what is) the point (?:of|in) (?:living|life|anything|going on|it all)\b|\bhopeless\b|\bno way out\b|\bburden (?:to|on) (?:everyone|my family|them|you)\b"),
    # self-harm
    ("self_harm", "imminent", r"\b(?:i'?m|i am) (?:cutting|burning|hurting) myself (?:right now|now)\b|\b(?:i just|i've just) (?:cut|burned|burnt) (?:myself|my (?:arms?|wrists?|legs?)).{0,40}\b(?:bleeding|won'?t stop|deep|a lot of blood)"),
    ("self_harm", "high", r"\b(?:cut|cutting|burn|burning|hurt|hurting|harm|harming|punish|punishing|starve|starving|scratch|scratching|hit|hitting) (?:myself|my (?:arms?|wrists?|legs?|thighs?))\b"),
    ("self_harm", "high", r"\b(?:started|been|keep|kept|am|i'm) (?:cutting|burning|scratching)(?: myself)?(?: again)?\b(?! back| down| out| corners| ties| costs| class| school| work| hair| grass| carbs| sugar| calories)"),
    ("self_harm", "high", r"\b(?:carv(?:e|ed|ing)|slic(?:e|ed|ing)) (?:into )?my (?:skin|arms?|wrists?|legs?|thighs?|stomach)\b|\b(?:bang|banging|hit|hitting|slam|slamming) my head\b.{0,40}\b(?:bleed|bruise|hurt)"),
    ("self_harm", "high", r"\bself[- ]?harm(?:ing|ed)?\b|\bself[- ]?injur(?:y|ing)\b|\bslit my wrists?\b"),
    ("self_harm", "high", r"\b(?:urge|urges|want|wanting|wanna) to (?:cut|hurt|harm|burn)\b(?!\s+(?:him|her|them|my|someone|somebody|people|everyone|others|the|his|their))"),
    ("self_harm", "low", r"\b(?:used to|started) (?:cut|cutting|hurt|hurting|harm|harming|burn|burning) (?:myself|my)\b|\bscars? (?:on|from) (?:my )?(?:arms?|wrists?|legs?|cutting)\b|\brelapsed?\b.{0,20}\bcutting\b"),
    # harm to others
    ("harm_to_others", "imminent", r"\b(?:going to|gonna|about to|will|i'?ll)\s+(?:\w+\s+){0,2}(?:kill|shoot|stab|hurt|attack)\s+(?:him|her|them|my \w+|someone|somebody|people|everyone)\b.{0,40}\b(?:tonight|today|right now|now|tomorrow|with (?:a|my) (?:gun|knife))\b"),
    ("harm_to_others", "imminent", r"\b(?:i have|i've got|i got|i bought|i'm holding)\s+(?:a |my |the )?(?:gun|knife|weapon)\b.{0,60}\b(?:him|her|them|kill|shoot|stab|waiting)\b"),
    ("harm_to_others", "high", r"\b(?:want|wanna|going|gonna|thinking about|think about|thought about|fantasi[sz]e about|fantasi[sz]ing about|dream(?:ing)? about|plan(?:ning)?|urges?) (?:to )?(?:kill(?:ing)?|shoot(?:ing)?|stab(?:bing)?|strangl(?:e|ing)|hurt(?:ing)?|attack(?:ing)?|beat(?:ing)? up|poison(?:ing)?)\s+(?:him|her|them|my \w+|someone|somebody|people|everyone|my (?:wife|husband|boss|partner|kid|kids|child|baby|mother|father|mom|dad|brother|sister))\b"),
    ("harm_to_others", "high", r"\b(?:i could|i might|i'?m (?:afraid|scared) i(?:'ll| will| might)) (?:really )?(?:kill|hurt|shake|hit|snap and hurt) (?:him|her|them|the baby|my (?:baby|kid|child|son|daughter))\b|\bmake them (?:all )?pay\b.{0,30}\b(?:blood|kill|hurt|gun)\b|\bshoot up (?:the|a|my) (?:school|office|place|mall|church|party)\b"),
    ("harm_to_others", "high", r"\b(?:bring|bringing|take|taking|carry|carrying) (?:a|my|the) (?:gun|knife|weapon|rifle)\b.{0,20}\b(?:to )?(?:work|school|class|office|his|her|their)\b"),
    ("harm_to_others", "low", r"\b(?:so angry|so mad|furious|rage)\b.{0,40}\b(?:could|want to) (?:hit|punch|smash)\b"),
    # abuse (being harmed by someone)
    ("abuse", "imminent", r"\b(?:he|she|they)(?:'s| is| are) (?:outside|at the door|breaking in|coming (?:back|home))\b.{0,60}\b(?:kill|hurt|hit|scared|afraid|gun|knife)\b|\b(?:he|she|they) (?:said|says|threatened) (?:he|she|they)(?:'d|'ll| will| would) kill me\b"),
    ("abuse", "high", r"\b(?:he|she|they|my (?:husband|wife|partner|boyfriend|girlfriend|dad|father|mom|mother|stepdad|stepfather|uncle|brother|coach|boss))\s+(?:(?!never\b|not\b)\w+\s+){0,2}(?:hits?|hitting|beats?|beating|beat|chokes?|choked|choking|strangled|punch(?:es|ed)?|kicks?|kicked|slaps?|slapped|rapes?|raped|molest(?:s|ed)?|touch(?:es|ed))\b(?:\s+(?:me|us|my))"),
    ("abuse", "high", r"\b(?:hits|hitting|beats|beating|punches|punching|kicks|kicking|chokes|choking|slaps|slapping|abus(?:es|ing)|rap(?:es|ing)|molest(?:s|ing)) me\b|\b(?:sexually|physically) (?:abus\w+|assault\w+) me\b|\blocks? me (?:in|up|out)\b"),
    ("abuse", "high", r"\b(?:being|been|was|am|i'?m) (?:abused|raped|molested|sexually assaulted|assaulted|beaten|trafficked)\b|\bdomestic (?:violence|abuse)\b|\bafraid (?:to go|of going) home\b|\b(?:threatens?|threatened) to (?:kill|hurt) me\b"),
    ("abuse", "low", r"\b(?:was|were|got) (?:abused|hit|beaten) (?:as a (?:kid|child)|when i was (?:a kid|little|young|a child))\b|\b(?:emotionally|verbally) abusive\b|\bcontrolling\b.{0,30}\b(?:partner|husband|wife|boyfriend|girlfriend)\b"),
    # medical emergency
    ("medical_emergency", "imminent", r"\b(?:i (?:can'?t|cannot) breathe|chest (?:pain|is tight|hurts)|crushing pain in my chest|(?:my )?(?:face|arm) (?:is )?(?:drooping|numb|went numb)|(?:i'?m|i am|i think i'?m|i might be|he'?s|she'?s) having a (?:heart attack|stroke|seizure)(?! (?:or|and|if|when|later|one day|someday))|i'?m (?:bleeding|losing (?:a lot of )?blood) (?:a lot|badly|heavily|out)|(?:i'?m|i am) overdosing|i overdosed)\b"),
    ("medical_emergency", "imminent", r"\b(?:i|she|he|they|my \w+|someone) (?:took|swallowed|drank|ate) (?:\w+\s+){0,2}(?:bleach|antifreeze|poison|rat poison|the whole bottle)\b|\bpassing out\b.{0,30}\b(?:pills|drank|took)\b"),
    ("medical_emergency", "imminent", r"\b(?:half (?:of )?my face|my face|one side of my (?:body|face))\b.{0,20}\b(?:numb|droop\w*|paraly\w*)\b|\b(?:can'?t|cannot) (?:lift|move|feel) my (?:left |right )?(?:arm|leg)\b|\bslurr(?:ed|ing) (?:my )?(?:speech|words)\b"),
    ("medical_emergency", "high", r"\b(?:haven'?t|have not|didn'?t) (?:eaten|eat) (?:anything )?(?:in|for) (?:days|a week|weeks)\b|\b(?:withdrawal|(?:stopped|quit) (?:drinking|using|taking \w+))\b.{0,60}\b(?:shaking|seizures?|hallucinat\w*|tremors?|dts)\b|\b(?:mixed|mixing) (?:pills|benzos|xanax|opioids) (?:with|and) (?:alcohol|drinking|booze)\b"),
]
_COMPILED = [(cat, risk, re.compile(pat)) for cat, risk, pat in PATTERNS]

# A clause containing one of these but no pattern is "unsettled": the model should look.
CUES = re.compile(
    r"\b(?:die|dying|dead|death|suicid\w*|kill\w*|hurt\w*|harm\w*|cut\w*|blood|bleed\w*|pills?|overdos\w*|gun|knife|rope|"
    r"hopeless|worthless|give up|giving up|disappear|end it|can'?t go on|no point|abus\w*|hit me|hits me|beat\w* me|"
    r"rape\w*|threat\w*|unsafe|afraid of (?:him|her|them)|scared of (?:him|her|them)|weapon|jump\w*|funeral|gone|alive|razor|blade|tablets|antidepressants|goodbye|letters? to|numb|strangl\w*|locks? me|end things|"
    r"rather be|no future|can'?t take (?:it|this)|done with (?:it all|everything|life)|unsafe|scared for my life)\b"
)
# Negation in the few words before a match ("I'm not suicidal", "I would never hurt myself",
# "no thoughts of killing myself"). Patterns that *contain* a negation ("don't want to live")
# are matched on the raw clause, so negating those needs a second negation, which is rare.
_NEG = re.compile(
    r"\b(?:not|never|no|nor|don'?t|doesn'?t|didn'?t|won'?t|wouldn'?t|isn'?t|aren'?t|wasn'?t|haven'?t|hasn'?t|"
    r"can'?t imagine|no longer|denies|deny|without|stopped|quit|free of)\b(?:\s+(?!and\b|but\b|because\b|so\b|or\b|then\b)[\w']+){0,6}\s*$"
)
# Negation right after a noun match ("suicide isn't something I'd consider").
_POST_NEG = re.compile(r"^\s*(?:is|was|has|'s)(?:n'?t| not| never)\b(?! (?:going away|stopping|helping|getting better))|^\s*(?:never|not) (?:crossed|been|an option|something)")
# Idioms where a risky verb is not a risk ("this traffic is killing me", "dying to see").
_IDIOM = re.compile(
    r"\b(?:killing (?:me|it)|kill (?:for|time)|dying (?:to|for|of (?:laughter|boredom|embarrassment))|dead (?:tired|serious|end|on|set|line)|"
    r"deadline|to die for|cut (?:back|down|out|it out|off|corners|ties)|my (?:mom|mum|dad|boss|wife|husband) (?:will|is going to|would|gonna) kill me|"
    r"killer|hurts? my feelings|(?:fall|fell|trip|tripped|slip|slipped|crash|crashed)(?: over)? and (?:hurt|cut) myself|bored to death|scared to death|died laughing|pain in the)\b"
)
# Matches that stay risks even beside an idiom ("my mom will kill me if she sees I cut myself").
_IDIOM_SAFE = re.compile(r"\b(?:myself|suicid\w*|my life|die|dead)\b")
_CLAUSE = re.compile(r"(?<=[.!?;])\s+|\n+|\s+but\s+|\s+(?:although|though|however)\s+")
# Past-tense framing ("I used to cut myself", "when I was 15 I tried...") -> history, low.
_HISTORY = re.compile(r"\b(?:used to|years ago|months ago|last year|in (?:high school|college|my teens|the past)|when i was (?:a kid|younger|little|young|a teen(?:ager)?|\d+)|as a (?:kid|child|teen(?:ager)?)|growing up|in my childhood|back then|as a teen(?:ager)?|had a (?:phase|period))\b")
_THIRD_PARTY = re.compile(r"\b(?:my (?:friend|sister|brother|son|daughter|cousin|classmate|roommate|client|patient)|a friend|someone i know|he|she|they)\s+(?:\w+\s+){0,3}(?:said|says|told me|wants?|is|was|has|tried|keeps)\b")

# The vocabulary of suicide and self-harm risk (C-SSRS wording: wish to be dead, thoughts of ending one's life,
# methods, hopelessness, burden, farewell). policy.decide asks for one of these words before a flag of the
# learned layer alone becomes a check-in: the head's false alarms on everyday turns name none of them.
RISK_WORDS = re.compile(
    r"\b(?:suicid\w*|kill\w*|die|dies|dying|died|dead|death|deaths|end (?:it|it all|my life|things|everything|myself)|"
    r"ending (?:it|my life|things)|(?:my|this) life|alive|hurt\w*|harm\w*|cut|cuts|cutting|bleed\w*|blood|scars?|"
    r"pills?|tablets?|overdose\w*|hang\w*|noose|rope|gun|shoot|jump\w*|bridge|ledge|knife|razor|blades?|"
    r"poison\w*|drown\w*|hopeless\w*|worthless\w*|burden|pointless|no point|no reason to|give up|giving up|"
    r"gave up|can'?t (?:go on|do this|take (?:it|this))|gone|goodbye|disappear\w*|(?:never|not) wake up|"
    r"sleep forever|better off|miss me|wish i (?:was|were|wasn'?t|weren'?t)|self[- ]?harm\w*|attempt\w*|"
    r"(?:so|all|completely) alone|lonely|(?:nobody|no one) (?:cares|would care|would miss|will miss|needs|wants|loves)|"
    r"trapped|abus\w*|rape\w*|assault\w*|hit me|threat\w*|weapon|unsafe|danger\w*)\b", re.I)

# A death the speaker reports of someone else ("since my mum died", "the death of my father"): grief, not a
# risk to the speaker, so it is no risk word for the check-in (rules and the learned layer still read the turn).
OTHERS_DEATH = re.compile(
    r"\b(?:my|his|her|their|our|your|a|the)\s+(?!life\b|self\b)(?:[\w']+\s+){0,2}?(?:died|dead|death|dying|dies)\b"
    r"|\b(?:death|loss) of (?:my|his|her|their|our|a|the)\b|\b(?:he|she|they) (?:died|dies|is dying|was dying)\b", re.I)


def risk_cue(text: str) -> bool:
    """The turn names a risk to its speaker: a RISK_WORDS word once others' deaths (OTHERS_DEATH) are set aside."""
    return bool(RISK_WORDS.search(OTHERS_DEATH.sub(" ", clean(text))))


MAX_CHARS = 20_000  # longer texts are screened on their first MAX_CHARS (callers reject larger input)


def normalize(text: str) -> str:
    """Unicode-clean (normalize.clean), lower-case, straighten quotes and squeeze spaces so patterns stay simple."""
    t = clean(text[:MAX_CHARS]).lower()
    t = t.replace("\u2019", "'").replace("\u2018", "'").replace("\u201c", '"').replace("\u201d", '"')
    t = re.sub(r"\bim\b", "i'm", t)
    t = re.sub(r"\bive\b", "i've", t)
    t = re.sub(r"\bdont\b", "don't", t)
    t = re.sub(r"\bcant\b", "can't", t)
    return re.sub(r"[ \t]+", " ", t)


def _negated(clause: str, start: int) -> bool:
    return bool(_NEG.search(clause[max(0, start - 40):start]))


def _idiom(clause: str, m: re.Match) -> bool:
    """An idiom covers the match ("fell and hurt myself"), or sits beside a match that is not a self-risk word."""
    lo = max(0, m.start() - 25)
    for im in _IDIOM.finditer(clause[lo: m.end() + 15]):
        s, e = im.start() + lo, im.end() + lo
        if s <= m.start() < e or s < m.end() <= e or (s >= m.start() and e <= m.end()):
            return True
        if not _IDIOM_SAFE.search(m.group(0)):
            return True
    return False


_CURRENT = re.compile(r"\b(?:again|now|still|lately|these days|this week|recently)\b")


def _context_level(clause: str, m: re.Match, cat: str, risk: str) -> str:
    """Lower a match's level for framing the pattern cannot see: someone else, or the past."""
    before = clause[: m.start()]
    if cat in ("suicide", "self_harm") and _THIRD_PARTY.search(before) and "i " not in before[-12:]:
        return "low"  # about someone else: worth a look, not a crisis of the speaker
    if RISK_ORDER[risk] >= RISK_ORDER["high"] and _HISTORY.search(clause) and not _CURRENT.search(clause):
        return "low"  # history, not current risk (C-SSRS: lifetime vs recent)
    return risk


def rule_screen(text: str) -> RiskResult:
    """Screen one text with the phrase patterns. Never raises on str input; never calls a model."""
    assert isinstance(text, str), f"rule_screen expects str, got {type(text).__name__}"
    norm = normalize(text)
    best, cats, evidence, settled = "none", [], [], True
    for clause in _CLAUSE.split(norm):
        if not clause or not clause.strip():
            continue
        hit_here = False
        for cat, risk, rx in _COMPILED:
            for m in rx.finditer(clause):
                if _negated(clause, m.start()) or _POST_NEG.search(clause[m.end():m.end() + 40]):
                    settled = False  # a negated cue: usually fine, but the model can check
                    continue
                if _idiom(clause, m):
                    continue
                hit_here = True
                level = _context_level(clause, m, cat, risk)
                settled = settled and level == risk
                if RISK_ORDER[level] > RISK_ORDER[best]:
                    best = level
                if cat not in cats:
                    cats.append(cat)
                if m.group(0).strip() not in evidence:
                    evidence.append(m.group(0).strip())
        if not hit_here and CUES.search(_IDIOM.sub(" ", clause)):
            settled = False
    if best == "low":
        settled = False  # passive ideation/history: the model (or a human) should judge
    return RiskResult(risk=best, categories=cats, evidence=evidence[:8], source="rules", settled=settled)
