"""Benchmark: the crisis screen and its policy (issues 17, 30), per person and per session: who gets a
check-in or a crisis reply, ordinary turns and sessions interrupted, latency.

Configurations, each measured in the same run: `rules` (phrase rules alone, the baseline) and
`rules + learned` (the default CPU screen: rules, the learned layer of hybridtune/safety/learned.py,
the imminence check); `+ moderation` when OPENAI_API_KEY is set, `+ guard` with --guard-url (a Llama
Guard model behind vLLM). A layer that cannot run here is listed as not run, with the reason. Every
text goes through the screen and then the policy (hybridtune.safety.policy.decide): the action is
none, check_in or crisis_reply.

1. Held-out Reddit users (the C-SSRS Reddit data set, CC BY 4.0, read by hybridtune.safety.cssrs; the held-out side of
   hybridtune.safety.cssrs.split_of, never trained, tuned or thresholded on): a user is reached when
   any of their first --posts posts, each screened as a first turn, gets a check-in or a crisis
   reply; at-risk users (Ideation, Behavior, Attempt; target >= 90%), Supportive and Indicator users.
2. AnnoMI client turns of the `eval` half of the transcripts (scripts/learned_train.py annomi_half; never trained
   or thresholded on): check-in or crisis reply per ordinary turn (target <= 2%), crisis reply per turn
   (target <= 0.5%), and sessions with a crisis reply (each transcript as one conversation; target <= 10%).
3. ESConv test-split seeker turns (CC BY-NC 4.0, read in place for this measurement only, never trained
   on; an even sample of --esconv-turns): check-in or crisis reply per turn.
4. The demo's illustrative transcripts (data/demo, configs/demo.yaml real.inputs): files with any
   check-in or crisis reply (target: none).
5. Latency per turn, one turn at a time as in chat, over AnnoMI turns: rules alone vs rules +
   learned; wall and CPU time (bench/safety_latency.py splits the CPU further).

    .venv/bin/python bench/safety_screen.py [--posts 8] [--esconv-turns 1000] [--latency-turns 400] [--cache DIR]

--cache keeps the embedder's vectors of the accuracy passes (1-4) on disk, keyed by the exact window
text (the file scripts/learned_train.py --cache writes), so a rerun after retraining only the head costs seconds;
the latency pass (5) always encodes every turn afresh (the layer's in-process window cache is emptied first).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from pathlib import Path

from common import ROOT, Result, data_file, dev_data_file, latency, record

from hybridtune.safety.config import SafetyConfig
from hybridtune.safety.learned import load_learned
from hybridtune.safety.cssrs import AT_RISK
from hybridtune.safety.policy import decide
from hybridtune.safety.screen import Screener
from scripts.learned_train import annomi_client_turns

CMD = ".venv/bin/python bench/safety_screen.py --latency-turns {n}"


def rate(xs: list[bool]) -> float:
    return sum(xs) / max(1, len(xs))


def ratio(x: float, base: float) -> float | None:
    return round(x / base, 2) if base else None  # no ratio against a zero baseline


def esconv_test() -> list[str]:
    out = []
    for line in data_file("esconv", "test.json").read_text(encoding="utf-8").splitlines():
        if line.strip():
            out += [t["text"] for t in json.loads(line)["dialog"] if t["speaker"] == "usr" and t["text"].strip()]
    return out


def disk_cached(encode, folder):
    """`encode` with its vectors kept in folder/embeddings.npz (the same file scripts/learned_train.py --cache writes),
    and the function that writes new ones there."""
    import numpy as np

    path = folder / "embeddings.npz"
    memo: dict = {}
    if path.exists():
        with np.load(path, allow_pickle=False) as z:
            memo.update(zip(z["texts"].tolist(), z["X"], strict=True))

    def cached(texts: list[str]):
        todo = [t for t in dict.fromkeys(texts) if t not in memo]
        if todo:
            memo.update(zip(todo, encode(todo), strict=True))
        return np.stack([memo[t] for t in texts])

    def save():
        if not memo:
            return
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(path, texts=np.array(list(memo)), X=np.stack(list(memo.values())))

    return cached, save


def configs(args) -> tuple[dict[str, Screener], dict[str, str]]:
    from hybridtune.llm.config import EndpointConfig
    from hybridtune.safety.providers import GuardLayer, ModerationLayer

    base = SafetyConfig()
    out = {"rules": Screener(SafetyConfig(learned=False)), "rules + learned": Screener(base)}
    skipped = {}
    if os.environ.get("OPENAI_API_KEY"):
        ep = EndpointConfig(backend="openai", base_url="https://api.openai.com/v1", api_key_env="OPENAI_API_KEY")
        out["rules + learned + moderation"] = Screener(base, providers=[ModerationLayer(ep, "openai", base)])
    else:
        skipped["moderation"] = "not run here: no OPENAI_API_KEY on this machine (the layer is tested against the mock server)"
    if args.guard_url:
        ep = EndpointConfig(backend="openai", base_url=args.guard_url, model=args.guard_model)
        out["rules + learned + guard"] = Screener(base, providers=[GuardLayer(ep, "guard", base)])
    else:
        skipped["guard"] = "not run here: no vLLM-served guard model on this machine (pass --guard-url)"
    return out, skipped


def demo_turns() -> list[tuple[str, str]]:
    """(file, text) of every client turn (and every turn without a role) of the demo's illustrative transcripts."""
    from hybridtune.config import ExperimentConfig
    from hybridtune.real.formats import expand_inputs, read_file
    from hybridtune.real.raw import RawSession

    cfg = ExperimentConfig().real
    out = []
    for path in expand_inputs([str(ROOT / "data" / "demo")]):
        for s in read_file(path, cfg):
            if isinstance(s, RawSession):
                out += [(path.name, t.text) for t in s.turns if t.role != "assistant" and t.text.strip()]
    return out


