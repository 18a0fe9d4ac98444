"""The one module benchmark scripts share: every figure is a ratio against a baseline measured
in the same run, recorded with the command that reproduces it and the commit it measured.

Each `bench/<name>.py` imports from here only (`from common import ...`; never from another
script) and calls `record(name, [Result(...), ...])`, which writes `bench/results/<name>.json`;
`bench/run_all.py` runs them all and renders docs/benchmarks.md.

Public data sets are named as in the catalogue (hybridtune/catalogue/catalogue.yaml):
`data_file("esconv", "test.json")` is the copy `hybridtune data get esconv` made, else the
development copy under $HYBRIDTUNE_DEV_DATA (a folder of the sets as their authors published
them; relative to the checkout, e.g. `HYBRIDTUNE_DEV_DATA=../shared/data`; `make bench` sets it).
A development set the catalogue does not list is `dev_data_file(folder, file)`.

    from common import Result, data_file, record
    rows = data_file("annomi", "AnnoMI-simple.csv").read_text()
    record("my_bench", [Result("speed", "812 tok/s", "790 tok/s (plain)", 1.03, ">= 0.95", True,
                               ".venv/bin/python bench/my_bench.py")])
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

DEV_DATA_ENV = "HYBRIDTUNE_DEV_DATA"
# catalogue name -> folder name in the development copy, where the two differ
DEV_FOLDERS = {"cactus": "cactus-eval", "mentalchat16k": "mentalchat16k-eval", "counselchat": "counsel-chat"}


def data_file(name: str, file: str, required: bool = True) -> Path | None:
    """`file` of catalogue data set `name`: its downloaded copy, else the development copy; None when
    neither has it and not `required` (the benchmark then falls back to built-in data)."""
    from hybridtune import catalogue

    ds = catalogue.get(name)  # an unknown name: one line listing the known ones
    places = [catalogue.local_dir(ds.name) / file]
    if dev := _dev_dir():
        places.append(dev / DEV_FOLDERS.get(ds.name, ds.name) / file)
    for p in places:
        if p.is_file():
            return p
    if not required:
        return None
    raise SystemExit(f"data set {ds.name}: {file} not found (looked in {', '.join(str(p.parent) for p in places)}); "
                     f"run `hybridtune data get {ds.name}` or set {DEV_DATA_ENV} to a folder of the shared data sets")


def _dev_dir() -> Path | None:
    """$HYBRIDTUNE_DEV_DATA (relative to the checkout unless absolute), or None when unset."""
    if not os.environ.get(DEV_DATA_ENV):
        return None
    dev = Path(os.environ[DEV_DATA_ENV]).expanduser()
    return dev if dev.is_absolute() else ROOT / dev


def dev_data_file(folder: str, file: str) -> Path:
    """`file` of a development data set the catalogue does not list (e.g. the Reddit C-SSRS users):
    $HYBRIDTUNE_DEV_DATA/<folder>/<file>; exits with one line when it is not there."""
    dev = _dev_dir()
    p = dev / folder / file if dev else None
    if p is None or not p.is_file():
        raise SystemExit(f"{folder}/{file}: not found ({'looked in ' + str(p.parent) if p else DEV_DATA_ENV + ' is not set'}); "
                         f"set {DEV_DATA_ENV} to a folder of the shared data sets")
    return p


def git_commit(root: Path = ROOT) -> str:
    """The commit the working tree is at, marked '+dirty' when tracked files differ from it."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False).stdout.strip()

    head = git("rev-parse", "HEAD")
    if not head:
        return "unknown (not a git checkout)"
    return head + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


@dataclass
class Result:
    benchmark: str          # what is measured
    figure: str             # the measured value, with unit ("812 tok/s")
    baseline: str           # what it is compared against, measured in the same run
    ratio: float | None     # figure / baseline (or the metric itself where no ratio applies)
    target: str             # e.g. ">= 0.95"
    met: bool | None        # None where there is no target
    command: str            # how to reproduce
    notes: str = ""
    extra: dict = field(default_factory=dict)


