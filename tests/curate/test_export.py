"""Exports: the OpenAI format validator's rules, the export of a mixed run (JSONL passes the
validator, Parquet loads with `datasets.load_dataset`), and the dataset card."""
from __future__ import annotations

import json

import pytest

from hybridtune.curate import mix
from hybridtune.curate.export import to_openai, validate_openai
from hybridtune.records import Message, Session

from .helpers import session, write_curated

OK = {"messages": [{"role": "system", "content": "be kind"}, {"role": "user", "content": "hi"},
                   {"role": "assistant", "content": "hello"}]}


@pytest.mark.parametrize("example, error", [
    ({"messages": OK["messages"], "id": "x"}, "only a `messages` key"),
    ({"messages": []}, "non-empty list"),
    ({"messages": [{"role": "user", "content": "hi"}]}, "at least one assistant"),
    ({"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}, {"role": "assistant", "content": "c"}]}, "alternate"),
    ({"messages": [{"role": "client", "content": "a"}, {"role": "assistant", "content": "c"}]}, "not system|user|assistant"),
    ({"messages": [{"role": "user", "content": " "}, {"role": "assistant", "content": "c"}]}, "non-empty string"),
    ({"messages": [{"role": "user", "content": "a"}, {"role": "system", "content": "s"}, {"role": "assistant", "content": "c"}]}, "only come first"),
    ({"messages": [{"role": "user", "content": "a", "score": 3}, {"role": "assistant", "content": "c"}]}, "unrecognized keys"),
    ({"messages": [{"role": "user", "content": "word " * 400}, {"role": "assistant", "content": "c"}]}, "exceed"),
])
def test_validator_rules(example, error):
    assert validate_openai(OK, 256) == []
    errs = validate_openai(example, 256)
    assert any(error in e for e in errs), errs


def test_to_openai_merges_same_speaker_turns_and_drops_trailing_client_turns():
    s = Session(id="x", source="real", messages=[
        Message(role="user", content="first"), Message(role="user", content="second"),
        Message(role="assistant", content="reply"), Message(role="user", content="bye")])
    ex = to_openai(s)
    assert ex == {"messages": [{"role": "user", "content": "first\nsecond"}, {"role": "assistant", "content": "reply"}]}
    assert validate_openai(ex, 1000) == []


def test_mix_exports_validated_jsonl_loadable_parquet_and_card(fake_ctx):
    import datasets

    real = [session(i, "real", techniques=("validation",), topic="sleep", mean=7) for i in range(6)]
    real[0].meta.update(dataset="AnnoMI", license="CC BY 4.0")
    real[1].meta.update(file="../shared/data/esconv/train.json", format="esconv")
    syn = [session(i, techniques=("exposure",), topic="work", mean=8, turns=6) for i in range(10)]
    broken = session(99, techniques=("exposure",), turns=1, mean=8)  # client turn only: cannot be exported
    cm, _ = fake_ctx("mix.size=17", "variants={real: {sources: [real]}, hybrid: {real_share: 0.35}}", "mix.allow_smaller=true", "mix.test_fraction=0")
    with cm as ctx:
        write_curated(ctx.store.root, selected=[*real, *syn, broken])
        summary = ctx.run_stage("mix", mix.run)
        st = ctx.store.stage("mix")
        root = st.path
    for variant in ("real", "hybrid"):
        for split in ("train", "valid"):
            lines = (root / variant / f"openai_{split}.jsonl").read_text().splitlines()
            assert lines and all(validate_openai(json.loads(x), 65536) == [] for x in lines)
        ds = datasets.load_dataset("parquet", data_files={
            "train": str(root / variant / "parquet" / "train.parquet"),
            "validation": str(root / variant / "parquet" / "validation.parquet")})
        n_train = summary["exports"][variant]["train"]["exported"]
        assert ds["train"].num_rows == n_train and ds["train"][0]["messages"][0]["role"] == "system" and ds["train"][0]["messages"][1]["role"] == "user"
        assert set(ds["train"].column_names) >= {"messages", "source", "technique", "topic"}
    hyb = summary["exports"]["hybrid"]
    assert hyb["train"]["exported"] + hyb["valid"]["exported"] == 16 and hyb["train"]["invalid"] + hyb["valid"]["invalid"] == 1
    quarantine = (root / "quarantine.jsonl").read_text()
    assert broken.id in quarantine and "non-empty list" in quarantine  # its lone client turn trains nothing
    card = (root / "hybrid" / "README.md").read_text()
    for needle in ("| real | 6 |", "| exposure |", "| sleep |", "AnnoMI: CC BY 4.0", "ESConv: CC BY-NC 4.0", "licence unknown; add it under mix.licences", "Judge scores", "technique_adherence",
                   "Tokens", "real_share: 0.35", "path: parquet/train.parquet"):
        assert needle in card, needle


def test_to_openai_puts_the_serving_system_prompt_first():
    s = Session(id="x", source="real", messages=[Message(role="user", content="hi"), Message(role="assistant", content="hello")])
    assert to_openai(s, "You are a CBT counselor.")["messages"][0] == {"role": "system", "content": "You are a CBT counselor."}
    only_client = Session(id="y", source="real", messages=[Message(role="user", content="hi")])
    assert to_openai(only_client, "sys") == {"messages": []}
