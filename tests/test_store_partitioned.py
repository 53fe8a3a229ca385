"""The store at scale (issue 17): staged scoring runs published in one transaction (both
backends), and on PostgreSQL the partitioned ``friendships`` (hash by ``user_lo``) and ``scores``
(list by run) of migration 0003: partitions made and dropped with runs, the same answers as the
plain tables, and a migration round trip that keeps the rows."""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import multiprocessing
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import text

from graphrec.errors import InputError, JobLockedError, StoreStateError
from graphrec.store import bulk
from graphrec.store.locks import JobLease
from graphrec.store.scores import NewScoringRun, StagedRun
from graphrec.store.store import GraphStore

DAY = dt.date(2026, 11, 1)


def _graph(store: GraphStore, n: int = 120, seed: int = 7) -> None:
    """A random graph with features, a synthetic user, a deleted user, blocks and labels."""
    rng = np.random.default_rng(seed)
    pairs = {(int(a), int(b)) for a, b in rng.integers(0, n, size=(6 * n, 2)) if a != b}
    pairs = {(min(p), max(p)) for p in pairs}
    for u in range(n):
        store.add_user(u, features={"age": float(20 + u % 30)}, is_synthetic=u == n - 1)
    store.add_friendships(sorted(pairs))
    store.block(0, 5)
    store.block(7, 0)
    store.set_label(3, "bot", source="analyst")
    store.set_label(4, "human", source="analyst")
    store.remove_user(11)


def _scores(store: GraphStore) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ids = store.snapshot().user_ids
    scores = np.sin(ids.astype(np.float64)) ** 2
    return ids, scores, scores > 0.6


def _stage_half(args: tuple[str, str, int]) -> int:
    """One worker process: stage every other user's score (``part`` 0 or 1)."""
    url, token, part = args
    store = GraphStore(url)
    ids, scores, flagged = _scores(store)
    sel = slice(part, None, 2)
    return store.stage_scores(token, "bot", ids[sel], scores[sel], flagged[sel])


def _table(store: GraphStore, run_id: int) -> list[tuple[str, float, bool]]:
    return [(s.user, s.score, s.is_synthetic) for batch in store.iter_scores(run_id) for s in batch]


def _staged_rows(store: GraphStore) -> int:
    with store.read() as conn:
        return int(conn.execute(text("SELECT COUNT(*) FROM score_staging")).scalar_one())


def test_staged_runs_from_two_processes_publish_like_write_scoring_runs(database_url: str, tmp_path: Path) -> None:
    store = GraphStore(database_url, home=tmp_path / "home")
    store.initialize()
    _graph(store)
    ids, scores, flagged = _scores(store)
    explain: dict[int, dict[str, Any]] = {int(ids[2]): {"why": 0.5}, int(ids[9]): {"why": np.float32(0.25)}}
    direct = store.write_scoring_runs([NewScoringRun("bot", DAY, ids, scores, flagged, 0.6, {2: explain[int(ids[2])],
                                                                                          9: explain[int(ids[9])]},
                                                     summary={"n": 1})])[0]
    spawn = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=spawn) as pool:
        staged = list(pool.map(_stage_half, [(database_url, "job-1", 0), (database_url, "job-1", 1)]))
    assert sum(staged) == ids.size and _staged_rows(store) == ids.size
    assert store.latest_run("bot") == direct  # staging is invisible to readers
    run = StagedRun("bot", DAY + dt.timedelta(days=1), "job-1", int(ids.size), 0.6, explain, summary={"n": 1})
    published = store.publish_staged_runs([run])[0]
    assert (published.n_scored, published.n_flagged, published.threshold, published.summary, published.status) == (
        direct.n_scored, direct.n_flagged, 0.6, {"n": 1}, "complete")
    assert published.n_flagged == int(flagged.sum()) and store.latest_run("bot") == published
    assert _table(store, published.id) == _table(store, direct.id)
    assert store.top_scores(published.id, 200) == store.top_scores(direct.id, 200)  # details included
    assert _staged_rows(store) == 0


