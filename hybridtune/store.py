"""Run store: `runs/<name>/<stage>/` directories of JSONL artifacts keyed by record id.

Crash safety, in one place:
- records are appended one line at a time with flush+fsync; a torn last line (SIGKILL
  mid-write) is ignored on read, and reads dedup by `id` (first wins), so a stage killed
  halfway resumes from what it already has without duplicates;
- whole files (reports, configs, exports) are written to a temp file and renamed;
- a streaming pass over ordered units (the real stage's input files) writes through
  `StreamWriter`s (a temp file renamed on commit) grouped in a `CheckpointedPass`: after each
  unit it fsyncs the writers and records their byte offsets, the units done and the caller's
  counters in one state file, keyed by a `fingerprint` of the inputs and config; a killed pass
  with the same fingerprint reopens the temp files cut back to those offsets and goes on after
  the last finished unit, so it writes the same bytes as an uninterrupted one;
- a stage's `_done.json` marker is written last; a done stage is skipped on rerun;
- every stage's summary file has one name, `summary.json` (`StageDir.SUMMARY`: counts, checks,
  results other stages and the report read); `_done.json` holds the short dict the stage returned;
- one process at a time per run (`fcntl` lock on `runs/<name>/.lock`);
- every file is created readable by its owner only (0600): runs hold transcripts and what people
  told the counselor, which is health data; a private folder (chat, kept conversations) is 0700.

    store = RunStore(Path("runs/demo"))
    with store.locked():
        st = store.stage("synth")
        st.append("sessions.jsonl", session)
        for s in st.read("sessions.jsonl", Session): ...
        run = CheckpointedPass(st, "_ingest.json", fingerprint(config, files), ("out.jsonl",))
        out = run.open()["out.jsonl"]
        for i, f in enumerate(files[run.done:], run.done):
            out.write(record)
            run.checkpoint(i + 1, counters)
        run.commit(len(files), counters)
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import itertools
import json
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any, TypeVar

from pydantic import BaseModel

from .errors import UserError

T = TypeVar("T", bound=BaseModel)
RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def check_run_name(name: str) -> str:
    """A run name is one plain folder name: no '.', '..', path separators or leading dot/dash."""
    if not isinstance(name, str) or not RUN_NAME.fullmatch(name):
        raise ValueError(f"run name {str(name)[:60]!r} is not a plain name; use letters, digits, '.', '_' or '-', "
                         "starting with a letter or digit (e.g. demo-2)")
    return name


def run_path(runs_dir: str | Path, name: str) -> Path:
    """runs_dir/name: the one way a run directory is named (so a run cannot escape runs_dir)."""
    return Path(runs_dir) / check_run_name(name)


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write a whole file so that readers see the old or the new content, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def dump_json(obj: Any) -> str:
    if isinstance(obj, BaseModel):
        return obj.model_dump_json()
    return json.dumps(obj, ensure_ascii=False, default=str)


def read_jsonl_dicts(path: Path) -> Iterator[dict]:
    """Yield JSON objects from a JSONL file, skipping a torn (unparseable) line left by a crash."""
    if not path.exists():
        return
    with path.open("r", encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue  # a half-written line from a killed process
            if isinstance(obj, dict):
                yield obj


def open_append(path: Path):
    """Open `path` for appending, creating it owner-only (0600) whatever the umask. A symbolic
    link is refused: appending through one would write wherever it points."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise UserError(f"{path}: is a symbolic link; replace it with a regular file (links are not written through)") from None
        raise
    return os.fdopen(fd, "a", encoding="utf-8")


