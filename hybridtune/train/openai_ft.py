"""Hosted fine-tuning on the OpenAI API (or a compatible one): upload, create job, follow, record.

Input: the validated export of the `mix` stage (`mix/<variant>/openai_train.jsonl` and
`openai_valid.jsonl`: merged turns, trailing client turns removed, token limits checked),
uploaded byte for byte; `train.openai` settings and the named endpoint (base_url,
api_key_env). Output: the fine-tuned model id and job metrics; under `out_dir`:
`openai_job.json` (file ids, sha256 of the uploaded bytes, job id), `metrics.csv` (step
metrics from the job's events), `checkpoints.json`.

Money safety: the uploaded file ids and the job id are written to `openai_job.json` the
moment the API returns them, before waiting, so a killed process that is rerun follows the
same job instead of paying for a new one; a job is followed only when its key (data hash,
base model, hyperparameters, suffix and seed: `job_key`) is this run's, so changed settings
start a new job instead of returning the old model. Before a job is created the provider's
job list is searched for one with the same uploaded training file, model, suffix, seed and
hyperparameters (`find_job`), and the creation request is sent once, without retries: a
request that times out is answered by searching again, never by a second paid job. Before
that the provider's model list is asked whether the base model and fine-tuning are still
available (hybridtune/provider.py). A recorded job the provider no longer knows is one line.

    res = finetune(oc, endpoint, "openai", {"train": path, "valid": path}, Path("runs/x/train/hybrid"), data_hash=h)
    res["model"]   # 'ft:gpt-4o-mini-2024-07-18:org:hybridtune:abc123'
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import UserError
from ..store import atomic_write
from .backends import TrainBackend, register_training
from .config import OpenAIFineTune

if TYPE_CHECKING:
    from ..config import ExperimentConfig
    from ..context import Context
    from ..records import ModelEntry
    from ..store import StageDir
    from .config import TrainConfig

MIN_EXAMPLES = 10  # the API rejects smaller training files
TERMINAL = {"succeeded", "failed", "cancelled"}


def make_client(endpoint, name: str, http_client=None):
    """A synchronous OpenAI client for the endpoint; the key comes from the env var only."""
    from openai import OpenAI

    env = endpoint.api_key_env
    key = os.environ.get(env) if env else "not-needed"
    if not key:
        raise UserError(f"endpoints.{name}.api_key_env: environment variable {env} is not set; export {env}=...")
    url = endpoint.base_url if isinstance(endpoint.base_url, str) else (endpoint.base_url or ["https://api.openai.com/v1"])[0]
    return OpenAI(base_url=url, api_key=key, timeout=endpoint.timeout_s, max_retries=3, http_client=http_client)


def method(oc: OpenAIFineTune) -> dict:
    """The `method` block of a supervised fine-tuning job."""
    hp = {"n_epochs": oc.n_epochs, "batch_size": oc.batch_size, "learning_rate_multiplier": oc.learning_rate_multiplier}
    return {"type": "supervised", "supervised": {"hyperparameters": hp}}


def _state(out_dir: Path) -> dict:
    p = out_dir / "openai_job.json"
    return json.loads(p.read_text()) if p.exists() else {}


def _save_state(out_dir: Path, state: dict) -> None:
    atomic_write(out_dir / "openai_job.json", json.dumps(state, indent=2) + "\n")


def file_hash(*paths: Path | None) -> str:
    """sha256 of the bytes that are uploaded (the registry's data hash of an openai variant)."""
    h = hashlib.sha256()
    for p in paths:
        h.update(p.read_bytes() if p is not None else b"")
        h.update(b"\x00")
    return h.hexdigest()[:16]


def examples(path: Path) -> int:
    return sum(1 for line in path.read_bytes().splitlines() if line.strip())


def check_can_finetune(client, oc: OpenAIFineTune, endpoint_name: str, day: date | None = None) -> list[str]:
    """The provider's model list says the base model is served and fine-tuning is open; else UserError."""
    from .. import provider
    from ..provider import ProviderReport, assess

    try:
        cards = {m.id: m.model_dump() for m in client.models.list()}
    except Exception as e:  # a provider without a model list: the job creation will say what is wrong
        return [f"model list unavailable ({type(e).__name__}); not checked"]
    rep = ProviderReport()
    assess(oc.model, ["fine-tuning"], cards, day or provider.today(), endpoint_name, rep)
    if rep.problems:
        raise UserError("train.openai: " + "; ".join(rep.problems))
    return rep.warnings


def job_key(oc: OpenAIFineTune, data_hash: str, seed: int) -> str:
    """What makes a job this run's: the uploaded data, base model, hyperparameters, suffix and seed."""
    blob = json.dumps({"data": data_hash, "model": oc.model, "method": method(oc), "suffix": oc.suffix, "seed": seed},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _same_settings(job, state: dict, oc: OpenAIFineTune, seed: int) -> bool:
    """The job is this run's: tagged with its key (metadata), or made from its uploaded training
    file with the same model, suffix, seed and hyperparameters; and not failed or cancelled."""
    if job.status in ("failed", "cancelled"):
        return False
    if (getattr(job, "metadata", None) or {}).get("hybridtune_key") == state["key"]:
        return True
    hp = _hp(job) or {}
    wanted = {k: v for k, v in method(oc)["supervised"]["hyperparameters"].items() if v != "auto"}
    return (state.get("training_file") is not None and job.training_file == state["training_file"]
            and job.model == oc.model and job.seed == seed and getattr(job, "user_provided_suffix", None) == oc.suffix
            and all(hp.get(k) == v for k, v in wanted.items()))


def find_job(client, state: dict, oc: OpenAIFineTune, seed: int, scan: int = 200):
    """A live or finished job of the provider with this run's data and settings, or None."""
    for i, job in enumerate(client.fine_tuning.jobs.list(limit=100)):
        if i >= scan:
            return None
        if _same_settings(job, state, oc, seed):
            return job
    return None


def start_job(client, oc: OpenAIFineTune, files: dict[str, Path | None], out_dir: Path, data_hash: str, seed: int,
              endpoint_name: str = "openai", log: Callable[[str], None] = print) -> str:
    """Upload the export files as they are and create the job, saving every id as soon as it
    exists; returns the job id."""
    n = examples(files["train"])
    if n < MIN_EXAMPLES:
        raise UserError(f"{files['train']}: {n} training conversations; the fine-tuning API needs at least "
                        f"{MIN_EXAMPLES}; enlarge mix.size")
    for w in check_can_finetune(client, oc, endpoint_name):
        log(f"[yellow]{w}[/yellow]")
    state = {"data_hash": data_hash, "model": oc.model, "key": job_key(oc, data_hash, seed)}
    job = find_job(client, state, oc, seed)  # the record may be lost while the provider's job is not
    if job is not None:
        log(f"found job {job.id} with this data and these settings (made by an earlier run); following it")
        _save_state(out_dir, {**state, "job_id": job.id, "training_file": job.training_file})
        return job.id
    prev = _state(out_dir)
    if prev.get("data_hash") == data_hash:  # files uploaded by a killed earlier attempt are reused
        state.update({k: prev[k] for k in ("training_file", "validation_file", "uploaded") if prev.get(k)})
    for split, path in (("training_file", files["train"]), ("validation_file", files.get("valid"))):
        if path is not None and examples(path) and not state.get(split):
            data = path.read_bytes()  # exactly the validated export: no re-serialisation
            state[split] = client.files.create(file=(path.name, data), purpose="fine-tune").id
            state.setdefault("uploaded", {})[split] = {"path": str(path), "bytes": len(data),
                                                       "sha256": hashlib.sha256(data).hexdigest()}
            _save_state(out_dir, state)
    job = find_job(client, state, oc, seed) or create_once(client, oc, state, seed)
    state["job_id"] = job.id
    _save_state(out_dir, state)
    return job.id


def create_once(client, oc: OpenAIFineTune, state: dict, seed: int):
    """Send the paid creation request once (no client retries); if it goes unanswered, the job list
    says whether it was made."""
    import openai

    try:
        return client.with_options(max_retries=0).fine_tuning.jobs.create(
            model=oc.model, training_file=state["training_file"], validation_file=state.get("validation_file"),
            suffix=oc.suffix, seed=seed, method=method(oc), metadata={"hybridtune_key": state["key"]})
    except (openai.APITimeoutError, openai.APIConnectionError, openai.InternalServerError) as e:
        job = find_job(client, state, oc, seed)
        if job is None:
            raise UserError(f"train.openai: the request creating the fine-tuning job got no answer ({type(e).__name__}) "
                            "and the provider lists no such job, so none was made; rerun to try again") from None
        return job


def follow(client, job_id: str, oc: OpenAIFineTune, out_dir: Path, *, log: Callable[[str], None] = print,
           sleep: Callable[[float], None] = time.sleep):
    """Poll the job until it ends, printing new events and appending step metrics to metrics.csv."""
    seen: set[str] = set()
    metrics_path = out_dir / "metrics.csv"
    deadline = time.time() + oc.timeout_h * 3600
    import openai

    while True:
        try:
            job = client.fine_tuning.jobs.retrieve(job_id)
        except openai.NotFoundError:
            raise UserError(f"train.openai: job {job_id} recorded in {out_dir / 'openai_job.json'} is unknown to the "
                            "provider (deleted, or another account's key); delete that file and rerun to create a "
                            "new job") from None
        events = list(client.fine_tuning.jobs.list_events(fine_tuning_job_id=job_id, limit=100).data)
        # the API lists newest first; oldest first (stable within a second) is the order they happened
        for ev in sorted((e for e in reversed(events) if e.id not in seen), key=lambda e: e.created_at):
            seen.add(ev.id)
            if ev.type == "metrics" and ev.data:
                _append_metrics(metrics_path, dict(ev.data))
            log(f"[{job.status}] {ev.message}")
        if job.status in TERMINAL:
            return job
        if time.time() > deadline:
            raise UserError(f"train.openai.timeout_h: job {job_id} still {job.status}; rerun later to keep following it")
        sleep(oc.poll_s)


def _append_metrics(path: Path, data: dict) -> None:
    cols = ["step", "train_loss", "train_mean_token_accuracy", "valid_loss", "valid_mean_token_accuracy",
            "full_valid_loss", "full_valid_mean_token_accuracy"]
    new = not path.exists()
    with path.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        if new:
            w.writeheader()
        w.writerow(data)


def finetune(oc: OpenAIFineTune, endpoint, endpoint_name: str, files: dict[str, Path | None], out_dir: Path, *,
             data_hash: str, seed: int, http_client=None, log: Callable[[str], None] = print,
             sleep: Callable[[float], None] = time.sleep) -> dict:
    """Run (or resume following) one fine-tuning job; returns the model id and metrics."""
    out_dir.mkdir(parents=True, exist_ok=True)
    client = make_client(endpoint, endpoint_name, http_client)
    state = _state(out_dir)
    key = job_key(oc, data_hash, seed)
    # a state file of an older version has no key: its data hash and model are what it can match
    same = state.get("key") == key if "key" in state else (state.get("data_hash"), state.get("model")) == (
        data_hash, oc.model)
    if state.get("job_id") and same:
        job_id = state["job_id"]
        log(f"following existing job {job_id} (started by an earlier run)")
    else:
        if state.get("job_id"):
            log(f"job {state['job_id']} was made with other data or settings (model, hyperparameters, suffix, seed); "
                "a new job is created")
        job_id = start_job(client, oc, files, out_dir, data_hash, seed, endpoint_name, log)
        log(f"created fine-tuning job {job_id}")
    job = follow(client, job_id, oc, out_dir, log=log, sleep=sleep)
    if job.status != "succeeded":
        err = getattr(job, "error", None)
        why = f"{err.code}: {err.message}" if err and getattr(err, "message", None) else job.status
        raise UserError(f"train.openai: job {job_id} {job.status} ({why}); fix the data or settings, delete "
                        f"{out_dir / 'openai_job.json'} and rerun")
    ckpts = client.fine_tuning.jobs.checkpoints.list(job_id).data
    atomic_write(out_dir / "checkpoints.json", json.dumps([c.model_dump(mode="json") for c in ckpts], indent=2) + "\n")
    last = {}
    if (out_dir / "metrics.csv").exists():
        rows = list(csv.DictReader((out_dir / "metrics.csv").open()))
        last = {k: float(v) for k, v in rows[-1].items() if v not in ("", None)} if rows else {}
    return {"model": job.fine_tuned_model, "job_id": job_id, "trained_tokens": job.trained_tokens,
            "hyperparameters": _hp(job), "checkpoints": [c.fine_tuned_model_checkpoint for c in ckpts], "last": last}


def _hp(job) -> dict:
    m = getattr(job, "method", None)
    hp = getattr(getattr(m, "supervised", None), "hyperparameters", None) or getattr(job, "hyperparameters", None)
    return hp.model_dump(mode="json") if hp is not None else {}


@register_training("openai")
class OpenAITraining(TrainBackend):
    """Hosted fine-tuning jobs (OpenAI API or a compatible one) on the mix stage's validated export."""

    def hyperparameters(self, tc: TrainConfig) -> dict:
        return {**tc.openai.model_dump(include={"model", "n_epochs", "batch_size", "learning_rate_multiplier", "suffix"}),
                "seed": tc.seed}

    def load_data(self, ctx: Context, st: StageDir, variant: str) -> tuple[list, list, str]:
        """The export's conversations, hashed over the exact bytes that are uploaded."""
        from .data import read_openai_export
        from .stage import export_files

        files = export_files(ctx, variant)
        return (read_openai_export(files["train"]), read_openai_export(files["valid"]) if files["valid"] else [],
                file_hash(files["train"], files["valid"]))

    def preflight(self, ctx: Context, tc: TrainConfig, data: dict) -> None:
        if tc.openai.endpoint not in ctx.cfg.endpoints:
            raise UserError(f"train.openai.endpoint: '{tc.openai.endpoint}' is not defined under endpoints; add it "
                            "(backend: openai, base_url, api_key_env)")
        make_client(ctx.cfg.endpoints[tc.openai.endpoint], tc.openai.endpoint)  # key present

    def base_entry(self, ctx: Context, tc: TrainConfig, common: dict) -> ModelEntry:
        from ..records import ModelEntry

        return ModelEntry(backend="openai", model=tc.openai.model, endpoint=tc.openai.endpoint, **common)

    def train(self, ctx: Context, st: StageDir, variant: str, tc: TrainConfig, rows: tuple, out: Path,
              common: dict, launched: dict | None, resume: bool) -> ModelEntry:
        from ..records import ModelEntry
        from .stage import export_files

        ep = ctx.cfg.endpoints[tc.openai.endpoint]
        res = finetune(tc.openai, ep, tc.openai.endpoint, export_files(ctx, variant), out, data_hash=common["data_hash"],
                       seed=tc.seed, log=lambda m: ctx.log(f"{variant}: {m}"))
        common["metrics"].update(res["last"], trained_tokens=res["trained_tokens"])
        return ModelEntry(backend="openai", model=res["model"], endpoint=tc.openai.endpoint, job_id=res["job_id"],
                          api_hyperparameters=res["hyperparameters"], **common)

    def variant_model(self, tc: TrainConfig, name: str, trained: bool, base: str) -> str:
        return f"ft:{tc.openai.model}:{name}" if trained else tc.openai.model

    def estimate(self, est: Any, trained: list, total: float, real_t: float) -> None:
        tc = est.cfg.train
        epochs = tc.openai.n_epochs if isinstance(tc.openai.n_epochs, int) else 3
        price = est.cfg.llm.prices.get(tc.openai.model)
        usd = total * epochs * (price.training if price else 0.0) / 1e6
        est.est.training_usd += usd
        priced = f"${usd:.2f}" if price and price.training else f"$? (no llm.prices.{tc.openai.model}.training)"
        est.est.training.append(f"fine-tuning: {len(trained)} job(s) on {tc.openai.model}: {round(total)} training "
                                f"tokens x {epochs} epochs = {round(total * epochs)} billed tokens, {priced}")

    def config_problems(self, cfg: ExperimentConfig) -> list[str]:
        tc = cfg.train
        ep = cfg.endpoints.get(tc.openai.endpoint)
        if ep is None:
            return [f"train.openai.endpoint: '{tc.openai.endpoint}' is not defined under endpoints; "
                    f"define it (backend: openai, base_url, api_key_env) or fix the name"]
        if ep.backend != "openai":
            return [f"train.backend: openai fine-tunes through endpoint '{tc.openai.endpoint}', whose backend is "
                    f"{ep.backend}; it needs an OpenAI-compatible fine-tuning API (backend: openai)"]
        return []

    def remote_models(self, cfg: ExperimentConfig) -> list[tuple[str, str | None, str]]:
        return [(cfg.train.openai.endpoint, cfg.train.openai.model, "fine-tuning")]
