"""No import cycles in hybridtune/, and every module imports on its own.

The graph counts function-level imports and type-only imports (under `if TYPE_CHECKING:`) too:
a cycle hidden inside a function or behind a type annotation is still two modules that cannot be
understood, tested or moved apart.

    .venv/bin/python -m pytest tests/test_imports.py -q
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "hybridtune"


def modules() -> dict[str, Path]:
    out = {}
    for f in sorted(PKG.rglob("*.py")):
        parts = f.relative_to(ROOT).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return out


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement of a module: top level, in functions, under `if TYPE_CHECKING:`."""
    return [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        here = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps: set[str] = set()
        for node in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                base = ".".join(here.split(".")[: len(here.split(".")) - node.level + 1]) if node.level else ""
                mod = ".".join(x for x in (base, node.module) if x)
                targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in mods else mod for a in node.names]
            deps |= {t for t in targets if t in mods and t != name}
        graph[name] = deps
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def dfs(v: str) -> list[str] | None:
        state[v] = 1
        path.append(v)
        for w in sorted(graph[v]):
            if state.get(w) == 1:
                return [*path[path.index(w):], w]
            if w not in state and (c := dfs(w)):
                return c
        path.pop()
        state[v] = 2
        return None

    for v in sorted(graph):
        if v not in state and (c := dfs(v)):
            return c
    return None


def test_no_import_cycle():
    graph = import_graph()
    assert len(graph) > 50 and "hybridtune.context" in graph["hybridtune.pipeline"]
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_type_only_and_function_imports_count():
    tree = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import B\n"
                     "def f():\n    import c\n")
    assert sorted(ast.unparse(n) for n in _imports(tree)) == ["from .a import B", "from typing import TYPE_CHECKING",
                                                              "import c"]


def test_every_module_imports_in_isolation():
    """Each module in a fresh set of hybridtune modules (third-party ones stay loaded: fast)."""
    names = [n for n in modules() if not n.endswith("__main__")]
    code = (
        "import importlib, sys, traceback\n"
        "bad = []\n"
        "for name in sys.argv[1:]:\n"
        "    for m in [m for m in sys.modules if m == 'hybridtune' or m.startswith('hybridtune.')]:\n"
        "        del sys.modules[m]\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception:\n"
        "        bad.append(name + ': ' + traceback.format_exc(limit=3))\n"
        "print('\\n'.join(bad))\n"
        "sys.exit(1 if bad else 0)\n"
    )
    r = subprocess.run([sys.executable, "-c", code, *names], capture_output=True, text=True, cwd=ROOT, timeout=600,
                       check=False)
    assert r.returncode == 0, r.stdout + r.stderr


def test_synth_imports_nothing_from_curate():
    """Data flows one way: synth runs before curate and mix, so it may not import them (the
    held-out split it needs is the `split` stage's artefact, hybridtune/split.py)."""
    graph = import_graph()
    back = {(m, d) for m, deps in graph.items() if m.startswith("hybridtune.synth")
            for d in deps if d.startswith("hybridtune.curate")}
    assert "hybridtune.split" in graph["hybridtune.synth.sessions"] and not back, back


def test_the_llm_layer_imports_no_experiment_config():
    """The LLM layer reads its own settings (`llm.config.PoolConfig`, built by
    `ExperimentConfig.pool_config()`), never the experiment config: type-only imports count too."""
    graph = import_graph()
    back = {(m, d) for m, deps in graph.items() if m.startswith("hybridtune.llm")
            for d in deps if d == "hybridtune.config"}
    assert "hybridtune.llm.config" in graph["hybridtune.llm.client"] and not back, back
