"""`hybridtune data get` against a local HTTP server on 127.0.0.1 serving copies of ../shared/data
(tests/data_mirror.py: laid out like raw.githubusercontent.com, with HTTP Range, and able to cut a
response short to simulate an interrupted download)."""
from __future__ import annotations

import hashlib
import json

import pytest
from conftest import shared_data
from data_mirror import Mirror

from hybridtune import catalogue
from hybridtune.catalogue.download import Offline, fetch
from hybridtune.errors import UserError


@pytest.fixture
def mirror():
    m = Mirror()
    yield m
    m.close()


def quiet(*_):
    pass


def test_catalogue_declares_the_five_sets():
    cat = catalogue.catalogue()
    assert {"annomi", "counselchat", "esconv", "cactus", "mentalchat16k"} <= set(cat)
    assert [n for n, d in cat.items() if d.non_commercial] == ["esconv"]
    for ds in cat.values():
        assert len(ds.commit) == 40 and ds.licence_file in {f.name for f in ds.files}
        assert ds.url(ds.files[0]).startswith(f"https://raw.githubusercontent.com/{ds.repo}/")


def test_get_verifies_and_keeps_the_licence(mirror, tmp_path):
    mirror.serve("cactus")
    where = fetch("cactus", root=tmp_path, base=mirror.url, log=quiet)
    src = json.loads((where / "SOURCE.json").read_text())
    assert src["commit"] == catalogue.get("cactus").commit and src["licence_file"] == "LICENSE"
    assert (where / "LICENSE").read_bytes() == shared_data("cactus-eval", "LICENSE").read_bytes()
    ev = where / "evaluation.json"
    assert hashlib.sha256(ev.read_bytes()).hexdigest() == catalogue.get("cactus").files[0].sha256
    # a second get verifies what is there and downloads nothing
    n = len(mirror.requests)
    fetch("cactus", root=tmp_path, base=mirror.url, log=quiet)
    assert len(mirror.requests) == n


def test_checksum_mismatch_is_rejected(mirror, tmp_path):
    mirror.serve("mentalchat16k")
    p = mirror.path("mentalchat16k", "evalq_bench.jsonl")
    mirror.files[p] = mirror.files[p].replace(b"anxiety", b"anxietY", 1)  # one byte differs
    with pytest.raises(UserError, match="checksum mismatch"):
        fetch("mentalchat16k", root=tmp_path, base=mirror.url, log=quiet)
    d = tmp_path / "mentalchat16k"
    assert not (d / "evalq_bench.jsonl").exists() and (d / "evalq_bench.jsonl.rejected").exists()
    assert not (d / "SOURCE.json").exists()
    with pytest.raises(UserError, match="not downloaded"):
        catalogue.resolve("mentalchat16k", "eval_scenarios", "evaluate.scenarios_file", tmp_path)


def test_interrupted_download_resumes_with_range(mirror, tmp_path):
    mirror.serve("counselchat")
    p = mirror.path("counselchat", "20200325_counsel_chat.csv")
    mirror.cut[p] = 1_000_000
    with pytest.raises(UserError, match="interrupted after 1000000 bytes"):
        fetch("counselchat", root=tmp_path, base=mirror.url, log=quiet)
    part = tmp_path / "counselchat" / "20200325_counsel_chat.csv.part"
    assert part.stat().st_size == 1_000_000
    fetch("counselchat", root=tmp_path, base=mirror.url, log=quiet)
    assert (p, "bytes=1000000-") in mirror.requests
    got = (tmp_path / "counselchat" / "20200325_counsel_chat.csv").read_bytes()
    assert got == shared_data("counsel-chat", "20200325_counsel_chat.csv").read_bytes()


