"""What a run will cost before it runs: calls and tokens per stage and role, dollars, fine-tuning, GPU hours.

    from hybridtune.estimate import estimate
    est = estimate(cfg)              # no model is called; real inputs are read to measure them
    for line in est.lines(): print(line)

Each stage's figures come from the function its declaration names (`Stage.estimate` in
hybridtune/stages.py, e.g. "hybridtune.estimate:estimate_curate"), called in run order with the
`Estimator`; a new stage adds its own with `e.add(stage, role, calls, input_tokens)`.

How each figure is made (`hybridtune run CONFIG --dry-run` prints them; bench/estimate_accuracy.py
checks them against a mock run):
- calls: the config's sizes through each stage's loop (personas x checks, sessions x exchanges,
  variants x scenarios x turns, ...), to the caps (a conversation that closes early costs less).
- input tokens: the domain's real prompt templates rendered with the real inputs where they are
  known before the run (real transcripts, scenario files, taxonomies) and with stand-in text of the
  expected length where they are generated (a persona, a scenario, earlier turns of a dialogue).
  Chat overhead is counted like OpenAI's (4 tokens a message + 3); text is ~4 characters a token.
- output tokens: `llm.output_fill` x the call's max_tokens (a reply rarely fills its budget;
  measure your models' share on a pilot run: usage.json has the tokens).
- dollars: `llm.prices` (USD per 1M tokens) of the role's model; `llm.batch` halves the stages the
  batch API serves (`batches=True` in hybridtune/stages.py; `llm.batch_discount`). Fine-tuning:
  training tokens x epochs x `prices.training`.
- GPU hours (local LoRA training): training tokens x epochs over the tokens/s measured on an H200
  for that model size and batch (hybridtune/train/throughput.py names its source; gradient
  checkpointing, processes and strategy scaled as it says), times the GPUs used, when the base
  model's size can be read from its name (7B, 0.5B, 135M); dollars at `llm.gpu_hour_usd`.
- serving GPU hours (models on the user's own OpenAI-compatible servers, vLLM: any endpoint not at a
  hosted API whose model has no `llm.prices`): each row's prompt and output tokens over the serving
  tokens/s of hybridtune/train/throughput.py (SERVED, which names its sources), times the GPUs the
  server holds; dollars at `llm.gpu_hour_usd`. Busy time only: a server left idle still costs.
"""
from __future__ import annotations

import functools
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jinja2

from . import stages
from .config import ExperimentConfig
from .domain import Domain, PromptTemplate, load_domain
from .evaluate.metrics import rubric
from .llm.usage import price_of
from .train.backends import backend_of

CHARS_PER_TOKEN = 4
# Llama Guard's chat template wraps each screened text in its instructions and category list
# (S1-S14): about 300 tokens (an assumption, not measured); the layer asks for 12 tokens at most.
GUARD_PROMPT_TOKENS = 300
GUARD_MAX_TOKENS = 12


def tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def chat_tokens(msgs: list[dict[str, str]]) -> int:
    return sum(tokens(m["content"]) + 4 for m in msgs) + 3


def stand_in(n_tokens: float) -> str:
    """Text of about n tokens (a generated part whose content is not known before the run)."""
    return ("word " * int(n_tokens * CHARS_PER_TOKEN / 5 + 1))[: max(0, int(n_tokens * CHARS_PER_TOKEN))]


_ENV = jinja2.Environment(undefined=jinja2.ChainableUndefined, autoescape=False)


def render(tpl: PromptTemplate, **vars: Any) -> list[dict[str, str]]:
    """The template as the stage renders it; variables a stage would pass but the estimate does
    not know render empty (lenient), so a changed template still estimates."""
    return tpl.render(_ENV, **vars)


@dataclass
class Row:
    stage: str
    role: str
    model: str
    calls: float = 0  # fractional while summing (an average over session lengths); printed rounded
    input_tokens: float = 0
    output_tokens: float = 0
    usd: float = 0.0
    batch: bool = False
    gpu_hours: float = 0.0  # served on the user's own GPUs (vLLM): busy hours x the server's GPUs


