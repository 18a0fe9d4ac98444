"""Provider check: is every model the config uses served, and for how long?

Asks each OpenAI-compatible endpoint the config uses for its model list (`GET /models`)
and looks up every model a role, the fine-tuning job or `models.json` names: listed or
not, and its `shutdown_date` (from the list when the provider gives one, else from the
provider's published deprecations below). For `train.backend: openai` it also checks that
the provider still takes new fine-tuning jobs. It says plainly what is unavailable or
about to be, with `configs/gpu.yaml` (open models on your own GPUs) as the way forward.

`--dry-run` (preflight), `run` before its first stage (the roles of the chosen stages; the
training models when `train` is among them) and the `train` stage (before anything is
uploaded) call it:

    lines = check_provider(cfg)               # raises UserError listing every blocking problem
    report = provider_report(cfg, today=date(2027, 1, 10))   # typed findings, nothing raised

Blocking: a model the endpoint does not list, a model past its shutdown date, fine-tuning
after the provider stopped new jobs, an endpoint that cannot be reached. Warnings: a
shutdown or fine-tuning stop within `WARN_DAYS`.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import date

import httpx

from .config import ExperimentConfig
from .errors import UserError
from .llm.config import EndpointConfig

# OpenAI's deprecations page (announced 2026): new fine-tuning jobs stop on 2027-01-06;
# gpt-4o and gpt-4o-mini, their dated snapshots and every fine-tune built on them shut
# down on 2027-01-14. Used when a model list carries no `shutdown_date` (OpenAI's does not).
KNOWN_SHUTDOWNS = {"gpt-4o": date(2027, 1, 14), "gpt-4o-mini": date(2027, 1, 14)}
FINE_TUNING_STOPS = {"openai": date(2027, 1, 6)}
WARN_DAYS = 90
FORWARD = "configs/gpu.yaml trains and serves open models on your own GPUs (docs/training.md)"


def today() -> date:
    """The date deadlines are judged against (one place, so tests can fix it)."""
    return date.today()


@dataclass
class ModelStatus:
    endpoint: str
    model: str
    uses: list[str]  # roles, "fine-tuning", "variant <name>"
    listed: bool | None  # None: not checked (endpoint unreachable)
    shutdown: date | None = None
    shutdown_source: str = ""  # "model list" | "published deprecation"


@dataclass
class ProviderReport:
    models: list[ModelStatus] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    ok: list[str] = field(default_factory=list)


def known_shutdown(model: str) -> date | None:
    """A published shutdown date for a model, its dated snapshots and fine-tunes (ft:BASE:...)."""
    base = model.split(":")[1] if model.startswith("ft:") and model.count(":") >= 1 else model
    for name, day in KNOWN_SHUTDOWNS.items():
        if base == name or base.startswith(name + "-20"):  # gpt-4o-mini-2024-07-18
            return day
    return None


def fine_tuning_stop(model: str) -> date | None:
    """When the model's provider stops taking new fine-tuning jobs (its models are in KNOWN_SHUTDOWNS)."""
    return FINE_TUNING_STOPS["openai"] if known_shutdown(model) else None


def list_models(ep: EndpointConfig, name: str, http_client: httpx.Client | None = None) -> dict[str, dict]:
    """{model id: card} from the endpoint's `GET /models` (first replica); UserError when unreachable."""
    urls = ep.base_url or "https://api.openai.com/v1"
    url = (urls if isinstance(urls, str) else urls[0]).rstrip("/")
    key = os.environ.get(ep.api_key_env) if ep.api_key_env else None
    if ep.api_key_env and not key:
        raise UserError(f"endpoints.{name}.api_key_env: environment variable {ep.api_key_env} is not set; "
                        f"export {ep.api_key_env}=...")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    client = http_client or httpx.Client(timeout=min(ep.timeout_s, 30))
    try:
        r = client.get(f"{url}/models", headers=headers)
    except httpx.HTTPError as e:
        raise UserError(f"endpoints.{name}.base_url: cannot reach {url} ({type(e).__name__}); start the server "
                        "or fix the URL") from None
    finally:
        if http_client is None:
            client.close()
    if r.status_code in (401, 403):
        raise UserError(f"endpoints.{name}.api_key_env: {url} refused the key in {ep.api_key_env}; check it")
    if r.status_code != 200:
        raise UserError(f"endpoints.{name}: GET {url}/models answered HTTP {r.status_code}; check base_url")
    return {m["id"]: m for m in r.json().get("data", []) if isinstance(m, dict) and "id" in m}


def models_in_use(cfg: ExperimentConfig, registry: dict | None = None,
                  roles: list[str] | None = None, training: bool = True) -> dict[tuple[str, str], list[str]]:
    """{(endpoint, model): uses} for every remote (openai-backend) model the run will call or train;
    `roles` / `training=False`: only those roles, and not the training and variant models."""
    uses: dict[tuple[str, str], list[str]] = {}

    def add(ep_name: str | None, model: str | None, use: str) -> None:
        ep = cfg.endpoints.get(ep_name or "")
        if ep is not None and ep.backend == "openai" and model:
            uses.setdefault((ep_name, model), []).append(use)

    for role, rc in cfg.roles.items():
        if roles is None or role in roles:
            add(rc.endpoint, rc.model or cfg.endpoints[rc.endpoint].model, role)
    guard = cfg.safety.guard_endpoint
    if guard and (roles is None or roles):  # the crisis screen's guard layer runs beside every conversation stage
        add(guard, cfg.safety.guard_model or (cfg.endpoints[guard].model if guard in cfg.endpoints else None),
            "safety guard")
    if not training:
        return uses
    from .train.backends import backend_of

    for ep_name, model, use in backend_of(cfg.train).remote_models(cfg):
        add(ep_name, model, use)
    for v, entry in (registry or {}).items():
        if entry.backend == "openai" and not entry.adapter:  # adapters are (re)loaded by the train stage
            add(entry.endpoint, entry.model, f"variant {v}")
    return uses