def screened(screener: Screener, texts: list[str], step: int = 64) -> list:
    out: list = []
    for i in range(0, len(texts), step):
        out += asyncio.run(screener.screen_many(texts[i:i + step]))
    return out


def actions(texts: list[str], results: list, cfg: SafetyConfig, conversation: bool = False, answer=None) -> list[str]:
    """The policy's action per text: each text a first turn, or (conversation) the texts one conversation in order,
    a later text read as the answer to the counselor's check-in or crisis reply before it; with `answer` (text,
    its screen result), each check-in is first answered so (the action of a turn is its own or its answer's)."""
    out, state = [], None
    for t, r in zip(texts, results, strict=True):
        d = decide(t, r, cfg, state)
        act = d.action
        if answer and d.action == "check_in":
            d = decide(answer[0], answer[1], cfg, d.state)
            act = d.action if d.action == "crisis_reply" else act
        out.append(act)
        state = d.state if conversation else None
    return out


def per_group(keys: list[str], acts: list[str], want: tuple[str, ...]) -> dict[str, bool]:
    out: dict[str, bool] = {}
    for k, a in zip(keys, acts, strict=True):
        out[k] = out.get(k, False) or a in want
    return out


ANY = ("check_in", "crisis_reply")


def measure(name: str, s: Screener, data: dict) -> dict:
    cfg = s.cfg
    t0 = time.time()
    m: dict = {}
    # 1. held-out Reddit users: a user is reached when any of their posts gets a check-in or a crisis reply
    keys, texts = data["reddit_keys"], data["reddit_texts"]
    acts = actions(texts, screened(s, texts), cfg)
    label = data["reddit_label"]
    for want, tag in ((ANY, "any"), (("crisis_reply",), "crisis")):
        reached = per_group(keys, acts, want)
        for group, labels in (("at_risk", AT_RISK), ("supportive", ("Supportive",)), ("indicator", ("Indicator",))):
            users = [u for u in reached if label[u] in labels]
            m[f"users_{group}_{tag}"] = rate([reached[u] for u in users])
            m[f"n_users_{group}"] = len(users)
    # 2. AnnoMI eval half: per ordinary turn (each a first turn), and per session (the transcript as one conversation)
    turns, tx = data["annomi_turns"], data["annomi_tx"]
    res = screened(s, turns)
    first = actions(turns, res, cfg)
    m["annomi_any"], m["annomi_crisis"], m["n_annomi"] = rate([a in ANY for a in first]), rate([a == "crisis_reply" for a in first]), len(turns)
    order = [i for t in dict.fromkeys(tx) for i, x in enumerate(tx) if x == t]
    no = ("No.", screened(s, ["No."])[0])
    for tag, answer in (("", None), ("_answered_no", no)):
        conv: list[str] = []
        for t in dict.fromkeys(tx):
            idx = [i for i, x in enumerate(tx) if x == t]
            conv += actions([turns[i] for i in idx], [res[i] for i in idx], cfg, conversation=True, answer=answer)
        m[f"sessions_crisis{tag}"] = rate(list(per_group([tx[i] for i in order], conv, ("crisis_reply",)).values()))
        m[f"sessions_any{tag}"] = rate(list(per_group([tx[i] for i in order], conv, ANY).values()))
    m["n_sessions"] = len(set(tx))
    m["annomi_flagged_turns"] = [turns[i] for i, a in enumerate(first) if a in ANY][:40]
    # 3. ESConv test-split seeker turns (a sample), each a first turn
    es = data["esconv"]
    ea = actions(es, screened(s, es), cfg)
    m["esconv_any"], m["esconv_crisis"], m["n_esconv"] = rate([a in ANY for a in ea]), rate([a == "crisis_reply" for a in ea]), len(es)
    # 4. the demo's illustrative transcripts, each file one conversation
    dk, dt = data["demo_keys"], data["demo_texts"]
    dres = screened(s, dt)
    dacts: list[str] = []
    for f in dict.fromkeys(dk):
        idx = [i for i, k in enumerate(dk) if k == f]
        dacts += actions([dt[i] for i in idx], [dres[i] for i in idx], cfg, conversation=True)
    dorder = [i for f in dict.fromkeys(dk) for i, k in enumerate(dk) if k == f]
    m["demo_flagged"] = sorted({dk[i] for i, a in zip(dorder, dacts, strict=True) if a in ANY})
    m["n_demo"] = len(set(dk))
    m["seconds"] = round(time.time() - t0, 1)
    print(name, json.dumps({k: v for k, v in m.items() if not isinstance(v, list)}), flush=True)
    return m


