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

On PostgreSQL (migration 0003) ``scores`` is partitioned by run: a run's scores are the
partition ``scores_r<run id>``, loaded as a table of its own and attached in the transaction
that writes the run, and a deleted run (replaced, or pruned by ``keep``) is a ``DROP TABLE`` of
its partition, not a ``DELETE`` of its rows. SQLite (and a plain PostgreSQL table) keep the
plain path; :func:`scores_partitioned` reads which from the catalog.

Distributed scoring (``graphrec.distributed``) does not hand the driver every score: each worker
writes its share into ``score_staging`` (:func:`stage`, its own short transaction), and one
transaction then publishes the runs (:func:`publish`): lock check, completeness check, ``INSERT
... SELECT`` into the run's partition, staging rows deleted. Readers never read staging, so they
still see only complete runs; a killed driver leaves staged rows that the next job discards
(:func:`discard`), and the published runs exactly as they were.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from sqlalchemy import BigInteger, Connection, Row, bindparam, case, column, delete, func, insert, literal, select, table, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.expression import TableClause

from graphrec.errors import InputError, StoreStateError
from graphrec.store.bulk import driver_connection, pg_binary_payload, pg_copy
from graphrec.store.locks import assert_owner
from graphrec.store.schema import Score, ScoreStaging, ScoringRun, User, utcnow

SQLITE_CHUNK = 50_000
#: Transaction-level advisory lock serialising writers of scoring runs on PostgreSQL (ASCII ``grecscor``).
SCORES_LOCK_KEY = 0x6772656373636F72


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


def recent_complete(conn: Connection, kind: str, limit: int) -> list[RunInfo]:
    """The ``limit`` latest complete runs of ``kind``, oldest first (by run date, then id)."""
    rows = conn.execute(
        _RUN.where(ScoringRun.kind == kind, ScoringRun.status == "complete")
        .order_by(ScoringRun.run_date.desc(), ScoringRun.id.desc())
        .limit(limit)
    ).all()
    return [_run(r) for r in reversed(rows)]


def run_for_date(conn: Connection, kind: str, run_date: dt.date) -> RunInfo | None:
    """The run of ``kind`` for ``run_date`` (complete or not), or None."""
    row = conn.execute(_RUN.where(ScoringRun.kind == kind, ScoringRun.run_date == run_date)).first()
    return None if row is None else _run(row)


def flagged_user_ids(conn: Connection, run_id: int) -> np.ndarray:
    """Internal ids of the users a run flagged."""
    rows = conn.execute(select(Score.user_id).where(Score.run_id == run_id, Score.flagged == True)).all()  # noqa: E712
    return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))


def scores_partitioned(conn: Connection) -> bool:
    """True when ``scores`` is partitioned by run (PostgreSQL at migration 0003): each run's
    scores are then the partition ``scores_r<run id>``, created and dropped with the run. Read
    from the catalog (one look-up) so a plain table, on SQLite or PostgreSQL, keeps the plain path."""
    if conn.dialect.name != "postgresql":
        return False
    kind = conn.execute(text("SELECT relkind FROM pg_class WHERE oid = to_regclass('scores')")).scalar()
    return str(kind) == "p"


