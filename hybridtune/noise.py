"""Library output a user did not ask for, off unless `-v`: Hugging Face log lines and warnings,
dataset progress bars, FutureWarnings from the training stack. The stages say what happens
in their own words (progress bars with rate and ETA, one line per event).

Set through environment variables as well as in this process, so the processes that
`accelerate launch` starts for multi-GPU training are quiet too.

    from hybridtune import noise
    noise.configure(verbose=False)   # at a verb's start, before the heavy libraries are imported
    if noise.verbose(): ...          # e.g. print the trainer's raw log dicts
"""
from __future__ import annotations

import logging
import os
import sys
import warnings

VERBOSE_ENV = "HYBRIDTUNE_VERBOSE"
QUIET_ENV = {"TRANSFORMERS_VERBOSITY": "error", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
             "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
NOISY_LOGGERS = ("transformers", "datasets", "peft", "trl", "accelerate", "torch.distributed")


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV) == "1"


def configure(verbose: bool = False) -> None:
    """Quiet the libraries (verbose=False) or leave them as they are (verbose=True)."""
    os.environ[VERBOSE_ENV] = "1" if verbose else "0"
    if verbose:  # as the libraries have it (undo an earlier configure in this process)
        warnings.filterwarnings("default", category=FutureWarning)
        for name in NOISY_LOGGERS:
            logging.getLogger(name).setLevel(logging.NOTSET)
        return
    for k, v in QUIET_ENV.items():
        os.environ.setdefault(k, v)
    os.environ.setdefault("PYTHONWARNINGS", "ignore::FutureWarning,ignore::DeprecationWarning")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    if "datasets" in sys.modules:  # read its environment variable at import: tell it directly
        sys.modules["datasets"].disable_progress_bars()
