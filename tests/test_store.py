"""GraphStore library API on SQLite and PostgreSQL."""

from __future__ import annotations

import numpy as np
import pytest

from graphrec.errors import InputError, NotFoundError
from graphrec.store import NewScoringRun
from graphrec.store.store import GraphStore


def _triangle_plus(store: GraphStore) -> None:
    for u in "abcde":
        store.add_user(u)
    store.add_friendships([("a", "b"), ("b", "c"), ("a", "c"), ("c", "d")])


def test_users_and_friendships(store: GraphStore) -> None:
    _triangle_plus(store)
    assert store.count_users() == 5
    assert store.neighbours("c") == ["a", "b", "d"]
    assert store.degree("a") == 2
    assert store.degree("e") == 0
    assert store.mutual_friends("a", "b") == ["c"]
    assert store.mutual_friends("a", "d") == ["c"]
    assert store.are_friends("b", "a") and not store.are_friends("a", "d")
    assert store.add_friendship("d", "c") is False  # same undirected pair
    assert store.add_friendship("e", "a") is True
    assert store.neighbours("a") == ["b", "c", "e"]
    assert store.remove_friendship("a", "e") is True
    assert store.remove_friendship("a", "e") is False
    assert store.neighbours("a") == ["b", "c"]


def test_invalid_operations_are_rejected(store: GraphStore) -> None:
    store.add_user(1)
    store.add_user(2)
    with pytest.raises(InputError, match="itself"):
        store.add_friendship(1, 1)
    with pytest.raises(NotFoundError, match="unknown user '99'"):
        store.add_friendship(1, 99)
    with pytest.raises(InputError, match="already exists"):
        store.add_user("1")
    with pytest.raises(InputError, match="duplicate friendship"):
        store.add_friendships([(1, 2), (2, 1)])
    with pytest.raises(InputError, match="finite"):
        store.add_user(3, features={"age": float("nan")})
    with pytest.raises(InputError, match="must be text or an integer"):
        store.add_user(3.5)  # type: ignore[arg-type]
    assert store.count_users() == 2
    assert not store.are_friends(1, 2)


def test_features_and_attributes(store: GraphStore) -> None:
    store.add_user("u", attributes={"city": "Paris"}, features={"age": 31, "score": 0.25})
    store.add_user("v", features={"height": 1.8}, allow_new_columns=True)
    u = store.get_user("u")
    assert u.attributes == {"city": "Paris"}
    assert u.features == {"age": 31.0, "score": 0.25}
    store.update_user("u", attributes={"city": None, "lang": "fr"}, features={"score": 0.5})
    u = store.get_user("u")
    assert u.attributes == {"lang": "fr"}
    assert u.features == {"age": 31.0, "score": 0.5}
    snap = store.snapshot()
    assert snap.feature_names == ["age", "score", "height"]
    np.testing.assert_allclose(snap.features, [[31, 0.5, 0], [0, 0, 1.8]], rtol=1e-6)


def test_soft_and_hard_delete(store: GraphStore) -> None:
    _triangle_plus(store)
    rev = store.revision()
    store.remove_user("c")
    assert store.revision() == rev + 1
    assert store.neighbours("a") == ["b"]
    assert not store.has_user("c")
    assert store.get_user("c").is_deleted
    with pytest.raises(NotFoundError):
        store.neighbours("c")
    snap = store.snapshot()
    assert "c" not in snap.external_ids.tolist() and snap.num_edges == 1
    store.remove_user("a", hard=True)
    with pytest.raises(NotFoundError):
        store.get_user("a")
    assert store.neighbours("b") == []  # the friendship went with the user


def test_blocks_either_way(store: GraphStore) -> None:
    _triangle_plus(store)
    assert store.block("a", "d") is True
    assert store.block("a", "d") is False
    store.block("e", "a")
    assert store.blocked_either_way("a") == ["d", "e"]
    assert store.blocked_either_way("d") == ["a"]
    with pytest.raises(InputError):
        store.block("a", "a")
    assert store.unblock("a", "d") is True
    assert store.blocked_either_way("d") == []


