"""SQLite response cache: a finished run replays with zero model calls.

Key = sha256 of (backend, model, messages, sampling params, schema, sample index), so
sampling at temperature > 0 stays reproducible: sample k of the same prompt is a
different, stable entry.
"""
from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from pathlib import Path
from typing import Any


def cache_key(backend: str, request: dict[str, Any], sample: int) -> str:
    blob = json.dumps({"backend": backend, "request": request, "sample": sample}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class ResponseCache:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS replies (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        # provider batches submitted and not yet collected (llm/batch.py): a rerun follows them
        self._db.execute("CREATE TABLE IF NOT EXISTS batches (id TEXT PRIMARY KEY, endpoint TEXT NOT NULL, "
                         "keys TEXT NOT NULL, created REAL NOT NULL)")
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> dict | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM replies WHERE key=?", (key,)).fetchone()
        if row is None:
            self.misses += 1
            return None
        self.hits += 1
        return json.loads(row[0])

    def put(self, key: str, value: dict) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO replies VALUES (?, ?)", (key, json.dumps(value)))

    def add_batch(self, batch_id: str, endpoint: str, keys: list[str]) -> None:
        import time

        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO batches VALUES (?, ?, ?, ?)",
                             (batch_id, endpoint, json.dumps(keys), time.time()))

    def open_batches(self, endpoint: str) -> dict[str, str]:
        """{cache key: batch id} of the endpoint's batches not yet collected."""
        with self._lock:
            rows = self._db.execute("SELECT id, keys FROM batches WHERE endpoint=?", (endpoint,)).fetchall()
        return {k: bid for bid, keys in rows for k in json.loads(keys)}

    def close_batch(self, batch_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM batches WHERE id=?", (batch_id,))

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM replies").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()
