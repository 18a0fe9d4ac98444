"""Deduplication: exact (hash of normalised text) and near-duplicate (MinHash LSH, datasketch).

Streaming: `Deduper.check(key, text)` answers whether an item duplicates one seen before
(the first of a cluster is kept), holding only hashes and MinHash signatures in memory.
`clusters()` lists every cluster with its kept item and its dropped members. With a
`journal` callback every decision is also reported as a small JSON-able dict, and
`replay(event)` rebuilds the same state from those dicts (how a killed ingest resumes).

    dd = Deduper(cfg.real.dedup, "sessions")
    dup_of = dd.check("s1", text)   # None -> keep; else the kept item's key
"""
from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Callable

import numpy as np
from datasketch import MinHash, MinHashLSH

from .config import DedupConfig

_WORD = re.compile(r"[a-z0-9']+")


def normalise(text: str) -> list[str]:
    return _WORD.findall(text.lower())


class Deduper:
    def __init__(self, cfg: DedupConfig, name: str, journal: Callable[[dict], None] | None = None):
        self.cfg = cfg
        self.name = name
        self.journal = journal
        self.exact: dict[str, str] = {}
        self.lsh = MinHashLSH(threshold=cfg.threshold, num_perm=cfg.num_perm) if cfg.near else None
        self.members: dict[str, list[tuple[str, str]]] = defaultdict(list)  # kept key -> [(dup key, kind)]

    def _minhash(self, words: list[str]) -> MinHash:
        n = self.cfg.shingle_words
        shingles = {" ".join(words[i:i + n]) for i in range(max(len(words) - n + 1, 1))}
        m = MinHash(num_perm=self.cfg.num_perm, seed=1)
        m.update_batch([s.encode() for s in shingles])
        return m

    def check(self, key: str, text: str) -> str | None:
        """None when `text` is new (it is then remembered), else the key of the item it duplicates."""
        words = normalise(text)
        h = hashlib.sha1(" ".join(words).encode()).hexdigest()
        if h in self.exact:
            return self._dup(key, self.exact[h], "exact")
        mh = None
        if self.lsh is not None and words:
            mh = self._minhash(words)
            near = self.lsh.query(mh)
            if near:
                return self._dup(key, sorted(near)[0], "near")
        self.exact[h] = key
        if mh is not None:
            self.lsh.insert(key, mh)
        if self.journal is not None:
            self.journal({"key": key, "h": h, "mh": None if mh is None else mh.hashvalues.tolist(),
                          "scheme": None if mh is None else mh.scheme,
                          "dtype": None if mh is None else str(mh.hashvalues.dtype)})
        return None

    def _dup(self, key: str, kept: str, kind: str) -> str:
        self.members[kept].append((key, kind))
        if self.journal is not None:
            self.journal({"key": key, "kept": kept, "kind": kind})
        return kept

    def replay(self, ev: dict) -> None:
        """Apply one journal event (in journal order) as if `check` had just decided it."""
        if "kept" in ev:
            self.members[ev["kept"]].append((ev["key"], ev["kind"]))
            return
        self.exact[ev["h"]] = ev["key"]
        if ev["mh"] is not None and self.lsh is not None:
            hv = np.array(ev["mh"], dtype=ev["dtype"])
            self.lsh.insert(ev["key"], MinHash(num_perm=self.cfg.num_perm, seed=1, hashvalues=hv, scheme=ev["scheme"]))

    def clusters(self) -> list[dict]:
        return [{"kept": k, "dropped": [d for d, _ in v], "kinds": sorted({kind for _, kind in v})}
                for k, v in self.members.items()]

    def counts(self) -> dict[str, int]:
        kinds = [kind for v in self.members.values() for _, kind in v]
        return {"exact": kinds.count("exact"), "near": kinds.count("near"), "clusters": len(self.members)}