def test_labels_latest_wins_per_source(store: GraphStore) -> None:
    _triangle_plus(store)
    store.set_label("a", "bot", source="analyst")
    store.set_label("b", "human", source="analyst")
    store.set_label("a", "human", source="analyst")
    assert store.labels() == {"a": "human", "b": "human"}
    store.set_label("a", "bot", source="appeal")
    assert store.labels()["a"] == "bot"
    assert store.labels(source="analyst")["a"] == "human"


def test_revision_counts_only_real_changes(store: GraphStore) -> None:
    r0 = store.revision()
    store.add_user("x")
    store.add_user("y")
    assert store.revision() == r0 + 2
    store.add_friendship("x", "y")
    store.add_friendship("y", "x")  # no-op
    assert store.revision() == r0 + 3


def test_snapshot_structure_and_conversions(store: GraphStore) -> None:
    _triangle_plus(store)
    store.set_label("a", "bot")
    store.add_user("s", is_synthetic=True)
    store.add_friendship("s", "e")
    snap = store.snapshot()
    assert snap.num_nodes == 6 and snap.num_edges == 5
    adj = snap.to_scipy()
    assert (adj != adj.T).nnz == 0
    assert adj.diagonal().sum() == 0
    ext = snap.external_ids.tolist()
    for u in ["a", "b", "c", "d", "e"]:
        assert sorted(ext[j] for j in snap.neighbors(snap.index_of(u))) == sorted(
            store.neighbours(u)
        )
    codes, classes = snap.label_codes()
    assert classes == ["bot"] and codes[snap.index_of("a")] == 0 and (codes == -1).sum() == 5
    data = snap.to_pyg()
    assert data.num_nodes == 6 and data.edge_index.shape == (2, 10)
    assert bool(data.is_synthetic[snap.index_of("s")])
    g = snap.to_networkx()
    assert g.number_of_edges() == 5 and set(g.neighbors("c")) == {"a", "b", "d"}
    assert g.nodes["a"]["label"] == "bot"
    real = store.snapshot(include_synthetic=False)
    assert real.num_nodes == 5 and real.num_edges == 4
    dense = snap.adjacency_tensor().to_dense().numpy()
    np.testing.assert_array_equal(dense, adj.toarray())


def test_snapshot_fingerprint_tracks_content(store: GraphStore) -> None:
    _triangle_plus(store)
    f1 = store.snapshot().fingerprint()
    assert store.snapshot().fingerprint() == f1
    store.add_friendship("d", "e")
    assert store.snapshot().fingerprint() != f1


def test_serving_reads_on_both_backends(store: GraphStore) -> None:
    """The live reads the recommender makes per request, on SQLite and PostgreSQL."""
    import datetime as dt

    from sqlalchemy import text

    _triangle_plus(store)
    store.add_user("s", is_synthetic=True)
    store.add_friendship("s", "a")
    store.add_friendship("s", "c")
    store.block("a", "e")
    store.update_user("a", features={"age": 30})
    ctx = store.serving_context("a")
    assert ctx["friends"] == ["b", "c", "s"] and ctx["blocked"] == ["e"]
    assert ctx["features"].tolist() == [30.0] and ctx["revision"] == store.revision()
    assert store.mutual_friends_with("d", ["a", "b", "e"]) == {"a": ["c"], "b": ["c"], "e": []}
    assert store.mutual_friends_with("a", ["c"]) == {"c": ["b"]}  # the synthetic mutual is hidden
    assert store.excluded_candidates(["b", "s", "zz"], score_kind="bot", score_threshold=0.5) == {"s", "zz"}
    with store.read() as conn:
        ids = dict(conn.execute(text("SELECT external_id, id FROM users WHERE external_id IN ('b', 'd')")).all())
    store.write_scoring_runs([NewScoringRun("bot", dt.date(2026, 11, 27), np.array([ids["b"], ids["d"]]), np.array([0.9, 0.1]),
                                            np.array([True, False]), 0.5)])
    assert store.excluded_candidates(["b", "d"], score_kind="bot", score_threshold=0.5) == {"b"}
    assert store.excluded_candidates(["b", "d"]) == set()
    store.remove_user("d")
    assert store.excluded_candidates(["b", "d"], score_kind="bot", score_threshold=0.95) == {"d"}
    with pytest.raises(NotFoundError):
        store.serving_context("d")


