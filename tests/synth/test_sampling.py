"""Quota sampling of attributes and techniques; attributes.yaml validation errors."""
from __future__ import annotations

import random
import shutil
from collections import Counter

import pytest

from hybridtune.domain import DOMAINS_DIR, load_domain
from hybridtune.errors import UserError
from hybridtune.synth.sampling import deal_terms, entropy_ratio, load_attribute_spec, quota_counts, sample_attributes


def test_quota_counts_follow_weights_and_sum_to_n():
    c = quota_counts({"positive": 1, "neutral": 2, "resistant": 1}, 10)
    assert sum(c.values()) == 10 and c["neutral"] == 5 and {c["positive"], c["resistant"]} == {2, 3}


def test_sampled_attributes_meet_every_quota():
    spec = load_attribute_spec(load_domain("cbt"))
    n = 64
    rows = sample_attributes(spec, n, random.Random(3))
    assert len(rows) == n
    for attr, weights in spec.attributes.items():
        got = Counter(r[attr] for r in rows)
        want = quota_counts(weights, n)
        assert got == Counter({k: v for k, v in want.items() if v}), attr
        assert set(got) == set(weights)  # every value covered once n >= number of values
    # combinations vary: columns are shuffled independently
    assert len({tuple(r.values()) for r in rows}) == n
    assert rows == sample_attributes(spec, n, random.Random(3))  # reproducible by seed
    assert rows != sample_attributes(spec, n, random.Random(4))


def test_deal_terms_balanced_and_distinct_within_item():
    ids = [f"t{i}" for i in range(24)]
    dealt = deal_terms(ids, [3] * 100, random.Random(0))
    assert all(len(set(d)) == 3 for d in dealt)
    c = Counter(t for d in dealt for t in d)
    assert set(c) == set(ids) and max(c.values()) - min(c.values()) <= 1
    weighted = Counter(t for d in deal_terms(ids, [3] * 100, random.Random(0), {"t0": 3.0}) for t in d)
    assert weighted["t0"] > 2 * weighted["t1"]
    with pytest.raises(UserError, match="technique_weights"):
        deal_terms(ids, [1], random.Random(0), {"nope": 1.0})


def test_entropy_ratio():
    assert entropy_ratio(["a", "b", "c", "d"], 4) == pytest.approx(1.0)
    assert entropy_ratio(["a"] * 4, 4) == 0.0


def _domain_copy(tmp_path, attributes_text: str):
    root = tmp_path / "dom"
    shutil.copytree(DOMAINS_DIR / "cbt", root)
    (root / "attributes.yaml").write_text(attributes_text)
    return load_domain(str(root))


def test_bad_attribute_file_is_one_clear_error(tmp_path):
    dom = _domain_copy(tmp_path, "theme_attribute: problem\nattributes:\n  age: [a, b]\n  problem: {x: -1}\n"
                                 "session_plan: [{phase: a, goal: b}]\n")
    with pytest.raises(UserError) as e:
        load_attribute_spec(dom)
    msg = str(e.value)
    assert "attributes.yaml:4" in msg and "positive number" in msg and "\n" not in msg
    dom = _domain_copy(tmp_path / "2", "theme_attribute: missing\nattributes: {age: [a]}\nsession_plan: [{phase: a, goal: b}]\n")
    with pytest.raises(UserError, match="attributes.yaml:1: 'missing'"):
        load_attribute_spec(dom)
    dom = _domain_copy(tmp_path / "3", "attributes: [oops\n")
    with pytest.raises(UserError, match=r"attributes.yaml:\d+: invalid YAML"):
        load_attribute_spec(dom)


def test_turn_schedule_spreads_phases_and_places_every_technique():
    from hybridtune.synth.sessions import SessionPlan, turn_schedule

    phases = load_attribute_spec(load_domain("cbt")).session_plan
    for exchanges, techs in [(8, ["a", "b", "c"]), (2, ["a", "b", "c"]), (1, ["a"])]:
        sched = turn_schedule(SessionPlan(index=0, scenario_id="s", techniques=techs, exchanges=exchanges), phases)
        assert len(sched) == exchanges + 1
        assert sched[-1][0].phase == "closing" and (exchanges < 2 or sched[0][0].phase == "agenda")
        assert {t for _, ts in sched for t in ts} == set(techs)
        order = [phases.index(p) for p, _ in sched]
        assert order == sorted(order)  # phases advance, never go back
