"""The stages of an experiment, declared once, in run order.

Everything else is derived from `STAGES`: the order `hybridtune run` follows and its
`--stage` choices (hybridtune/pipeline.py), one CLI verb per stage with the shared options
(hybridtune/cli_stages.py), the roles checked before a stage spends anything, whether a stage's
calls may wait for a provider batch (the stage context tells the LLM pool), the dry-run estimate
(each stage's `estimate` function, in run order; hybridtune/estimate.py), and the stage tables in
docs/architecture.md (tests/test_stages.py keeps them in step).

    from hybridtune.stages import STAGES, get
    get("mix").fn            # hybridtune.curate.mix:run, imported on first use
    get("synth").verb        # "synthesize"
    get("curate").batches    # True: with llm.batch its calls wait for a provider batch

Adding a stage is one `Stage(...)` entry in `STAGES` (docs/architecture.md has the recipe).

A stage function is `run(ctx, st, **options) -> summary dict`; see docs/architecture.md.
This module imports no stage code (targets are "module:function" strings resolved on use),
so the CLI starts fast and no stage package can form an import cycle through it.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import UserError
from .evaluate.metrics import rubric
from .store import StageDir

if TYPE_CHECKING:
    from .config import ExperimentConfig

Roles = "tuple[str, ...] | Callable[[ExperimentConfig], list[str]]"  # fixed roles, or by config


@dataclass(frozen=True)
class Option:
    """A stage-specific verb option: `--flag VALUE` becomes the keyword argument `name`."""
    name: str
    type: Any
    default: Any
    flags: tuple[str, ...]
    help: str


@dataclass(frozen=True)
class Stage:
    name: str            # the folder runs/<name>/<stage>/ and the `--stage` value
    target: str | Callable  # `run(ctx, st, **options) -> dict`, as "module:function" (imported on use)
    verb: str | None     # CLI verb that runs just this stage (None: only through `hybridtune run`)
    help: str            # the verb's help text
    reads: str           # what it reads (for the docs table)
    writes: str          # what it writes, under runs/<name>/<stage>/ unless said otherwise (besides summary.json)
    roles: Roles = ()    # roles it calls; checked (keys, GGUFs, backends) before it runs
    output: str | None = None  # the main file, printed as "wrote ..." by the verb
    rerun: bool = False  # the verb always reruns it (cheap, derived from cached results)
    show: str | None = None    # "module:function(ctx) -> str" printed by the verb after the summary
    options: tuple[Option, ...] = ()  # extra verb options, passed to the function as keyword arguments
    summary: str = ""    # what its summary.json holds besides what the stage returns (for the docs table)
    needs: tuple[str, ...] = ()  # files of the domain pack it reads ("{metric}": each configured judge metric's rubric)
    starts_run: bool = False  # reads no earlier stage: its verb may start a run (the others refuse a missing one)
    # Its model calls within a round do not wait on each other's replies, so with `llm.batch` they may
    # wait for a provider batch at batch price (a conversation waits on every reply: it does not).
    batches: bool = False
    estimate: str | None = None  # "module:function(e: Estimator) -> None": its calls and tokens before a run
    section: str | None = None   # the config section (an ExperimentConfig field) holding its settings
    publishes: tuple[str, ...] = ()  # its files that later stages read (besides summary.json)

    @property
    def fn(self) -> Callable:
        return resolve(self.target) if isinstance(self.target, str) else self.target

    @property
    def estimate_fn(self) -> Callable | None:
        return resolve(self.estimate) if self.estimate else None

    def roles_for(self, cfg: ExperimentConfig) -> list[str]:
        return list(self.roles(cfg) if callable(self.roles) else self.roles)


def resolve(target: str) -> Callable:
    """The object a "module:function" string names (imported now)."""
    mod, fn = target.split(":")
    return getattr(importlib.import_module(mod), fn)


def _real_roles(cfg: ExperimentConfig) -> list[str]:
    """annotator (when real.llm)"""
    return ["annotator"] if cfg.real.llm else []


def _eval_scenario_roles(cfg: ExperimentConfig) -> list[str]:
    """generator, judge (from a file: generator only for crisis scenarios)"""
    if cfg.evaluate.scenarios_file:
        return ["generator"] if cfg.evaluate.crisis_scenarios else []
    return ["generator", "judge"]


_PERSONA_FILES = ("attributes.yaml", "prompts/synth_persona.yaml", "prompts/synth_persona_check.yaml",
                  "prompts/synth_naturalness.yaml")
_SCENARIO_FILES = ("attributes.yaml", "distortions.yaml", "prompts/synth_scenario.yaml",
                   "prompts/synth_scenario_check.yaml")
# not a stage: `chat`, `serve` and `safety check` screen turns with the pack's safety prompts
CHAT_NEEDS = ("prompts/safety_screen.yaml", "prompts/safety_response.yaml", "prompts/safety_check_in.yaml")


# Evaluation scenarios come before mixing, so the training sets can be checked for
# contamination against them.
STAGES: list[Stage] = [
    Stage("real", "hybridtune.real.stage:run", None,
          "Ingest real transcripts: clean, scrub PII, dedup, filter, segment, annotate.",
          "`cfg.real.inputs`", "`sessions.jsonl`, `samples.jsonl`, `quarantine.jsonl`, `report.md`, `annotations.jsonl` "
          "and `quality.jsonl` (real.llm), ingest ledgers `_ingest.json`, `_clean.jsonl`, `_dedup.jsonl`",
          summary="counts per step, PII by type, duplicates, filters",
          roles=_real_roles, output="sessions.jsonl", batches=True, estimate="hybridtune.estimate:estimate_real",
          section="real", publishes=("sessions.jsonl", "samples.jsonl"),
          needs=("techniques.yaml", "distortions.yaml", "emotions.yaml", "prompts/real_annotate_turn.yaml",
                 "prompts/real_quality.yaml", "prompts/real_attribute_speakers.yaml")),
    Stage("split", "hybridtune.split:run", "split",
          "Choose the held-out real sessions once (mix.test_fraction, min_test, seed, group_by) -> split/split.json.",
          "real sessions, `cfg.mix`", "`split.json` (held-out real ids, their groups, the config, a fingerprint of "
          "the real sessions; read by synth, mix and the power plan)", output="split.json", section="mix",
          publishes=("split.json",),
          summary="real sessions, held out, held-out groups"),
    Stage("personas", "hybridtune.synth.personas:run", "personas",
          "Generate quota-sampled personas with quality checks -> runs/<name>/personas/personas.jsonl.",
          "domain attributes", "`personas.jsonl`, `personas_dropped.jsonl`, `persona_drafts.jsonl` (every attempt)", roles=("generator", "judge"), output="personas.jsonl",
          needs=_PERSONA_FILES, starts_run=True, batches=True, estimate="hybridtune.estimate:estimate_personas",
          section="synth", publishes=("personas.jsonl",)),
    Stage("scenarios", "hybridtune.synth.scenarios:run", "scenarios",
          "Write CBT scenarios for each persona (distortions checked, near-duplicates replaced) -> scenarios/scenarios.jsonl.",
          "personas", "`scenarios.jsonl`, `scenarios_rejected.jsonl` (near-duplicates), `scenario_drafts.jsonl`",
          roles=("generator", "judge"), output="scenarios.jsonl",
          needs=_SCENARIO_FILES, batches=True, estimate="hybridtune.estimate:estimate_scenarios", section="synth",
          publishes=("scenarios.jsonl",)),
    Stage("synth", "hybridtune.synth.sessions:run", "synthesize",
          "Generate synthetic sessions by role-play (or single pass) -> synth/sessions.jsonl + synth_report.md.",
          "scenarios, real sessions (few-shot: the training side of `split/split.json`)", "`sessions.jsonl`, `synth_report.md`, `generated.jsonl` (resume ledger)",
          summary="diversity, correctness, naturalness, technique coverage, lengths",
          roles=("counselor", "patient", "generator", "annotator"), output="sessions.jsonl",
          needs=("attributes.yaml", "techniques.yaml", "prompts/synth_counselor.yaml", "prompts/synth_patient.yaml",
                 "prompts/synth_single_pass.yaml", "prompts/synth_annotate.yaml"),
          estimate="hybridtune.estimate:estimate_synth", section="synth", publishes=("sessions.jsonl",)),
    Stage("curate", "hybridtune.curate.judge:run", "judge",
          "Judge sessions, crisis-screen them, and select (stage `curate`; writes runs/<name>/curate/).",
          "synth (+real) sessions", "`judged.jsonl`, `selected.jsonl`, `review.jsonl`, `rejected.jsonl`, `report.md`",
          roles=("judge",),
          needs=("prompts/curate_judge.yaml",), batches=True, estimate="hybridtune.estimate:estimate_curate",
          section="curate", publishes=("selected.jsonl", "review.jsonl", "rejected.jsonl")),
    Stage("eval_scenarios", "hybridtune.evaluate.scenarios:run", "eval-scenarios",
          "Make the held-out evaluation scenarios (generated on their own seed, or from evaluate.scenarios_file).",
          "own seed / file", "`scenarios.jsonl`, `quarantine.jsonl`, `contamination.json`, generated: `personas/`, "
          "`scenarios/` (as the personas and scenarios stages)",
          roles=_eval_scenario_roles, needs=(*_PERSONA_FILES, *_SCENARIO_FILES, "prompts/eval_crisis_scenario.yaml"),
          starts_run=True, batches=True, estimate="hybridtune.estimate:estimate_eval_scenarios", section="evaluate",
          publishes=("scenarios.jsonl", "contamination.json")),
    Stage("mix", "hybridtune.curate.mix:run", "mix",
          "Build each declared variant's training set, test splits and exports (stage `mix`; runs/<name>/mix/).",
          "curated sessions + review decisions, `split/split.json` (held-out real ids), `real/samples.jsonl` (QA units), "
          "eval scenarios",
          "`<variant>/{train,valid}.jsonl` (Session; one per trained declared variant), held-out `test_real.jsonl`, `test_synthetic.jsonl`, "
          "`contamination.jsonl`, `leakage.json` (training vs test leakage check), `report.md`, "
          "`<variant>/openai_{train,valid}.jsonl`, `<variant>/parquet/`, `<variant>/README.md` (dataset card)",
          summary="composition per variant, checks, exports", section="mix",
          publishes=("<variant>/{train,valid}.jsonl", "test_real.jsonl", "test_synthetic.jsonl", "leakage.json")),
    Stage("train", "hybridtune.train.stage:run", "train",
          "Fine-tune the declared variants from the mixed sets and register them (and untrained ones) in models.json.",
          "mix", "`models.json` (run root, and a copy here), `quarantine.jsonl`, `<variant>/` (`spec.json`, checkpoints, "
          "adapter, `adapter.gguf`, `loss.csv`, `loss.png`; OpenAI: `openai_job.json`, `checkpoints.json`, `metrics.csv`)",
          show="hybridtune.train.stage:describe", options=(
              Option("variants", list[str] | None, None, ("--variant", "-v"),
                     "only this variant (repeatable); default: every declared variant"),
              Option("resume", bool, True, ("--resume/--no-resume",),
                     "continue from the last checkpoint or running job (default) or start over")),
          estimate="hybridtune.estimate:estimate_train", section="train", publishes=("models.json",)),
    Stage("simulate", "hybridtune.evaluate.simulate:run", "simulate",
          "Simulate a client talking with every counselor variant on every evaluation scenario.",
          "eval scenarios, models.json", "`sessions.jsonl`, `current.json` (this configuration's ids), "
          "`contamination.json`", roles=("patient",), needs=("prompts/eval_patient.yaml",),
          estimate="hybridtune.estimate:estimate_simulate", section="evaluate",
          publishes=("sessions.jsonl", "contamination.json")),
    Stage("score", "hybridtune.evaluate.score:run", "score",
          "Judge every simulated conversation on the configured metrics (default empathy and relevance 1-10).",
          "simulated sessions", "`scores.jsonl`, `session_scores.jsonl`, `pairwise.jsonl`, `pairwise_units.jsonl`",
          summary="failures, judge noise, agreement, length bias, pairwise win rates", roles=("judge",),
          needs=("prompts/{metric}.yaml", "prompts/eval_judge_pairwise.yaml"), batches=True,
          estimate="hybridtune.estimate:estimate_score", section="evaluate",
          publishes=("session_scores.jsonl", "pairwise.jsonl")),
    Stage("likelihood", "hybridtune.evaluate.likelihood:run", "likelihood",
          "Score held-out real and synthetic sessions with every variant: NLL per counselor token, paired CIs.",
          "mix test splits, models.json", "`sessions.jsonl` (NLL per session)",
          summary="paired NLL differences with CIs per split", section="evaluate"),
    Stage("calibrate", "hybridtune.evaluate.calibrate:run", "calibrate",
          "Validate the judge on real vs degraded counselor turns (AUC per metric) and check the simulated patient.",
          "mix test split, simulated sessions, expert labels (AnnoMI)",
          "`items.jsonl`, `ratings.jsonl`, `experts.jsonl`, `expert_annotations.jsonl`, `simcheck.jsonl`",
          summary="judge AUC, noise, length bias, verdict; judge vs experts; simulator check",
          roles=("judge",), needs=("prompts/{metric}.yaml", "prompts/trust_degradations.yaml",
                                   "prompts/trust_simcheck.yaml", "prompts/trust_role_patterns.yaml"),
          batches=True, estimate="hybridtune.estimate:estimate_calibrate", section="evaluate"),
    Stage("report", "hybridtune.evaluate.report:run", "report",
          "Write report.md and a self-contained report.html from cached results (no model calls).",
          "everything", "`report.md`, `report.html`, `*.png`", summary="the headline table and tests",
          output="report.md", rerun=True, show="hybridtune.evaluate.report:describe", section="evaluate"),
]


def names() -> list[str]:
    return [s.name for s in STAGES]


def get(name: str) -> Stage:
    for s in STAGES:
        if s.name == name:
            return s
    raise UserError(f"--stage {name}: unknown stage; stages are {', '.join(names())}")


def batches(name: str) -> bool:
    """Whether the declared stage `name` batches (False for a name no stage has)."""
    return any(s.batches for s in STAGES if s.name == name)


def roles_needed(names: list[str], cfg: ExperimentConfig) -> list[str]:
    """The roles the given stages call, in first-use order (what to check before running them)."""
    out: list[str] = []
    for n in names:
        out += [r for r in get(n).roles_for(cfg) if r not in out]
    return out


def domain_manifest(metrics: list[str] | None = None, chosen: list[str] | None = None) -> dict[str, list[str]]:
    """The domain-pack files each stage (and chat) reads: {stage: [path in the pack]}.

    `metrics`: the judge metrics to expand "{metric}" with (default: empathy, relevance)."""
    metrics = metrics if metrics is not None else ["empathy", "relevance"]
    out: dict[str, list[str]] = {}
    for s in STAGES:
        if chosen is None or s.name in chosen:
            files = [f.format(metric=rubric(m)) for f in s.needs for m in (metrics if "{metric}" in f else [""])]
            out[s.name] = list(dict.fromkeys(files))
    if chosen is None:
        out["chat"] = list(CHAT_NEEDS)
    return out


def stage_table() -> str:
    """The Markdown stage table of docs/architecture.md (tests/test_stages.py keeps them equal)."""
    from .tables import md_table

    rows = []
    for s in STAGES:
        roles = (s.roles.__doc__ or "by config") if callable(s.roles) else ", ".join(s.roles) or "-"
        verb = f"`{s.verb}`" if s.verb else "(`run` only; `ingest`)"
        target = s.target.removeprefix("hybridtune.") if isinstance(s.target, str) else s.target.__qualname__
        summary = f"`{StageDir.SUMMARY}`" + (f" ({s.summary})" if s.summary else "")
        rows.append([s.name, verb, f"`{target}`", roles, s.reads, f"{s.writes}, {summary}"])
    return md_table(["stage", "verb", "function", "roles", "reads", "writes (in runs/<name>/<stage>/)"], rows) + "\n"


def facts_table() -> str:
    """The Markdown table of what each stage declares for the rest of the tool: its config section,
    whether it batches, its estimate and the files later stages read (docs/architecture.md)."""
    from .tables import md_table

    rows = [[s.name, f"`{s.section}:`" if s.section else "-", "yes" if s.batches else "-",
             f"`{s.estimate.removeprefix('hybridtune.')}`" if s.estimate else "-",
             ", ".join(f"`{f}`" for f in s.publishes) or "-"] for s in STAGES]
    return md_table(["stage", "config", "batch API (`llm.batch`)", "estimate", "publishes (read by later stages)"],
                    rows) + "\n"
