"""Readers, cleaning, filters, dedup and segmentation of the real stage (no model, no Presidio)."""
from __future__ import annotations

import json

import pytest

from hybridtune.real.captions import read_srt, read_vtt
from hybridtune.real.clean import clean_text, clean_turns, merge_turns
from hybridtune.real.config import AttributionConfig, CleanConfig, DedupConfig, FilterConfig, RealConfig, SegmentConfig
from hybridtune.real.dedup import Deduper
from hybridtune.real.filters import garbage, language, one_sided, short_counselor_turns, too_few_turns
from hybridtune.real.formats import BadInput, label_role, read_file
from hybridtune.real.segment import segment
from hybridtune.records import Message, Session

from conftest import shared_data


def read(path, **cfg):
    return list(read_file(path, RealConfig(**cfg)))


@pytest.mark.parametrize("label,role", [("Therapist", "assistant"), ("T", "assistant"), ("Counselor", "assistant"),
                                        ("Dr. Reyes", "assistant"), ("Client", "user"), ("Patient", "user"),
                                        ("P", "user"), ("Anna", None), ("Speaker 1", None)])
def test_speaker_labels(label, role):
    assert label_role(label) == role


def test_text_transcript_with_wrapped_lines(tmp_path):
    p = tmp_path / "s.txt"
    p.write_text("T: How are you?\nP: Not great.\nI slept badly.\nDr. Lee: Tell me more.\nPatient: Work.\n")
    (s,) = read(p)
    assert [(t.role, t.text) for t in s.turns] == [
        ("assistant", "How are you?"), ("user", "Not great. I slept badly."), ("assistant", "Tell me more."), ("user", "Work.")]


def test_annomi_csv_groups_transcripts():
    path = shared_data("annomi", "AnnoMI-simple.csv")
    head = path.read_text(encoding="utf-8").splitlines()[:120]
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "annomi_small.csv"
        p.write_text("\n".join(head) + "\n", encoding="utf-8")
        sessions = read(p)
    assert len(sessions) >= 2 and sessions[0].format == "annomi"
    assert {t.role for t in sessions[0].turns} == {"assistant", "user"}
    assert sessions[0].meta["topic"]


def test_generic_csv_with_mapping(tmp_path):
    p = tmp_path / "c.csv"
    p.write_text("conv,who,utt,n\n7,counselor,second,2\n7,therapist,Hi there,1\n8,client,hello,1\n")
    s = read(p, csv={"session": "conv", "speaker": "who", "text": "utt", "order": "n"})
    assert [x.key for x in s] == ["7", "8"] and s[0].turns[0].text == "Hi there"


VTT = """WEBVTT

00:00:00.000 --> 00:00:02.000
[Music]

00:00:02.000 --> 00:00:04.000
>> How have you been sleeping
since we last met?

00:00:04.000 --> 00:00:06.000
since we last met?
>> Not well. I lie awake

00:00:06.000 --> 00:00:08.000
>> Not well. I lie awake
worrying about my job.

00:00:08.000 --> 00:00:10.000
>> It sounds like worry keeps you up. What do you tell yourself?

00:00:10.000 --> 00:00:12.000
>> I tell myself I will fail.
"""


def test_vtt_rolling_lines_and_attribution(tmp_path):
    s = read_vtt(VTT, "x.vtt", AttributionConfig())
    assert [t.role for t in s.turns] == ["assistant", "user", "assistant", "user"]
    assert s.turns[1].text == "Not well. I lie awake worrying about my job."
    assert 0.5 <= s.meta["attribution"]["confidence"] <= 1
    msgs = merge_turns(clean_turns(s.turns, CleanConfig()))
    assert all("[Music]" not in m.content and ">>" not in m.content for m in msgs)


def test_vtt_voice_tags_give_names():
    vtt = "WEBVTT\n\n00:00:01.000 --> 00:00:02.000\n<v Therapist>What brings you here?\n\n" \
          "00:00:02.000 --> 00:00:03.000\n<v Client>My mood.\n"
    s = read_vtt(vtt, "v.vtt", AttributionConfig())
    assert [t.role for t in s.turns] == ["assistant", "user"] and s.meta["attribution"]["confidence"] == 1.0


def test_srt_without_marks_splits_on_pauses(tmp_path):
    srt = "1\n00:00:01,000 --> 00:00:02,000\nWhat would you like to talk about today?\n\n" \
          "2\n00:00:05,000 --> 00:00:06,000\nI keep worrying about my exams.\n\n" \
          "3\n00:00:09,000 --> 00:00:10,000\nHow do you feel when you think about them?\n"
    p = tmp_path / "a.srt"
    p.write_text(srt)
    (s,) = read(p)
    assert s.format == "srt" and [t.role for t in s.turns] == ["assistant", "user", "assistant"]


def test_jsonl_json_and_esconv(tmp_path):
    chat = {"id": "c1", "messages": [{"role": "system", "content": "x"}, {"role": "user", "content": "hi"},
                                     {"role": "assistant", "content": "hello"}]}
    (tmp_path / "a.jsonl").write_text(json.dumps(chat) + "\n")
    (tmp_path / "b.json").write_text(json.dumps([chat, chat]))
    es = [{"emotion_type": "anxiety", "dialog": [{"speaker": "seeker", "content": "I am sad"},
                                                {"speaker": "supporter", "content": "Why?", "annotation": {"strategy": "Question"}}]}]
    (tmp_path / "c.json").write_text(json.dumps(es))
    (a,), b, (c,) = read(tmp_path / "a.jsonl"), read(tmp_path / "b.json"), read(tmp_path / "c.json")
    assert [t.role for t in a.turns] == ["user", "assistant"] and a.key == "c1" and len(b) == 2
    assert c.format == "esconv" and c.turns[1].role == "assistant" and c.turns[1].meta["strategy"] == "Question"