def test_incomplete_or_foreign_staging_is_refused_and_changes_nothing(store: GraphStore) -> None:
    _graph(store, n=40)
    ids, scores, flagged = _scores(store)
    store.stage_scores("t1", "bot", ids[:-1], scores[:-1], flagged[:-1])
    with pytest.raises(StoreStateError, match=r"incomplete: 38 user\(s\) staged, 39 expected"):
        store.publish_staged_runs([StagedRun("bot", DAY, "t1", int(ids.size), 0.5)])
    assert store.latest_run("bot") is None and _staged_rows(store) == ids.size - 1
    store.stage_scores("t1", "bot", ids[-1:], scores[-1:], flagged[-1:])
    with pytest.raises(StoreStateError, match="explained user"):
        store.publish_staged_runs([StagedRun("bot", DAY, "t1", int(ids.size), 0.5, {10_000: {"x": 1}})])
    store.stage_scores("t2", "anomaly", np.array([10_000]), np.array([0.5]), np.array([False]))
    with pytest.raises(StoreStateError, match="not in the store"):  # the bot run is rolled back with it
        store.publish_staged_runs([StagedRun("bot", DAY, "t1", int(ids.size), 0.5), StagedRun("anomaly", DAY, "t2", 1, 0.5)])
    assert store.latest_run("bot") is None and store.latest_run("anomaly") is None
    assert _staged_rows(store) == ids.size + 1
    with pytest.raises(InputError, match="duplicate user id"):
        store.stage_scores("t3", "bot", np.array([1, 1]), np.array([0.1, 0.2]), np.array([False, False]))
    with pytest.raises(InputError, match="one length"):
        store.stage_scores("t3", "bot", np.array([1, 2]), np.array([0.1]), np.array([False, False]))
    with pytest.raises(InputError, match="token"):
        store.stage_scores("", "bot", np.array([1]), np.array([0.1]), np.array([False]))


def test_retried_worker_lost_lock_and_discard(store: GraphStore) -> None:
    _graph(store, n=40)
    ids, scores, flagged = _scores(store)
    for _ in range(2):  # a retried worker rewrites its rows instead of adding duplicates
        store.stage_scores("t1", "bot", ids, scores, flagged)
    assert _staged_rows(store) == ids.size
    lease = JobLease(store, "nightly").acquire()
    with pytest.raises(JobLockedError, match="lost the lock"):
        store.publish_staged_runs([StagedRun("bot", DAY, "t1", int(ids.size), 0.5)], lock=("nightly", "someone-else"))
    assert store.latest_run("bot") is None and _staged_rows(store) == ids.size
    info = store.publish_staged_runs([StagedRun("bot", DAY, "t1", int(ids.size), 0.5)], lock=("nightly", lease.owner))[0]
    assert info.n_scored == ids.size and _staged_rows(store) == 0
    lease.release()
    store.stage_scores("dead-job", "bot", ids[:5], scores[:5], flagged[:5])
    store.stage_scores("other", "bot", ids[:3], scores[:3], flagged[:3])
    assert store.discard_staged("dead-job") == 5 and _staged_rows(store) == 3
    assert store.discard_staged() == 3 and _staged_rows(store) == 0
    assert store.discard_staged() == 0


def _partitions(store: GraphStore, table: str) -> list[str]:
    with store.read() as conn:
        return sorted(conn.execute(text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass(:t)"),
            {"t": table}).scalars())


@pytest.mark.postgres
def test_postgres_tables_are_partitioned_and_runs_drop_their_partition(pg_url: str, tmp_path: Path) -> None:
    store = GraphStore(pg_url, home=tmp_path / "home")
    store.initialize()
    with store.read() as conn:
        strategies: dict[str, str] = dict(conn.execute(text(
            "SELECT c.relname, p.partstrat FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid "
            "WHERE c.relnamespace = current_schema()::regnamespace")).all())
        staging = conn.execute(text("SELECT relpersistence FROM pg_class WHERE oid = to_regclass('score_staging')")).scalar()
        index_parts = conn.execute(text(
            "SELECT COUNT(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhparent "
            "WHERE c.relname = 'ix_friendships_user_hi_user_lo' AND c.relnamespace = current_schema()::regnamespace")).scalar()
    assert strategies == {"friendships": "h", "scores": "l"} and staging == "u"
    assert _partitions(store, "friendships") == sorted(f"friendships_p{i}" for i in range(16)) and index_parts == 16
    assert _partitions(store, "scores") == []
    _graph(store, n=30)
    ids, scores, flagged = _scores(store)
    runs = []
    for k in range(3):
        runs.append(store.write_scoring_runs([NewScoringRun("bot", DAY + dt.timedelta(days=k), ids, scores, flagged, 0.5)],
                                             keep=2)[0])
    assert _partitions(store, "scores") == sorted([f"scores_r{runs[1].id}", f"scores_r{runs[2].id}"])
    store.stage_scores("t", "bot", ids, scores, flagged)
    new = store.publish_staged_runs([StagedRun("bot", DAY + dt.timedelta(days=2), "t", int(ids.size), 0.5, replace=True)],
                                    keep=2)[0]
    assert _partitions(store, "scores") == sorted([f"scores_r{runs[1].id}", f"scores_r{new.id}"])
    with store.read() as conn:
        per_partition: dict[str, int] = dict(conn.execute(text("SELECT tableoid::regclass::text, COUNT(*) FROM scores GROUP BY 1")).all())
        indexes = conn.execute(text("SELECT COUNT(*) FROM pg_indexes WHERE tablename = :t AND schemaname = current_schema()"), {"t": f"scores_r{new.id}"}).scalar()
        keys = conn.execute(text("SELECT COUNT(*) FROM pg_constraint WHERE conrelid = to_regclass(:t) AND contype = 'f' "
                                 "AND conparentid <> 0"), {"t": f"scores_r{new.id}"}).scalar()
    assert per_partition == {f"scores_r{runs[1].id}": ids.size, f"scores_r{new.id}": ids.size}
    assert indexes == 3 and keys == 2  # the primary key, both indexes and both foreign keys, attached to the parent's
    assert [r.id for r in (store.latest_run("bot"),) if r] == [new.id] and _table(store, new.id) == _table(store, runs[1].id)
    store.remove_user("0", hard=True)  # the foreign keys cascade through the partitions
    assert len(_table(store, new.id)) == ids.size - 1