def pin_scores(conn: Connection) -> None:
    """First statement of a read transaction that reads a run and then its scores (PostgreSQL):
    ``LOCK TABLE scores IN ACCESS SHARE MODE``, before the transaction's snapshot is taken.

    Dropping a partition is not MVCC-safe: a repeatable-read reader that found run N in its
    snapshot and reads its scores after a publish dropped N's partition (``keep``) would see the
    run with no scores. Holding ACCESS SHARE on ``scores`` from the start makes the publish wait
    for the reader to finish, or the reader wait for the publish and then see its runs. Readers
    do not block each other; single-statement reads need no pin."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("LOCK TABLE scores IN ACCESS SHARE MODE")


def _has_default_partition(conn: Connection) -> bool:
    """True when ``scores`` has the default partition ``scores_default`` (migration 0003 makes
    it; without it, attaching a run needs no ACCESS EXCLUSIVE lock, see :func:`_write`)."""
    return conn.execute(text("SELECT to_regclass('scores_default')")).scalar() is not None


def partition_name(run_id: int) -> str:
    """The ``scores`` partition of run ``run_id`` (PostgreSQL)."""
    return f"scores_r{int(run_id)}"


def _scores_table(name: str) -> TableClause:
    """``scores`` or one of its partitions, as a Core table (for the statements below)."""
    return table(name, column("run_id"), column("user_id"), column("score"), column("flagged"),
                 column("details", Score.__table__.c.details.type))


def _delete_run(conn: Connection, run_id: int, *, partitioned: bool = False) -> None:
    """Delete run ``run_id`` and its scores: ``DROP TABLE`` of its partition when ``scores`` is
    partitioned (O(1), but it takes an ACCESS EXCLUSIVE lock on ``scores`` until commit, so
    callers do it as late in their transaction as they can), else a ``DELETE`` of its rows."""
    if partitioned:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {partition_name(run_id)}")
    else:
        conn.execute(delete(Score).where(Score.run_id == run_id))
    conn.execute(delete(ScoringRun).where(ScoringRun.id == run_id))


def _jsonable(value: dict[str, Any]) -> dict[str, Any]:
    """``value`` with numpy numbers turned into Python floats (what the JSON column stores)."""
    out: dict[str, Any] = json.loads(json.dumps(value, default=float))
    return out


@dataclass(frozen=True)
class _RunHead:
    """What a run's ``scoring_runs`` row says, whatever wrote its scores."""

    kind: str
    run_date: dt.date
    threshold: float | None
    model_run_id: int | None
    summary: dict[str, Any] | None
    started_at: dt.datetime | None
    replace: bool


def _existing_to_replace(conn: Connection, head: _RunHead) -> int | None:
    """Id of the run ``head`` replaces (None if none); ValueError for a complete run without
    ``replace``."""
    existing = run_for_date(conn, head.kind, head.run_date)
    if existing is None:
        return None
    if existing.status == "complete" and not head.replace:
        raise ValueError(f"a complete {head.kind} scoring run for {head.run_date} exists (run {existing.id})")
    return existing.id


