"""Provider check: model list + shutdown dates + fine-tuning stop, said plainly with the way forward."""
from __future__ import annotations

from datetime import date

import pytest
from starlette.testclient import TestClient

from hybridtune.devtools.mock_openai import MockConfig, make_app
from hybridtune.errors import UserError
from hybridtune.provider import check_provider, known_shutdown, provider_report

TODAY = date(2026, 11, 29)


@pytest.fixture
def cfg(make_cfg, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    return lambda *o: make_cfg("endpoints.openai.base_url=http://mock/v1", *o, backend="", path="configs/openai.yaml")


def client(**kw) -> TestClient:
    return TestClient(make_app(MockConfig(mode="openai", **kw)), base_url="http://mock")


def test_today_every_model_is_served_with_warnings_about_the_deadlines(cfg):
    rep = provider_report(cfg(), TODAY, http_client=client())
    assert rep.problems == []
    by = {(s.model, s.shutdown_source) for s in rep.models}
    assert ("gpt-4o", "model list") in by and ("gpt-4o-mini-2024-07-18", "model list") in by
    text = "\n".join(rep.warnings)
    assert "gpt-4o-mini-2024-07-18 @ openai (fine-tuning): shuts down on 2027-01-14, in 46 days" in text
    assert "stops new fine-tuning jobs on 2027-01-06, in 38 days" in text and "configs/gpu.yaml" in text
    lines = check_provider(cfg(), TODAY, http_client=client())
    assert any(x.startswith("provider: WARNING") for x in lines)


def test_after_the_fine_tuning_stop_and_after_shutdown_the_run_is_refused(cfg):
    with pytest.raises(UserError, match="stopped new fine-tuning jobs on 2027-01-06"):
        check_provider(cfg(), date(2027, 1, 6), http_client=client())
    with pytest.raises(UserError, match=r"gpt-4o @ openai \(patient, judge\): shut down on 2027-01-14"):
        check_provider(cfg(), date(2027, 1, 14), http_client=client())


def test_unlisted_model_and_the_published_date_when_the_list_has_none(cfg):
    rep = provider_report(cfg("roles.judge.model=gpt-9"), TODAY,
                          http_client=client(models="gpt-4o,gpt-4o-mini,gpt-4o-mini-2024-07-18"))
    assert any("gpt-9 @ openai (judge): the endpoint does not list this model" in p for p in rep.problems)
    assert {s.shutdown_source for s in rep.models if s.model == "gpt-4o"} == {"published deprecation"}
    assert known_shutdown("ft:gpt-4o-mini-2024-07-18:org:x:abc") == date(2027, 1, 14)
    assert known_shutdown("gpt-4.1-mini") is None


def test_fine_tuned_variants_in_the_registry_are_checked(cfg):
    from hybridtune.records import ModelEntry

    reg = {"hybrid": ModelEntry(variant="hybrid", backend="openai", endpoint="openai",
                                model="ft:gpt-4o-mini-2024-07-18:org:hybridtune:gone")}
    rep = provider_report(cfg(), TODAY, registry=reg, http_client=client())
    assert any("variant hybrid" in p and "does not list" in p for p in rep.problems)


def test_unreachable_endpoint_is_one_clear_problem(cfg):
    rep = provider_report(cfg("endpoints.openai.base_url=http://127.0.0.1:9/v1"), TODAY)
    assert len(rep.problems) == 1 and "cannot reach http://127.0.0.1:9/v1" in rep.problems[0]


def test_the_fine_tuning_stop_is_judged_against_when_the_train_stage_may_start(cfg):
    """openai.yaml's batch stages before train may each wait llm.batch_timeout_h: three days before
    the stop, a run that batches them (5 stages x 24 h) could reach train after it."""
    day = date(2027, 1, 3)
    assert check_provider(cfg(), day, http_client=client())  # no batches: train starts today, warned only
    with pytest.raises(UserError, match=r"stops new fine-tuning jobs on 2027-01-06, and the train stage may only "
                                        r"start on 2027-01-08"):
        check_provider(cfg("llm.batch=true"), day, http_client=client())
    # only the stages that run: from mix on, nothing batches before train
    assert check_provider(cfg("llm.batch=true"), day, http_client=client(), chosen=["mix", "train", "simulate"])
