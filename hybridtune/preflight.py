"""`hybridtune run CONFIG --dry-run`: check config, data, credentials, models and cost without calling a model.

    lines = preflight(cfg)     # lines to print; UserError listing every blocking problem, one line each
    lines = check_before_run(cfg, chosen)   # what `run` checks before its first stage (pipeline.py)

First, alone and in seconds: a config that trains on CUDA (`train.device: cuda`) on a machine
without a CUDA GPU (one line naming CUDA and `make setup-gpu`; train/hardware.py). Then,
blocking: an unknown domain pack, no real inputs (or a path / data set name that is not
there), a training backend that cannot work with the chosen endpoints (`config_problems`,
which `hybridtune config check` runs too), a missing API key, the local training's base model
not in the cache, a launch the machine cannot run (processes, DeepSpeed), a memory misfit
against free memory and the strategy's sharding, a serving server that is down, does not serve
the base model or cannot load LoRA adapters at runtime, a model the provider no longer serves
(hybridtune/provider.py). Then the cost estimate per stage and role (hybridtune/estimate.py)
and the budget check. A problem with a key given by `--set` is blamed on `--set KEY`. `run`
runs the same training, serving and provider checks before its first stage
(`check_before_run`), so nothing is generated for a run that would break at the train stage.
"""
from __future__ import annotations

from pathlib import Path

from .config import ExperimentConfig
from .domain import load_domain
from .errors import UserError
from .llm import LLMPool
from .provider import check_provider

HOSTED = ("api.openai.com",)


def _urls(ep) -> list[str]:
    u = ep.base_url or "https://api.openai.com/v1"
    return [u] if isinstance(u, str) else list(u)


def check_real_inputs(cfg: ExperimentConfig) -> tuple[list[str], list[str]]:
    """(ok lines, problems) of `real.inputs` and `evaluate.scenarios_file`, names resolved."""
    from . import catalogue
    from .evaluate.scenarios import scenarios_source

    ok, bad = [], []
    if not cfg.real.inputs:
        bad.append("real.inputs: no real data configured; e.g. `hybridtune data get annomi` then real.inputs: [annomi] "
                   "(hybridtune data list shows the public sets), or paths of your own transcripts")
    for item in cfg.real.inputs:
        if catalogue.is_name(item):
            try:
                files = catalogue.resolve_inputs([item])
                ok.append(f"real data: {item} -> {', '.join(files)} ({catalogue.get(item).licence})")
            except UserError as e:
                bad.append(str(e))
        elif not Path(item).expanduser().exists():
            bad.append(f"real.inputs: {item} not found; fix the path, remove it, or use a catalogue name "
                       f"({', '.join(catalogue.catalogue())})")
        else:
            ok.append(f"real data: {item} found")
    if cfg.evaluate.scenarios_file:
        try:
            path, fmt = scenarios_source(cfg.evaluate.scenarios_file, cfg.evaluate.scenarios_format)
            if path.is_file():
                ok.append(f"eval scenarios: {path} ({fmt})")
            else:
                bad.append(f"evaluate.scenarios_file: {path} not found; fix the path or use cactus / mentalchat16k")
        except UserError as e:
            bad.append(str(e))
    return ok, bad


def check_training(cfg: ExperimentConfig) -> list[str]:
    """Problems of `train.backend` with the configured endpoints (one line each)."""
    from .train.backends import backend_of

    return backend_of(cfg.train).config_problems(cfg)


def local_config_problems(cfg: ExperimentConfig) -> list[str]:
    """The local backend against the endpoints: a serving endpoint that can load adapters, or a
    counselor that is the trained base model."""
    tc = cfg.train
    out = []
    counselor = cfg.roles["counselor"]
    c_ep = cfg.endpoints[counselor.endpoint]
    serve = getattr(tc, "serve_endpoint", None)
    if serve:
        ep = cfg.endpoints.get(serve)
        if ep is None:
            out.append(f"train.serve_endpoint: '{serve}' is not defined under endpoints")
        elif ep.backend != "openai" or any(h in u for u in _urls(ep) for h in HOSTED):
            out.append(f"train.serve_endpoint: '{serve}' must be your own OpenAI-compatible server started with LoRA "
                       f"support (vllm serve --enable-lora); {ep.backend} @ {', '.join(_urls(ep))} cannot load adapters")
    elif c_ep.backend == "openai":
        model = counselor.model or c_ep.model
        out.append(f"train.backend: local trains LoRA adapters of {tc.base_model} served in-process by llama.cpp, but "
                   f"roles.counselor is {model} at {', '.join(_urls(c_ep))}: the variants would not be that model. "
                   "Set train.backend: openai to fine-tune it (configs/openai.yaml), or train.serve_endpoint to a "
                   "vLLM server with --enable-lora (configs/gpu.yaml)")
    return out


def local_training_checks(cfg: ExperimentConfig) -> tuple[list[str], list[str]]:
    """(ok lines, problems) of the training backend that nothing before the train stage would show."""
    from .train.backends import backend_of

    if not any(v.trained for v in cfg.variant_list()):
        return [], []
    return backend_of(cfg.train).machine_checks(cfg)


