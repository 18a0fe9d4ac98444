"""Helpers shared by the bench/synth_*.py scripts: a throw-away run context on the embedded model
(or the fake backend), and a timer around the llama.cpp model call."""
from __future__ import annotations

import contextlib
import tempfile
import time
from pathlib import Path

from common import ROOT  # noqa: F401  (puts the repo on sys.path)

from hybridtune.config import load_config
from hybridtune.context import open_run


@contextlib.contextmanager
def bench_ctx(*overrides: str, backend: str = "llamacpp", run_dir: Path | None = None):
    """A run context in a temporary folder; endpoint 'local' on `backend`."""
    with tempfile.TemporaryDirectory(prefix="hybridtune-bench-") as tmp:
        cfg = load_config(None, [f"runs_dir={run_dir or tmp}", "quiet=true", f"endpoints.local.backend={backend}",
                                 "endpoints.local.max_in_flight=1", *overrides])
        with open_run(cfg) as ctx:
            yield ctx


class ModelTimer:
    """Sums wall time spent inside llama.cpp's create_chat_completion (calls are serialized)."""

    def __init__(self, ctx):
        backend = ctx.llms.backend("local")
        self.llama = backend.llama  # load the GGUF now, outside any timed window
        self.seconds = 0.0
        self.calls = 0
        inner = self.llama.create_chat_completion

        def timed(*a, **kw):
            t0 = time.perf_counter()
            try:
                return inner(*a, **kw)
            finally:
                self.seconds += time.perf_counter() - t0
                self.calls += 1

        self.llama.create_chat_completion = timed