@dataclass
class Estimate:
    rows: list[Row] = field(default_factory=list)
    training: list[str] = field(default_factory=list)  # fine-tuning / GPU lines
    training_usd: float = 0.0
    notes: list[str] = field(default_factory=list)
    budget_usd: float | None = None
    gpu_hour_usd: float | None = None
    unpriced_gpu_hours: float = 0.0  # training and serving hours with no llm.gpu_hour_usd: not in total_usd

    @property
    def llm_usd(self) -> float:
        return sum(r.usd for r in self.rows)

    @property
    def total_usd(self) -> float:
        return self.llm_usd + self.training_usd

    def by_stage(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, float]] = defaultdict(lambda: {"calls": 0, "input_tokens": 0, "output_tokens": 0})
        for r in self.rows:
            for k in ("calls", "input_tokens", "output_tokens"):
                out[r.stage][k] += getattr(r, k)
        return {s: {k: round(v) for k, v in d.items()} for s, d in out.items()}

    def lines(self) -> list[str]:
        out = [f"{'stage':<15}{'role':<11}{'model':<26}{'calls':>8}{'input tok':>12}{'output tok':>12}{'USD':>10}"]
        for r in self.rows:
            tag = (" (batch)" if r.batch else "") + (f" ({r.gpu_hours:.3g} GPU h)" if r.gpu_hours else "")
            usd = f"{r.usd:.2f}" if not r.gpu_hours else "?" if self.gpu_hour_usd is None else dollars(r.usd)
            out.append(f"{r.stage:<15}{r.role:<11}{r.model:<26}{round(r.calls):>8}{round(r.input_tokens):>12}"
                       f"{round(r.output_tokens):>12}{usd:>10}{tag}")
        calls = round(sum(r.calls for r in self.rows))
        tin, tout = round(sum(r.input_tokens for r in self.rows)), round(sum(r.output_tokens for r in self.rows))
        served_unpriced = self.gpu_hour_usd is None and any(r.gpu_hours for r in self.rows)
        llm = f"{self.llm_usd:.2f}" + ("+?" if served_unpriced else "")
        out.append(f"{'model calls':<52}{calls:>8}{tin:>12}{tout:>12}{llm:>10}")
        out += self.training
        unpriced = f" + ~{self.unpriced_gpu_hours:.2f} GPU hours unpriced (set llm.gpu_hour_usd)" \
            if self.unpriced_gpu_hours else ""
        out.append(f"estimated total: ${self.total_usd:.2f}{unpriced}")
        out += [f"note: {n}" for n in self.notes]
        return out


@dataclass
class Conversation:
    """One simulated conversation to the turn cap: calls and input tokens per side, and the client's turns."""

    c_calls: int = 0
    c_in: float = 0.0
    p_calls: int = 0
    p_in: float = 0.0
    shared_in: float = 0.0  # the client's opening, the same for every variant (one call per scenario)
    client_turns: int = 1


@dataclass
class Simulation:
    """What the simulate stage will run, which score and calibrate then read."""

    scenarios: int  # evaluation scenarios, crisis ones included
    scenario_tokens: float
    variants: list[str]
    conv: Conversation

    @property
    def conversations(self) -> list[float]:
        """Each simulated conversation's client-turn count."""
        return [self.conv.client_turns] * (len(self.variants) * self.scenarios)


