"""Judged against people (evaluate/people.py, evaluate/rate/): Bradley-Terry against a direct
maximum-likelihood fit with scipy on simulated preferences, rater and judge-human agreement,
the rating API behind the shared web guard, export/import for remote raters, and the report's
sections with and without the data."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
from fastapi.testclient import TestClient
from scipy.optimize import minimize

from hybridtune.errors import UserError
from hybridtune.evaluate import people
from hybridtune.evaluate.pairwise import PairJudgment
from hybridtune.evaluate.rate import ratings as R
from hybridtune.evaluate.rate.app import create_app
from hybridtune.store import StageDir

from .test_pairwise import sessions

TRUE = {"base": -1.0, "real": 0.0, "synthetic": 0.3, "hybrid": 0.7}


def simulate_prefs(n: int, seed: int, tie: float = 0.15) -> list[tuple[str, str, float]]:
    rng = np.random.default_rng(seed)
    vs = sorted(TRUE)
    out = []
    for _ in range(n):
        a, b = rng.choice(vs, 2, replace=False)
        p = 1 / (1 + np.exp(TRUE[b] - TRUE[a]))
        u = rng.random()
        out.append((str(a), str(b), 0.5 if u < tie else float(rng.random() < p)))
    return out


def scipy_fit(results, prior: float = 0.0) -> dict[str, float]:
    """The reference: minimise the Bradley-Terry negative log-likelihood directly (ties as half wins,
    `prior` virtual ties per compared pair), strengths centred at mean 0."""
    vs = sorted({x for a, b, _ in results for x in (a, b)})
    ix = {v: i for i, v in enumerate(vs)}
    rows = list(results)
    pairs = {tuple(sorted((a, b))) for a, b, _ in results}

    def nll(theta):
        t = theta - theta.mean()
        ll = 0.0
        for a, b, s in rows:
            d = t[ix[a]] - t[ix[b]]
            ll += s * -np.logaddexp(0, -d) + (1 - s) * -np.logaddexp(0, d)
        for a, b in pairs:  # prior: `prior` games of half a win each way
            d = t[ix[a]] - t[ix[b]]
            ll += prior * (0.5 * -np.logaddexp(0, -d) + 0.5 * -np.logaddexp(0, d))
        return -ll

    th = minimize(nll, np.zeros(len(vs)), method="BFGS", options={"gtol": 1e-9}).x
    th -= th.mean()
    return {v: float(th[i]) for v, i in ix.items()}


@pytest.mark.parametrize("prior", [0.0, 0.5])
def test_bradley_terry_matches_a_direct_scipy_maximum_likelihood_fit(prior):
    prefs = simulate_prefs(400, seed=1)
    ours, ref = people.bradley_terry(prefs, prior=prior), scipy_fit(prefs, prior)
    assert set(ours) == set(TRUE)
    for v in TRUE:
        assert ours[v] == pytest.approx(ref[v], abs=1e-5)
    # and it recovers the simulated order
    assert sorted(ours, key=ours.get) == ["base", "real", "synthetic", "hybrid"]


def test_bt_prior_keeps_a_never_winning_variant_finite_and_cis_cover():
    res = [("a", "b", 1.0)] * 5 + [("b", "c", 1.0)] * 5
    s = people.bradley_terry(res, prior=0.5)
    assert all(np.isfinite(list(s.values()))) and s["a"] > s["b"] > s["c"]
    by_unit = {f"u{i}": [r] for i, r in enumerate(simulate_prefs(300, seed=2))}
    ci = people.bt_with_ci(by_unit, resamples=200)
    assert all(v["ci"][0] <= v["strength"] <= v["ci"][1] for v in ci.values())
    assert ci["hybrid"]["ci"][0] > ci["base"]["ci"][1]  # far apart in truth: CIs do not overlap


def test_rater_and_judge_human_agreement_known_values():
    t = {("u1", "a", "b"): {"x": 1.0, "y": 1.0}, ("u2", "a", "b"): {"x": 0.0, "y": 0.5},
         ("u3", "a", "b"): {"x": 0.0, "y": 0.0}, ("u4", "a", "b"): {"x": 1.0}}
    ra = people.rater_agreement(t)
    assert ra["raters"] == 2 and ra["tasks_multi"] == 3 and ra["agreement"] == pytest.approx(2 / 3)
    assert 0 < ra["alpha"] < 1
    assert people.rater_agreement({("u", "a", "b"): {"x": 1.0}})["alpha"] is None  # one rater: not measured
    human = {("u1",): 1.0, ("u2",): 0.0, ("u3",): 0.5, ("u4",): 0.75}
    jh = people.judge_human(human, {("u1",): 1.0, ("u2",): 0.0, ("u3",): 0.5, ("u4",): 0.25, ("u5",): 1.0})
    assert jh["tasks"] == 4 and jh["agree"] == 0.75
    assert jh["kendall_tau"] == pytest.approx(__import__("scipy").stats.kendalltau([1, 0, .5, .75], [1, 0, .5, .25]).statistic)


# -- the rating page's API and files ------------------------------------------------


def run_dir(tmp_path):
    d = tmp_path / "runs" / "demo"
    StageDir(d / "simulate", "simulate").write_records("sessions.jsonl", sessions())
    return d


def test_rate_api_blind_random_order_and_stored_with_rater_and_time(tmp_path):
    d = run_dir(tmp_path)
    c = TestClient(create_app(d, rater="ana"), base_url="http://127.0.0.1")
    assert c.get("/api/meta").json()["total"] == 12  # 4 turns x 3 pairs of variants
    first = c.get("/api/next", params={"rater": "ana"}).json()
    assert first["done"] == 0 and first["task"]["context"][0]["content"] == "I can't sleep since the move."
    assert not {"hybrid", "base", "real"} & set(json.dumps(first).replace("I can't", "").split('"'))
    lefts = set()
    for _ in range(12):
        t = c.get("/api/next", params={"rater": "ana"}).json()["task"]
        r = c.post("/api/rate", json={"task": t["id"], "rater": "ana", "choice": "left", "left": {"empathy": 8}})
        assert r.status_code == 200
        lefts.add("sounds like" in t["left"])
    assert r.json() == {"done": 12, "total": 12, "task": None}
    stored = R.load_ratings(d)
    assert len(stored) == 12 and all(x.rater == "ana" and x.at.endswith("Z") for x in stored)
    assert all(x.winner == x.left and list(x.scores) == [x.left] and x.scores[x.left].empathy == 8 for x in stored)
    assert lefts == {True, False}  # the better reply is not always on one side
    # another rater starts from zero, in another order
    bo = c.get("/api/next", params={"rater": "bo"}).json()
    assert bo["done"] == 0
    assert R.order_for("bo", R.all_tasks(R.load_units(d))) != R.order_for("ana", R.all_tasks(R.load_units(d)))


def test_rate_api_refuses_bad_input_and_cross_site_writes(tmp_path):
    c = TestClient(create_app(run_dir(tmp_path)), base_url="http://127.0.0.1")
    t = c.get("/api/next", params={"rater": "ana"}).json()["task"]
    assert c.post("/api/rate", json={"task": t["id"], "rater": "ana", "choice": "both"}).status_code == 422
    assert c.post("/api/rate", json={"task": t["id"], "rater": "ana", "choice": "left",
                                     "left": {"empathy": 11}}).status_code == 422
    assert c.post("/api/rate", json={"task": "0" * 16, "rater": "ana", "choice": "left"}).status_code == 404
    assert c.get("/api/next", params={"rater": "../x"}).status_code == 422
    # the shared guard: a cross-site form post and a foreign Host are refused
    assert c.post("/api/rate", content="x", headers={"Content-Type": "text/plain"}).status_code in (403, 415)
    assert c.get("/api/meta", headers={"Host": "evil.example"}).status_code in (400, 403)
    tok = TestClient(create_app(run_dir(tmp_path), token="s3cret"), base_url="http://127.0.0.1")
    assert tok.get("/api/meta").status_code == 401
    assert tok.get("/api/meta", headers={"Authorization": "Bearer s3cret"}).status_code == 200


def test_export_rate_remotely_and_import(tmp_path):
    d = run_dir(tmp_path)
    out = tmp_path / "for-ana"
    assert R.export(d, out) == 4
    exported = (out / "rate" / "units.jsonl").read_text()
    assert "hybrid" not in exported and "sounds like" in exported  # blind: codes, not names
    c = TestClient(create_app(out), base_url="http://127.0.0.1")
    for _ in range(3):
        t = c.get("/api/next", params={"rater": "ana"}).json()["task"]
        c.post("/api/rate", json={"task": t["id"], "rater": "ana", "choice": "tie" if "OK." in t["left"] else "right",
                                  "right": {"relevance": 4}})
    f = out / "rate" / "ratings.jsonl"
    assert R.import_ratings(d, [f]) == {"imported": 3, "files": 1}
    assert R.import_ratings(d, [f])["imported"] == 0  # again: duplicates skipped
    got = R.load_ratings(d)
    assert len(got) == 3 and all({x.a, x.b} <= {"base", "hybrid", "real"} and x.rater == "ana" for x in got)
    assert all(set(x.scores) <= {"base", "hybrid", "real"} for x in got)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(f.read_text().splitlines()[0] + "\n{not json\n")
    with pytest.raises(UserError, match=r"bad.jsonl:2: not a rating"):
        R.import_ratings(d, [bad])
    assert len(R.load_ratings(d)) == 3  # nothing written from a bad file


def test_report_sections_with_and_without_people_data(fake_ctx, tmp_path):
    cm, _ = fake_ctx()
    with cm as ctx:
        secs = people.report_sections(ctx)
        assert [s["title"] for s in secs] == ["Pairwise judging (win rates)", "Human ratings (blind side-by-side)"]
        assert "Not run" in secs[0]["markdown"] and "No human ratings" in secs[1]["markdown"]
        root = ctx.store.root
        StageDir(root / "simulate", "simulate").write_records("sessions.jsonl", sessions())
        us = R.load_units(root)
        ts = R.all_tasks(us)
        st = R.rate_dir(root)
        for rater in ("ana", "bo"):  # both prefer the reflective reply; bo calls base-real a tie
            for t in ts.values():
                pick = "tie" if "hybrid" not in (t.a, t.b) else ("left" if R.left_of(rater, t) == "hybrid" else "right")
                if rater == "ana" and pick == "tie":
                    pick = "left" if R.left_of(rater, t) == "real" else "right"
                st.append(R.RATINGS, R.make_rating(t, R.RatingIn(task=t.id, rater=rater, choice=pick)))
        js = [PairJudgment(id=f"{t.id}{first}", unit=t.unit.id, a=t.a, b=t.b, first=first, judge_model="m", prompt="p",
                           winner="hybrid" if "hybrid" in (t.a, t.b) else "real") for t in ts.values() for first in (t.a, t.b)]
        ctx.store.stage("score").write_records("pairwise.jsonl", js)
        h = people.human_summary(ctx)
        md = people.report_sections(ctx)[1]["markdown"]
    assert h["ratings"] == 24 and h["tasks"] == 12 and h["raters"] == ["ana", "bo"]
    st_ = h["strengths"]
    assert st_["hybrid"]["strength"] > st_["real"]["strength"] > st_["base"]["strength"]
    assert h["rater_agreement"]["tasks_multi"] == 12 and h["rater_agreement"]["agreement"] == pytest.approx(8 / 12)
    # base vs real: people 0.25 for base (ana real, bo tie), the judge 0 (real both orders): same direction
    assert h["judge_human"]["tasks"] == 12 and h["judge_human"]["agree"] == 1.0
    assert "Bradley-Terry" in md and "Kendall's tau" in md


def test_the_report_shows_people_sections_or_says_the_data_are_missing(fake_ctx):
    from hybridtune.evaluate import report

    from .test_eval_report import write_fixture

    cm, _ = fake_ctx()
    with cm as ctx:
        write_fixture(ctx, validated=False)
        ctx.run_stage("report", report.run)
        md = (ctx.store.stage("report").path / "report.md").read_text()
        assert "## Judge against experts (AnnoMI MI quality)" in md and "Not checked on this run" in md
        # beside the degraded-reply check: right after the judge-validation section
        heads = re.findall(r"^## (.+)$", md, re.M)
        assert heads[heads.index("Judge validation") + 1] == "Judge against experts (AnnoMI MI quality)"
        assert "No human ratings on this run: judge-human agreement is unknown." in md
        ex = {"ran": True, "passes": False, "verdict": "judge cannot tell experts' high from low MI quality: x",
              "pairs": 6, "same_topic_pairs": 5, "window": 8, "ratings": 12, "ratings_planned": 12, "threshold": 0.5,
              "metrics": {"empathy": {"auc": 0.5, "auc_ci": [0.5, 0.5], "auc_kind": "within topic", "auc_pooled": 0.5,
                                      "auc_pooled_ci": None, "matched_share": 0.5, "matched_ci": [0.2, 0.8],
                                      "mean_high": 10.0, "mean_low": 10.0, "passes": False}}}
        ctx.store.stage("calibrate").write_json("summary.json", {"validated": False, "verdict": "fixture", "metrics": {},
                                                                 "experts": ex})
        ts = R.all_tasks(R.load_units(ctx.store.root))
        for t in ts.values():
            R.rate_dir(ctx.store.root).append(R.RATINGS, R.make_rating(t, R.RatingIn(
                task=t.id, rater="ana", choice="left", left=R.SideScores(empathy=7), right=R.SideScores(empathy=3))))
        ctx.run_stage("report", report.run, force=True)
        md = (ctx.store.stage("report").path / "report.md").read_text()
        html = (ctx.store.stage("report").path / "report.html").read_text()
    assert "Judge cannot tell experts' high from low MI quality" in md and "0.50 [0.50, 0.50]" in md
    assert "Bradley-Terry" in md and "Agreement between raters: not measured" in md
    # each variant was shown left as often as it was randomly placed there: means between 3 and 7, counts add up
    rows = re.findall(r"^\| (\w+) \| (\d\.\d\d) \((\d+)\) \|", md, re.M)
    assert {v for v, _, _ in rows} == {"base", "real", "hybrid"} and sum(int(n) for *_, n in rows) == 2 * len(ts)
    assert all(3 <= float(x) <= 7 for _, x, _ in rows)
    assert "Judge against experts (AnnoMI MI quality)" in html


def test_rate_verbs_fail_in_one_line_and_export_import_through_the_cli(tmp_path):
    from tests.test_cli import ht

    out = ht("rate", str(tmp_path))
    assert out.returncode != 0 and "no simulated sessions" in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    out = ht("rate", str(tmp_path), "--host", "0.0.0.0")
    assert out.returncode != 0 and "needs --token" in out.stderr
    d = run_dir(tmp_path)
    out = ht("rate-export", str(d), str(tmp_path / "remote"))
    assert out.returncode == 0 and "4 client turns" in out.stdout, out.stderr
    bad = tmp_path / "r.jsonl"
    bad.write_text('{"id": "x"}\n')
    out = ht("rate-import", str(d), str(bad))
    assert out.returncode != 0 and f"{bad}:1: not a rating" in out.stderr and "Traceback" not in out.stderr