class StageDir:
    """One stage's folder of artifacts. A `private` folder (what people said) is made 0700 and
    its files are kept 0600 even when an older version of the tool left them wider."""

    SUMMARY = "summary.json"  # the one summary file name of every stage
    # what stages called it in runs made before the name was one (read only, so old runs still report)
    _OLD_SUMMARIES = ("report.json", "results.json", "synth_report.json")

    def __init__(self, path: Path, name: str, private: bool = False):
        self.path = path
        self.name = name
        self.private = private
        path.mkdir(parents=True, exist_ok=True, mode=0o700 if private else 0o777)
        if private:
            os.chmod(path, 0o700)

    def file(self, name: str) -> Path:
        return self.path / name

    def append(self, file: str, record: BaseModel | dict) -> None:
        self.append_many(file, [record])

    def append_many(self, file: str, records: Iterable[BaseModel | dict]) -> None:
        lines = "".join(dump_json(r) + "\n" for r in records)
        if not lines:
            return
        with open_append(self.file(file)) as f:
            if self.private:
                os.fchmod(f.fileno(), 0o600)
            f.write(lines)
            f.flush()
            os.fsync(f.fileno())

    def read(self, file: str, model: type[T]) -> Iterator[T]:
        """Records of `file`, deduplicated by id (the first copy wins)."""
        seen: set[str] = set()
        for obj in read_jsonl_dicts(self.file(file)):
            rid = obj.get("id")
            if rid is not None:
                if rid in seen:
                    continue
                seen.add(rid)
            yield model.model_validate(obj)

    def read_dicts(self, file: str) -> Iterator[dict]:
        seen: set[str] = set()
        for obj in read_jsonl_dicts(self.file(file)):
            rid = obj.get("id")
            if rid is not None and rid in seen:
                continue
            if rid is not None:
                seen.add(rid)
            yield obj

    def ids(self, file: str) -> set[str]:
        return {str(o["id"]) for o in read_jsonl_dicts(self.file(file)) if "id" in o}

    def still_failed(self, ledger: str) -> set[str]:
        """Items in failures.jsonl (failed attempts that a regeneration replaced aside) that `ledger`
        still lacks: an item that failed once and was made on a rerun is no longer failed."""
        return {f["item"] for f in self.read_dicts("failures.jsonl") if not f.get("replaced")} - self.ids(ledger)

    def write_records(self, file: str, records: Iterable[BaseModel | dict]) -> int:
        """Replace `file` atomically with `records`; returns how many were written."""
        lines = [dump_json(r) for r in records]
        atomic_write(self.file(file), "".join(line + "\n" for line in lines))
        return len(lines)

    def write_text(self, file: str, text: str) -> Path:
        atomic_write(self.file(file), text)
        return self.file(file)

    def write_json(self, file: str, obj: Any) -> Path:
        return self.write_text(file, json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")

    def read_json(self, file: str, default: Any = None) -> Any:
        p = self.file(file)
        return json.loads(p.read_text(encoding="utf-8")) if p.exists() else default

    def write_summary(self, obj: Any) -> Path:
        """Write the stage's summary file (`summary.json`)."""
        return self.write_json(self.SUMMARY, obj)

    def read_summary(self, default: Any = None) -> Any:
        """The stage's summary file, or `default` when the stage has not written one."""
        for name in (self.SUMMARY, *self._OLD_SUMMARIES):
            if self.file(name).exists():
                return self.read_json(name)
        return default

    # -- completion marker -------------------------------------------------
    @property
    def done_file(self) -> Path:
        return self.path / "_done.json"

    def is_done(self) -> bool:
        return self.done_file.exists()

    def mark_done(self, summary: dict | None = None) -> None:
        """Written last: a stage with this marker is complete and is skipped on rerun."""
        atomic_write(self.done_file, json.dumps(summary or {}, indent=2, default=str) + "\n")

    def summary(self) -> dict:
        """What the stage returned (its `_done.json` marker); the fuller summary file is read_summary()."""
        return self.read_json("_done.json", {}) or {}

    def reset(self) -> None:
        """Forget completion so the stage runs again (its records are kept and reused; its summary is redone)."""
        for f in (self.done_file, self.file(self.SUMMARY)):
            with contextlib.suppress(FileNotFoundError):
                f.unlink()


class RunStore:
    """A run directory `runs/<name>/` holding one folder per stage."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock_fd: int | None = None

    def stage(self, name: str, private: bool = False) -> StageDir:
        assert name and "/" not in name and not name.startswith("."), f"bad stage name {name!r}"
        return StageDir(self.root / name, name, private=private)

    def path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    @contextlib.contextmanager
    def locked(self) -> Iterator[RunStore]:
        """Hold the run's lock; a second process on the same run gets a clear error."""
        if self._lock_fd is not None:  # re-entrant within one process
            yield self
            return
        try:  # never through a link: the lock file is truncated below
            fd = os.open(self.root / ".lock", os.O_CREAT | os.O_RDWR | os.O_NOFOLLOW, 0o600)
        except OSError as e:
            if e.errno != errno.ELOOP:
                raise
            raise UserError(f"{self.root / '.lock'}: is a symbolic link; delete it (hybridtune makes its own)") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise UserError(
                f"{self.root}: another hybridtune process is writing this run; wait for it or stop it"
            ) from None
        self._lock_fd = fd
        try:
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())
            yield self
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            self._lock_fd = None


