"""Scoring runs: one batch of per-user scores (bot probability, anomaly score, ...) per kind and
run date, written in a single transaction.

Readers only ever look at *complete* runs. A run's row and all of its scores are inserted in the
same transaction as its ``complete`` status, so a reader sees either the previous complete run or
the new one, never a partial run; a writer killed at any point leaves nothing behind (SQLite's
journal and PostgreSQL's transaction roll back), and a rerun starts from scratch.

The functions here run inside the caller's transaction; the library API is the scoring-run
methods of :class:`~graphrec.store.store.GraphStore` (``latest_run``, ``run_for_date``,
``flagged_user_ids``, ``top_scores``, ``iter_scores``, ``export_scores``,
``write_scoring_runs``). SQL is SQLAlchemy Core over :mod:`graphrec.store.schema`, except the
bulk insert of the scores themselves (:func:`_insert_scores`): binary ``COPY`` on PostgreSQL and
chunked ``executemany`` on the sqlite3 connection, the driver-level fast path of
:mod:`graphrec.store.bulk` (a million rows a run).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from sqlalchemy import Connection, Row, bindparam, delete, insert, select, update

from graphrec.store.bulk import driver_connection, pg_binary_payload, pg_copy
from graphrec.store.locks import assert_owner
from graphrec.store.schema import Score, ScoringRun, User, utcnow

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


class TopScore(NamedTuple):
    """One of a run's highest scores: the user's external id, the score, whether the run flagged
    the user, and the explanation the run recorded (None for users it did not explain)."""

    user: str
    score: float
    flagged: bool
    details: dict[str, Any] | None


class UserScore(NamedTuple):
    """A user's score in a run: external id, score, and whether the user is synthetic."""

    user: str
    score: float
    is_synthetic: bool


@dataclass
class NewScoringRun:
    """A scoring run to write (:meth:`GraphStore.write_scoring_runs
    <graphrec.store.store.GraphStore.write_scoring_runs>`): every user's score for ``kind`` on
    ``run_date``.

    ``user_ids`` are internal ids (a snapshot's ``user_ids``), aligned with ``scores`` and
    ``flagged``; ``details`` maps positions into ``user_ids`` to JSON-able explanations;
    ``model_run_id`` links the ``model_runs`` row of the model that scored; ``summary`` is the
    run's JSON summary. An existing run of the same kind and date is replaced only with
    ``replace`` (otherwise a complete one is a ``ValueError``)."""

    kind: str
    run_date: dt.date
    user_ids: np.ndarray
    scores: np.ndarray
    flagged: np.ndarray
    threshold: float | None
    details: Mapping[int, dict[str, Any]] = field(default_factory=dict)
    model_run_id: int | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    started_at: dt.datetime | None = None
    replace: bool = False


_RUN = select(
    ScoringRun.id,
    ScoringRun.kind,
    ScoringRun.run_date,
    ScoringRun.status,
    ScoringRun.threshold,
    ScoringRun.n_scored,
    ScoringRun.n_flagged,
    ScoringRun.summary,
    ScoringRun.finished_at,
)
#: complete runs of ``:kind``, newest first (by run date, then id)
_COMPLETE_RUN_IDS = (
    select(ScoringRun.id)
    .where(ScoringRun.kind == bindparam("kind"), ScoringRun.status == "complete")
    .order_by(ScoringRun.run_date.desc(), ScoringRun.id.desc())
)
_SET_DETAILS = (
    update(Score)
    .where(Score.run_id == bindparam("r_id"), Score.user_id == bindparam("u_id"))
    .values(details=bindparam("d"))
)


def _run(row: Row[Any]) -> RunInfo:
    summary = row.summary
    if isinstance(summary, str):
        summary = json.loads(summary)
    run_date = row.run_date if isinstance(row.run_date, dt.date) else dt.date.fromisoformat(str(row.run_date))
    return RunInfo(int(row.id), row.kind, run_date, row.status, row.threshold, int(row.n_scored), int(row.n_flagged), summary,
                   row.finished_at)


def latest_complete(conn: Connection, kind: str) -> RunInfo | None:
    """The latest complete run of ``kind`` (by run date, then id), or None."""
    row = conn.execute(
        _RUN.where(ScoringRun.kind == kind, ScoringRun.status == "complete")
        .order_by(ScoringRun.run_date.desc(), ScoringRun.id.desc())
        .limit(1)
    ).first()
    return None if row is None else _run(row)


def run_for_date(conn: Connection, kind: str, run_date: dt.date) -> RunInfo | None:
    """The run of ``kind`` for ``run_date`` (complete or not), or None."""
    row = conn.execute(_RUN.where(ScoringRun.kind == kind, ScoringRun.run_date == run_date)).first()
    return None if row is None else _run(row)


def flagged_user_ids(conn: Connection, run_id: int) -> np.ndarray:
    """Internal ids of the users a run flagged."""
    rows = conn.execute(select(Score.user_id).where(Score.run_id == run_id, Score.flagged == True)).all()  # noqa: E712
    return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))


def _delete_run(conn: Connection, run_id: int) -> None:
    conn.execute(delete(Score).where(Score.run_id == run_id))
    conn.execute(delete(ScoringRun).where(ScoringRun.id == run_id))