def _write(conn: Connection, head: _RunHead, n_scored: int, n_flagged: int, fill: Callable[[int], None],
           details: Sequence[tuple[int, dict[str, Any]]], keep: int | None) -> RunInfo:
    """Write one complete run inside the caller's transaction: its row, its scores (``fill(run
    id)``, which writes them into ``scores`` or, when partitioned, into the run's partition),
    the explained users' ``details`` (internal user id, explanation), then prune to ``keep``
    complete runs of the kind.

    Partitioned ``scores`` (PostgreSQL): the run is built as a table of its own, invisible to
    readers, then attached. Its rows are loaded, then it gets its primary key, indexes and a
    ``CHECK (run_id = <id>)`` (sorted builds, while readers go on reading the previous runs), so
    ``ATTACH PARTITION`` finds the parent's indexes in place and skips the partition-bound scan;
    it still validates the two foreign keys (one scan of the new rows each). ``CREATE TABLE ...
    PARTITION OF`` would instead hold an ACCESS EXCLUSIVE lock on ``scores`` for the whole load.

    Locks, in this order, held to commit: a transaction-level advisory lock
    (:data:`SCORES_LOCK_KEY`: writers of scoring runs one at a time, so two never deadlock
    upgrading their locks on ``scores``); SHARE ROW EXCLUSIVE on ``users`` and ``scoring_runs``
    (what validating the foreign keys needs; users before scores, the order of a user's hard
    delete that cascades into scores); then ACCESS EXCLUSIVE on ``scores``, taken explicitly and
    once, because attaching next to the default partition ``scores_default`` and dropping a
    replaced or pruned run's partition both need it, and a transaction that took it piecemeal
    would deadlock with readers (measured before this order was chosen). So readers of scores
    wait for the tail only: the key validation, the drops, the commit (measured: 0.73 s at
    worst for a one-million-user run, docs/store-at-scale.md). Without the default partition
    (a store that never writes scores around the API may drop it) a new run's attach needs only
    SHARE UPDATE EXCLUSIVE and runs, key validation included, before the ACCESS EXCLUSIVE lock,
    which then covers the drops alone. A reader whose transaction reads a run and then its
    scores pins ``scores`` first (:func:`pin_scores`)."""
    replaced = _existing_to_replace(conn, head)
    partitioned = scores_partitioned(conn)
    now = utcnow()
    values = dict(kind=head.kind, run_date=head.run_date, model_run_id=head.model_run_id, status="running",
                  threshold=head.threshold, n_scored=int(n_scored), n_flagged=int(n_flagged), summary=head.summary,
                  started_at=head.started_at or now)
    if partitioned:
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": SCORES_LOCK_KEY})
        run_id = int(conn.execute(text("SELECT nextval(pg_get_serial_sequence('scoring_runs', 'id'))")).scalar_one())
        name = partition_name(run_id)
        conn.exec_driver_sql(f"CREATE TABLE {name} (LIKE scores INCLUDING DEFAULTS)")
        fill(run_id)
        conn.exec_driver_sql(f"ALTER TABLE {name} ADD PRIMARY KEY (run_id, user_id), ADD CHECK (run_id = {run_id})")
        # after the primary key: each explained user's update is an index lookup, not a scan of the run
        _set_details(conn, name, run_id, details)
        conn.exec_driver_sql(f"CREATE INDEX ON {name} (run_id, score)")
        conn.exec_driver_sql(f"CREATE INDEX ON {name} (user_id)")
        if replaced is None:
            conn.execute(insert(ScoringRun).values(id=run_id, **values))
        # lock order users -> scores, as a user's hard delete (cascading into scores) takes them
        conn.exec_driver_sql("LOCK TABLE users, scoring_runs IN SHARE ROW EXCLUSIVE MODE")
        attach = f"ALTER TABLE scores ATTACH PARTITION {name} FOR VALUES IN ({run_id})"
        if replaced is None and not _has_default_partition(conn):
            conn.exec_driver_sql(attach)  # SHARE UPDATE EXCLUSIVE only: readers keep reading
        conn.exec_driver_sql("LOCK TABLE scores IN ACCESS EXCLUSIVE MODE")
        if replaced is not None:
            _delete_run(conn, replaced, partitioned=True)
            conn.execute(insert(ScoringRun).values(id=run_id, **values))
        if replaced is not None or _has_default_partition(conn):
            conn.exec_driver_sql(attach)
    else:
        if replaced is not None:
            _delete_run(conn, replaced)
        run_id = int(conn.execute(insert(ScoringRun).values(**values).returning(ScoringRun.id)).scalar_one())
        fill(run_id)
        _set_details(conn, "scores", run_id, details)
    conn.execute(update(ScoringRun).where(ScoringRun.id == run_id).values(status="complete", finished_at=now))
    if keep is not None:
        old = conn.execute(_COMPLETE_RUN_IDS, {"kind": head.kind}).scalars().all()
        for rid in old[keep:]:
            _delete_run(conn, int(rid), partitioned=partitioned)
    info = run_for_date(conn, head.kind, head.run_date)
    assert info is not None
    return info


def _set_details(conn: Connection, name: str, run_id: int, details: Sequence[tuple[int, dict[str, Any]]]) -> None:
    if details:
        t = _scores_table(name)
        stmt = update(t).where(t.c.run_id == bindparam("r_id"), t.c.user_id == bindparam("u_id")).values(details=bindparam("d"))
        conn.execute(stmt, [{"d": _jsonable(v), "r_id": run_id, "u_id": int(u)} for u, v in details])


