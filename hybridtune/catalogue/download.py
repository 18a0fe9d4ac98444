"""Download a catalogue data set at its pinned commit, resumably, and verify every file.

    from hybridtune.catalogue.download import fetch
    fetch("annomi")                                   # -> ~/.cache/hybridtune/data/annomi/
    fetch("esconv", accept=["esconv"])                # non-commercial: explicit acceptance
    fetch("cactus", base="http://127.0.0.1:8000")     # a mirror with the same <repo>/<commit>/<path> layout

- A file is fetched into `<file>.part`; a rerun after an interruption asks for the rest with an
  HTTP Range request (a server that ignores Range sends the whole file again, which is fine).
- A finished file is accepted only when its SHA-256 (or, where the catalogue has no SHA-256,
  its git object id) matches; a mismatching file is moved to `<file>.rejected`, never used.
- A file already in place (put there by hand) is verified, not downloaded again.
- Offline, each missing file gets one line: the URL and where to save it by hand.
- `SOURCE.json` (repo, commit, URLs, checksums, licence, acceptance) is written last: its
  presence is what makes the folder usable by name.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from ..store import atomic_write
from . import DataFile, DataSet, data_dir, get

CHUNK = 1 << 16
MAX_BYTES = 1 << 30  # no catalogue file is near 1 GiB: a mirror sending more is wrong, and the disk is kept


class TooLarge(UserError):
    """A download ran past the size cap: stopped, its part file removed."""


class Offline(UserError):
    """The source cannot be reached; `lines` say which URL to save where, one line per file."""

    def __init__(self, lines: list[str]):
        super().__init__("\n".join(lines))
        self.lines = lines


def digests(path: Path) -> tuple[str, str]:
    """(SHA-256, git blob id) of a file, in one pass."""
    sha = hashlib.sha256()
    blob = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            sha.update(chunk)
            blob.update(chunk)
    return sha.hexdigest(), blob.hexdigest()


def matches(f: DataFile, path: Path) -> tuple[bool, str]:
    """Does the file hold the pinned bytes? Also returns the SHA-256 found."""
    sha, blob = digests(path)
    ok = sha == f.sha256 or sha in f.also_sha256 or (f.sha256 is None and blob == f.git_blob)
    return ok, sha


@dataclass
class FileResult:
    name: str
    url: str
    sha256: str
    bytes: int
    action: str  # downloaded | resumed | present


def _download(url: str, part: Path, timeout: float, max_bytes: int | None = None) -> str:
    """Fetch `url` into `part`, continuing from its current size, stopping past `max_bytes`.
    Returns 'downloaded' or 'resumed'."""
    import httpx

    max_bytes = max_bytes or MAX_BYTES
    have = part.stat().st_size if part.exists() else 0
    # identity: byte offsets must count the file itself, not a compressed stream of it
    headers = {"Accept-Encoding": "identity", **({"Range": f"bytes={have}-"} if have else {})}
    with httpx.stream("GET", url, headers=headers, timeout=timeout, follow_redirects=True) as r:
        if r.status_code == 416:  # nothing left to send: the part is already whole
            return "resumed"
        if r.status_code not in (200, 206):
            raise UserError(f"{url}: HTTP {r.status_code}; check the catalogue entry or try again later")
        resumed = r.status_code == 206
        with part.open("ab" if resumed else "wb") as out:
            try:
                for chunk in r.iter_bytes():  # unbuffered: every byte that arrived is kept
                    out.write(chunk)
                    if out.tell() > max_bytes:
                        raise TooLarge(f"{url}: more than {max_bytes:,} bytes, larger than any catalogue file; "
                                       f"stopped (check --mirror or the catalogue entry); {part} removed")
            finally:  # keep what arrived: the next run resumes from here
                out.flush()
                os.fsync(out.fileno())
    return "resumed" if resumed else "downloaded"


def fetch_file(ds: DataSet, f: DataFile, where: Path, base: str | None, timeout: float) -> FileResult:
    url = ds.url(f, base) if base else ds.url(f)
    dest = where / f.name
    part = dest.with_name(dest.name + ".part")
    action = "present"
    if not dest.exists():
        import httpx

        try:
            action = _download(url, part, timeout)
        except TooLarge:
            part.unlink(missing_ok=True)
            raise
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as e:
            raise UserError(f"{url}: not a URL that can be fetched ({e}); --mirror takes http(s)://HOST[:PORT][/PATH]") from None
        except (httpx.ConnectError, httpx.ConnectTimeout) as e:
            raise Offline([f"offline: cannot reach {url} ({type(e).__name__}); download it by hand and save it as "
                           f"{dest}, then rerun `hybridtune data get {ds.name}` to verify it"]) from None
        except (httpx.TransportError, httpx.StreamError) as e:
            got = part.stat().st_size if part.exists() else 0
            raise UserError(f"{ds.name}/{f.name}: download interrupted after {got} bytes ({type(e).__name__}); "
                            f"rerun `hybridtune data get {ds.name}` to resume") from None
        os.replace(part, dest)
    ok, sha = matches(f, dest)
    if not ok:
        bad = dest.with_name(dest.name + ".rejected")
        os.replace(dest, bad)
        want = f.sha256 or f"git blob {f.git_blob}"
        raise UserError(f"{ds.name}/{f.name}: checksum mismatch (SHA-256 {sha[:16]}..., expected {want[:16]}...) "
                        f"for {url}; moved to {bad}, not used. Rerun to download again; if it persists the "
                        "upstream file changed: report it")
    return FileResult(f.name, url, sha, dest.stat().st_size, action)


def licence_refusal(ds: DataSet, accept: list[str]) -> str | None:
    if ds.non_commercial and ds.name not in {a.lower() for a in accept}:
        return (f"{ds.name}: licence {ds.licence}: not for commercial use. Read it, then rerun with "
                f"--accept-license {ds.name} to download it for non-commercial research")
    return None


def fetch(name: str, accept: list[str] | None = None, root: Path | None = None, base: str | None = None,
          timeout: float = 60.0, log=print) -> Path:
    """Download (or verify) data set `name` into `<root>/<name>/`; returns that folder."""
    ds = get(name)
    refusal = licence_refusal(ds, accept or [])
    if refusal:
        raise UserError(refusal)
    if base is not None:
        check_mirror(base)
    where = (root or data_dir()) / ds.name
    where.mkdir(parents=True, exist_ok=True)
    with one_fetch(where, ds.name):
        return _fetch_files(ds, where, base, timeout, log)


def check_mirror(base: str) -> None:
    from urllib.parse import urlsplit

    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UserError(f"--mirror {base[:80]}: not an http(s) URL; give http(s)://HOST[:PORT][/PATH] of a mirror "
                        "with the <repo>/<commit>/<path> layout")


@contextlib.contextmanager
def one_fetch(where: Path, name: str):
    """One `data get` of a data set at a time: a second one gets a clear line instead of racing it."""
    fd = os.open(where / ".lock", os.O_CREAT | os.O_RDWR | os.O_NOFOLLOW, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"{name}: another `hybridtune data get {name}` is downloading into {where}; "
                            "wait for it to finish (then nothing is left to do)") from None
        yield
    finally:
        os.close(fd)


def _fetch_files(ds: DataSet, where: Path, base: str | None, timeout: float, log) -> Path:
    results, offline = [], []
    for f in ds.files:
        try:
            res = fetch_file(ds, f, where, base, timeout)
        except Offline as e:  # keep going: one line for every missing file
            offline += e.lines
            continue
        results.append(res)
        log(f"{ds.name}/{res.name}: {res.action}, {res.bytes} bytes, sha256 {res.sha256[:12]}... ok")
    if offline:
        raise Offline(offline)
    source = {
        "name": ds.name, "title": ds.title, "repo": ds.repo, "commit": ds.commit,
        "licence": ds.licence, "licence_file": ds.licence_file, "non_commercial": ds.non_commercial,
        "licence_accepted": ds.non_commercial, "feeds": ds.feeds.model_dump(),
        "files": [{"name": r.name, "url": r.url, "sha256": r.sha256, "bytes": r.bytes} for r in results],
        "verified": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    atomic_write(where / "SOURCE.json", json.dumps(source, indent=2) + "\n")  # written last: the folder is complete
    return where
