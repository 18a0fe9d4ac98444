"""Config validation: key paths in errors, overrides, shipped configs validate."""
from __future__ import annotations

from pathlib import Path

import pytest

from hybridtune.config import load_config
from hybridtune.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["demo", "openai", "gpu", "cpu-study"])
def test_shipped_configs_validate(name):
    cfg = load_config(ROOT / "configs" / f"{name}.yaml")
    assert cfg.name == name
    assert set(cfg.roles) == {"generator", "patient", "counselor", "judge", "annotator"}


def test_unknown_key_names_path_and_suggests(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("synth:\n  sesions: 3\n")
    with pytest.raises(UserError) as e:
        load_config(p)
    msg = str(e.value)
    assert "synth.sesions" in msg and "did you mean 'sessions'" in msg and str(p) in msg


def test_wrong_type_names_key(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("synth:\n  sessions: lots\n")
    with pytest.raises(UserError, match=r"synth\.sessions: .*integer.*'lots'"):
        load_config(p)


def test_role_bound_to_undefined_endpoint():
    with pytest.raises(UserError, match=r"roles\.judge\.endpoint: 'nope' is not defined"):
        load_config(None, ["roles.judge.endpoint=nope"])


def test_dotted_overrides_parse_yaml_scalars():
    cfg = load_config(None, ["synth.sessions=20", "llm.budget_usd=1.5", "endpoints.local.base_url=[http://a, http://b]"])
    assert cfg.synth.sessions == 20 and cfg.llm.budget_usd == 1.5
    assert cfg.endpoints["local"].base_url == ["http://a", "http://b"]


def test_bad_override_syntax():
    with pytest.raises(UserError, match="KEY=VALUE"):
        load_config(None, ["synth.sessions"])


def test_invalid_yaml_names_line(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("name: x\nroles: [unclosed\n")
    with pytest.raises(UserError, match=r"c\.yaml: line \d+: not valid YAML"):
        load_config(p)


def test_resolved_config_written_to_run_dir(fake_ctx):
    cm, _ = fake_ctx("synth.sessions=3")
    with cm as ctx:
        text = (ctx.store.root / "config.yaml").read_text()
    assert "sessions: 3" in text


def test_cpu_study_has_the_papers_design_and_a_grouped_split():
    """Issue 27: hybrid = exactly real's R real sessions + S synthetic, synthetic = those S, and
    whole AnnoMI videos and series held out together."""
    from hybridtune.variants import contrast

    cfg = load_config(ROOT / "configs" / "cpu-study.yaml")
    v = {x.name: x for x in cfg.variant_list() if x.replicate_of is None}
    assert list(v) == ["base", "real", "hybrid", "synthetic"]
    assert v["hybrid"].design == "added" and v["hybrid"].adds_to == "real"
    assert v["hybrid"].counts() == {"real": v["real"].size, "synthetic": v["synthetic"].size}
    assert "the same 40 real ones" in contrast(v["hybrid"], v["real"])
    assert "the same 18 synthetic ones" in contrast(v["hybrid"], v["synthetic"])
    assert cfg.mix.group_by == ["video_url", "series"] and len(cfg.train.seeds) >= 3
    assert [x.name for x in cfg.variant_list()][:4] == ["base", "real", "real~s12", "real~s13"]