def write_run(conn: Connection, run: NewScoringRun, *, keep: int | None = None) -> RunInfo:
    """Insert a complete run with all its scores inside the caller's write transaction.

    An existing run of the same kind and date is replaced only with ``run.replace`` (the caller
    checks first); ``keep`` bounds how many complete runs of the kind are kept (oldest deleted in
    the same transaction; on PostgreSQL by dropping their partitions)."""
    user_ids = np.asarray(run.user_ids, dtype=np.int64)
    flagged = np.asarray(run.flagged, dtype=bool)
    scores = np.asarray(run.scores, dtype=np.float64)
    head = _RunHead(run.kind, run.run_date, run.threshold, run.model_run_id, run.summary, run.started_at, run.replace)
    details = [(int(user_ids[p]), v) for p, v in run.details.items()]
    return _write(conn, head, int(user_ids.size), int(flagged.sum()),
                  lambda run_id: _insert_scores(conn, run_id, user_ids, scores, flagged), details, keep)


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
    """The scores of a run, through the driver (binary COPY on PostgreSQL, into the run's
    partition when ``scores`` is partitioned; chunked ``executemany`` on SQLite): a run holds a
    score for every user."""
    if conn.dialect.name == "postgresql":
        target = partition_name(run_id) if scores_partitioned(conn) else "scores"
        row = np.dtype([("n", ">i2"), ("l1", ">i4"), ("r", ">i8"), ("l2", ">i4"), ("u", ">i8"), ("l3", ">i4"), ("s", ">f8"),
                        ("l4", ">i4"), ("f", "u1")])
        arr = np.empty(user_ids.size, dtype=row)
        arr["n"], arr["l1"], arr["r"], arr["l2"], arr["u"], arr["l3"], arr["s"], arr["l4"], arr["f"] = 4, 8, run_id, 8, user_ids, 8, scores, 1, flagged
        with driver_connection(conn).cursor() as cur:
            pg_copy(cur, f"COPY {target} (run_id, user_id, score, flagged) FROM STDIN (FORMAT binary)", pg_binary_payload(arr))
        return
    cur = driver_connection(conn).cursor()
    for i in range(0, user_ids.size, SQLITE_CHUNK):
        u = user_ids[i : i + SQLITE_CHUNK].tolist()
        s = scores[i : i + SQLITE_CHUNK].tolist()
        f = flagged[i : i + SQLITE_CHUNK].astype(int).tolist()
        cur.executemany("INSERT INTO scores (run_id, user_id, score, flagged) VALUES (?, ?, ?, ?)", zip([run_id] * len(u), u, s, f))


# -- staging: scores written by distributed workers, published in one transaction -------------
def _check_staging_key(token: str, kind: str) -> None:
    if not isinstance(token, str) or not 1 <= len(token) <= 64:
        raise InputError(f"staging token must be 1 to 64 characters, got {token!r}")
    if not isinstance(kind, str) or not 1 <= len(kind) <= 32:
        raise InputError(f"scoring run kind must be 1 to 32 characters, got {kind!r}")