def assess(model: str, uses: list[str], cards: dict[str, dict] | None, today: date, ep_name: str,
           rep: ProviderReport, train_day: date | None = None) -> ModelStatus:
    """Judge one model against its endpoint's list (None: not reachable); adds to `rep`.
    `train_day`: the latest day the fine-tuning job may be created (default: today)."""
    st = ModelStatus(endpoint=ep_name, model=model, uses=uses, listed=None if cards is None else model in cards)
    card = (cards or {}).get(model, {})
    if card.get("shutdown_date"):
        st.shutdown, st.shutdown_source = date.fromisoformat(str(card["shutdown_date"])[:10]), "model list"
    elif known_shutdown(model):
        st.shutdown, st.shutdown_source = known_shutdown(model), "published deprecation"
    rep.models.append(st)
    label = f"{model} @ {ep_name} ({', '.join(uses)})"
    if st.listed is False:
        fix = f"fix the model name, or {FORWARD}" if known_shutdown(model) else (
            "fix the model name, or start the server with this model (a vLLM server serves only what it was "
            "started with, plus the adapters loaded into it)")
        rep.problems.append(f"{label}: the endpoint does not list this model (retired, a typo, or no access); {fix}")
    if st.shutdown and st.shutdown <= today:
        rep.problems.append(f"{label}: shut down on {st.shutdown} ({st.shutdown_source}); it can no longer be "
                            f"called. {FORWARD}")
    elif st.shutdown and (st.shutdown - today).days <= WARN_DAYS:
        rep.warnings.append(f"{label}: shuts down on {st.shutdown}, in {(st.shutdown - today).days} days "
                            f"({st.shutdown_source}); fine-tunes built on it stop working the same day, so results "
                            f"cannot be reproduced after it. {FORWARD}")
    elif st.listed:
        rep.ok.append(f"{label}: available" + (f", shutdown {st.shutdown}" if st.shutdown else ", no shutdown announced"))
    if "fine-tuning" in uses and (stop := fine_tuning_stop(model)):
        if stop <= today:
            rep.problems.append(f"train.backend: openai: the provider stopped new fine-tuning jobs on {stop}; "
                                f"no job can be created for {model}. {FORWARD}")
        elif train_day is not None and stop <= train_day:
            rep.problems.append(f"train.backend: openai: the provider stops new fine-tuning jobs on {stop}, and the "
                                f"train stage may only start on {train_day} (the batch stages before it may take "
                                f"llm.batch_timeout_h each): the job could be refused after the generation is paid "
                                f"for; run now without llm.batch, or {FORWARD}")
        elif (stop - today).days <= WARN_DAYS:
            rep.warnings.append(f"train.backend: openai: the provider stops new fine-tuning jobs on {stop}, in "
                                f"{(stop - today).days} days (and has closed self-serve fine-tuning to new users): "
                                f"a job created later is refused. {FORWARD}")
    return st


def train_day(cfg: ExperimentConfig, today: date, chosen: list[str] | None = None) -> date:
    """The latest day the train stage may start: with `llm.batch`, every batch stage before it may
    wait up to `llm.batch_timeout_h` for its batches."""
    from datetime import timedelta

    from .stages import batches, names

    order = chosen or names()
    before = order[:order.index("train")] if "train" in order else []
    hours = sum(cfg.llm.batch_timeout_h for s in before if batches(s)) if cfg.llm.batch else 0.0
    return today + timedelta(hours=hours)


def provider_report(cfg: ExperimentConfig, today: date | None = None, registry: dict | None = None,
                    http_client: httpx.Client | None = None, roles: list[str] | None = None,
                    training: bool = True, chosen: list[str] | None = None) -> ProviderReport:
    today = today or globals()["today"]()
    day = train_day(cfg, today, chosen)
    rep = ProviderReport()
    if registry is None and (cfg.run_dir / "models.json").is_file():  # fine-tunes of an earlier run are checked too
        from .records import ModelEntry

        data = json.loads((cfg.run_dir / "models.json").read_text(encoding="utf-8"))
        registry = {k: ModelEntry.model_validate(v) for k, v in data.items()}
    uses = models_in_use(cfg, registry, roles, training)
    listings: dict[str, dict | None] = {}
    for ep_name in dict.fromkeys(e for e, _ in uses):
        try:
            listings[ep_name] = list_models(cfg.endpoints[ep_name], ep_name, http_client)
        except UserError as e:
            listings[ep_name] = None
            rep.problems.append(str(e))
    for (ep_name, model), why in uses.items():
        assess(model, why, listings[ep_name], today, ep_name, rep, day)
    return rep


def check_provider(cfg: ExperimentConfig, today: date | None = None, registry: dict | None = None,
                   http_client: httpx.Client | None = None, roles: list[str] | None = None,
                   training: bool = True, chosen: list[str] | None = None) -> list[str]:
    """Lines to print (availability and warnings); UserError naming every blocking problem."""
    rep = provider_report(cfg, today, registry, http_client, roles, training, chosen)
    if rep.problems:
        raise UserError("provider check failed:\n  " + "\n  ".join(rep.problems))
    return [f"provider: {x}" for x in rep.ok] + [f"provider: WARNING {x}" for x in rep.warnings]