def test_user_profile_in_one_call(store: GraphStore) -> None:
    _triangle_plus(store)
    store.update_user("c", attributes={"city": "Oslo"}, features={"age": 40})
    prof = store.user_profile("c")
    rec = store.get_user("c")
    assert prof == {"id": "c", "is_synthetic": False, "deleted": False, "degree": 3, "attributes": {"city": "Oslo"},
                    "labels": {}, "features": {"age": 40.0}, "feature_columns": 1, "created_at": rec.created_at.isoformat(),
                    "updated_at": rec.updated_at.isoformat()}
    store.remove_user("c")
    assert store.user_profile("c")["deleted"] is True and store.user_profile("c")["degree"] == 0
    assert store.user_profile("a")["degree"] == 1  # the deleted friend no longer counts
    with pytest.raises(NotFoundError):
        store.user_profile("zz")
    assert not hasattr(store, "neighbors")  # one spelling: neighbours


def _run(kind: str, day, snap, scores, *, replace: bool = False, details=None):  # noqa: ANN001, ANN202

    scores = np.asarray(scores, dtype=np.float64)
    return NewScoringRun(kind, day, snap.user_ids, scores, scores > 0.5, 0.5, details=details or {},
                         summary={"model_version": "v1"}, replace=replace)


def test_scoring_runs_through_the_store(store: GraphStore, tmp_path) -> None:  # noqa: ANN001
    """The store's scoring-run methods: one transaction for every run, lock check, replace
    semantics, keep pruning, and the reads the serving layer makes."""
    import datetime as dt

    from graphrec.errors import JobLockedError
    from graphrec.store import JobLease

    _triangle_plus(store)
    store.add_user("s", is_synthetic=True)
    snap = store.snapshot()
    day = dt.date(2026, 11, 1)
    assert store.latest_run("k1") is None and store.run_for_date("k1", day) is None
    assert store.latest_top_scores("k1", 3) is None and store.export_scores("k1", tmp_path / "none.csv") is None
    assert not (tmp_path / "none.csv").exists()

    lease = JobLease(store, "job").acquire()
    first = store.write_scoring_runs(
        [_run("k1", day, snap, [0.9, 0.1, 0.7, 0.2, 0.3, 0.8], details={0: {"why": np.float32(0.25)}}),
         _run("k2", day, snap, [0.1] * 6)],
        lock=("job", lease.owner), keep=2,
    )
    assert [(r.kind, r.status, r.n_scored, r.n_flagged) for r in first] == [("k1", "complete", 6, 3), ("k2", "complete", 6, 0)]
    assert store.latest_run("k1") == first[0] and store.run_for_date("k2", day) == first[1]
    assert first[0].summary == {"model_version": "v1"} and first[0].finished_at is not None
    flagged = store.flagged_user_ids(first[0].id)
    assert sorted(snap.external_ids[np.searchsorted(snap.user_ids, flagged)].tolist()) == ["a", "c", "s"]
    top = store.top_scores(first[0].id, 2)
    assert [(t.user, t.score, t.flagged) for t in top] == [("a", 0.9, True), ("s", 0.8, True)]
    assert top[0].details == {"why": 0.25} and top[1].details is None
    run, rows = store.latest_top_scores("k1", 1) or (None, [])
    assert run == first[0] and [r.user for r in rows] == ["a"]
    batches = list(store.iter_scores(first[0].id, batch=4))
    assert [len(b) for b in batches] == [4, 2] and batches[1][1] == ("s", 0.8, True)
    out = tmp_path / "k1.csv"
    exported = store.export_scores("k1", out)
    assert exported is not None and exported[0].id == first[0].id and exported[1] == 6
    lines = out.read_text().splitlines()
    assert lines[0] == "id,score,is_synthetic" and lines[1] == "a,0.9,false" and lines[-1] == "s,0.8,true"

    # a complete run is replaced only when asked; a lost lock writes nothing at all
    with pytest.raises(ValueError, match="exists"):
        store.write_scoring_runs([_run("k1", day, snap, [0.0] * 6)])
    with pytest.raises(JobLockedError):
        store.write_scoring_runs([_run("k1", day + dt.timedelta(days=1), snap, [0.0] * 6)], lock=("job", "someone else"))
    assert store.run_for_date("k1", day + dt.timedelta(days=1)) is None
    replaced = store.write_scoring_runs([_run("k1", day, snap, [0.6] * 6, replace=True)], lock=("job", lease.owner))[0]
    assert replaced.id != first[0].id and replaced.n_flagged == 6 and store.top_scores(first[0].id, 5) == []
    # keep=2: the third day's run prunes the oldest complete run of that kind only
    for k in (1, 2):
        store.write_scoring_runs([_run("k1", day + dt.timedelta(days=k), snap, [0.2] * 6)], keep=2)
    assert store.run_for_date("k1", day) is None and store.run_for_date("k2", day) is not None
    latest = store.latest_run("k1")
    assert latest is not None and latest.run_date == day + dt.timedelta(days=2)
    lease.release()


