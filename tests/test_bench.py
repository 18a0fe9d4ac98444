"""bench/ hangs together: scripts share code through bench/common.py only, find data through the
catalogue, and every result records the commit it measured, which the rendered page shows.
Nothing here is timed.

    .venv/bin/python -m pytest tests/test_bench.py -q
"""
from __future__ import annotations

import ast
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from hybridtune.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def common():
    return _load("common")


def _result(common):
    return common.Result("speed", "2 items/s", "1 item/s", 2.0, ">= 1", True, ".venv/bin/python bench/x.py")


def test_record_writes_the_commit_and_render_shows_it(common, tmp_path, capsys):
    path = common.record("x", [_result(common)], out=tmp_path)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    commit = json.loads(path.read_text())["commit"]
    assert head and commit.split("+")[0] == head
    (tmp_path / "old.json").write_text(json.dumps({"name": "old", "when": "2026-01-01 00:00 UTC", "machine": "m",
                                                   "results": [vars(_result(common))]}))
    page = _load("run_all").render(tmp_path)
    assert f"at commit `{commit}`" in page and "at commit `not recorded`" in page


def test_data_files_come_through_the_catalogue(common, tmp_path, monkeypatch):
    got, dev = tmp_path / "got", tmp_path / "dev"
    (got / "annomi").mkdir(parents=True)
    (got / "annomi" / "AnnoMI-simple.csv").write_text("x")
    (dev / "cactus-eval").mkdir(parents=True)  # the development copy names the folder otherwise
    (dev / "cactus-eval" / "evaluation.json").write_text("[]")
    monkeypatch.setenv("HYBRIDTUNE_DATA_DIR", str(got))
    monkeypatch.delenv(common.DEV_DATA_ENV, raising=False)
    assert common.data_file("annomi", "AnnoMI-simple.csv") == got / "annomi" / "AnnoMI-simple.csv"
    assert common.data_file("cactus", "evaluation.json", required=False) is None
    with pytest.raises(SystemExit, match="hybridtune data get cactus"):
        common.data_file("cactus", "evaluation.json")
    monkeypatch.setenv(common.DEV_DATA_ENV, str(dev))
    assert common.data_file("cactus", "evaluation.json") == dev / "cactus-eval" / "evaluation.json"
    with pytest.raises(UserError, match="not in the catalogue"):
        common.data_file("no-such-set", "x.csv")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.Import):
            out |= {a.name for a in n.names}
        elif isinstance(n, ast.ImportFrom) and n.module and not n.level:
            out.add(n.module)
    return out


def test_scripts_share_code_only_through_common():
    scripts = {p.stem for p in BENCH.glob("*.py")}
    for p in sorted(BENCH.glob("*.py")):
        mods = _imports(p)
        siblings = {m for m in mods if m.split(".")[0] in scripts - {"common"}}
        assert not siblings, f"{p.name} imports benchmark scripts {sorted(siblings)}; move shared code to common.py"
        assert not {m for m in mods if m.startswith("bench")}, f"{p.name}: import as `from common import ...`"
        text = p.read_text(encoding="utf-8")
        if p.name != "common.py":
            assert "shared/data" not in text and "SHARED" not in text, f"{p.name}: name data sets with common.data_file"


def test_recorded_commands_carry_no_temporary_paths():
    for f in sorted((BENCH / "results").glob("*.json")):
        for r in json.loads(f.read_text())["results"]:
            assert "/tmp/" not in r["command"], f"{f.name}: {r['command']}"


def test_common_imports_without_loading_the_package():
    # a GPU box runs bench/gpu_train.py with common.py alone on its path: no hybridtune import at load time
    code = f"import sys; sys.path.insert(0, {str(BENCH)!r}); import common; print('hybridtune' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0 and out.stdout.strip() == "False", out.stderr[-800:]