def stage(conn: Connection, token: str, kind: str, user_ids: np.ndarray, scores: np.ndarray, flagged: np.ndarray) -> int:
    """Write one worker's scores of run ``(token, kind)`` into ``score_staging`` inside the
    caller's transaction; returns the number of rows written.

    Idempotent per user: a row already staged for the same token, kind and user is overwritten
    (a worker that Ray retries after its first attempt committed writes the same rows again; the
    count checked at publish stays right). PostgreSQL: binary ``COPY`` into a temporary table,
    then one ``INSERT ... ON CONFLICT DO UPDATE``; SQLite: chunked ``INSERT OR REPLACE``."""
    _check_staging_key(token, kind)
    u = np.asarray(user_ids)
    s = np.asarray(scores, dtype=np.float64)
    f = np.asarray(flagged, dtype=bool)
    if u.ndim != 1 or s.shape != u.shape or f.shape != u.shape:
        raise InputError(f"staged scores of {kind!r} ({token}): user_ids, scores and flagged must be 1-D arrays of one length, "
                         f"got shapes {u.shape}, {s.shape}, {f.shape}")
    if u.size and not np.issubdtype(u.dtype, np.integer):
        raise InputError(f"staged scores of {kind!r} ({token}): user_ids must be internal (integer) ids, got {u.dtype}")
    u = u.astype(np.int64, copy=False)
    if u.size == 0:
        return 0
    uniq = np.unique(u)
    if uniq.size != u.size:
        raise InputError(f"staged scores of {kind!r} ({token}): {u.size - uniq.size} duplicate user id(s) in one batch")
    if conn.dialect.name == "postgresql":
        row = np.dtype([("n", ">i2"), ("l1", ">i4"), ("u", ">i8"), ("l2", ">i4"), ("s", ">f8"), ("l3", ">i4"), ("f", "u1")])
        arr = np.empty(u.size, dtype=row)
        arr["n"], arr["l1"], arr["u"], arr["l2"], arr["s"], arr["l3"], arr["f"] = 3, 8, u, 8, s, 1, f
        with driver_connection(conn).cursor() as cur:
            cur.execute("CREATE TEMP TABLE IF NOT EXISTS _graphrec_stage (user_id bigint, score float8, flagged boolean) "
                        "ON COMMIT DROP")
            cur.execute("TRUNCATE _graphrec_stage")
            pg_copy(cur, "COPY _graphrec_stage (user_id, score, flagged) FROM STDIN (FORMAT binary)", pg_binary_payload(arr))
            cur.execute(
                "INSERT INTO score_staging (token, kind, user_id, score, flagged) "
                "SELECT %(t)s, %(k)s, user_id, score, flagged FROM _graphrec_stage "
                "ON CONFLICT (token, kind, user_id) DO UPDATE SET score = EXCLUDED.score, flagged = EXCLUDED.flagged",
                {"t": token, "k": kind},
            )
        return int(u.size)
    cur = driver_connection(conn).cursor()
    for i in range(0, u.size, SQLITE_CHUNK):
        cu, cs, cf = u[i : i + SQLITE_CHUNK].tolist(), s[i : i + SQLITE_CHUNK].tolist(), f[i : i + SQLITE_CHUNK].astype(int).tolist()
        cur.executemany("INSERT OR REPLACE INTO score_staging (token, kind, user_id, score, flagged) VALUES (?, ?, ?, ?, ?)",
                        zip([token] * len(cu), [kind] * len(cu), cu, cs, cf))
    return int(u.size)


def discard(conn: Connection, token: str | None = None) -> int:
    """Delete the staged rows of ``token`` (every token's with None: what a job that took over
    a dead job's lock does first) inside the caller's transaction; returns how many went."""
    where = [] if token is None else [ScoreStaging.token == token]
    n = int(conn.execute(select(func.count()).select_from(ScoreStaging).where(*where)).scalar_one())
    if n:
        if token is None and conn.dialect.name == "postgresql":
            conn.exec_driver_sql("TRUNCATE score_staging")
        else:
            conn.execute(delete(ScoreStaging).where(*where))
    return n


@dataclass
class StagedRun:
    """A scoring run whose scores distributed workers staged under ``token``
    (:func:`stage`), to publish (:meth:`GraphStore.publish_staged_runs
    <graphrec.store.store.GraphStore.publish_staged_runs>`): like :class:`NewScoringRun`
    without the arrays. ``expected_users`` is how many users the run must hold (the snapshot's
    user count): publishing refuses a run whose staged rows are fewer or more. ``details`` maps
    *internal user ids* (not positions) to JSON-able explanations."""

    kind: str
    run_date: dt.date
    token: str
    expected_users: int
    threshold: float | None
    details: Mapping[int, dict[str, Any]] = field(default_factory=dict)
    model_run_id: int | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    started_at: dt.datetime | None = None
    replace: bool = False


