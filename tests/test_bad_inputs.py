"""The bad-input suite (tests/bad_inputs/): one clear message or a quarantine entry for
each broken input, never a traceback, and one bad input never stops the others."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_cli import ht

BAD = Path(__file__).parent / "bad_inputs"


@pytest.mark.parametrize("name,expect", [
    ("config_wrong_key.yaml", "synth.sesions: unknown key; did you mean 'sessions'"),
    ("config_wrong_type.yaml", "evaluate.scenarios:"),
    ("config_not_mapping.yaml", "expected a mapping"),
    ("config_bad_yaml.yaml", "not valid YAML"),
])
def test_bad_configs(name, expect):
    out = ht("config", "check", str(BAD / name))
    assert out.returncode == 2, out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    assert expect in out.stderr and str(BAD / name) in out.stderr
