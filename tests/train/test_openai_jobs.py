"""Paid fine-tuning jobs against the project's mock OpenAI server (hybridtune/devtools/mock_openai.py,
its files and fine_tuning routes): changed settings never follow the old job, a creation whose
answer is lost is found instead of repeated (also after the local record is lost), and a recorded
job the provider does not know is one line.

    .venv/bin/python -m pytest -q tests/train/test_openai_jobs.py
"""
from __future__ import annotations

import json

import httpx
import pytest

from hybridtune.llm.config import EndpointConfig
from hybridtune.devtools.mock_openai import MockConfig, MockServer
from hybridtune.errors import UserError
from hybridtune.train.config import OpenAIFineTune
from hybridtune.train.openai_ft import finetune, job_key

from .test_openai_ft import export


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv("TEST_OPENAI_KEY", "sk-test-not-a-real-key")


class LoseCreateAnswer(httpx.HTTPTransport):
    """The network drops the answer to the first job creation: the server made the job, the client
    sees a read timeout (what a slow proxy or a dropped connection does)."""

    def __init__(self):
        super().__init__()
        self.dropped = False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if request.method == "POST" and request.url.path.endswith("/fine_tuning/jobs") and not self.dropped:
            self.dropped = True
            response.read()
            raise httpx.ReadTimeout("timed out reading the answer", request=request)
        return response


def train(url, tmp_path, *, epochs=1, seed=42, transport=None):
    ep = EndpointConfig(backend="openai", base_url=url, api_key_env="TEST_OPENAI_KEY")
    oc = OpenAIFineTune(n_epochs=epochs, batch_size=1, suffix="hybridtune", poll_s=0.05)
    files = {"train": export(tmp_path / "mix" / "openai_train.jsonl", 12),
             "valid": export(tmp_path / "mix" / "openai_valid.jsonl", 2)}
    client = httpx.Client(transport=transport) if transport else None
    logs: list[str] = []
    res = finetune(oc, ep, "openai", files, tmp_path / "job", data_hash="h1", seed=seed, http_client=client,
                   log=logs.append, sleep=lambda s: None)
    return res, logs


def test_changed_settings_make_a_new_job_and_the_same_ones_follow_it(tmp_path):
    srv = MockServer(MockConfig(mode="openai", ft_seconds=0.3))
    with srv as url:
        first, _ = train(url, tmp_path, epochs=1)
        second, logs = train(url, tmp_path, epochs=2)  # same data, another n_epochs
        assert srv.stats()["jobs_created"] == 2 and second["model"] != first["model"]
        assert any("was made with other data or settings" in x for x in logs)
        again, logs = train(url, tmp_path, epochs=2)
        assert srv.stats()["jobs_created"] == 2 and again["model"] == second["model"]
        assert "following existing job" in logs[0]
        train(url, tmp_path, epochs=2, seed=7)  # another seed: another job
        assert srv.stats()["jobs_created"] == 3


def test_a_creation_whose_answer_is_lost_is_found_not_paid_twice(tmp_path):
    srv = MockServer(MockConfig(mode="openai", ft_seconds=0.3))
    with srv as url:
        lossy = LoseCreateAnswer()
        res, _ = train(url, tmp_path, transport=lossy)
        assert lossy.dropped and srv.stats()["jobs_created"] == 1 and res["model"].startswith("ft:")
        files = srv.stats()["files"]
        (tmp_path / "job" / "openai_job.json").unlink()  # the local record lost too
        again, logs = train(url, tmp_path)
        stats = srv.stats()
    assert stats["jobs_created"] == 1 and stats["files"] == files  # found by its key: no upload, no job
    assert again["model"] == res["model"] and any("found job" in x for x in logs)


def test_a_recorded_job_the_provider_does_not_know_is_one_line(tmp_path):
    oc = OpenAIFineTune(n_epochs=1, batch_size=1, suffix="hybridtune")
    (tmp_path / "job").mkdir()
    (tmp_path / "job" / "openai_job.json").write_text(json.dumps(
        {"data_hash": "h1", "model": oc.model, "key": job_key(oc, "h1", 42), "job_id": "ftjob-99999999"}))
    with MockServer(MockConfig(mode="openai")) as url, pytest.raises(UserError) as e:
        train(url, tmp_path)
    msg = str(e.value)
    assert "\n" not in msg and "job ftjob-99999999 recorded in" in msg and "is unknown to the provider" in msg
