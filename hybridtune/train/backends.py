"""The training-backend registry: how each `train.backend` trains, registers, checks and estimates.

A training backend is one class registered under its config name; the train stage, the
estimate, the preflight checks and the provider check look it up instead of comparing names,
so a new backend is one class here (or in another package, entry-point group
`hybridtune.train_backends`) and no edit of those modules:

    @register_training("mine")
    class Mine(TrainBackend):
        def train(self, ctx, st, variant, tc, rows, out, common, launched, resume): ...

    backend_of(cfg.train)   # the configured backend; unknown: one line naming train.backend
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..plugins import Registry

if TYPE_CHECKING:
    from ..config import ExperimentConfig
    from ..context import Context
    from ..estimate import Estimator
    from ..records import ModelEntry
    from ..store import StageDir
    from .config import TrainConfig

KEY = "train.backend"


class TrainBackend:
    """Defaults fit a backend that trains in this process on the mix stage's Session splits."""

    name: str = "?"
    gpu: bool = False  # train.device / train.gpus (CUDA) checks apply

    def hyperparameters(self, tc: TrainConfig) -> dict:
        """What a registered variant must match to be reused (also the checkpoint spec)."""
        return tc.model_dump(include={"base_model", "seed"})

    def load_data(self, ctx: Context, st: StageDir, variant: str) -> tuple[list, list, str]:
        """(train, valid, data hash) of one variant; bad lines quarantined."""
        from .stage import load_splits

        return load_splits(ctx, st, variant)

    def preflight(self, ctx: Context, tc: TrainConfig, data: dict) -> None:
        """Checks before any training (data of every trained variant already loaded)."""

    def launch(self, ctx: Context, st: StageDir, todo: dict[str, str], resume: bool) -> dict[str, dict]:
        """Train `todo` ({variant: data hash}) together before the per-variant loop; {variant: metrics}."""
        return {}

    def base_entry(self, ctx: Context, tc: TrainConfig, common: dict) -> ModelEntry:
        """Registry entry of an untrained variant."""
        raise NotImplementedError

    def train(self, ctx: Context, st: StageDir, variant: str, tc: TrainConfig, rows: tuple, out: Path,
              common: dict, launched: dict | None, resume: bool) -> ModelEntry:
        """Train one variant into `out` and return its registry entry (`common`: shared fields)."""
        raise NotImplementedError

    def variant_model(self, tc: TrainConfig, name: str, trained: bool, base: str) -> str:
        """The model name the estimate prices a variant's conversations at."""
        return f"{base}+{name}" if trained else base

    def estimate(self, est: Estimator, trained: list, total: float, real_t: float) -> None:
        """Add the training time and cost of `trained` variants (`total` training tokens) to `est`."""

    def estimate_notes(self, cfg: ExperimentConfig) -> list[str]:
        return []

    def config_problems(self, cfg: ExperimentConfig) -> list[str]:
        """This backend against the configured endpoints (one line each)."""
        return []

    def machine_checks(self, cfg: ExperimentConfig) -> tuple[list[str], list[str]]:
        """(ok lines, problems) that nothing before the train stage would show."""
        return [], []

    def remote_models(self, cfg: ExperimentConfig) -> list[tuple[str, str | None, str]]:
        """(endpoint, model, use) of the hosted models training uses, for the provider check."""
        return []


TRAIN_BACKENDS: Registry[type[TrainBackend]] = Registry(
    "training backend", ("hybridtune.train.backends",), group="hybridtune.train_backends")


def register_training(name: str):
    """Class decorator: `@register_training("mine")` makes `train.backend: mine` selectable."""

    def deco(cls):
        cls.name = name
        return TRAIN_BACKENDS.add(name, cls)

    return deco


def backend_of(tc: TrainConfig) -> TrainBackend:
    return TRAIN_BACKENDS.get(tc.backend, key=KEY)()


def check_name(name: str) -> str:
    """Config validation: an unknown name is one line with did-you-mean."""
    TRAIN_BACKENDS.get(name, key=KEY)
    return name


LOCAL_HP = ("base_model", "lora_r", "lora_alpha", "lora_dropout", "target_modules", "qlora", "learning_rate",
            "warmup_ratio", "epochs", "max_steps", "batch_size", "grad_accum", "max_seq_len", "seed",
            "gradient_checkpointing")


