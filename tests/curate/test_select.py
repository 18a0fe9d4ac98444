"""Selection policy: threshold, borderline -> review, top-k per stratum, technique coverage,
flags / crisis / judge failures -> review, unjudged real sessions kept."""
from __future__ import annotations

from hybridtune.curate.config import CurateConfig
from hybridtune.curate.select import select_sessions, stratum

from .helpers import session


def _ids(sel, key):
    return {s.id for s in sel[key]}


def _run(pool, judged=None, failed=(), **cfg):
    judged_ids = {s.id for s in pool} if judged is None else judged
    return select_sessions(pool, CurateConfig(**cfg), judge_failed=set(failed), judged_ids=judged_ids)


def test_threshold_and_borderline_routing():
    good, border, bad = session(1, mean=7.5), session(2, mean=5.5), session(3, mean=2.0)
    sel = _run([good, border, bad], threshold=6, borderline=1, min_per_technique=0)
    assert _ids(sel, "selected") == {good.id}
    assert _ids(sel, "review") == {border.id}
    assert _ids(sel, "rejected") == {bad.id}
    assert sel["review"][0].meta["curate"]["reasons"] == ["borderline:5.50"]


def test_top_k_per_stratum_keeps_best_of_each_stratum():
    pool = [session(i, techniques=(t,), mean=m) for i, (t, m) in enumerate(
        [("validation", 9), ("validation", 8), ("validation", 7), ("exposure", 6.5), ("exposure", 6.2)])]
    sel = _run(pool, threshold=6, top_k_per_stratum=1, min_per_technique=0)
    kept = {stratum(s, "technique"): s.scores["judge"]["mean"] for s in sel["selected"]}
    assert kept == {"validation": 9, "exposure": 6.5}
    assert all(r.meta["curate"]["reasons"] == ["top_k:1"] for r in sel["rejected"])


def test_coverage_brings_back_best_session_of_a_lost_technique():
    pool = [session(1, techniques=("validation",), mean=8), session(2, techniques=("exposure",), mean=4.5),
            session(3, techniques=("exposure",), mean=3.0), session(4, techniques=("mindfulness",), mean=2.0)]
    sel = _run(pool, threshold=6, borderline=0, min_per_technique=1, coverage_floor=3.0)
    assert _ids(sel, "selected") == {pool[0].id, pool[1].id}  # exposure's best kept; mindfulness below the floor
    assert next(s for s in sel["selected"] if s.id == pool[1].id).meta["curate"]["reasons"] == ["coverage:exposure"]
    assert _ids(sel, "rejected") == {pool[2].id, pool[3].id}


def test_flags_crisis_and_failures_go_to_review_even_with_high_scores():
    flagged = session(1, mean=9, flags=("repetition",))
    crisis = session(2, mean=9, risk="high")
    failed = session(3)  # judged but no score: the judge reply never validated
    low_risk = session(4, mean=9, risk="low")
    sel = _run([flagged, crisis, failed, low_risk], failed={failed.id})
    reasons = {s.id: s.meta["curate"]["reasons"] for s in sel["review"]}
    assert reasons == {flagged.id: ["flag:repetition"], crisis.id: ["crisis_screen:high"], failed.id: ["judge_failed"]}
    assert _ids(sel, "selected") == {low_risk.id}


def test_unjudged_real_sessions_are_kept_unless_screened():
    real_ok, real_crisis = session(1, "real"), session(2, "real", risk="imminent")
    sel = _run([real_ok, real_crisis], judged=set())
    assert _ids(sel, "selected") == {real_ok.id} and _ids(sel, "review") == {real_crisis.id}


def test_stratum_by_meta_key_and_annotation_fallback():
    s = session(1, topic="sleep")
    assert stratum(s, "topic") == "sleep" and stratum(s, "technique") == "validation"
    s.meta.pop("techniques")
    assert stratum(s, "technique") == "unknown" and stratum(s, "missing") == "unknown"
