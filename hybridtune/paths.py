"""Checks of the files and folders a user names on the command line: one clear error each.

    src = input_file(Path("texts.jsonl"), "a JSONL file of {\\"id\\", \\"text\\"} lines")
    out = output_file(Path("screened.jsonl"), inputs=[src])       # never the input itself
    kind = path_kind(p)      # "file" | "dir" | "missing" | "loop" | "fifo" | "special" | "denied"

A FIFO would block a reader forever, and a symlink loop or a file the user cannot read used
to be reported as "does not exist"; an output equal to an input would destroy the input.
"""
from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable
from pathlib import Path

from .errors import UserError

WHY = {
    "missing": "does not exist",
    "loop": "is a symlink loop (or a chain of links too long); point the link at a real file",
    "fifo": "is a named pipe, not a regular file; save the data to a file first",
    "special": "is a device or socket, not a regular file",
    "denied": "cannot be read (permission denied); check its permissions",
}


def path_kind(p: Path) -> str:
    try:
        mode = os.stat(p).st_mode
    except FileNotFoundError:
        return "loop" if p.is_symlink() and _loops(p) else "missing"
    except PermissionError:
        return "denied"
    except OSError as e:
        return "loop" if e.errno == errno.ELOOP else "missing"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISREG(mode):
        return "file" if os.access(p, os.R_OK) else "denied"
    return "fifo" if stat.S_ISFIFO(mode) else "special"


def _loops(p: Path) -> bool:
    try:
        p.resolve(strict=True)
    except RuntimeError:
        return True
    except OSError as e:
        return e.errno == errno.ELOOP
    return False


def input_file(p: Path, what: str) -> Path:
    """`p` if it is a readable regular file; else UserError saying what it is and what is expected."""
    kind = path_kind(p)
    if kind == "file":
        return p
    why = {"dir": "is a folder", "missing": "input file not found"}.get(kind) or WHY[kind]
    raise UserError(f"{p}: {why}; pass {what}")


def same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def output_file(out: Path, inputs: Iterable[Path] = (), parent_must_exist: bool = False) -> Path:
    """`out` if a file can be written there without destroying an input; else UserError."""
    for src in inputs:
        if same_file(out, src) or out.resolve() == src.resolve():
            raise UserError(f"{out}: is also the input; write the output to another file (the input is never overwritten)")
    if out.is_symlink():
        raise UserError(f"{out}: is a symbolic link; pass the path of a regular file (outputs are not written through links)")
    if out.is_dir():
        raise UserError(f"{out}: is a folder; pass a file name for the output, e.g. {out / 'out.jsonl'}")
    if out.exists() and not out.is_file():
        raise UserError(f"{out}: is a device, pipe or socket, not a regular file; pass a file path (it is never replaced)")
    _creatable(out)
    if parent_must_exist and not out.parent.is_dir():
        raise UserError(f"{out}: the folder {out.parent} does not exist; create it or choose another path")
    return out


def output_dir(out: Path) -> Path:
    """`out` if it is (or can become) a folder; else UserError."""
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder; --out takes a folder (it will hold sessions.jsonl, ...)")
    return _creatable(out)


def _creatable(out: Path) -> Path:
    """UserError when the nearest existing ancestor of `out` is a file (so it cannot be created)."""
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UserError(f"{out}: cannot create it, {parent} is a file, not a folder; choose another path")
            break
    return out