def test_esconv_shared_file():
    (first, *_) = read(shared_data("esconv", "test.json"))
    assert first.format == "esconv" and {t.role for t in first.turns} == {"user", "assistant"}


@pytest.mark.parametrize("name,data,line,words", [
    ("empty.txt", b"  \n", None, "empty"),
    ("bin.txt", b"T: hi\x00\x01\x02", None, "binary"),
    ("latin.txt", "T: hi\nP: caf\u00e9\n".encode("latin-1"), 2, "UTF-8"),
    ("trunc.json", b'{"messages": [{"role": "user",\n "content": "hi"', 2, "truncated"),
    ("cols.csv", b"a,b\n1,2\n", 1, "missing column"),
    ("nolabels.txt", b"just some text\nwithout any speakers\n", 1, "no speaker labels"),
    ("bad.vtt", b"WEBVTT\n\nnothing here\n", 1, "no caption cues"),
])
def test_bad_files_raise_with_line(tmp_path, name, data, line, words):
    p = tmp_path / name
    p.write_bytes(data)
    with pytest.raises(BadInput) as e:
        read(p)
    assert e.value.line == line and words.lower() in e.value.reason.lower()


def test_clean_text():
    cfg = CleanConfig()
    assert clean_text("Um, I I I think [Music] that's, uh, right 00:01:02.000", cfg) == "I think that's right"
    assert clean_text("donâ€™t >> worry", cfg) == "Don't worry"
    assert "um" in clean_text("um, yes", CleanConfig(remove_fillers=False))


def test_merge_same_speaker():
    from hybridtune.real.formats import RawTurn

    msgs = merge_turns([RawTurn("T", "a", "assistant"), RawTurn("T", "b", "assistant"), RawTurn("P", "c", "user")])
    assert [(m.role, m.content) for m in msgs] == [("assistant", "a b"), ("user", "c")]


def M(*pairs):
    return [Message(role=r, content=c) for r, c in pairs]


GOOD = M(("assistant", "How have you been feeling this week overall?"), ("user", "Pretty low, I stayed in bed a lot."),
         ("assistant", "That sounds hard. What went through your mind in bed?"), ("user", "That I am useless and lazy."))


def test_filters_each_reason():
    cfg = FilterConfig()
    assert all(f(GOOD, cfg) is None for f in (too_few_turns, one_sided, garbage, language, short_counselor_turns))
    assert too_few_turns(GOOD[:3], cfg).startswith("too_few_turns")
    assert one_sided(M(*[("user", "I talk a lot about everything")] * 4), cfg).startswith("one_sided")
    assert one_sided(M(("assistant", "ok so"), ("user", "word " * 200), ("assistant", "yes"), ("user", "word " * 200)),
                     cfg).startswith("one_sided")
    assert garbage(M(("user", "#$%^&*@!~" * 10), ("assistant", "ok")), cfg).startswith("garbage")
    fr = M(("assistant", "Comment vous sentez-vous aujourd'hui, madame ?"), ("user", "Je suis très fatiguée et triste."),
           ("assistant", "Qu'est-ce qui vous pèse le plus en ce moment ?"), ("user", "Mon travail et ma famille."))
    assert language(fr, cfg).startswith("non_english")
    assert short_counselor_turns(M(("assistant", "Ok."), ("user", "a b c"), ("assistant", "Hm."), ("user", "d")),
                                 cfg).startswith("short_counselor_turns")


def test_dedup_exact_and_near():
    dd = Deduper(DedupConfig(), "s")
    text = " ".join(f"word{i}" for i in range(200))
    assert dd.check("a", text) is None
    assert dd.check("b", text.upper()) == "a"  # normalised exact
    assert dd.check("c", text.replace("word7 ", "other ")) == "a"  # near
    assert dd.check("d", " ".join(f"zz{i}" for i in range(200))) is None
    assert dd.counts() == {"exact": 1, "near": 1, "clusters": 1}
    assert dd.clusters()[0]["dropped"] == ["b", "c"]


def test_segment_budget_overlap_and_qa():
    msgs = [Message(role="user" if i % 2 == 0 else "assistant", content=f"turn {i} " + "x" * 200) for i in range(12)]
    s = Session(id="s", source="real", messages=msgs)
    samples = list(segment(s, SegmentConfig(max_tokens=200, overlap_turns=1, qa_context_turns=2), "SYS"))
    sess = [x for x in samples if x.kind == "session"]
    qa = [x for x in samples if x.kind == "qa"]
    assert len(sess) > 1 and all(x.messages[-1].role == "assistant" and x.messages[0].role == "system" for x in sess)
    covered = {i for x in sess for i in range(*x.turns)}
    assert covered == set(range(12))
    assert all(b.turns[0] < a.turns[1] for a, b in zip(sess, sess[1:]))  # overlap
    assert len(qa) == 6 and all(len(x.messages) <= 1 + 3 and x.messages[-1].role == "assistant" for x in qa)


def test_text_with_name_labels_attributed_from_cues(tmp_path):
    p = tmp_path / "n.txt"
    p.write_text("Anna: What brings you in today? How are you feeling?\nBen: I feel awful, my job is killing me.\n"
                 "Anna: It sounds like work is a lot right now. What do you notice?\nBen: I can't sleep and I snap at my kids.\n")
    (s,) = read(p)
    assert [t.role for t in s.turns] == ["assistant", "user", "assistant", "user"]
    assert s.meta["attribution"]["method"] == "names+cues"
