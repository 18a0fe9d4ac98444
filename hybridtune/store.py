"""Run store: `runs/<name>/<stage>/` directories of JSONL artifacts keyed by record id.

Crash safety, in one place:
- records are appended one line at a time with flush+fsync; a torn last line (SIGKILL
  mid-write) is ignored on read, and reads dedup by `id` (first wins), so a stage killed
  halfway resumes from what it already has without duplicates;
- whole files (reports, configs, exports) are written to a temp file and renamed;
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
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

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