def test_snapshot_records_when_its_read_started(store: GraphStore) -> None:
    """``read_at``: taken before the snapshot's first query, part of its data version."""
    import datetime as dt

    from graphrec.core.graph import Graph

    _triangle_plus(store)
    before = dt.datetime.now(dt.timezone.utc)
    snap = store.snapshot()
    after = dt.datetime.now(dt.timezone.utc)
    assert snap.read_at is not None and before <= snap.read_at <= after
    version = snap.data_version()
    assert version["read_at"] == snap.read_at.isoformat() and dt.datetime.fromisoformat(version["read_at"]) == snap.read_at
    assert set(version) == {"revision", "fingerprint", "users", "friendships", "read_at"}
    assert Graph.from_snapshot(snap, data_version=False).data == {"revision": snap.revision, "read_at": snap.read_at.isoformat()}
    assert Graph.from_snapshot(snap).data == version
    np.testing.assert_array_equal(Graph.from_snapshot(snap).edge_array(), snap.edge_array())


def test_put_user_creates_then_merges_idempotently(store: GraphStore) -> None:
    from graphrec.errors import ConflictError

    assert store.put_user("p1", attributes={"city": "Oslo"}) is True
    revision = store.revision()
    assert store.put_user("p1", attributes={"city": "Oslo"}) is False and store.revision() == revision  # the same PUT writes nothing
    assert store.put_user("p1", attributes={"city": None, "lang": "nb"}) is False and store.revision() == revision + 1
    assert store.get_user("p1").attributes == {"lang": "nb"}
    with pytest.raises(ConflictError, match="synthetic"):
        store.put_user("p1", is_synthetic=True)
    store.remove_user("p1")
    with pytest.raises(ConflictError, match="deleted"):
        store.put_user("p1", attributes={"city": "Bergen"})
    with pytest.raises(ConflictError, match="already exists"):
        store.add_user("p1")


def test_concurrent_identical_writes_all_succeed(store: GraphStore) -> None:
    """Eight writers adding the same friendship, block, label and user at once (HTTP requests on
    PostgreSQL): none fails on the unique key; exactly one reports the change."""
    from concurrent.futures import ThreadPoolExecutor

    store.add_user("c1")
    store.add_user("c2")
    with ThreadPoolExecutor(8) as pool:
        befriended = list(pool.map(lambda _: store.add_friendship("c1", "c2"), range(8)))
        blocked = list(pool.map(lambda _: store.block("c1", "c2"), range(8)))
        created = list(pool.map(lambda i: store.put_user("c3", attributes={"n": "x"}), range(8)))
        list(pool.map(lambda i: store.set_label("c1", f"l{i % 2}", source="race"), range(8)))
    assert befriended.count(True) == 1 and blocked.count(True) == 1 and created.count(True) == 1
    assert store.are_friends("c1", "c2") and store.labels(source="race")["c1"] in ("l0", "l1")
