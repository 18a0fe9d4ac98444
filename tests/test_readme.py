"""README: the newcomer's path is there and stays true (links resolve, every doc is linked,
the three real-run paths say what must be running, the `-c` default is stated as the CLI has it).

    pytest tests/test_readme.py
"""
from __future__ import annotations

import re
from pathlib import Path

from hybridtune.cli_common import DEFAULT_HELP

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def section(title: str) -> str:
    return README.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_every_relative_link_resolves_and_every_doc_is_linked():
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README)
    local = [x for x in links if not x.startswith("http")]
    assert local and [x for x in local if not (ROOT / x).exists()] == []
    for doc in sorted((ROOT / "docs").glob("*.md")):
        if doc.name != "benchmarks_notes.md":  # the notes behind benchmarks.md, linked from there
            assert f"](docs/{doc.name})" in README, doc.name
    assert "](https://arxiv.org/abs/2410.09168)" in README  # the paper


def test_quick_start_gives_both_commands_with_the_demo_time_and_what_next():
    quick = section("Quick start")
    assert "make demo    # about 20 minutes" in quick and "make test" in quick
    assert "runs/demo/report/report.html" in quick and "hybridtune chat runs/demo --variant hybrid" in quick


def test_running_for_real_names_what_must_be_running_for_each_path():
    real = section("Running for real")
    head = r"\*\*(One GPU|Several GPUs|An API)\*\* \(`(configs/[\w-]+\.yaml)`\)"
    paths = re.findall(head + r"(.*?)(?=\n\*\*|\n`hybridtune plan)", real, re.S)
    assert [p[0] for p in paths] == ["One GPU", "Several GPUs", "An API"]
    for _, _, body in paths:
        assert "Must be" in body
    several = dict((p[0], p[2]) for p in paths)["Several GPUs"]
    assert "six 80 GB GPUs" in several and "--tensor-parallel-size 4" in several
    assert "2027-01-06" in dict((p[0], p[2]) for p in paths)["An API"]


def test_the_config_default_is_stated_as_the_cli_applies_it():
    phrase = DEFAULT_HELP.removeprefix("default: ").replace("configs/demo.yaml", "`configs/demo.yaml`")
    assert phrase in section("CLI").replace("\n", " ")
    assert "(default `configs/demo.yaml`)" not in README and "built-in defaults)" not in section("CLI")
