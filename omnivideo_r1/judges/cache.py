"""On-disk judge cache: request key -> JudgeResult, in one SQLite file shared by several processes.

Why SQLite (stdlib): WAL mode gives concurrent readers plus one writer at a time with no extra service, and every
insert is atomic, so a crashed curation or training run resumes with no repeated judge calls. Only successful
results are stored: a failure (score None) is retried by the next run instead of being remembered.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from dataclasses import asdict
from typing import Iterable, Sequence

from .base import Judge, JudgeRequest, JudgeResult

logger = logging.getLogger(__name__)

CACHE_FILENAME = "judge_cache.sqlite"
_SQL_CHUNK = 500  # stays under SQLite's limit on bound parameters per statement


def _is_success(result: JudgeResult) -> bool:
    return result.error is None and result.score is not None


class JudgeCache:
    """A key -> JudgeResult store in the SQLite file `path` (created with its folder if missing).

    Safe for several threads (one connection behind a lock) and several processes (WAL, busy timeout).
    """

    def __init__(self, path: str, busy_timeout_s: float = 60.0) -> None:
        self.path = path
        os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
        self._lock = threading.Lock()
        try:
            # isolation_level=None: we issue BEGIN ourselves so a batch of inserts is one transaction.
            self._conn = sqlite3.connect(path, timeout=busy_timeout_s, isolation_level=None,
                                         check_same_thread=False)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS judge_results ("
                " key TEXT PRIMARY KEY, judge_id TEXT NOT NULL, result TEXT NOT NULL, created REAL NOT NULL)"
            )
        except sqlite3.DatabaseError as exc:
            raise RuntimeError(f"{path}: cannot open the judge cache ({exc}); delete the file to start a fresh "
                               "cache, or point cache_dir elsewhere") from None

    def get_many(self, keys: Sequence[str]) -> dict[str, JudgeResult]:
        """The cached results among `keys` (missing keys are absent from the dict)."""
        found: dict[str, JudgeResult] = {}
        unique = list(dict.fromkeys(keys))
        with self._lock:
            for i in range(0, len(unique), _SQL_CHUNK):
                chunk = unique[i:i + _SQL_CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = self._conn.execute(f"SELECT key, result FROM judge_results WHERE key IN ({marks})", chunk)
                for key, text in rows:
                    try:
                        found[key] = JudgeResult(**json.loads(text))
                    except (TypeError, ValueError) as exc:
                        # A row from an incompatible version: treat as a miss, it is rewritten on success.
                        logger.warning("%s: ignoring unreadable cache row %s (%s)", self.path, key[:12], exc)
        return found

    def get(self, key: str) -> JudgeResult | None:
        return self.get_many([key]).get(key)

    def put_many(self, items: Iterable[tuple[str, str, JudgeResult]]) -> int:
        """Store (key, judge_id, result) triples; failed results are skipped. Returns the number stored."""
        rows = [(key, judge_id, json.dumps(asdict(res), ensure_ascii=False), time.time())
                for key, judge_id, res in items if _is_success(res)]
        if not rows:
            return 0
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany(
                    "INSERT OR REPLACE INTO judge_results (key, judge_id, result, created) VALUES (?, ?, ?, ?)", rows)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return len(rows)

    def put(self, key: str, judge_id: str, result: JudgeResult) -> bool:
        return self.put_many([(key, judge_id, result)]) == 1

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM judge_results").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> "JudgeCache":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class CachedJudge:
    """Wraps any Judge: cached results are returned, only the misses are sent, in one batch.

    The key is `request.cache_key(cache_id)`, where cache_id is the wrapped judge's `cache_id` attribute if it has
    one (e.g. to separate text-only from multimodal replies of the same model) and its judge_id otherwise.
    Identical requests within one batch are sent once.
    """

    def __init__(self, judge: Judge, cache_dir: str) -> None:
        self.inner = judge
        self.judge_id = judge.judge_id
        self.cache_id = getattr(judge, "cache_id", judge.judge_id)
        self.cache = JudgeCache(os.path.join(cache_dir, CACHE_FILENAME))
        self.hits = 0
        """Requests answered from the cache (over this object's lifetime)."""
        self.misses = 0
        """Requests that were not in the cache (sent to the wrapped judge, duplicates counted once)."""

    def judge(self, requests: Sequence[JudgeRequest]) -> list[JudgeResult]:
        keys = [req.cache_key(self.cache_id) for req in requests]
        cached = self.cache.get_many(keys)
        results: list[JudgeResult | None] = [cached.get(k) for k in keys]
        self.hits += sum(r is not None for r in results)
        todo: dict[str, list[int]] = {}
        for i, res in enumerate(results):
            if res is None:
                todo.setdefault(keys[i], []).append(i)
        if todo:
            self.misses += len(todo)
            firsts = [idxs[0] for idxs in todo.values()]
            fresh = self.inner.judge([requests[i] for i in firsts])
            if len(fresh) != len(firsts):
                raise RuntimeError(f"judge {self.judge_id} returned {len(fresh)} results for {len(firsts)} requests")
            for (key, idxs), res in zip(todo.items(), fresh):
                for i in idxs:
                    results[i] = res
            self.cache.put_many((key, self.cache_id, res) for key, res in zip(todo, fresh))
        return results  # type: ignore[return-value]  # every slot is filled above

    def close(self) -> None:
        self.cache.close()
