"""Selection policy of the curate stage: threshold and/or top-k per stratum, technique
coverage kept, and routing to human review. Pure functions over Session records (no I/O).

Input : Sessions with scores["judge"] (see judge.py) and scores["risk"] (crisis screen).
Output: {"selected": [...], "review": [...], "rejected": [...]}, each Session carrying
        meta["curate"] = CurateMeta {status, reasons} (hybridtune/meta.py).

    sel = select_sessions(sessions, cfg.curate, judge_failed={"id1"}, judged_ids={...})
"""
from __future__ import annotations

from collections import defaultdict

from ..meta import CurateMeta
from ..records import Session
from .config import CurateConfig


# meta keys that mean the same thing in records of different stages (real: topic / problem_type;
# synthetic: theme, realised and planned techniques)
ALIASES = {"topic": ("topic", "theme", "problem_type"),
           "techniques": ("techniques", "realised_techniques", "planned_techniques")}


def session_techniques(s: Session) -> list[str]:
    """Techniques of a session: listed in meta (realised before planned) or annotated on its turns."""
    for key in ALIASES["techniques"]:
        listed = s.meta.get(key)
        if isinstance(listed, list) and listed:
            return [str(t) for t in listed]
    seen: dict[str, None] = {}
    for a in s.annotations:
        for t in a.techniques:
            seen.setdefault(t, None)
    return list(seen)


def annotated(s: Session, key: str) -> str | None:
    """The most frequent client emotion or distortion annotated on a session's turns (ties: first seen)."""
    seen: dict[str, int] = {}
    for a in s.annotations:
        for x in ([a.emotion] if key == "emotion" else a.distortions if key == "distortion" else []):
            if x:
                seen[x] = seen.get(x, 0) + 1
    return max(seen, key=lambda x: seen[x]) if seen else None


def stratum(s: Session, key: str) -> str:
    """The stratum a session belongs to: its primary technique, its main annotated emotion or
    distortion, or any meta key (topic, ...)."""
    if key in ("emotion", "distortion"):
        return str(s.meta.get(key) or annotated(s, key) or "unknown")
    if key == "technique":
        primary = s.meta.get("technique")
        if primary:
            return str(primary)
        techs = session_techniques(s)
        return techs[0] if techs else "unknown"
    for k in ALIASES.get(key, (key,)):
        val = s.meta.get(k)
        if val not in (None, "", []):
            return str(val)
    return "unknown"


def mean_score(s: Session) -> float | None:
    j = s.scores.get("judge")
    return float(j["mean"]) if isinstance(j, dict) and "mean" in j else None


def review_reasons(s: Session, cc: CurateConfig, failed: bool) -> list[str]:
    out = ["judge_failed"] if failed else []
    j = s.scores.get("judge") or {}
    out += [f"flag:{f}" for f in j.get("flags", []) if f in cc.review_flags]
    risk, action = ((s.scores.get("risk") or {}).get(k) for k in ("risk", "action"))
    # a check-in alone is no crisis session (no action: scores written before the policy had actions)
    if risk in cc.crisis_levels and action in (None, "crisis_reply"):
        out.append(f"crisis_screen:{risk}")
    return out


def _tag(s: Session, status: str, reasons: list[str]) -> Session:
    return CurateMeta(status=status, reasons=reasons).put(s)


def select_sessions(pool: list[Session], cc: CurateConfig, *, judge_failed: set[str],
                    judged_ids: set[str]) -> dict[str, list[Session]]:
    status: dict[str, tuple[str, list[str]]] = {}
    passing: list[Session] = []
    for s in pool:
        reasons = review_reasons(s, cc, s.id in judge_failed or (s.id in judged_ids and mean_score(s) is None))
        score = mean_score(s)
        if reasons:
            status[s.id] = ("review", reasons)
        elif s.id not in judged_ids:
            status[s.id] = ("selected", ["not_judged"])
        elif score >= cc.threshold:
            passing.append(s)
        elif score >= cc.threshold - cc.borderline:
            status[s.id] = ("review", [f"borderline:{score:.2f}"])
        else:
            status[s.id] = ("rejected", [f"below_threshold:{score:.2f}"])
    by_stratum: dict[str, list[Session]] = defaultdict(list)
    for s in passing:
        by_stratum[stratum(s, cc.stratify_by)].append(s)
    for members in by_stratum.values():
        members.sort(key=lambda x: (-mean_score(x), x.id))  # best first; id breaks ties deterministically
        for rank, s in enumerate(members):
            keep = cc.top_k_per_stratum is None or rank < cc.top_k_per_stratum
            status[s.id] = ("selected", ["passed"]) if keep else ("rejected", [f"top_k:{cc.top_k_per_stratum}"])
    _keep_coverage(pool, cc, status)
    out: dict[str, list[Session]] = {"selected": [], "review": [], "rejected": []}
    for s in pool:
        st, reasons = status[s.id]
        out[st].append(_tag(s, st, reasons))
    return out


def _keep_coverage(pool: list[Session], cc: CurateConfig, status: dict[str, tuple[str, list[str]]]) -> None:
    """Bring back the best rejected sessions for techniques the selection would otherwise lose."""
    if cc.min_per_technique <= 0:
        return
    techs = sorted({t for s in pool for t in session_techniques(s)})
    for t in techs:
        have = [s for s in pool if t in session_techniques(s) and status[s.id][0] == "selected"]
        spare = sorted(
            (s for s in pool if t in session_techniques(s) and status[s.id][0] == "rejected"
             and (mean_score(s) or 0) >= cc.coverage_floor),
            key=lambda x: (-(mean_score(x) or 0), x.id),
        )
        for s in spare[: max(0, cc.min_per_technique - len(have))]:
            status[s.id] = ("selected", [f"coverage:{t}"])
