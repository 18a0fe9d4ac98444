"""Public data sets by name: the catalogue (catalogue.yaml), the local copies, and name resolution.

    hybridtune data list
    hybridtune data get annomi counselchat
    hybridtune data get esconv --accept-license esconv      # non-commercial: refused without it

    real:     {inputs: [annomi]}          # a catalogue name resolves to the verified local files
    evaluate: {scenarios_file: cactus}    # and the loader format comes with it

Local copies live in `$HYBRIDTUNE_DATA_DIR` (default `~/.cache/hybridtune/data`), one folder per
name, never inside the project. A folder is complete when its `SOURCE.json` exists: written last
by `data get`, after every file's checksum matched (download.py).
"""
from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field

from ..errors import UserError

CATALOGUE = Path(__file__).with_name("catalogue.yaml")
RAW_BASE = "https://raw.githubusercontent.com"


class _Rec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataFile(_Rec):
    path: str = Field(description="path inside the upstream repository")
    commit: str | None = Field(None, description="pinned commit of this file when it differs from the data set's")
    save_as: str | None = Field(None, description="local file name (default: the path's last part)")
    sha256: str | None = Field(None, description="SHA-256 of the authors' file at the pinned commit")
    also_sha256: dict[str, str] = Field(default_factory=dict, description="other known-good SHA-256 -> why")
    git_blob: str | None = Field(None, description="git object id at the commit, where the SHA-256 is not known")

    @property
    def name(self) -> str:
        return self.save_as or self.path.rsplit("/", 1)[-1]


class Feeds(_Rec):
    stage: str = Field(description="stage that reads it: real | eval_scenarios")
    format: str = Field(description="loader format of that stage (real.format / evaluate.scenarios_format)")
    files: list[str] = Field(description="local file names the stage reads")


class DataSet(_Rec):
    name: str
    title: str
    repo: str = Field(description="owner/name on GitHub")
    commit: str = Field(pattern=r"^[0-9a-f]{40}$")
    licence: str
    licence_file: str = Field(description="local file name of the licence text, kept beside the data")
    non_commercial: bool
    feeds: Feeds
    files: list[DataFile]

    def url(self, f: DataFile, base: str = RAW_BASE) -> str:
        return f"{base.rstrip('/')}/{self.repo}/{f.commit or self.commit}/{f.path}"


@cache
def catalogue() -> dict[str, DataSet]:
    raw = yaml.safe_load(CATALOGUE.read_text(encoding="utf-8"))
    out = {name: DataSet(name=name, **d) for name, d in raw.items()}
    for ds in out.values():  # the catalogue is data: check its promises once, loudly
        names = {f.name for f in ds.files}
        assert ds.licence_file in names and set(ds.feeds.files) <= names, f"catalogue.yaml: {ds.name}: unknown file"
        assert all(f.sha256 or f.git_blob for f in ds.files), f"catalogue.yaml: {ds.name}: a file has no checksum"
    return out


def get(name: str) -> DataSet:
    cat = catalogue()
    key = name.lower()
    if key not in cat:
        raise UserError(f"data set '{name}': not in the catalogue; known: {', '.join(cat)} (hybridtune data list)")
    return cat[key]


def data_dir() -> Path:
    """Where local copies live: $HYBRIDTUNE_DATA_DIR, else ~/.cache/hybridtune/data."""
    env = os.environ.get("HYBRIDTUNE_DATA_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "hybridtune" / "data"


def local_dir(name: str, root: Path | None = None) -> Path:
    return (root or data_dir()) / get(name).name


def is_name(item: str) -> bool:
    """A `real.inputs` / `scenarios_file` entry is a catalogue name when it is one and no such path exists."""
    return item.lower() in catalogue() and not Path(item).exists()


def resolve(item: str, stage: str, key: str, root: Path | None = None) -> tuple[list[Path], str]:
    """The verified local files of data set `item` for `stage`, and their loader format.

    `key` is the config key that named it (for the error line)."""
    ds = get(item)
    where = local_dir(ds.name, root)
    if ds.feeds.stage != stage:
        raise UserError(f"{key}: data set '{ds.name}' feeds the {ds.feeds.stage} stage, not {stage}; "
                        f"use it under {'real.inputs' if ds.feeds.stage == 'real' else 'evaluate.scenarios_file'}")
    if not (where / "SOURCE.json").is_file():
        accept = f" --accept-license {ds.name}" if ds.non_commercial else ""
        raise UserError(f"{key}: data set '{ds.name}' is not downloaded (looked in {where}); "
                        f"run `hybridtune data get {ds.name}{accept}` first")
    return [where / f for f in ds.feeds.files], ds.feeds.format


def source(name: str, root: Path | None = None) -> dict | None:
    """The provenance record of a downloaded data set (repo, commit, files, checksums, licence)."""
    p = local_dir(name, root) / "SOURCE.json"
    return json.loads(p.read_text()) if p.is_file() else None


def resolve_inputs(inputs: list[str], root: Path | None = None) -> list[str]:
    """`real.inputs` with catalogue names replaced by their verified local files (formats are auto-detected)."""
    paths: list[str] = []
    for item in inputs:
        if is_name(item):
            paths += [str(f) for f in resolve(item, "real", f"real.inputs: {item}", root)[0]]
        else:
            paths.append(item)
    return paths