def _jsonable(value: dict[str, Any]) -> dict[str, Any]:
    """``value`` with numpy numbers turned into Python floats (what the JSON column stores)."""
    out: dict[str, Any] = json.loads(json.dumps(value, default=float))
    return out


def write_run(conn: Connection, run: NewScoringRun, *, keep: int | None = None) -> RunInfo:
    """Insert a complete run with all its scores inside the caller's write transaction.

    An existing run of the same kind and date is replaced only with ``run.replace`` (the caller
    checks first); ``keep`` bounds how many complete runs of the kind are kept (oldest deleted in
    the same transaction)."""
    existing = run_for_date(conn, run.kind, run.run_date)
    if existing is not None:
        if existing.status == "complete" and not run.replace:
            raise ValueError(f"a complete {run.kind} scoring run for {run.run_date} exists (run {existing.id})")
        _delete_run(conn, existing.id)
    user_ids = np.asarray(run.user_ids, dtype=np.int64)
    flagged = np.asarray(run.flagged, dtype=bool)
    now = utcnow()
    run_id = int(
        conn.execute(
            insert(ScoringRun)
            .values(kind=run.kind, run_date=run.run_date, model_run_id=run.model_run_id, status="running", threshold=run.threshold,
                    n_scored=int(user_ids.size), n_flagged=int(flagged.sum()), summary=run.summary,
                    started_at=run.started_at or now)
            .returning(ScoringRun.id)
        ).scalar_one()
    )
    _insert_scores(conn, run_id, user_ids, np.asarray(run.scores, dtype=np.float64), flagged)
    if run.details:
        conn.execute(_SET_DETAILS, [{"d": _jsonable(v), "r_id": run_id, "u_id": int(user_ids[p])} for p, v in run.details.items()])
    conn.execute(update(ScoringRun).where(ScoringRun.id == run_id).values(status="complete", finished_at=now))
    if keep is not None:
        old = conn.execute(_COMPLETE_RUN_IDS, {"kind": run.kind}).scalars().all()
        for rid in old[keep:]:
            _delete_run(conn, int(rid))
    info = run_for_date(conn, run.kind, run.run_date)
    assert info is not None
    return info


def write_runs(conn: Connection, runs: Sequence[NewScoringRun], *, lock: tuple[str, str] | None = None,
               keep: int | None = None) -> list[RunInfo]:
    """Write ``runs`` (:func:`write_run` each) inside the caller's write transaction, after
    checking in that transaction that ``lock`` = (job lock name, owner) is still held
    (:func:`~graphrec.store.locks.assert_owner`), so a job whose lock was taken over writes
    nothing."""
    if lock is not None:
        assert_owner(conn, *lock)
    return [write_run(conn, run, keep=keep) for run in runs]


def _insert_scores(conn: Connection, run_id: int, user_ids: np.ndarray, scores: np.ndarray, flagged: np.ndarray) -> None:
    """The scores of a run, through the driver (binary COPY on PostgreSQL, chunked
    ``executemany`` on SQLite): a run holds a score for every user."""
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


def top_scores(conn: Connection, run_id: int, limit: int) -> list[TopScore]:
    """The ``limit`` highest scores of a run (ties by external id), with the recorded details."""
    rows = conn.execute(
        select(User.external_id, Score.score, Score.flagged, Score.details)
        .select_from(Score)
        .join(User, User.id == Score.user_id)
        .where(Score.run_id == run_id)
        .order_by(Score.score.desc(), User.external_id)
        .limit(limit)
    ).all()
    return [TopScore(r[0], float(r[1]), bool(r[2]), json.loads(r[3]) if isinstance(r[3], str) else r[3]) for r in rows]


def user_score(conn: Connection, run_id: int, user_id: int) -> TopScore | None:
    """One user's score in a run (as :class:`TopScore`: external id, score, flag, the recorded
    explanation), or None when the run did not score the user (created after it)."""
    row = conn.execute(
        select(User.external_id, Score.score, Score.flagged, Score.details)
        .select_from(Score)
        .join(User, User.id == Score.user_id)
        .where(Score.run_id == run_id, Score.user_id == user_id)
    ).first()
    if row is None:
        return None
    return TopScore(row[0], float(row[1]), bool(row[2]), json.loads(row[3]) if isinstance(row[3], str) else row[3])


def iter_scores(conn: Connection, run_id: int, batch: int = 100_000) -> Iterator[list[UserScore]]:
    """Every user's score in a run, in batches of ``batch``, by internal id."""
    result = conn.execution_options(stream_results=True).execute(
        select(User.external_id, Score.score, User.is_synthetic)
        .select_from(Score)
        .join(User, User.id == Score.user_id)
        .where(Score.run_id == run_id)
        .order_by(Score.user_id)
    )
    while True:
        rows = result.fetchmany(batch)
        if not rows:
            return
        yield [UserScore(r[0], float(r[1]), bool(r[2])) for r in rows]


def write_scores_csv(conn: Connection, run_id: int, path: str | Path) -> int:
    """Write ``id,score,is_synthetic`` for every user of a run to the CSV file ``path``
    (atomically: the file appears complete or not at all); returns the number of rows."""
    import csv

    from graphrec.fileio import atomic_output

    count = 0
    with atomic_output(path) as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["id", "score", "is_synthetic"])
        for rows in iter_scores(conn, run_id):
            writer.writerows((ext, repr(score), "true" if synth else "false") for ext, score, synth in rows)
            count += len(rows)
    return count