def test_non_commercial_needs_acceptance(mirror, tmp_path):
    with pytest.raises(UserError, match="--accept-license esconv"):
        fetch("esconv", root=tmp_path, base=mirror.url, log=quiet)
    assert mirror.requests == [] and not (tmp_path / "esconv").exists()
    # accepted, it downloads; ESConv.json is pinned by its git object id, so other bytes are refused
    mirror.files[mirror.path("esconv", "ESConv.json")] = shared_data("esconv", "FailedESConv.json").read_bytes()
    with pytest.raises(UserError, match="checksum mismatch"):
        fetch("esconv", accept=["esconv"], root=tmp_path, base=mirror.url, log=quiet)
    assert (tmp_path / "esconv" / "ESConv.json.rejected").exists()


def test_offline_prints_url_and_where(tmp_path):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(Offline) as e:
        fetch("mentalchat16k", root=tmp_path, base=f"http://127.0.0.1:{port}", log=quiet)
    lines = e.value.lines
    assert len(lines) == 2  # one line per file
    assert "evalq_bench.jsonl" in lines[0] and str(tmp_path / "mentalchat16k" / "evalq_bench.jsonl") in lines[0]
    assert "/ChiaPatricia/MentalChat16K_Main/9eb19df747fa26524f7024ad0da4084ff0f47f6a/data/lab/evalq_bench.jsonl" in lines[0]
    # the file saved by hand is verified and accepted without the network
    d = tmp_path / "mentalchat16k"
    for f in ("evalq_bench.jsonl", "LICENSE"):
        (d / f).write_bytes(shared_data("mentalchat16k-eval", f).read_bytes())
    fetch("mentalchat16k", root=tmp_path, base=f"http://127.0.0.1:{port}", log=quiet)
    assert (d / "SOURCE.json").exists()


def test_names_resolve_in_real_inputs_and_scenarios(mirror, tmp_path, monkeypatch):
    monkeypatch.setenv("HYBRIDTUNE_DATA_DIR", str(tmp_path / "data"))
    with pytest.raises(UserError, match="run `hybridtune data get annomi` first"):
        catalogue.resolve_inputs(["annomi"])
    mirror.serve("annomi")
    mirror.serve("mentalchat16k")
    fetch("annomi", base=mirror.url, log=quiet)  # the shared copy is a known-good variant
    fetch("mentalchat16k", base=mirror.url, log=quiet)
    from hybridtune.evaluate.scenarios import load_scenarios_file, scenarios_source
    from hybridtune.real.formats import detect, expand_inputs

    files = expand_inputs(["annomi"])
    assert files == [tmp_path / "data" / "annomi" / "AnnoMI-simple.csv"]
    assert detect(files[0], files[0].read_text()[:3000]) == "annomi"
    path, fmt = scenarios_source("mentalchat16k")
    scen, bad = load_scenarios_file(path, fmt)
    assert fmt == "mentalchat" and len(scen) == 200 and not bad and scen[0].scenario.startswith("ok i have social anxiety")
    with pytest.raises(UserError, match="feeds the eval_scenarios stage"):
        catalogue.resolve_inputs(["mentalchat16k"])


def test_counselchat_rows_become_question_answer_sessions():
    from hybridtune.real.config import RealConfig
    from hybridtune.real.formats import read_file

    path = shared_data("counsel-chat", "20200325_counsel_chat.csv")
    sessions = list(read_file(path, RealConfig()))
    assert len(sessions) == 2129 and all(s.format == "counselchat" for s in sessions)
    first = sessions[0]
    assert [t.role for t in first.turns] == ["user", "assistant"]
    assert first.turns[0].text.startswith("Can I change my feeling of being worthless")
    assert len({s.key for s in sessions}) == len(sessions)


def test_dataset_card_names_the_licence_of_data_got_by_name(mirror, tmp_path):
    from hybridtune.curate.export import _licence
    from hybridtune.records import Session

    mirror.serve("counselchat")
    where = fetch("counselchat", root=tmp_path, base=mirror.url, log=quiet)
    s = Session(id="x", source="real", messages=[], meta={"file": str(where / "20200325_counsel_chat.csv"),
                                                           "format": "counselchat"})
    assert _licence(s, {}) == "counselchat: MIT (nbertagnolli/counsel-chat@e202e19)"
