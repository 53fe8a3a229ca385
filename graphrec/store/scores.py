"""Scoring runs: one batch of per-user scores (bot probability, anomaly score, ...) per kind and
run date, written in a single transaction.

Readers only ever look at *complete* runs. A run's row and all of its scores are inserted in the
same transaction as its ``complete`` status, so a reader sees either the previous complete run or
the new one, never a partial run; a writer killed at any point leaves nothing behind (SQLite's
journal and PostgreSQL's transaction roll back), and a rerun starts from scratch.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import Connection, insert, text

from graphrec.store.bulk import driver_connection, naive_utc, pg_binary_payload, pg_copy
from graphrec.store.schema import ScoringRun

SQLITE_CHUNK = 50_000


@dataclass(frozen=True)
class RunInfo:
    """A scoring run's row."""

    id: int
    kind: str
    run_date: dt.date
    status: str
    threshold: float | None
    n_scored: int
    n_flagged: int
    summary: dict[str, Any] | None
    finished_at: dt.datetime | None


_RUN_COLUMNS = "id, kind, run_date, status, threshold, n_scored, n_flagged, summary, finished_at"


def _run(row: Sequence[Any]) -> RunInfo:
    import json

    summary = row[7]
    if isinstance(summary, str):
        summary = json.loads(summary)
    run_date = row[2] if isinstance(row[2], dt.date) else dt.date.fromisoformat(str(row[2]))
    return RunInfo(int(row[0]), row[1], run_date, row[3], row[4], int(row[5]), int(row[6]), summary, row[8])


def latest_complete(conn: Connection, kind: str) -> RunInfo | None:
    """The latest complete run of ``kind`` (by run date, then id), or None."""
    row = conn.execute(
        text(f"SELECT {_RUN_COLUMNS} FROM scoring_runs WHERE kind = :k AND status = 'complete' ORDER BY run_date DESC, id DESC LIMIT 1"),
        {"k": kind},
    ).first()
    return None if row is None else _run(row)


def run_for_date(conn: Connection, kind: str, run_date: dt.date) -> RunInfo | None:
    """The run of ``kind`` for ``run_date`` (complete or not), or None."""
    row = conn.execute(text(f"SELECT {_RUN_COLUMNS} FROM scoring_runs WHERE kind = :k AND run_date = :d"), {"k": kind, "d": run_date}).first()
    return None if row is None else _run(row)


def flagged_user_ids(conn: Connection, run_id: int) -> np.ndarray:
    """Internal ids of the users a run flagged."""
    rows = conn.execute(text("SELECT user_id FROM scores WHERE run_id = :r AND flagged = :t"), {"r": run_id, "t": True}).all()
    return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))


def _delete_run(conn: Connection, run_id: int) -> None:
    conn.execute(text("DELETE FROM scores WHERE run_id = :r"), {"r": run_id})
    conn.execute(text("DELETE FROM scoring_runs WHERE id = :r"), {"r": run_id})