@pytest.mark.postgres
def test_friendship_partition_count_is_chosen_at_migration_time(pg_url: str, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    store = GraphStore(pg_url, home=tmp_path / "home")
    monkeypatch.setenv("GRAPHREC_FRIENDSHIP_PARTITIONS", "0")
    with pytest.raises(InputError, match="GRAPHREC_FRIENDSHIP_PARTITIONS .* from 1 to 1024, got '0'"):
        store.initialize()
    with store.engine.connect() as conn:  # the failed upgrade left nothing behind
        assert conn.execute(text("SELECT to_regclass('users')")).scalar() is None
    monkeypatch.setenv("GRAPHREC_FRIENDSHIP_PARTITIONS", "4")
    store.initialize()
    assert _partitions(store, "friendships") == [f"friendships_p{i}" for i in range(4)]
    store.add_user("a")
    store.add_user("b")
    assert store.add_friendship("b", "a") and store.neighbours("a") == ["b"]


def _answers(store: GraphStore, tmp_path: Path, tag: str) -> dict[str, Any]:
    """Every store read that touches ``friendships``, on a sample of users and pairs."""
    snap = store.snapshot()
    users = [str(u) for u in range(0, 60, 3)]
    out: dict[str, Any] = {
        "snapshot": (snap.user_ids.tolist(), snap.external_ids.tolist(), snap.indptr.tolist(), snap.indices.tolist(),
                     snap.features.tolist(), snap.is_synthetic.tolist(), snap.labels.tolist(), snap.num_edges, snap.revision),
        "neighbours": {u: store.neighbours(u) for u in users if u != "11"},
        "degree": {u: store.degree(u) for u in users if u != "11"},
        "are_friends": [store.are_friends(a, b) for a in users for b in users if a != b and "11" not in (a, b)],
        "mutual": [store.mutual_friends(a, b) for a in users[:8] for b in users[:8] if a != b and "11" not in (a, b)],
        "mutual_with": {u: store.mutual_friends_with(u, users) for u in users[:6]},
        "serving": {u: {k: v for k, v in store.serving_context(u).items() if k != "features"} for u in users[:6]},
        "profile": {u: {k: v for k, v in store.user_profile(u).items() if k not in ("created_at", "updated_at")} for u in users},
        "stats": store.stats().as_dict(),
        "excluded": store.excluded_candidates(users + ["119", "11", "nobody"], score_kind="bot", score_threshold=0.5),
    }
    with store.stream() as graph:
        chunks = list(graph.friendships(chunk_rows=97))
    out["stream"] = (np.concatenate([c.user_lo for c in chunks]).tolist(), np.concatenate([c.user_hi for c in chunks]).tolist())
    path = tmp_path / f"friendships-{tag}.csv"
    out["export"] = (store.export("friendships", path).rows, path.read_text())
    return out


@pytest.mark.postgres
def test_partitioned_and_plain_friendships_answer_every_query_identically(pg_url: str, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bulk, "LARGE_BATCH", 10)  # the bulk load drops and rebuilds the partitioned index and keys
    store = GraphStore(pg_url, home=tmp_path / "home")
    store.initialize()
    _graph(store)
    with store.read() as conn:
        index_parts = conn.execute(text(
            "SELECT COUNT(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhparent "
            "WHERE c.relname = 'ix_friendships_user_hi_user_lo' AND c.relnamespace = current_schema()::regnamespace")).scalar()
        fks = conn.execute(text("SELECT COUNT(*) FROM pg_constraint WHERE conrelid = 'friendships'::regclass AND contype = 'f'")).scalar()
    assert index_parts == 16 and fks == 2
    ids, scores, flagged = _scores(store)
    store.write_scoring_runs([NewScoringRun("bot", DAY, ids, scores, flagged, 0.5)])
    partitioned = _answers(store, tmp_path, "partitioned")
    assert partitioned["snapshot"][7] > 300 and sum(partitioned["are_friends"]) > 0

    # the same store with plain tables: the rows copied back by the downgrade, the schema stamped
    # at head again so the store reads it with today's code
    store.downgrade("0002")
    with store.engine.begin() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid "
                                 "WHERE c.relnamespace = current_schema()::regnamespace")).scalar() == 0
        conn.execute(text("UPDATE alembic_version SET version_num = '0003'"))
    plain = _answers(store, tmp_path, "plain")
    assert plain == partitioned