@register_training("local")
class LocalTraining(TrainBackend):
    """TRL + PEFT LoRA here or under `accelerate launch`; served by llama.cpp or a vLLM server."""

    gpu = True

    def hyperparameters(self, tc: TrainConfig) -> dict:
        return tc.model_dump(include=set(LOCAL_HP))

    def preflight(self, ctx: Context, tc: TrainConfig, data: dict) -> None:
        if tc.serve_endpoint:
            from .vllm_lora import check_server

            check_server(ctx.cfg, tc)
        if data:
            from .launch import check_launch, use_accelerate
            from .local import preflight as local_preflight

            if use_accelerate(tc):
                check_launch(tc)
            local_preflight(tc)

    def launch(self, ctx: Context, st: StageDir, todo: dict[str, str], resume: bool) -> dict[str, dict]:
        from .launch import run_launch, use_accelerate
        from .stage import prepare_dir

        if not todo or not use_accelerate(ctx.cfg.train):  # one launch trains them all: processes start and join once
            return {}
        for v, h in todo.items():
            prepare_dir(ctx, st, v, h, resume)
        return run_launch(ctx, list(todo), resume=resume)

    def base_entry(self, ctx: Context, tc: TrainConfig, common: dict) -> ModelEntry:
        from .stage import local_base_entry

        return local_base_entry(ctx, tc, common)

    def train(self, ctx: Context, st: StageDir, variant: str, tc: TrainConfig, rows: tuple, out: Path,
              common: dict, launched: dict | None, resume: bool) -> ModelEntry:
        from .stage import train_local

        return train_local(ctx, st, variant, tc, rows, out, common, launched, resume)

    def estimate(self, est: Estimator, trained: list, total: float, real_t: float) -> None:
        est.local_training(trained, total, real_t)

    def estimate_notes(self, cfg: ExperimentConfig) -> list[str]:
        if cfg.train.serve_endpoint and cfg.llm.gpu_hour_usd is None:
            return ["self-hosted servers (vLLM) cost GPU hours for as long as they run; set "
                    "llm.gpu_hour_usd to price training"]
        return []

    def config_problems(self, cfg: ExperimentConfig) -> list[str]:
        from ..preflight import local_config_problems

        return local_config_problems(cfg)

    def machine_checks(self, cfg: ExperimentConfig) -> tuple[list[str], list[str]]:
        from ..preflight import lora_checks

        return lora_checks(cfg)

    def remote_models(self, cfg: ExperimentConfig) -> list[tuple[str, str | None, str]]:
        serve = cfg.train.serve_endpoint
        if not serve:
            return []
        return [(serve, cfg.endpoints[serve].model if serve in cfg.endpoints else None, "base variant + LoRA adapters")]



@register_training("openai")
class OpenAITraining(TrainBackend):
    """Hosted fine-tuning jobs (OpenAI API or a compatible one) on the mix stage's validated export."""

    def hyperparameters(self, tc: TrainConfig) -> dict:
        return {**tc.openai.model_dump(include={"model", "n_epochs", "batch_size", "learning_rate_multiplier", "suffix"}),
                "seed": tc.seed}

    def load_data(self, ctx: Context, st: StageDir, variant: str) -> tuple[list, list, str]:
        """The export's conversations, hashed over the exact bytes that are uploaded."""
        from .data import read_openai_export
        from .openai_ft import file_hash
        from .stage import export_files

        files = export_files(ctx, variant)
        return (read_openai_export(files["train"]), read_openai_export(files["valid"]) if files["valid"] else [],
                file_hash(files["train"], files["valid"]))

    def preflight(self, ctx: Context, tc: TrainConfig, data: dict) -> None:
        from ..errors import UserError
        from .openai_ft import make_client

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
        from .openai_ft import finetune
        from .stage import export_files

        ep = ctx.cfg.endpoints[tc.openai.endpoint]
        res = finetune(tc.openai, ep, tc.openai.endpoint, export_files(ctx, variant), out, data_hash=common["data_hash"],
                       seed=tc.seed, log=lambda m: ctx.log(f"{variant}: {m}"))
        common["metrics"].update(res["last"], trained_tokens=res["trained_tokens"])
        return ModelEntry(backend="openai", model=res["model"], endpoint=tc.openai.endpoint, job_id=res["job_id"],
                          api_hyperparameters=res["hyperparameters"], **common)

    def variant_model(self, tc: TrainConfig, name: str, trained: bool, base: str) -> str:
        return f"ft:{tc.openai.model}:{name}" if trained else tc.openai.model

    def estimate(self, est: Estimator, trained: list, total: float, real_t: float) -> None:
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