def lora_checks(cfg: ExperimentConfig) -> tuple[list[str], list[str]]:
    """The local backend's: the base model in the cache, the launch (processes, DeepSpeed), the
    memory fit, the serving server (up, serving the base model, loading adapters at runtime)."""
    tc = cfg.train
    from .train.base_model import check_fits, check_qlora, count_params, resolve_base
    from .train.hardware import training_gpus
    from .train.launch import check_launch, use_accelerate

    ok, bad = [], []
    try:
        gguf, folder = resolve_base(tc.base_model, download=False)
        n = count_params(folder=folder, gguf=gguf)
        gpus = training_gpus(tc)
        ok.append(f"base model: {tc.base_model}, {n / 1e9:.2f}B params, at {gguf or folder}; training on "
                  + (f"{gpus} GPU(s)" if gpus else "the CPU"))
        check_qlora(tc)
        if use_accelerate(tc):
            check_launch(tc)
        check_fits(n, tc, folder)
    except UserError as e:
        bad.append(str(e))
    if tc.serve_endpoint and tc.serve_endpoint in cfg.endpoints:
        from .train.vllm_lora import check_server

        try:
            check_server(cfg, tc)
            ok.append(f"serving: endpoint {tc.serve_endpoint} serves {cfg.endpoints[tc.serve_endpoint].model} and "
                      "loads LoRA adapters at runtime")
        except UserError as e:
            bad.append(str(e))
    return ok, bad


def check_before_run(cfg: ExperimentConfig, chosen: list[str], roles: list[str]) -> list[str]:
    """What `run` checks before its first stage: the device, then (when `train` is chosen) local
    training and its server, and the providers of the chosen stages' roles; lines to log,
    UserError listing every problem."""
    from .train.hardware import check_device

    training = "train" in chosen
    if training:
        check_device(cfg.train)
    ok, problems = local_training_checks(cfg) if training else ([], [])
    if not problems and (roles or training):
        try:
            ok += check_provider(cfg, roles=roles, training=training, chosen=chosen)
        except UserError as e:
            problems.append(str(e))
    if problems:
        raise UserError("checks before the run found problems (nothing was generated):\n  " + "\n  ".join(problems))
    return ok


def config_problems(cfg: ExperimentConfig) -> tuple[list[str], list[str]]:
    """(ok lines, problems) of the checks that call no model and no server: the domain pack, the
    real inputs and evaluation scenarios, the training backend against the endpoints."""
    ok, problems = [], []
    try:
        dom = load_domain(cfg.domain)
        ok.append(f"domain: {dom.name}: {len(dom.techniques)} techniques, {len(dom.distortions)} distortions, "
                  f"{len(dom.emotions)} emotions")
    except UserError as e:
        problems.append(str(e))
    found, missing = check_real_inputs(cfg)
    return ok + found, [cfg.blame(p) for p in [*problems, *missing, *check_training(cfg)]]


def preflight(cfg: ExperimentConfig) -> list[str]:
    from .train.hardware import check_device

    check_device(cfg.train)  # alone and first: without CUDA nothing else matters
    lines = [f"config: {cfg.source_path} ok (run dir {cfg.run_dir})"]
    ok, problems = config_problems(cfg)
    lines += ok
    if not check_training(cfg):  # a trainer that fits the endpoints: can it run here?
        ok, bad = local_training_checks(cfg)
        lines += ok
        problems += [cfg.blame(p) for p in bad]
    pool = LLMPool(cfg.pool_config())
    for role, rc in cfg.roles.items():
        ep = cfg.endpoints[rc.endpoint]
        try:
            pool.backend(rc.endpoint).check()
        except UserError as e:
            if str(e) not in problems:
                problems.append(str(e))
            continue
        lines.append(f"role {role}: {ep.backend} {rc.model or ep.model} @ {ep.base_url or 'in-process'}: "
                     "credentials/files ok")
    if not problems:  # the model lists need the keys; ask only when they are there
        try:
            lines += check_provider(cfg)  # the providers' model lists and shutdown dates
        except UserError as e:
            problems.append(str(e))
    from .estimate import estimate

    if problems:  # the cost still follows from the config alone: show it beside what blocks the run
        from .estimate import RealData

        unread = any(p.removeprefix("--set ").startswith("real.inputs") for p in problems)
        try:
            est = estimate(cfg, data=RealData() if unread else None)
            cost = ["cost estimate from the config alone (no model is called"
                    + ("; the real inputs are not readable, so their sizes are stand-ins" if unread else "")
                    + "):", *("  " + x for x in est.lines())]
        except UserError:
            cost = []
        raise UserError("\n  ".join(["dry run found problems:", *problems]) + "".join("\n" + x for x in cost))
    est = estimate(cfg)
    lines.append("cost estimate (no model is called):")
    lines += ["  " + x for x in est.lines()]
    from .evaluate.power import lines as plan_lines
    from .evaluate.power import plan

    lines += plan_lines(plan(cfg))  # power up front: what each test can detect at these sizes
    if cfg.llm.budget_usd is not None:
        cap = f"llm.budget_usd ${cfg.llm.budget_usd:.2f}"
        lines.append(f"budget: estimated ${est.total_usd:.2f} is within {cap}" if est.total_usd <= cfg.llm.budget_usd
                     else f"budget: WARNING estimated ${est.total_usd:.2f} is over {cap}: the run would stop cleanly "
                          "at the cap; raise it or shrink the sizes")
    else:
        lines.append(f"budget: estimated ${est.total_usd:.2f}; no llm.budget_usd cap set")
    lines.append("dry run: no model was called, nothing was spent")
    return lines
