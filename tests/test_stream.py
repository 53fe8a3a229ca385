"""Streamed reads (graphrec.store.stream): chunks of at most ``chunk_rows`` rows that together are
exactly the snapshot, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import write
from graphrec.store.store import GraphStore


def _graph(store: GraphStore, tmp_path: Path, n: int = 60, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    rows = ["id,a,b"] + [f"{i},{rng.integers(0, 3)},{rng.random():.3f}" for i in range(n)]
    store.import_users(write(tmp_path / "users.csv", "\n".join(rows) + "\n"))
    pairs = {tuple(sorted(map(int, rng.choice(n, 2, replace=False)))) for _ in range(4 * n)}
    store.import_edges(write(tmp_path / "edges.txt", "\n".join(f"{a} {b}" for a, b in sorted(pairs)) + "\n"))


@pytest.mark.parametrize("chunk", [1, 7, 10_000])
def test_chunks_together_are_the_snapshot(store: GraphStore, tmp_path: Path, chunk: int) -> None:
    _graph(store, tmp_path)
    store.remove_user("3")  # a deleted user and its friendships are left out, as in the snapshot
    snap = store.snapshot()
    with store.stream() as graph:
        assert graph.revision == snap.revision and graph.feature_names == snap.feature_names
        users = list(graph.users(chunk_rows=chunk))
        edges = list(graph.friendships(chunk_rows=chunk))
    assert all(len(c.user_ids) <= chunk for c in users) and all(len(c.user_lo) <= chunk for c in edges)
    ids = np.concatenate([c.user_ids for c in users])
    assert np.array_equal(ids, snap.user_ids)
    assert list(np.concatenate([c.external_ids for c in users])) == list(snap.external_ids)
    assert np.array_equal(np.concatenate([c.features for c in users]), snap.features)
    lo = np.concatenate([c.user_lo for c in edges])
    hi = np.concatenate([c.user_hi for c in edges])
    assert np.all(lo < hi) and np.all(np.diff(lo * (hi.max() + 1) + hi) > 0)  # key order, no duplicates
    src, dst = np.searchsorted(snap.user_ids, lo), np.searchsorted(snap.user_ids, hi)
    got = {(int(a), int(b)) for a, b in zip(src, dst)}
    want = {(i, int(j)) for i in range(len(snap.user_ids)) for j in snap.indices[snap.indptr[i]:snap.indptr[i + 1]] if i < j}
    assert got == want and len(lo) == len(want)


def test_a_stream_is_one_consistent_snapshot(store: GraphStore, tmp_path: Path) -> None:
    """Writes committed while a stream is read are not in it (one read transaction)."""
    _graph(store, tmp_path, n=30)
    with store.stream() as graph:
        chunks = graph.friendships(chunk_rows=5)
        first = next(chunks)
        other = GraphStore(store.settings.database_url, home=store.settings.home)
        other.add_user("late")
        other.add_friendship("late", "0")
        rest = list(chunks)
        users = np.concatenate([c.external_ids for c in graph.users(chunk_rows=4)])
    assert "late" not in set(users)
    assert len(first.user_lo) + sum(len(c.user_lo) for c in rest) == store.snapshot().indices.size // 2 - 1


def test_chunk_rows_must_be_positive(store: GraphStore) -> None:
    with store.stream() as graph, pytest.raises(ValueError, match="chunk_rows"):
        next(graph.users(chunk_rows=0))