@pytest.mark.postgres
def test_migration_round_trip_keeps_the_rows(pg_url: str, tmp_path: Path) -> None:
    store = GraphStore(pg_url, home=tmp_path / "home")
    store.initialize("0002")
    with store.engine.begin() as conn:  # data written at 0002 (plain tables), as an existing store has it
        conn.execute(text("INSERT INTO users (id, external_id, is_synthetic, created_at, updated_at) "
                          "SELECT g, g::text, false, now(), now() FROM generate_series(1, 50) g"))
        conn.execute(text("INSERT INTO friendships SELECT a, b FROM generate_series(1, 50) a, generate_series(1, 50) b "
                          "WHERE a < b AND (a + b) % 3 = 0"))
        conn.execute(text("INSERT INTO scoring_runs (id, kind, run_date, status, n_scored, n_flagged, started_at) "
                          "VALUES (7, 'bot', '2026-11-01', 'complete', 50, 0, now()), (9, 'bot', '2026-11-02', 'complete', 50, 0, now())"))
        conn.execute(text("SELECT setval(pg_get_serial_sequence('scoring_runs', 'id'), 9)"))
        conn.execute(text("INSERT INTO scores (run_id, user_id, score, flagged, details) SELECT r, u, u / 100.0, false, "
                          "CASE WHEN u = 1 THEN '{\"a\": 1}'::jsonb END FROM (VALUES (7), (9)) v(r), generate_series(1, 50) u"))

    def rows() -> tuple[list[Any], list[Any]]:
        with store.engine.connect() as conn:
            return (list(conn.execute(text("SELECT user_lo, user_hi FROM friendships ORDER BY 1, 2")).all()),
                    list(conn.execute(text("SELECT run_id, user_id, score, flagged, details FROM scores ORDER BY 1, 2")).all()))

    before = rows()
    assert len(before[0]) > 300 and len(before[1]) == 100
    assert store.initialize() == ("0002", "0003")
    assert rows() == before
    assert _partitions(store, "scores") == ["scores_r7", "scores_r9"]
    ids = np.arange(1, 51)
    info = store.write_scoring_runs([NewScoringRun("bot", DAY + dt.timedelta(days=5), ids, ids / 100.0, ids > 45, 0.45)],
                                    keep=2)[0]
    assert _partitions(store, "scores") == sorted(["scores_r9", f"scores_r{info.id}"]) and info.id == 10
    after = rows()
    assert store.downgrade("0002") == ("0003", "0002")
    assert rows() == after
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid "
                                 "WHERE c.relnamespace = current_schema()::regnamespace")).scalar() == 0
        assert conn.execute(text("SELECT to_regclass('score_staging')")).scalar() is None
    store.initialize()
    assert rows() == after and len(_partitions(store, "friendships")) == 16


@pytest.mark.parametrize("default_partition", [False, True])
def test_readers_during_publishing_see_whole_runs_and_never_deadlock(store: GraphStore, default_partition: bool) -> None:
    """Readers of ``scores`` while runs are published and pruned (on PostgreSQL: partitions
    attached and dropped; also with a default partition, which a store may have been given by
    hand and the writer still handles) see one whole run, never an error."""
    import threading

    if default_partition:
        if store.dialect != "postgresql":
            pytest.skip("PostgreSQL's partitions only")
        with store.write() as conn:
            conn.execute(text("CREATE TABLE scores_default PARTITION OF scores DEFAULT"))
    _graph(store, n=60)
    ids, scores, flagged = _scores(store)
    store.write_scoring_runs([NewScoringRun("bot", DAY, ids, scores, flagged, 0.6)])
    seen: list[tuple[int, int]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        try:
            while not stop.is_set():
                run, top = store.latest_top_scores("bot", 1000) or (None, [])
                assert run is not None
                store.excluded_candidates([str(u) for u in range(20)], score_kind="bot")
                seen.append((run.n_scored, len(top)))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for k in range(1, 6):
        store.stage_scores(f"t{k}", "bot", ids, scores, flagged)
        store.publish_staged_runs([StagedRun("bot", DAY + dt.timedelta(days=k), f"t{k}", int(ids.size), 0.6)], keep=1)
    stop.set()
    for t in threads:
        t.join()
    assert not errors, errors
    assert seen and all(n == m == ids.size for n, m in seen), sorted(set(seen))
    assert [r for r in (store.run_for_date("bot", DAY + dt.timedelta(days=k)) for k in range(6)) if r] == [store.latest_run("bot")]
