"""Parsers for untrusted text: YAML with bounded alias expansion and no duplicate keys, JSON
with bounded nesting. Every config, `--set` value and JSON record from a user file goes
through here, so a hostile or careless file gets one clear error instead of a hang or a
RecursionError.

    data = load_yaml(path.read_text(), "configs/demo.yaml")   # BadYAML names the line
    obj = loads_json(line)                                      # BadJSON on depth > 64

Why not plain `yaml.safe_load`: it builds aliases by reference, so a "billion laughs" file
loads in microseconds and then explodes in whatever walks it (pydantic, `safe_dump`); and
it keeps the last of two duplicate keys without a word. Why not plain `json.loads`: its C
decoder recurses, so a line of 10 000 `[` raises RecursionError.
"""
from __future__ import annotations

import json
import re
from typing import Any

import yaml

MAX_YAML_NODES = 100_000  # nodes after expanding every alias; a large real config has a few thousand
MAX_JSON_DEPTH = 64       # real transcripts and decisions nest 4-6 levels


class BadYAML(ValueError):
    """Not acceptable YAML; `line` is 1-based (or None)."""

    def __init__(self, reason: str, line: int | None = None):
        super().__init__(f"line {line}: {reason}" if line else reason)
        self.reason, self.line = reason, line


class BadJSON(ValueError):
    """Not acceptable JSON (invalid, or nested deeper than the bound); `line` is 1-based when known."""

    def __init__(self, reason: str, line: int | None = None):
        super().__init__(reason)
        self.line = line


def _check_nodes(root: yaml.Node) -> None:
    """Refuse duplicate mapping keys and alias expansion beyond MAX_YAML_NODES.

    Aliased nodes are the same object in the composed graph; the expanded size of each is
    computed once (memo by id), iteratively so depth cannot blow the stack."""
    size: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if not children_done and id(node) in size:  # an alias of a node seen before: its size is known
            continue
        kids: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            kids = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            kids = [x for pair in node.value for x in pair]
        if not children_done:
            if isinstance(node, yaml.MappingNode):
                seen: dict[Any, int] = {}
                for k, _ in node.value:
                    if isinstance(k, yaml.ScalarNode) and k.value != "<<":
                        if k.value in seen:
                            raise BadYAML(f"duplicate key '{k.value[:60]}' (first at line {seen[k.value]}); "
                                          "keep one of them", k.start_mark.line + 1)
                        seen[k.value] = k.start_mark.line + 1
            size[id(node)] = -1  # in progress: a recursive alias would be revisited
            stack.append((node, True))
            stack.extend((k, False) for k in kids if id(k) not in size)
            continue
        total = 1 + sum(max(size.get(id(k), 1), 1) for k in kids)
        if total > MAX_YAML_NODES:
            raise BadYAML(f"aliases expand to more than {MAX_YAML_NODES} values (a YAML alias bomb?); "
                          "write the values out or use fewer nested aliases", node.start_mark.line + 1)
        size[id(node)] = total


def load_yaml(text: str) -> Any:
    """`yaml.safe_load` with the checks above; raises BadYAML (duplicates, bombs) or yaml.YAMLError."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_nodes(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def yaml_error(e: Exception) -> tuple[int | None, str]:
    """(line, reason) of a BadYAML or a PyYAML error."""
    if isinstance(e, BadYAML):
        return e.line, e.reason
    mark = getattr(e, "problem_mark", None)
    return (mark.line + 1 if mark else None), str(getattr(e, "problem", None) or e)


_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.S)  # strings are skipped whole (at C speed)


def json_depth(text: str, limit: int = MAX_JSON_DEPTH) -> int:
    """Nesting depth of brackets outside strings, stopping as soon as it passes `limit`."""
    depth = peak = 0
    for m in _TOKENS.finditer(text):
        c = m.group()
        if c in "[{":
            depth += 1
            if depth > peak:
                peak = depth
                if peak > limit:
                    return peak
        elif c in "]}":
            depth -= 1
    return peak


def loads_json(text: str | bytes, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """`json.loads` that refuses nesting deeper than `max_depth`; raises BadJSON with the reason."""
    if isinstance(text, bytes | bytearray):
        text = text.decode("utf-8")
    if json_depth(text, max_depth) > max_depth:
        raise BadJSON(f"nested deeper than {max_depth} levels; flatten the structure")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise BadJSON(f"not valid JSON ({e.msg} at column {e.colno})", e.lineno) from None
