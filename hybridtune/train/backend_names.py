"""The names of the training backends (`train.backend`): the registry alone, so that config
validation can check a name without importing any backend (see train/backends.py for the interface).

    register_training("mine")(Mine)          # a second class under a taken name is refused
    check_name("opnai")                      # UserError: train.backend: ... did you mean 'openai'?
"""
from __future__ import annotations

from ..plugins import Registry

KEY = "train.backend"

# the package's own backends register themselves where they are defined, imported on first lookup
TRAIN_BACKENDS: Registry[type] = Registry(
    "training backend", ("hybridtune.train.local_backend", "hybridtune.train.openai_ft"),
    group="hybridtune.train_backends")


def register_training(name: str):
    """Class decorator: `@register_training("mine")` makes `train.backend: mine` selectable."""

    def deco(cls):
        cls.name = name
        return TRAIN_BACKENDS.add(name, cls)

    return deco


def check_name(name: str) -> str:
    """Config validation: an unknown name is one line naming train.backend, with did-you-mean."""
    TRAIN_BACKENDS.get(name, key=KEY)
    return name
