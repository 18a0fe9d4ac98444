"""docs/architecture.md lists every module of the package: each top-level module by file name, each
package on a line of its own that names each of its modules (so a new module needs one line there).

    .venv/bin/python -m pytest tests/test_architecture.py -q
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "hybridtune"


def layout_entries(doc: str) -> dict[str, str]:
    """The Layout block's entries: key (first word, e.g. 'store.py' or 'real/') -> the entry's text,
    continuation lines (indented deeper) included."""
    block = doc.split("## Layout", 1)[1].split("```", 2)[1]
    entries: dict[str, str] = {}
    key = None
    for line in block.splitlines():
        m = re.match(r"  (\S+)", line)
        if m:
            key = m.group(1).rstrip(",")
            entries[key] = line
        elif key and line.startswith("   "):
            entries[key] += " " + line.strip()
    return entries


def missing_modules(doc: str, pkg: Path = PKG) -> list[str]:
    entries = layout_entries(doc)
    text = " ".join(entries.values())
    missing = []
    for f in sorted(pkg.rglob("*.py")):
        rel = f.relative_to(pkg)
        if f.name in ("__init__.py", "__main__.py"):
            continue
        if len(rel.parts) == 1:
            if not re.search(rf"(?<![\w/]){re.escape(f.name)}\b", text):
                missing.append(str(rel))
            continue
        entry = entries.get(f"{rel.parent.as_posix()}/", "")
        if not re.search(rf"(?<![\w./]){re.escape(f.stem)}(?![\w/])", entry.split(None, 1)[-1] if entry else ""):
            missing.append(str(rel))
    return missing


def test_architecture_lists_every_module():
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    assert missing_modules(doc) == [], "add these modules to the Layout block of docs/architecture.md"


def test_a_module_left_out_is_found(tmp_path):
    pkg = tmp_path / "hybridtune"
    (pkg / "real").mkdir(parents=True)
    for f in ("store.py", "webguard.py", "real/stage.py", "real/pii.py", "real/__init__.py"):
        (pkg / f).write_text("")
    doc = ("## Layout\n\n```\nhybridtune/\n  store.py     runs\n  real/        stage, and\n"
           "               pii here\n```\n")
    assert missing_modules(doc, pkg) == ["webguard.py"]
    assert missing_modules(doc.replace(", and\n               pii here", ""), pkg) == ["real/pii.py", "webguard.py"]


def stage_names_in(folder: Path) -> list[str]:
    """`file: name` for each string constant in the modules under `folder` that is a declared stage's
    name, and each identifier naming stages (BATCH_STAGES): where a layer decides by stage."""
    from hybridtune.stages import names

    found = []
    for f in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value in names():
                found.append(f"{f.name}: {node.value!r}")
            elif isinstance(node, ast.Name | ast.alias | ast.Attribute):
                ident = {ast.Name: "id", ast.alias: "name", ast.Attribute: "attr"}[type(node)]
                if "STAGES" in getattr(node, ident).upper():
                    found.append(f"{f.name}: {getattr(node, ident)}")
    return found


def test_the_llm_layer_names_no_stage():
    """Whether a call may wait for a provider batch is the stage declaration's to say (stages.py
    `batches`), passed in by the stage context; the LLM layer never lists stages."""
    assert stage_names_in(PKG / "llm") == []


def test_a_stage_named_in_a_layer_is_found(tmp_path):
    (tmp_path / "batch.py").write_text('BATCH_STAGES = ("real", "curate")\nx = "judge"\n')
    assert stage_names_in(tmp_path) == ["batch.py: BATCH_STAGES", "batch.py: 'real'", "batch.py: 'curate'"]


DEV_DATA_PATH = re.compile(r"""shared['"]?\s*/\s*['"]?data""")  # "../shared/data" and Path(...) / "shared" / "data"


def dev_data_paths(pkg: Path = PKG) -> list[str]:
    """`file:line` of every place in the package's modules that names the development data folder."""
    return [f"{f.relative_to(pkg.parent)}:{i}" for f in sorted(pkg.rglob("*.py"))
            for i, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1) if DEV_DATA_PATH.search(line)]


def test_the_package_does_not_know_where_development_data_lives():
    """Data set paths come from the caller (tests: conftest.shared_data; benchmarks: common.data_file /
    dev_data_file; scripts: --data), never from a path under hybridtune/."""
    assert dev_data_paths() == [], "take the path from the caller instead"


def test_a_development_data_path_is_found(tmp_path):
    pkg = tmp_path / "hybridtune"
    pkg.mkdir()
    (pkg / "a.py").write_text('"""Reads ../shared/data/annomi."""\n')
    (pkg / "b.py").write_text('X = 1\nSHARED = Path(__file__).parent / "shared" / "data"\n')
    (pkg / "c.py").write_text('"""shared data sets: the caller says where."""\n')
    assert dev_data_paths(pkg) == ["hybridtune/a.py:1", "hybridtune/b.py:2"]
