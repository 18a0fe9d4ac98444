"""Domain swapping by config: the same stages with `domain=sales_coach` use that pack's data."""
from __future__ import annotations

from hybridtune.domain import load_domain
from hybridtune.records import Persona, Scenario, Session
from hybridtune.synth import personas, scenarios, sessions
from hybridtune.synth.sampling import load_attribute_spec

from .helpers import responder


def test_sales_coach_domain_by_config(fake_ctx):
    cm, fake = fake_ctx("domain=sales_coach", "synth.personas=5", "synth.sessions=8", "synth.min_exchanges=2",
                        "synth.max_exchanges=2", "synth.min_distortions=1", "synth.concurrency=1", responder=responder)
    with cm as ctx:
        for name, fn in (("personas", personas.run), ("scenarios", scenarios.run), ("synth", sessions.run)):
            ctx.run_stage(name, fn)
        ps = list(ctx.store.stage("personas").read("personas.jsonl", Persona))
        sc = list(ctx.store.stage("scenarios").read("scenarios.jsonl", Scenario))
        ss = list(ctx.store.stage("synth").read("sessions.jsonl", Session))
        report = ctx.store.path("synth", "synth_report.md").read_text()
    dom = load_domain("sales_coach")
    spec = load_attribute_spec(dom)
    assert ps and all(set(p.attributes) == set(spec.attributes) for p in ps)
    assert {p.attributes["industry"] for p in ps} == set(spec.attributes["industry"])  # 5 personas cover all 5
    assert sc and all(s.theme in spec.attributes["sales_challenge"] for s in sc)
    assert {d for s in sc for d in s.meta["planned_distortions"]} <= {t.id for t in dom.distortions}
    techniques = {t.id for t in dom.techniques}
    assert {t for s in ss for t in s.meta["planned_techniques"]} == techniques  # 8 sessions x 3 cover all 8
    assert all(s.messages[0].content == dom.system_prompt and s.meta["domain"] == "sales_coach" for s in ss)
    assert "sales coaching" in "".join(r.messages[0]["content"] for r in fake.requests if r.messages[0]["role"] == "system")
    assert "agenda_setting" not in report and "call_review" in report and "`sales_coach`" in report