def _staged_counts(conn: Connection, run: StagedRun) -> tuple[int, int]:
    """(rows, flagged rows) staged for ``run``; StoreStateError unless the rows are the run's
    ``expected_users`` users and its details name staged users only."""
    mine = (ScoreStaging.token == run.token, ScoreStaging.kind == run.kind)
    n, n_flagged = conn.execute(
        select(func.count(), func.coalesce(func.sum(case((ScoreStaging.flagged, 1), else_=0)), 0)).where(*mine)
    ).one()
    if int(n) != int(run.expected_users):
        raise StoreStateError(f"staged {run.kind} scores of {run.token} are incomplete: {int(n)} user(s) staged, "
                              f"{int(run.expected_users)} expected; nothing was published")
    if run.details:
        keys = [int(k) for k in run.details]
        found = conn.execute(select(func.count()).where(*mine, ScoreStaging.user_id.in_(bindparam("ids", expanding=True))),
                             {"ids": keys}).scalar_one()
        if int(found) != len(set(keys)):
            raise StoreStateError(f"{run.kind} run of {run.token}: {len(set(keys)) - int(found)} explained user(s) have no "
                                  "staged score; nothing was published")
    return int(n), int(n_flagged)


def _move_staged(conn: Connection, run: StagedRun, run_id: int) -> None:
    """``INSERT ... SELECT`` the staged rows of ``run`` into the run's scores (its partition
    when ``scores`` is partitioned), then delete them from staging."""
    target = _scores_table(partition_name(run_id) if scores_partitioned(conn) else "scores")
    mine = (ScoreStaging.token == run.token, ScoreStaging.kind == run.kind)
    rows = select(literal(run_id, type_=BigInteger), ScoreStaging.user_id, ScoreStaging.score, ScoreStaging.flagged).where(*mine)
    conn.execute(insert(target).from_select(["run_id", "user_id", "score", "flagged"], rows))
    conn.execute(delete(ScoreStaging).where(*mine))


def publish(conn: Connection, runs: Sequence[StagedRun], *, lock: tuple[str, str] | None = None,
            keep: int | None = None) -> list[RunInfo]:
    """Publish staged ``runs`` inside the caller's write transaction: the lock check first (as
    :func:`write_runs`), then every run's staged rows are checked complete
    (:class:`~graphrec.errors.StoreStateError`, nothing changed, otherwise), then each run is
    written as :func:`write_run` writes one, its scores moved from staging by ``INSERT ...
    SELECT``; ``n_scored`` / ``n_flagged`` are counted from the staged rows."""
    if lock is not None:
        assert_owner(conn, *lock)
    keys = [(r.token, r.kind) for r in runs]
    if len(set(keys)) != len(keys):
        raise InputError("publish_staged_runs: the same (token, kind) is given twice")
    counts = []
    for run in runs:
        _check_staging_key(run.token, run.kind)
        counts.append(_staged_counts(conn, run))
    infos: list[RunInfo] = []
    for run, (n, n_flagged) in zip(runs, counts):
        head = _RunHead(run.kind, run.run_date, run.threshold, run.model_run_id, run.summary, run.started_at, run.replace)
        details = [(int(u), v) for u, v in run.details.items()]
        try:
            infos.append(_write(conn, head, n, n_flagged, functools.partial(_move_staged, conn, run), details, keep))
        except IntegrityError as exc:
            raise StoreStateError(f"staged {run.kind} scores of {run.token} name users that are not in the store "
                                  f"({str(exc.orig).splitlines()[0] if exc.orig else exc}); nothing was published") from None
    return infos


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