def fingerprint(config: Any, files: Iterable[Path]) -> str:
    """What a pass's output depends on: a JSON-able config and the input files (path, size, mtime)."""
    h = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode())
    for f in files:
        stat = f.stat()
        h.update(f"{f}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return h.hexdigest()


class Offset(BaseModel):
    """How far a StreamWriter had written at a checkpoint: bytes of its temp file and records."""
    bytes: int = 0
    n: int = 0


class StreamWriter:
    """JSONL streamed to `.NAME.tmp` and renamed to NAME on commit: a killed pass leaves the old file intact.

    `resume` (an Offset from `checkpoint()`) reopens the temp file cut back to that point."""

    def __init__(self, st: StageDir, name: str, resume: Offset | None = None):
        self.path = st.file(name)
        self.tmp = self.path.with_name(f".{name}.tmp")
        flags = os.O_RDWR | os.O_CREAT | (os.O_TRUNC if resume is None else 0)
        self.f: IO[bytes] = os.fdopen(os.open(self.tmp, flags, 0o600), "r+b")  # owner-only, as every run file
        self.n = 0 if resume is None else resume.n
        if resume is not None:
            self.f.truncate(resume.bytes)
            self.f.seek(resume.bytes)

    def write(self, rec: BaseModel | dict) -> None:
        self.f.write((dump_json(rec) + "\n").encode("utf-8"))
        self.n += 1

    def checkpoint(self) -> Offset:
        """Make what was written durable; the offset a resume cuts back to."""
        self.f.flush()
        os.fsync(self.f.fileno())
        return Offset(bytes=self.f.tell(), n=self.n)

    def commit(self) -> int:
        """Replace NAME with what was written; returns the record count."""
        self.checkpoint()
        self.f.close()
        os.replace(self.tmp, self.path)
        return self.n


class PassState(BaseModel):
    """The state file of a CheckpointedPass."""
    fingerprint: str
    done: int = 0                      # units finished (their records are in the writers up to `writers`)
    committed: bool = False            # the writers were renamed to their final names
    writers: dict[str, Offset] = {}
    counters: dict[str, Any] = {}      # the caller's own totals at that point


class CheckpointedPass:
    """StreamWriters of one pass over ordered units, checkpointed together after each unit.

    A saved state with the same fingerprint whose temp files still hold what it recorded is
    resumed (`done` units skipped, `counters` restored); anything else starts over. A state that
    is `committed` means the whole pass finished: its files are final and are not reopened."""

    def __init__(self, st: StageDir, state_file: str, fingerprint: str, names: tuple[str, ...]):
        self.st, self.state_file, self.names = st, state_file, names
        self.state = self._saved(fingerprint) or PassState(fingerprint=fingerprint)
        self.writers: dict[str, StreamWriter] = {}

    def _saved(self, fp: str) -> PassState | None:
        raw = self.st.read_json(self.state_file)
        state = PassState.model_validate(raw) if isinstance(raw, dict) and "fingerprint" in raw else None
        if state is None or state.fingerprint != fp:
            return None
        if state.committed or all(n in state.writers and self._tmp(n).exists()
                                  and self._tmp(n).stat().st_size >= state.writers[n].bytes for n in self.names):
            return state
        return None  # a temp file is missing or shorter than recorded: nothing safe to resume

    def _tmp(self, name: str) -> Path:
        return self.st.file(f".{name}.tmp")

    @property
    def done(self) -> int:
        return self.state.done

    @property
    def committed(self) -> bool:
        return self.state.committed

    def open(self) -> dict[str, StreamWriter]:
        """The writers, reopened at the saved offsets (fresh when starting over)."""
        self.writers = {n: StreamWriter(self.st, n, self.state.writers.get(n)) for n in self.names}
        return self.writers

    def lines(self, name: str) -> Iterator[dict]:
        """The records `name` held at the saved state (to rebuild in-memory state such as a journal)."""
        path = self.st.file(name) if self.state.committed else self._tmp(name)
        offset = self.state.writers.get(name)
        if offset is None or not path.exists():
            return
        with path.open("rb") as f:
            for line in itertools.islice(f, offset.n):
                yield json.loads(line)

    def checkpoint(self, done: int, counters: dict[str, Any]) -> None:
        """Units 0..done-1 are finished: make their records durable, then record the state."""
        offsets = {n: w.checkpoint() for n, w in self.writers.items()}
        self._save(PassState(fingerprint=self.state.fingerprint, done=done, writers=offsets, counters=counters))

    def commit(self, done: int, counters: dict[str, Any]) -> None:
        """Rename every writer to its final name and record the pass as finished after `done` units."""
        offsets = {}
        for n, w in self.writers.items():
            w.commit()
            offsets[n] = Offset(bytes=w.path.stat().st_size, n=w.n)
        self._save(PassState(fingerprint=self.state.fingerprint, done=done, committed=True,
                             writers=offsets, counters=counters))

    def _save(self, state: PassState) -> None:
        self.state = state
        self.st.write_json(self.state_file, state.model_dump(mode="json"))