def record(name: str, results: list[Result], out: Path = OUT, headline: dict | None = None) -> Path:
    """Write bench/results/<name>.json: the results, when, on what machine, at which commit;
    `headline`: named figures kept at the top level of the file."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.json"
    payload = {
        "name": name,
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "commit": git_commit(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        **(headline or {}),
        "results": [asdict(r) for r in results],
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")
    for r in results:
        mark = "" if r.met is None else (" [met]" if r.met else " [NOT met]")
        print(f"{r.benchmark}: {r.figure} vs {r.baseline} -> ratio {r.ratio} (target {r.target}){mark}")
    return path


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux ru_maxrss is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_process(args: list[str], cwd: Path = ROOT) -> dict:
    """Run a command to the end: wall seconds, its peak RSS in MiB and CPU seconds (os.wait4), exit status,
    stderr tail."""
    import subprocess

    t0 = time.time()
    p = subprocess.Popen(args, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    err = p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    rc = os.waitstatus_to_exitcode(status)
    return {"seconds": round(time.time() - t0, 2), "peak_rss_mb": round(ru.ru_maxrss / 1024, 1), "rc": rc,
            "cpu_s": round(ru.ru_utime + ru.ru_stime, 2),
            "error": err.strip()[-2000:] if rc else ""}


# -- fixtures more than one benchmark uses ----------------------------------------------------------

@contextlib.contextmanager
def bench_ctx(*overrides: str, backend: str = "llamacpp", run_dir: Path | None = None):
    """A run context in a temporary folder; endpoint 'local' on `backend`."""
    from hybridtune.config import load_config
    from hybridtune.context import open_run

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


def esconv_sessions(n: int) -> list:
    """ESConv test conversations as Sessions: seeker = user, supporter = assistant (consecutive turns merged)."""
    from hybridtune.records import Message, Session, stable_id

    out = []
    with data_file("esconv", "test.json").open(encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            msgs: list[Message] = []
            for t in d["dialog"]:
                role = "assistant" if t["speaker"] == "sys" else "user"
                if msgs and msgs[-1].role == role:
                    msgs[-1] = Message(role=role, content=f"{msgs[-1].content} {t['text'].strip()}")
                else:
                    msgs.append(Message(role=role, content=t["text"].strip()))
            out.append(Session(id=stable_id("esconv-test", len(out)), source="real", messages=msgs,
                               meta={"situation": d.get("situation", ""), "dataset": "ESConv (CC BY-NC 4.0)"}))
            if len(out) == n:
                break
    return out


def latency(screener: Any, texts: list[str]) -> tuple[float, float, float]:
    """Mean wall, CPU and other threads' CPU seconds per turn, one turn per call (chat screens turns one at a time)."""
    asyncio.run(screener.screen(texts[0]))  # model load is not per-turn latency

    async def go():
        for t in texts:
            await screener.screen(t)

    me = threading.get_native_id()
    w0, c0, t0 = time.perf_counter(), time.process_time(), thread_cpu()
    asyncio.run(go())
    w, c, t1 = time.perf_counter() - w0, time.process_time() - c0, thread_cpu()
    other = sum(v - t0.get(k, 0.0) for k, v in t1.items() if k != me)
    return w / len(texts), c / len(texts), other / len(texts)


def thread_cpu() -> dict[int, float]:
    """CPU seconds of each thread of this process so far (Linux /proc; utime + stime in clock ticks)."""
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            f = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        out[int(tid)] = (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    return out


CASES = [  # (persona narrative, attitude, summary, scenario): inputs, written as the scenarios stage would
    ("A nurse on night shifts who sleeps badly and worries about mistakes.", "neutral",
     "Fear of being fired", "I missed a deadline at work and keep thinking my manager will fire me."),
    ("A student who moved cities for university and knows nobody yet.", "negative",
     "Loneliness after a move", "I moved to a new city and I am sure nobody here likes me."),
    ("A father of two who lost his own father last spring.", "positive",
     "Grief at family events", "Since my dad died I dread family dinners; I end up leaving early."),
    ("A designer who redoes every draft until late at night.", "neutral",
     "Perfectionism at work", "If a design is not perfect I feel like a fraud, so I redo it again and again."),
]


def seed_run(run: Path, n_sessions: int, n_scenarios: int, models: Path) -> None:
    """A run directory with the scenarios and the declared variants registered; the variants'
    GGUF paths are under `models`, shared by every arm (a session's id hashes its model path)."""
    from hybridtune.config import load_config
    from hybridtune.llm.llamacpp import find_gguf
    from hybridtune.records import ModelEntry, Persona, Scenario
    from hybridtune.registry import save_entry
    from hybridtune.store import RunStore

    store = RunStore(run)
    scen = [Scenario(id=f"sc{i}", persona_id=f"p{i}", attitude=att, summary=summ, scenario=text,
                     persona=Persona(id=f"p{i}", attributes={"personality": "reserved"}, narrative=narr))
            for i, (narr, att, summ, text) in enumerate(CASES)]
    store.stage("scenarios").write_records("scenarios.jsonl", scen[: max(n_sessions, 1)])
    store.stage("eval_scenarios").write_records("scenarios.jsonl", scen[-n_scenarios:])
    gguf = find_gguf("smollm2")
    models.mkdir(parents=True, exist_ok=True)
    for v in [x.name for x in load_config(str(ROOT / "configs" / "demo.yaml")).variant_list()]:
        # its own path per variant: a model instance each and response-cache keys of its own, as with
        # adapters (none is trained here, so all carry the base weights and their replies coincide)
        link = models / f"{v}.gguf"
        if not link.exists():
            try:
                link.symlink_to(gguf)
            except FileExistsError:  # the other arm (--together) made it first
                pass
        save_entry(store, ModelEntry(variant=v, backend="llamacpp", model=str(link), data_hash=v))
