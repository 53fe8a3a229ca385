"""Link ranker beyond friends-of-friends: personalized-PageRank features and the PPR merge that
evaluation and serving put the model's candidates into (issue 13)."""

from __future__ import annotations

import numpy as np
import pytest

from graphrec.core.graph import csr_from_edges
from graphrec.core.ops import personalized_pagerank, walk_transpose
from graphrec.tasks.linkpred.evaluate import ppr_slots
from graphrec.tasks.linkpred.features import FEATURE_NAMES, PPR_RESTART, PairFeaturizer, ppr_columns
from graphrec.tasks.linkpred.model import LinkModel


def _chain_with_triangle() -> tuple[np.ndarray, np.ndarray]:
    """0-1, 0-2, 1-2 (a triangle), then a path 2-3-4-5-6 and an isolated node 7. Node 0's only
    friend-of-friend is 3 (via 2); 4, 5, 6 lie 3-5 hops away; 7 is unreachable."""
    edges = np.array([[0, 1], [0, 2], [1, 2], [2, 3], [3, 4], [4, 5], [5, 6]])
    return csr_from_edges(edges, 8)


def test_ppr_columns_are_personalized_pagerank_per_source_set() -> None:
    indptr, indices = _chain_with_triangle()
    walk = walk_transpose(indptr, indices)
    cols = ppr_columns(walk, [np.array([0]), np.array([1, 2]), np.empty(0, dtype=np.int64)], iterations=40)
    e0 = np.eye(8)[0]
    np.testing.assert_allclose(cols[:, 0], personalized_pagerank(walk, e0, restart=PPR_RESTART, iterations=40), rtol=1e-5)  # float32 columns
    np.testing.assert_allclose(cols[:, 1], personalized_pagerank(walk, (np.eye(8)[1] + np.eye(8)[2]) / 2, restart=PPR_RESTART, iterations=40), rtol=1e-5)
    assert not cols[:, 2].any()  # no source (a new user without friends): nothing reached
    assert cols[7, 0] == 0.0 and cols[4, 0] > cols[5, 0] > cols[6, 0] > 0  # decays with distance


def test_ppr_features_rank_the_friends_of_friends_and_are_zero_without_ppr() -> None:
    rng = np.random.default_rng(0)
    e = rng.integers(0, 50, size=(250, 2))
    e = np.unique(np.sort(e[e[:, 0] != e[:, 1]], axis=1), axis=0)
    indptr, indices = csr_from_edges(e, 50)
    feat = PairFeaturizer(indptr, indices)
    ppr = ppr_columns(walk_transpose(indptr, indices), [np.array([4])])[:, 0]
    c = feat.candidates(4, ppr=ppr)
    log_col, pct_col = FEATURE_NAMES.index("ppr_log"), FEATURE_NAMES.index("ppr_pct")
    best = int(np.argmax(ppr[c.nodes]))
    assert c.features[best, log_col] == pytest.approx(0.0) and c.features[best, pct_col] == pytest.approx(0.0)
    assert (c.features[:, log_col] <= 0).all() and (c.features[:, pct_col] >= 0).all()
    order = np.argsort(-ppr[c.nodes])
    assert np.all(np.diff(c.features[order, pct_col]) >= 0)  # the rank fraction follows PPR
    plain = feat.candidates(4)
    assert not plain.features[:, [log_col, pct_col]].any()
    np.testing.assert_array_equal(plain.features[:, :log_col], c.features[:, :log_col])  # other features unchanged


def test_ppr_slots_keep_non_candidates_in_place_and_reorder_candidates() -> None:
    ppr_order = np.array([10, 11, 12, 13, 14, 15])
    # the model's candidates are 11, 13, 15 and it prefers 15, then 11, then 13
    out = ppr_slots(np.array([15, 11, 13]), ppr_order)
    np.testing.assert_array_equal(out, [10, 15, 12, 11, 14, 13])
    np.testing.assert_array_equal(ppr_slots(np.empty(0, dtype=np.int64), ppr_order), ppr_order)


def test_a_user_with_fewer_friends_of_friends_than_k_gets_ppr_ranked_backfill_not_random() -> None:
    """Served order: node 0's one candidate (3) first, then 4, 5, 6 in PPR order (nearest first);
    the user, friends, an excluded (unfriended) node and the unreachable node 7 never appear."""
    indptr, indices = _chain_with_triangle()
    walk = walk_transpose(indptr, indices)
    ppr = ppr_columns(walk, [np.array([0])])[:, 0]
    order = LinkModel.ppr_merge(np.array([3]), ppr, np.array([0, 1, 2]))
    np.testing.assert_array_equal(order, [3, 4, 5, 6])
    assert LinkModel.ppr_merge(np.array([3]), ppr, np.array([0, 1, 2, 5])).tolist() == [3, 4, 6]
    # a candidate PPR does not reach (e.g. an embedding neighbour in another component) is kept
    assert 7 in LinkModel.ppr_merge(np.array([7, 3]), ppr, np.array([0, 1, 2])).tolist()
    # the model's preference among its candidates wins inside their PPR positions
    assert LinkModel.ppr_merge(np.array([5, 3]), ppr, np.array([0, 1, 2])).tolist() == [5, 4, 3, 6]