def write_run(
    conn: Connection,
    *,
    kind: str,
    run_date: dt.date,
    user_ids: np.ndarray,
    scores: np.ndarray,
    flagged: np.ndarray,
    details: Mapping[int, dict[str, Any]],
    threshold: float | None,
    model_run_id: int | None,
    summary: dict[str, Any],
    started_at: dt.datetime,
    replace: bool,
    keep: int | None,
) -> RunInfo:
    """Insert a complete run with all its scores inside the caller's write transaction.

    ``details`` maps positions (into ``user_ids``) to JSON-able explanations. An existing run of
    the same kind and date is replaced only with ``replace`` (the caller checks first); ``keep``
    bounds how many complete runs of the kind are kept (oldest deleted in the same transaction).
    """
    existing = run_for_date(conn, kind, run_date)
    if existing is not None:
        if existing.status == "complete" and not replace:
            raise ValueError(f"a complete {kind} scoring run for {run_date} exists (run {existing.id})")
        _delete_run(conn, existing.id)
    now = dt.datetime.now(dt.UTC)
    run_id = int(
        conn.execute(
            insert(ScoringRun)
            .values(kind=kind, run_date=run_date, model_run_id=model_run_id, status="running", threshold=threshold,
                    n_scored=int(user_ids.size), n_flagged=int(flagged.sum()), summary=summary, started_at=started_at)
            .returning(ScoringRun.id)
        ).scalar_one()
    )
    _insert_scores(conn, run_id, np.asarray(user_ids, dtype=np.int64), np.asarray(scores, dtype=np.float64), np.asarray(flagged, dtype=bool))
    if details:
        import json

        conn.execute(
            text("UPDATE scores SET details = :d WHERE run_id = :r AND user_id = :u"),
            [{"d": json.dumps(v, default=float), "r": run_id, "u": int(user_ids[p])} for p, v in details.items()],
        )
    conn.execute(text("UPDATE scoring_runs SET status = 'complete', finished_at = :t WHERE id = :r"), {"t": naive_utc(now), "r": run_id})
    if keep is not None:
        old = conn.execute(
            text("SELECT id FROM scoring_runs WHERE kind = :k AND status = 'complete' ORDER BY run_date DESC, id DESC"), {"k": kind}
        ).all()
        for (rid,) in old[keep:]:
            _delete_run(conn, int(rid))
    info = run_for_date(conn, kind, run_date)
    assert info is not None
    return info


def _insert_scores(conn: Connection, run_id: int, user_ids: np.ndarray, scores: np.ndarray, flagged: np.ndarray) -> None:
    if conn.dialect.name == "postgresql":
        row = np.dtype([("n", ">i2"), ("l1", ">i4"), ("r", ">i8"), ("l2", ">i4"), ("u", ">i8"), ("l3", ">i4"), ("s", ">f8"),
                        ("l4", ">i4"), ("f", "u1")])
        arr = np.empty(user_ids.size, dtype=row)
        arr["n"], arr["l1"], arr["r"], arr["l2"], arr["u"], arr["l3"], arr["s"], arr["l4"], arr["f"] = 4, 8, run_id, 8, user_ids, 8, scores, 1, flagged
        with driver_connection(conn).cursor() as cur:
            pg_copy(cur, "COPY scores (run_id, user_id, score, flagged) FROM STDIN (FORMAT binary)", pg_binary_payload(arr))
        return
    cur = driver_connection(conn).cursor()
    for i in range(0, user_ids.size, SQLITE_CHUNK):
        u = user_ids[i : i + SQLITE_CHUNK].tolist()
        s = scores[i : i + SQLITE_CHUNK].tolist()
        f = flagged[i : i + SQLITE_CHUNK].astype(int).tolist()
        cur.executemany("INSERT INTO scores (run_id, user_id, score, flagged) VALUES (?, ?, ?, ?)", zip([run_id] * len(u), u, s, f))


def top_scores(conn: Connection, run_id: int, limit: int) -> list[tuple[str, float, bool, dict[str, Any] | None]]:
    """(external id, score, flagged, details) of the ``limit`` highest scores of a run; details
    decoded from JSON (None for users the run did not explain)."""
    import json

    rows = conn.execute(
        text("SELECT u.external_id, s.score, s.flagged, s.details FROM scores s JOIN users u ON u.id = s.user_id "
             "WHERE s.run_id = :r ORDER BY s.score DESC, u.external_id LIMIT :n"),
        {"r": run_id, "n": limit},
    ).all()
    return [(r[0], float(r[1]), bool(r[2]), json.loads(r[3]) if isinstance(r[3], str) else r[3]) for r in rows]


def iter_scores(conn: Connection, run_id: int, batch: int = 100_000) -> Iterator[list[tuple[str, float, bool]]]:
    """(external id, score, is synthetic) of every user of a run, in batches, by internal id."""
    result = conn.execution_options(stream_results=True).execute(
        text("SELECT u.external_id, s.score, u.is_synthetic FROM scores s JOIN users u ON u.id = s.user_id WHERE s.run_id = :r ORDER BY s.user_id"),
        {"r": run_id},
    )
    while True:
        rows = result.fetchmany(batch)
        if not rows:
            return
        yield [(r[0], float(r[1]), bool(r[2])) for r in rows]