class Estimator:
    """The run's calls and tokens, added stage by stage by each stage's declared `estimate` function
    (hybridtune/stages.py) from what is known before the run: the config, the domain pack, the real
    transcripts (`data`) and a scenarios file (`scen`)."""

    def __init__(self, cfg: ExperimentConfig, domain: Domain | None = None, data: RealData | None = None,
                 scen: ScenarioData | None = None):
        self.cfg = cfg
        self.data = data if data is not None else RealData()
        self.scen = scen
        self.dom = domain or load_domain(cfg.domain)
        self.fill = cfg.llm.output_fill
        self.rows: dict[tuple[str, str, str], Row] = {}
        self.est = Estimate(budget_usd=cfg.llm.budget_usd, gpu_hour_usd=cfg.llm.gpu_hour_usd)
        self.system_prompt = (cfg.system_prompt or self.dom.system_prompt).strip()

    # -- bookkeeping ---------------------------------------------------------------
    def model(self, role: str) -> str:
        rc = self.cfg.roles[role]
        return rc.model or self.cfg.endpoints[rc.endpoint].model

    def out(self, role: str, max_tokens: int | None = None) -> int:
        return round(self.fill * (max_tokens or self.cfg.roles[role].max_tokens))

    def endpoint(self, role: str) -> str | None:
        return self.cfg.safety.guard_endpoint if role == "guard" else self.cfg.roles[role].endpoint

    def add(self, stage: str, role: str, calls: float, input_tokens: float, max_tokens: int | None = None,
            model: str | None = None) -> None:
        """`calls` calls of `role` in `stage`, `input_tokens` in all (output from the role's budget)."""
        if calls <= 0:
            return
        m = model or self.model(role)
        row = self.rows.setdefault((stage, role, m), Row(stage, role, m))
        row.calls += calls
        row.input_tokens += input_tokens
        row.output_tokens += calls * self.out(role, max_tokens)

    def price(self) -> None:
        llm = self.cfg.llm
        for r in self.rows.values():
            p = price_of(llm.prices, r.model)
            r.batch = llm.batch and stages.batches(r.stage)
            if p is not None:
                r.usd = (r.input_tokens * p.input + r.output_tokens * p.output) / 1e6
                r.usd *= llm.batch_discount if r.batch else 1.0
            elif (served := self.served(r)) is not None:
                gpus, prompt_tps, output_tps = served
                r.gpu_hours = (r.input_tokens / prompt_tps + r.output_tokens / output_tps) / 3600 * gpus
                r.usd = r.gpu_hours * (llm.gpu_hour_usd or 0.0)
        self.est.rows = list(self.rows.values())
        self.serving_line()

    def served(self, r: Row) -> tuple[int, float, float] | None:
        """(GPUs, prompt tokens/s, output tokens/s) of the user's own server of the row's model, or None
        (a hosted API, llama.cpp in-process, or a size the name does not tell)."""
        ep = self.cfg.endpoints.get(self.endpoint(r.role) or "")
        if ep is None or ep.backend != "openai" or not ep.base_url or r.model.split("+")[0].endswith(".gguf"):
            return None  # in-process, OpenAI by default, or a llama.cpp server (a .gguf): not vLLM on GPUs
        urls = [ep.base_url] if isinstance(ep.base_url, str) else ep.base_url
        if any("api.openai.com" in u for u in urls):
            return None
        params = model_params(r.model.split("+")[0])
        if params is None:
            return None
        from .train.throughput import serving

        return serving(params, quantized=bool(re.search(r"awq|gptq|int4|4bit", r.model, re.I)))

    def serving_line(self) -> None:
        rows = [r for r in self.est.rows if r.gpu_hours]
        if not rows:
            return
        from .train.throughput import SERVING_SOURCE

        hours, rate = sum(r.gpu_hours for r in rows), self.cfg.llm.gpu_hour_usd
        self.est.unpriced_gpu_hours += hours if rate is None else 0.0
        cost = "$? (set llm.gpu_hour_usd)" if rate is None else \
            f"${dollars(hours * rate)} at llm.gpu_hour_usd ${rate:g} (in the model calls' USD above)"
        servers = sorted({f"{r.model.split('+')[0]} on {self.served(r)[0]} GPU(s)" for r in rows})
        self.est.training.append(f"serving: ~{hours:.2f} GPU hours busy on your own servers ({'; '.join(servers)}), "
                                 f"{cost}")
        self.est.notes.append(f"serving GPU hours from {SERVING_SOURCE}")

    # -- shared stand-ins ------------------------------------------------------------
    def persona(self) -> SimpleNamespace:
        spec = self.dom.attributes.get("attributes", {})
        attrs = {k: str(next(iter(v))) for k, v in spec.items() if v}
        return SimpleNamespace(narrative=stand_in(self.out("generator")), attributes=attrs, id="p")

    def scenario(self, text_tokens: float | None = None) -> SimpleNamespace:
        n = text_tokens if text_tokens is not None else self.out("generator")
        return SimpleNamespace(scenario=stand_in(n), summary=stand_in(min(n, 30)), attitude="neutral",
                               cognitive_distortions=[d.id for d in self.dom.distortions[:1]], persona=self.persona(),
                               meta={}, theme="")

    # -- stages ----------------------------------------------------------------------
    def real(self, data: RealData) -> None:
        rc = self.cfg.real
        if not rc.llm:
            return
        if rc.annotate.enabled:
            tpl = self.dom.prompt("real_annotate_turn")
            k = rc.annotate.context_turns
            calls = tin = 0
            for s in data.sessions[: rc.annotate.max_sessions]:
                for i in [i for i, (role, _) in enumerate(s) if role in ("user", "assistant")][: rc.annotate.max_turns_per_session]:
                    role, text = s[i]
                    ctx = [{"speaker": "Counselor" if r == "assistant" else "Client", "content": t} for r, t in s[max(0, i - k):i]]
                    msgs = render(tpl, context=ctx, speaker="Counselor" if role == "assistant" else "Client", turn=text,
                                  techniques=self.dom.techniques, emotions=self.dom.emotions,
                                  distortions=self.dom.distortions)
                    calls += 1
                    tin += chat_tokens(msgs)
            self.add("real", "annotator", calls, tin)
        if rc.filters.llm_quality_min is not None:
            tpl = self.dom.prompt("real_quality")
            tin = sum(chat_tokens(render(tpl, transcript="\n".join(t for _, t in s)[:6000])) for s in data.sessions)
            self.add("real", "annotator", len(data.sessions), tin)

    def personas(self, stage: str, n: int) -> None:
        sc = self.cfg.synth
        p = self.persona()
        self.add(stage, "generator", n, n * chat_tokens(render(self.dom.prompt("synth_persona"), attributes=p.attributes)))
        if sc.persona_checks:
            chk = chat_tokens(render(self.dom.prompt("synth_persona_check"), attributes=p.attributes, narrative=p.narrative))
            nat = chat_tokens(render(self.dom.prompt("synth_naturalness"), text=p.narrative, kind="client persona"))
            self.add(stage, "judge", 2 * n, n * (chk + nat))

    def scenarios(self, stage: str, n: int) -> None:
        sc = self.cfg.synth
        k = round((sc.min_distortions + sc.max_distortions) / 2)
        terms = self.dom.distortions[:k]
        gen = render(self.dom.prompt("synth_scenario"), persona=self.persona(), theme="work stress", distortions=terms)
        self.add(stage, "generator", n, n * chat_tokens(gen))
        # each scenario draws its number of distortions uniformly in [min, max]; none named: no check
        lo, hi = sc.min_distortions, max(sc.min_distortions, sc.max_distortions)
        checked = n * sum(1 for k in range(lo, hi + 1) if k > 0) / (hi - lo + 1)
        if sc.scenario_checks and checked:
            chk = render(self.dom.prompt("synth_scenario_check"), scenario=stand_in(self.out("generator")),
                         distortions=terms or self.dom.distortions[:1])
            self.add(stage, "judge", checked, checked * chat_tokens(chk))

    def synth_shape(self) -> tuple[float, float, float]:
        """(counselor turns, tokens, tokens a turn) of one synthetic session, to its cap."""
        sc = self.cfg.synth
        e = (sc.min_exchanges + sc.max_exchanges) / 2
        if sc.mode == "single_pass":
            return e, self.out("generator"), self.out("generator") / max(1, 2 * e)
        lengths = range(sc.min_exchanges, max(sc.min_exchanges, sc.max_exchanges) + 1)  # drawn uniformly per session
        c_out, p_out = self.out("counselor"), self.out("patient")
        cap = sum(lengths) / len(lengths) + 1
        return cap + 1, (cap + 1) * c_out + (cap + (self.cfg.opens == "client")) * p_out, (c_out + p_out) / 2

    @property
    def synth_tokens(self) -> float:
        """Tokens of one synthetic session (0 when none are made): what curate and train read."""
        return self.synth_shape()[1] if self.cfg.synth.sessions else 0.0

    def synth(self, data: RealData) -> None:
        sc = self.cfg.synth
        n = sc.sessions
        e = (sc.min_exchanges + sc.max_exchanges) / 2
        lengths = range(sc.min_exchanges, max(sc.min_exchanges, sc.max_exchanges) + 1)  # drawn uniformly per session
        exemplar = ""
        if sc.fewshot and data.sessions:
            ex = [t[:300] for s in data.sessions[:20] for _, t in s[: sc.fewshot_max_messages]]
            per = sum(len(x) + 12 for x in ex) / max(1, len(data.sessions[:20]))
            exemplar = stand_in(sc.fewshot * per / CHARS_PER_TOKEN)
        if sc.mode == "single_pass":
            msgs = render(self.dom.prompt("synth_single_pass"), system_prompt=self.system_prompt, persona=self.persona(),
                          scenario=self.scenario(), attitude="neutral", plan=[], exchanges=e, exemplar=exemplar,
                          techniques=self.dom.techniques[: sc.techniques_per_session])
            self.add("synth", "generator", n, n * chat_tokens(msgs))
        else:
            share = n / len(lengths)
            for ex in lengths:
                c_calls, c_in, p_calls, p_in = self.roleplay(ex, exemplar, techs=min(2, sc.techniques_per_session))
                self.add("synth", "counselor", share * c_calls, share * c_in)
                self.add("synth", "patient", share * p_calls, share * p_in)
        if sc.annotate_realised:
            turns_c, _, turn = self.synth_shape()
            lines = [{"index": 1, "speaker": "Counselor", "text": stand_in(turn)} for _ in range(round(2 * turns_c - 1))]
            msgs = render(self.dom.prompt("synth_annotate"), techniques=self.dom.techniques, turns=lines)
            self.add("synth", "annotator", n, n * chat_tokens(msgs))

    def roleplay(self, exchanges: int, exemplar: str, techs: int) -> tuple[int, float, int, float]:
        """One synthetic session as synth/sessions.py:RolePlay.run plays it, to its cap: (counselor calls,
        their input tokens, patient calls, their input tokens)."""
        phases = self.dom.attributes.get("session_plan") or [{"phase": "agenda", "goal": ""}]
        ph = SimpleNamespace(**{"step": None, **phases[len(phases) // 2]})
        proto = self.dom.protocol
        step = proto.step(ph.step) if proto and ph.step else None
        c_tpl, p_tpl = self.dom.prompt("synth_counselor"), self.dom.prompt("synth_patient")
        c_vars = dict(system_prompt=self.system_prompt, exemplar=exemplar, phase=ph, step=step,
                      question=step.questions[0] if step else "", techniques=self.dom.techniques[:techs], closing=False)
        sc = self.scenario()
        p_vars = dict(persona=self.persona(), scenario=sc, attitude="neutral", closing=False,
                      attitude_instruction=self.dom.attitude_instruction("neutral"))
        # the per-turn note after the dialogue (PromptTemplate.turn_note) is sent with every call
        c_msgs = render(c_tpl, **c_vars) + c_tpl.turn_note(_ENV, **c_vars)
        p_msgs = render(p_tpl, **p_vars) + p_tpl.turn_note(_ENV, **p_vars)
        c, p = self.out("counselor") + 4, self.out("patient") + 4  # a turn as a message in later requests
        dialogue = 0.0
        calls = {"counselor": [0, 0.0], "patient": [0, 0.0]}

        def say(role: str, msgs: list[dict[str, str]]) -> None:
            nonlocal dialogue
            # the template's opening cue is sent only while the dialogue is empty
            calls[role][0] += 1
            head = msgs if not dialogue else [msgs[0], *msgs[2:]]  # system [+ cue] [+ turn note]
            calls[role][1] += chat_tokens(head) + dialogue
            dialogue += c if role == "counselor" else p

        if self.cfg.opens == "client":
            say("patient", p_msgs)
        say("counselor", c_msgs)
        for _ in range(1, exchanges + 2):  # to the cap: one exchange of grace after the closing turn
            say("patient", p_msgs)
            say("counselor", c_msgs)
        return calls["counselor"][0], calls["counselor"][1], calls["patient"][0], calls["patient"][1]

    def curate(self, data: RealData, synth_tokens: float) -> None:
        cc = self.cfg.curate
        tpl = self.dom.prompt("curate_judge")
        limit = cc.max_tokens or self.cfg.roles["judge"].max_tokens
        one = chat_tokens(render(tpl, transcript=stand_in(min(synth_tokens, cc.max_chars / CHARS_PER_TOKEN)),
                                 techniques="a, b, c"))
        n = self.cfg.synth.sessions if cc.judge else 0
        tin = n * one
        if cc.judge_real:
            for s in data.sessions:
                tin += chat_tokens(render(tpl, transcript="\n".join(f"x: {t}" for _, t in s)[: cc.max_chars]))
            n += len(data.sessions)
        judges = 2 if cc.second_judge_endpoint else 1
        self.add("curate", "judge", n * judges, tin * judges, max_tokens=limit)

    def guard(self, data: RealData) -> None:
        """The guard model of the crisis screen (`safety.guard_endpoint`): curate screens every client turn
        of every synthetic and real session, one call each, a verdict of a few tokens."""
        sf, sc = self.cfg.safety, self.cfg.synth
        if not sf.guard_endpoint or sf.guard_endpoint not in self.cfg.endpoints:
            return
        model = sf.guard_model or self.cfg.endpoints[sf.guard_endpoint].model
        turns = sc.sessions * ((sc.min_exchanges + max(sc.min_exchanges, sc.max_exchanges)) / 2 + 1)
        tin = turns * (GUARD_PROMPT_TOKENS + self.out("patient"))
        real = [t for s in data.sessions for role, t in s if role == "user"]
        tin += sum(GUARD_PROMPT_TOKENS + tokens(t[: sf.max_chars]) for t in real)
        self.add("curate", "guard", turns + len(real), tin, max_tokens=GUARD_MAX_TOKENS, model=model)

    def eval_scenarios(self, scen: ScenarioData | None) -> None:
        ev = self.cfg.evaluate
        if scen is None:
            self.personas("eval_scenarios", ev.scenarios)
            self.scenarios("eval_scenarios", ev.scenarios)
        if ev.crisis_scenarios:
            msgs = render(self.dom.prompt("eval_crisis_scenario"), persona=self.persona().narrative, attributes={})
            self.add("eval_scenarios", "generator", ev.crisis_scenarios, ev.crisis_scenarios * chat_tokens(msgs))

    @functools.cached_property
    def simulation(self) -> Simulation:
        """The simulate stage's conversations: scenarios, variants, and one conversation to its cap."""
        ev, scen = self.cfg.evaluate, self.scen
        n_scen = (min(ev.scenarios, scen.count) if scen else ev.scenarios) + ev.crisis_scenarios
        scen_tokens = scen.mean_tokens if scen else self.out("generator")
        sc = self.scenario(scen_tokens)
        ptpl = render(self.dom.prompt("eval_patient"), scenario=sc, persona=sc.persona.narrative if not scen else "",
                      attitude="neutral", attitude_instruction=self.dom.attitude_instruction("neutral"),
                      opens=self.cfg.opens)
        p0 = scen.patient_prompt_tokens if scen else chat_tokens(ptpl)
        return Simulation(n_scen, scen_tokens, [v.name for v in self.cfg.variant_list()],
                          self.conversation(p0, ev.max_turns))

    def simulate(self) -> None:
        sim = self.simulation
        n_scen, conv, v = sim.scenarios, sim.conv, len(sim.variants)
        # a client's opening is one call per scenario (same prompt and seed for every variant: cached)
        self.add("simulate", "patient", n_scen if conv.shared_in else 0, n_scen * conv.shared_in)
        for name in sim.variants:
            self.add("simulate", "counselor", n_scen * conv.c_calls, n_scen * conv.c_in, model=self.variant_model(name))
        self.add("simulate", "patient", v * n_scen * conv.p_calls, v * n_scen * conv.p_in)

    def score(self) -> None:
        """Every metric per simulated conversation, k samples, per judge; pairwise comparisons."""
        ev, scen, sim = self.cfg.evaluate, self.scen, self.simulation
        n_scen, conv, v = sim.scenarios, sim.conv, len(sim.variants)
        c_out, p_out = self.out("counselor"), self.out("patient")
        transcript = stand_in(conv.client_turns * p_out + conv.c_calls * c_out + 6 * (conv.client_turns + conv.c_calls))
        metrics = ev.metrics
        # the judge sees the scenario's summary
        summary = stand_in(scen.mean_summary_tokens if scen else min(40, sim.scenario_tokens))
        per = sum(chat_tokens(render(self.dom.prompt(rubric(x)), transcript=transcript,
                                     scenario=summary, protocol=self.dom.protocol)) for x in metrics)
        convs = v * n_scen
        judges = 2 if ev.second_judge_endpoint else 1
        self.add("score", "judge", convs * len(metrics) * ev.judge_samples * judges,
                 convs * per * ev.judge_samples * judges)
        if ev.pairwise and v > 1:  # both orders of every pair of variants per scenario's shared client turn
            calls = n_scen * v * (v - 1)
            msgs = render(self.dom.prompt("eval_judge_pairwise"), transcript=stand_in(p_out + 6),
                          reply_a=stand_in(c_out), reply_b=stand_in(c_out))
            self.add("score", "judge", calls, calls * chat_tokens(msgs))

    def conversation(self, p0: float, m: int) -> Conversation:
        """One simulated conversation as evaluate/simulate.py:converse runs it, to the turn cap: calls
        and input tokens per side (`p0`: the client's rendered prompt), and the client's turns."""
        c, p = self.out("counselor") + 4, self.out("patient") + 4  # a reply as a message in later requests
        seen_c = 3 + tokens(self.system_prompt) + 4  # what the counselor is sent
        seen_p = p0  # what the simulated client is sent
        k = Conversation()
        turns = 0
        if self.cfg.opens == "counselor":  # its first turn goes into the client's cue (no new message)
            k.c_calls, k.c_in, turns = 1, seen_c, 1
            seen_c += c
            seen_p += c - 4
            k.p_calls, k.p_in = 1, seen_p
        else:
            k.shared_in = seen_p
        seen_c += p
        seen_p += p
        while turns < m:
            k.c_calls += 1
            k.c_in += seen_c
            seen_c += c
            turns += 1
            if turns == m:
                break
            seen_p += c
            k.p_calls += 1
            k.p_in += seen_p
            k.client_turns += 1
            seen_p += p
            seen_c += p
        return k

    def variant_model(self, name: str) -> str:
        tc = self.cfg.train
        base = self.model("counselor")
        return backend_of(tc).variant_model(tc, name, self.cfg.variant(name).trained, base)

    def calibrate(self, data: RealData, convs: list[float]) -> None:
        ev, tc, mc = self.cfg.evaluate, self.cfg.evaluate.trust, self.cfg.mix
        n_test = max(mc.min_test, round(mc.test_fraction * len(data.sessions))) if data.sessions else 0
        items = min(tc.calib_items, n_test)
        versions = 1 + sum(1 for d in tc.degradations if str(d) != "unrelated" or items > 1)
        ctx_tokens = data.mean_turn_tokens * tc.calib_context
        reply = stand_in(data.mean_turn_tokens)
        per = sum(chat_tokens(render(self.dom.prompt(rubric(x)), transcript=stand_in(ctx_tokens) + reply,
                                     scenario="")) for x in ev.metrics)
        self.add("calibrate", "judge", items * versions * len(ev.metrics) * tc.calib_samples,
                 items * versions * per * tc.calib_samples)
        from .evaluate.experts import load_annomi, locate, matched_pairs

        path = locate(tc.experts)[0] if tc.expert_pairs or tc.expert_turns else None
        if path is not None and tc.expert_pairs:  # AnnoMI excerpts, ~25 tokens a message
            n = 2 * len(matched_pairs(load_annomi(path), tc.expert_pairs, self.cfg.seed)) * tc.calib_samples
            per = sum(chat_tokens(render(self.dom.prompt(rubric(x)), transcript=stand_in(25 * tc.expert_window),
                                         scenario="")) for x in ev.metrics)
            self.add("calibrate", "judge", n * len(ev.metrics), n * per)
        if path is not None and tc.expert_turns:  # the annotator on expert-coded therapist turns
            ctx = [{"speaker": "Client", "content": stand_in(25)}] * self.cfg.real.annotate.context_turns
            msgs = render(self.dom.prompt("real_annotate_turn"), context=ctx, speaker="Counselor", turn=stand_in(25),
                          techniques=self.dom.techniques, emotions=self.dom.emotions, distortions=self.dom.distortions)
            self.add("calibrate", "annotator", tc.expert_turns, tc.expert_turns * chat_tokens(msgs))
        sessions = convs[: tc.simcheck_sessions]
        turns = sum(min(tc.simcheck_turns, round(t)) for t in sessions)
        sc = self.scenario()
        c_out, p_out = self.out("counselor"), self.out("patient")
        msgs = render(self.dom.prompt("trust_simcheck"), persona=sc.persona.narrative, scenario=sc.scenario,
                      context=stand_in(3 * (c_out + p_out)), turn=stand_in(p_out))
        self.add("calibrate", "judge", turns, turns * chat_tokens(msgs))

    def train(self, data: RealData, synth_tokens: float) -> None:
        tc, mc = self.cfg.train, self.cfg.mix
        trained = [v for v in self.cfg.variant_list() if v.trained]
        if not trained:
            return
        real_t = data.mean_session_tokens or synth_tokens
        keep = 1 - mc.valid_fraction
        # a QA unit is one exchange with its context: about a third of a session's tokens (estimate)
        unit = {"sessions": 1.0, "qa": 1 / 3, "both": 4 / 3}
        total = sum((v.counts()["real"] * real_t + v.counts()["synthetic"] * synth_tokens) * keep * unit[v.units]
                    for v in trained)
        backend_of(tc).estimate(self, trained, total, real_t)

    def local_training(self, trained: list, total: float, real_t: float) -> None:
        """GPU hours and cost of local LoRA training (the local backend's estimate)."""
        tc = self.cfg.train
        params = model_params(tc.base_model)
        steps = f"{tc.max_steps} steps" if tc.max_steps > 0 else f"{tc.epochs:g} epochs"
        tok = total * (tc.epochs if tc.max_steps <= 0 else 1)
        if tc.max_steps > 0:
            tok = len(trained) * tc.max_steps * tc.batch_size * tc.grad_accum * min(tc.max_seq_len, real_t)
        if params is None:
            self.est.training.append(f"local LoRA: {len(trained)} variant(s), ~{round(tok)} training tokens ({steps}); "
                                     f"GPU hours: base model size unknown ({tc.base_model})")
            return
        from .train.throughput import SOURCE, tokens_per_s

        gpus = 1 if tc.num_processes == "auto" else tc.num_processes
        tps, how = tokens_per_s(params, tc, gpus)
        hours = tok / tps / 3600 * gpus  # GPU hours: wall hours x the GPUs held
        usd = hours * (self.cfg.llm.gpu_hour_usd or 0.0)
        self.est.training_usd += usd
        self.est.unpriced_gpu_hours += hours if self.cfg.llm.gpu_hour_usd is None else 0.0
        cost = f"${usd:.2f} at llm.gpu_hour_usd ${self.cfg.llm.gpu_hour_usd:g}" if self.cfg.llm.gpu_hour_usd \
            else "$? (set llm.gpu_hour_usd)"
        self.est.training.append(f"local LoRA: {len(trained)} variant(s) of {tc.base_model} ({params / 1e9:g}B): "
                                 f"~{round(tok)} training tokens ({steps}), ~{hours:.2f} GPU hours on {gpus} GPU(s), "
                                 f"{cost}")
        self.est.notes.append(f"GPU hours from {SOURCE}: {how}; an A100 is about half as fast as an H200")


# Each stage's estimate, named by its declaration in hybridtune/stages.py (`estimate=`) and called in
# run order by estimate(): `fn(e: Estimator) -> None`, adding the stage's rows with `e.add`.

def estimate_real(e: Estimator) -> None:
    e.real(e.data)


def estimate_personas(e: Estimator) -> None:
    e.personas("personas", e.cfg.synth.personas)


def estimate_scenarios(e: Estimator) -> None:
    e.scenarios("scenarios", e.cfg.synth.personas * e.cfg.synth.scenarios_per_persona)


def estimate_synth(e: Estimator) -> None:
    if e.cfg.synth.sessions:
        e.synth(e.data)


def estimate_curate(e: Estimator) -> None:
    e.curate(e.data, e.synth_tokens)
    e.guard(e.data)


def estimate_eval_scenarios(e: Estimator) -> None:
    e.eval_scenarios(e.scen)


def estimate_train(e: Estimator) -> None:
    e.train(e.data, e.synth_tokens)


def estimate_simulate(e: Estimator) -> None:
    e.simulate()


def estimate_score(e: Estimator) -> None:
    e.score()


def estimate_calibrate(e: Estimator) -> None:
    e.calibrate(e.data, e.simulation.conversations)


def dollars(usd: float) -> str:
    """A cost as the table prints it: a cost above zero never reads 0.00."""
    return "0.00" if usd == 0 else "<0.01" if usd < 0.01 else f"{usd:.2f}"


def model_params(name: str) -> float | None:
    """Parameters from a model's name: Qwen2.5-7B-Instruct -> 7e9, SmolLM2-135M -> 1.35e8."""
    if name == "smollm2":
        return 135e6
    m = re.search(r"(\d+(?:\.\d+)?)\s*([bBmM])(?![a-zA-Z])", Path(name).name)
    if not m:
        return None
    return float(m.group(1)) * (1e9 if m.group(2).lower() == "b" else 1e6)


@dataclass
class RealData:
    """The real sessions the run will ingest, as (role, text) turns (measured before the run)."""

    sessions: list[list[tuple[str, str]]] = field(default_factory=list)

    @property
    def mean_turn_tokens(self) -> float:
        turns = [tokens(t) for s in self.sessions for _, t in s]
        return sum(turns) / len(turns) if turns else 40.0

    @property
    def mean_session_tokens(self) -> float:
        return sum(sum(tokens(t) + 4 for _, t in s) for s in self.sessions) / len(self.sessions) if self.sessions else 0.0


@dataclass
class ScenarioData:
    """Scenarios loaded from a file: their count, and sizes measured on them."""

    count: int
    mean_tokens: float
    mean_summary_tokens: float = 30.0
    patient_prompt_tokens: float = 0.0  # the simulated client's rendered prompt, mean over the file


def read_real(cfg: ExperimentConfig) -> RealData:
    """Sessions of `real.inputs` (catalogue names resolved), consecutive same-speaker turns merged."""
    from .real.formats import BadInput, expand_inputs, read_file

    data = RealData()
    for path in expand_inputs(cfg.real.inputs):
        try:
            for raw in read_file(path, cfg.real):
                turns: list[tuple[str, str]] = []
                for t in raw.turns:
                    role = t.role or ("assistant" if not turns or turns[-1][0] == "user" else "user")
                    if turns and turns[-1][0] == role:
                        turns[-1] = (role, f"{turns[-1][1]} {t.text}")
                    else:
                        turns.append((role, t.text))
                if len(turns) >= cfg.real.filters.min_turns:
                    data.sessions.append(turns)
        except BadInput:
            continue  # the run quarantines it; the estimate leaves it out
    return data


def read_scenarios(cfg: ExperimentConfig) -> ScenarioData | None:
    ev = cfg.evaluate
    if not ev.scenarios_file:
        return None
    from .evaluate.scenarios import load_scenarios_file, scenarios_source

    scen, _ = load_scenarios_file(*scenarios_source(ev.scenarios_file, ev.scenarios_format))
    if not scen:
        return ScenarioData(0, 0.0)
    from .evaluate.simulate import persona_text
    from .synth.sessions import attitude_instruction

    dom = load_domain(cfg.domain)
    tpl = dom.prompt("eval_patient")
    sample = scen[:: max(1, len(scen) // 50)]
    p0 = [chat_tokens(render(tpl, scenario=s, persona=persona_text(s), attitude=s.attitude, opens=cfg.opens,
                             attitude_instruction=attitude_instruction(dom, s))) for s in sample]
    return ScenarioData(len(scen), sum(tokens(s.scenario) for s in scen) / len(scen),
                        sum(tokens(s.summary) for s in scen) / len(scen), sum(p0) / len(p0))


def estimate(cfg: ExperimentConfig, data: RealData | None = None) -> Estimate:
    """Every declared stage's estimate, in run order (hybridtune/stages.py: a stage's `estimate`)."""
    e = Estimator(cfg, data=data if data is not None else read_real(cfg), scen=read_scenarios(cfg))
    for stage in stages.STAGES:
        if stage.estimate_fn is not None:
            stage.estimate_fn(e)
    e.price()
    e.est.notes.append(f"output tokens assume replies use {cfg.llm.output_fill:.0%} of max_tokens (llm.output_fill); "
                       "conversations are counted to their caps; re-asks of invalid replies are not counted")
    unpriced = sorted({r.model for r in e.est.rows if price_of(cfg.llm.prices, r.model) is None and not r.gpu_hours})
    if unpriced:
        e.est.notes.append(f"no price in llm.prices for {', '.join(unpriced)}: counted as $0 (self-hosted?)")
    e.est.notes += backend_of(cfg.train).estimate_notes(cfg)
    return e.est
