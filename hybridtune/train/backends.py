"""The training-backend interface: how each `train.backend` trains, registers, checks and estimates.

A training backend is one class registered under its config name (train/backend_names.py);
the train stage, the estimate, the preflight checks and the provider check look it up instead
of comparing names, so a new backend is one class in its own module (listed in
backend_names.py, or in another package under the entry-point group `hybridtune.train_backends`)
and no edit of those modules. The package's own: train/local_backend.py, train/openai_ft.py.

    @register_training("mine")
    class Mine(TrainBackend):
        def train(self, ctx, st, variant, tc, rows, out, common, launched, resume): ...

    backend_of(cfg.train)   # the configured backend; unknown: one line naming train.backend
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .backend_names import KEY, TRAIN_BACKENDS, check_name, register_training

if TYPE_CHECKING:
    from ..config import ExperimentConfig
    from ..context import Context
    from ..records import ModelEntry
    from ..store import StageDir
    from .config import TrainConfig


class TrainBackend:
    """One `train.backend`. Each must say how it reads a variant's data, registers an untrained
    variant and trains one; the other methods' defaults are "nothing to check, nothing to add"."""

    name: str = "?"
    gpu: bool = False  # train.device / train.gpus (CUDA) checks apply

    def hyperparameters(self, tc: TrainConfig) -> dict:
        """What a registered variant must match to be reused (also the checkpoint spec)."""
        return tc.model_dump(include={"base_model", "seed"})

    def load_data(self, ctx: Context, st: StageDir, variant: str) -> tuple[list, list, str]:
        """(train, valid, data hash) of one variant; bad lines quarantined (stage.load_splits reads
        the mix stage's Session splits)."""
        raise NotImplementedError

    def preflight(self, ctx: Context, tc: TrainConfig, data: dict) -> None:
        """Checks before any training (data of every trained variant already loaded)."""

    def together(self, tc: TrainConfig) -> bool:
        """Whether `launch` trains every variant to train at once, before the per-variant loop."""
        return False

    def launch(self, ctx: Context, todo: list[str], resume: bool) -> dict[str, dict]:
        """With `together`: train `todo` (their folders prepared) and return {variant: metrics}."""
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

    def estimate(self, est: Any, trained: list, total: float, real_t: float) -> None:
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


def backend_of(tc: TrainConfig) -> TrainBackend:
    return TRAIN_BACKENDS.get(tc.backend, key=KEY)()


__all__ = ["KEY", "TRAIN_BACKENDS", "TrainBackend", "backend_of", "check_name", "register_training"]