def load_data(args) -> dict:
    from hybridtune.safety.cssrs import FILE_NAME, FOLDER, heldout_users, read_users

    users = heldout_users(read_users(dev_data_file(FOLDER, FILE_NAME)))
    reddit = [(u.id, u.label, p) for u in users for p in u.posts[:args.posts]]
    ev = annomi_client_turns(data_file("annomi", "AnnoMI-simple.csv"), "eval")
    es = esconv_test()
    demo = demo_turns()
    return {"reddit_keys": [k for k, _, _ in reddit], "reddit_texts": [p for _, _, p in reddit],
            "reddit_label": {u.id: u.label for u in users},
            "annomi_turns": [t for _, t in ev], "annomi_tx": [tid for tid, _ in ev],
            "esconv": es[:: max(1, len(es) // args.esconv_turns)][: args.esconv_turns],
            "demo_keys": [f for f, _ in demo], "demo_texts": [t for _, t in demo]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--posts", type=int, default=8, help="posts per held-out Reddit user screened (their first ones)")
    ap.add_argument("--esconv-turns", type=int, default=1000, help="ESConv test-split seeker turns screened (an even sample)")
    ap.add_argument("--latency-turns", type=int, default=400, help="AnnoMI turns screened one at a time for latency")
    ap.add_argument("--cache", type=Path, default=None, help="folder keeping embeddings of the accuracy passes")
    ap.add_argument("--guard-url", default=None, help="OpenAI-compatible URL of a vLLM-served Llama Guard model")
    ap.add_argument("--guard-model", default="meta-llama/Llama-Guard-3-8B")
    ap.add_argument("--head", type=Path, default=None,
                    help="a candidate head (learned_train --out) measured beside the packaged one, accuracy passes only")
    ap.add_argument("--head-check-in", type=float, default=None,
                    help="the candidate's safety.check_in_min_score (learned_train --pick-check-in --head; default: the config's)")
    args = ap.parse_args()
    # --cache only saves time (same vectors): not part of the command
    cmd = CMD.format(n=args.latency_turns) + f" --posts {args.posts} --esconv-turns {args.esconv_turns}"
    screeners, skipped = configs(args)
    layer = load_learned(None)  # the layer every Screener with the default head uses (same cache key as Screener.cpu)
    encode, single = layer.encode, layer.single_thread
    save = None
    if args.cache:
        (layer.encode, save), layer.single_thread = disk_cached(encode, args.cache), False
    if args.head:  # the candidate shares the packaged layer's embedder (and its disk cache): only the head differs
        gate = {} if args.head_check_in is None else {"check_in_min_score": args.head_check_in}
        screeners[f"rules + learned, head {args.head.name}"] = Screener(SafetyConfig(learned_head=str(args.head), **gate))
        cand = load_learned(str(args.head))
        cand.encode, cand.single_thread = layer.encode, layer.single_thread
    data = load_data(args)
    m = {name: measure(name, s, data) for name, s in screeners.items()}
    if save:
        save()
    base = m["rules"]
    results = []
    for name, x in m.items():
        if name == "rules":
            continue
        results += [
            Result(benchmark=f"held-out Reddit users at risk (Ideation, Behavior, Attempt) given a check-in or crisis reply ({name})",
                   figure=f"{x['users_at_risk_any']:.1%} of {x['n_users_at_risk']} users",
                   baseline=f"rules {base['users_at_risk_any']:.1%}", ratio=ratio(x["users_at_risk_any"], base["users_at_risk_any"]),
                   target=">= 90%", met=x["users_at_risk_any"] >= 0.90, command=cmd,
                   notes=f"users of cssrs.split_of's held-out side, never trained, tuned or thresholded on; their first "
                         f"{args.posts} posts, each screened as a first turn; crisis reply alone: {x['users_at_risk_crisis']:.1%}",
                   extra={"layered": {k: v for k, v in x.items()}, "rules": base}),
            Result(benchmark=f"held-out Supportive users given a check-in or crisis reply ({name})",
                   figure=f"{x['users_supportive_any']:.1%} of {x['n_users_supportive']} (crisis reply {x['users_supportive_crisis']:.1%})",
                   baseline=f"rules {base['users_supportive_any']:.1%}", ratio=ratio(x["users_supportive_any"], base["users_supportive_any"]),
                   target="-", met=None, command=cmd, notes="they talk about suicide to support others: hard negatives"),
            Result(benchmark=f"held-out Indicator users given a check-in or crisis reply ({name})",
                   figure=f"{x['users_indicator_any']:.1%} of {x['n_users_indicator']} (crisis reply {x['users_indicator_crisis']:.1%})",
                   baseline=f"rules {base['users_indicator_any']:.1%}", ratio=ratio(x["users_indicator_any"], base["users_indicator_any"]),
                   target="-", met=None, command=cmd, notes="risk indicators without ideation: neither target"),
            Result(benchmark=f"AnnoMI client turns, eval half: check-in or crisis reply per ordinary turn ({name})",
                   figure=f"{x['annomi_any']:.2%} of {x['n_annomi']}", baseline=f"rules {base['annomi_any']:.2%}",
                   ratio=ratio(x["annomi_any"], base["annomi_any"]), target="<= 2%", met=x["annomi_any"] <= 0.02,
                   command=cmd, notes="never trained or thresholded on; each turn as a first turn; a few AnnoMI clients do "
                                      "disclose, so not every flag is false"),
            Result(benchmark=f"AnnoMI client turns, eval half: crisis reply per ordinary turn ({name})",
                   figure=f"{x['annomi_crisis']:.2%} of {x['n_annomi']}", baseline=f"rules {base['annomi_crisis']:.2%}",
                   ratio=ratio(x["annomi_crisis"], base["annomi_crisis"]), target="<= 0.5%", met=x["annomi_crisis"] <= 0.005,
                   command=cmd),
            Result(benchmark=f"AnnoMI eval-half sessions with a crisis reply, check-ins answered 'No.' ({name})",
                   figure=f"{x['sessions_crisis_answered_no']:.1%} of {x['n_sessions']} (any action {x['sessions_any_answered_no']:.1%})",
                   baseline=f"rules {base['sessions_crisis_answered_no']:.1%}",
                   ratio=ratio(x["sessions_crisis_answered_no"], base["sessions_crisis_answered_no"]),
                   target="<= 10%", met=x["sessions_crisis_answered_no"] <= 0.10, command=cmd,
                   notes="each transcript's client turns as one conversation under the policy; each check-in answered "
                         "'No.' (an ordinary client's answer), then the transcript goes on"),
            Result(benchmark=f"AnnoMI eval-half sessions with a crisis reply, worst case ({name})",
                   figure=f"{x['sessions_crisis']:.1%} of {x['n_sessions']} (any action {x['sessions_any']:.1%})",
                   baseline=f"rules {base['sessions_crisis']:.1%}", ratio=ratio(x["sessions_crisis"], base["sessions_crisis"]),
                   target="<= 10%", met=x["sessions_crisis"] <= 0.10, command=cmd,
                   notes="as above, but the transcript's next real client turn is read as the answer to a check-in (a "
                         "'Yeah' said to the therapist's own question confirms), so this counts more than an ordinary "
                         "session would get"),
            Result(benchmark=f"ESConv test-split seeker turns: check-in or crisis reply per turn ({name})",
                   figure=f"{x['esconv_any']:.2%} of {x['n_esconv']} (crisis reply {x['esconv_crisis']:.2%})",
                   baseline=f"rules {base['esconv_any']:.2%}", ratio=ratio(x["esconv_any"], base["esconv_any"]),
                   target="-", met=None, command=cmd,
                   notes="emotional-support seekers (some disclose suicidal thoughts): an upper bound on false alarms; "
                         "an even sample of the test split; never trained on"),
            Result(benchmark=f"demo's illustrative transcripts (data/demo) with a check-in or crisis reply ({name})",
                   figure=f"{len(x['demo_flagged'])} of {x['n_demo']}" + (f": {', '.join(x['demo_flagged'])}" if x["demo_flagged"] else ""),
                   baseline=f"rules {len(base['demo_flagged'])}", ratio=None, target="0", met=not x["demo_flagged"],
                   command=cmd, notes="every client (or unattributed) turn of each file, the file as one conversation"),
        ]
    layer.encode, layer.single_thread = encode, single
    layer._cache.clear()  # every latency turn is encoded afresh, as a new chat turn is
    turns = data["annomi_turns"]
    sample = turns[:: max(1, len(turns) // args.latency_turns)][: args.latency_turns]
    load0 = os.getloadavg()[0]
    rw, rc, _ = latency(screeners["rules"], sample)
    lw, lc, lo = latency(screeners["rules + learned"], sample)
    load = f"load average {load0:.1f} before, {os.getloadavg()[0]:.1f} after"
    results.append(Result(
        benchmark="latency per turn, rules + learned layer (AnnoMI client turns, one at a time)",
        figure=f"+{(lc - rc) * 1000:.1f} ms CPU (+{(lw - rw) * 1000:.1f} ms wall) per turn",
        baseline=f"rules alone {rc * 1e6:.0f} us CPU per turn", ratio=round(lc / max(rc, 1e-9), 1),
        target="< 20 ms added", met=(lc - rc) < 0.020, command=cmd,
        notes=f"{len(sample)} turns, median {statistics.median(len(t) for t in sample)} characters; torch's default "
              f"threads (the learned layer scores a chat turn on one; CPU of other threads {lo * 1000:.2f} ms per "
              f"turn); the machine's 2 cores are shared ({load}), so wall time runs above CPU time",
        extra={"rules_wall_s": rw, "rules_cpu_s": rc, "learned_wall_s": lw, "learned_cpu_s": lc,
               "learned_other_threads_cpu_s": lo}))
    for layer_name, why in skipped.items():
        results.append(Result(benchmark=f"optional layer: {layer_name}", figure="not run", baseline="-", ratio=None,
                              target="-", met=None, command=cmd, notes=why))
    record("safety_screen", results)


if __name__ == "__main__":
    main()
