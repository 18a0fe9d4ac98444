"""The training-backend registry (hybridtune/train/backends.py): a taken name is refused, an
unknown `train.backend` is one line with did-you-mean, and a backend registered from outside
(here a throwaway one in this file) is used by the train stage and the estimate without any
edit of those modules.

    .venv/bin/python -m pytest -q tests/train/test_backends.py
"""
from __future__ import annotations

import pytest

from hybridtune.errors import UserError
from hybridtune.records import ModelEntry
from hybridtune.train.backends import TRAIN_BACKENDS, TrainBackend, backend_of, register_training


class Toy(TrainBackend):
    """Trains nothing: registers `toy-<variant>` and counts its calls (what a backend must do)."""

    trained: list[str] = []

    def hyperparameters(self, tc):
        return {"seed": tc.seed, "toy": True}

    def load_data(self, ctx, st, variant):
        from hybridtune.train.stage import load_splits

        return load_splits(ctx, st, variant)

    def base_entry(self, ctx, tc, common):
        return ModelEntry(backend="openai", model="toy-base", endpoint="local", **common)

    def train(self, ctx, st, variant, tc, rows, out, common, launched, resume):
        Toy.trained.append(variant)
        return ModelEntry(backend="openai", model=f"toy-{variant}", endpoint="local", **common)

    def variant_model(self, tc, name, trained, base):
        return f"toy-{name}" if trained else "toy-base"

    def estimate(self, est, trained, total, real_t):
        est.est.training.append(f"toy: {len(trained)} variant(s), {round(total)} tokens")


@pytest.fixture
def toy():
    register_training("toy")(Toy)
    Toy.trained = []
    yield Toy
    TRAIN_BACKENDS.remove("toy")


def test_the_package_backends_are_registered_and_a_taken_name_is_refused(toy):
    assert {"local", "openai", "toy"} <= set(TRAIN_BACKENDS.names())

    class Other(TrainBackend):
        pass

    with pytest.raises(ValueError, match="training backend 'local' is already registered by "
                                         "hybridtune.train.local_backend.LocalTraining"):
        register_training("local")(Other)
    with pytest.raises(ValueError, match="'toy' is already registered"):
        register_training("toy")(Other)
    assert TRAIN_BACKENDS.get("local").__name__ == "LocalTraining"


def test_an_unknown_backend_is_one_line_naming_the_key_with_did_you_mean(make_cfg):
    with pytest.raises(UserError) as e:
        make_cfg("train.backend=opnai")
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith("train.backend: unknown training backend 'opnai'; did you mean 'openai'?")
    assert "local" in msg


def test_a_registered_backend_is_used_by_the_train_stage(toy, make_cfg, write_mix):
    from hybridtune.context import open_run
    from hybridtune.registry import load_registry
    from hybridtune.train.stage import run as train_run

    cfg = make_cfg("train.backend=toy", "variants={base: {sources: []}, hybrid: {real_share: 0.5}}")
    assert isinstance(backend_of(cfg.train), Toy)
    write_mix(cfg.run_dir, "hybrid", n=6)
    with open_run(cfg) as ctx:
        out = ctx.run_stage("train", train_run)
        reg = load_registry(ctx.store)
        assert out["trained"] == ["hybrid"] and toy.trained == ["hybrid"]
        assert reg["base"].model == "toy-base" and reg["hybrid"].model == "toy-hybrid"
        assert reg["hybrid"].hyperparameters == {"seed": cfg.train.seed, "toy": True}
        assert reg["hybrid"].metrics["train_sessions"] == 6
        # the backend's hyperparameters and data hash decide reuse: a rerun trains nothing
        assert ctx.run_stage("train", train_run, force=True)["skipped"] == ["hybrid"]
        assert toy.trained == ["hybrid"]


def test_a_registered_backend_is_used_by_the_estimate(toy, make_cfg):
    from hybridtune.estimate import estimate

    est = estimate(make_cfg("train.backend=toy", path="configs/demo.yaml"))
    assert any(x.startswith("toy: 3 variant(s)") for x in est.training)  # real, synthetic, hybrid
    assert not any("local LoRA" in x for x in est.training)
    assert any(r.model.startswith("toy-") for r in est.rows)  # the variants' conversations, at the backend's names
