"""Link prediction: graph arithmetic, features, metrics, the learning model, the protocol."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from graphrec import artifacts
from graphrec.core.graph import Graph, csr_from_edges, two_hop
from graphrec.core.metrics import RankingMetrics
from graphrec.datasets import load_ego_facebook
from graphrec.tasks.linkpred.config import LinkPredConfig
from graphrec.tasks.linkpred.evaluate import evaluate_linkpred
from graphrec.tasks.linkpred.features import FEATURE_NAMES, PairFeaturizer
from graphrec.tasks.linkpred.model import LinkModel
from graphrec.tasks.linkpred.profiles import ProfileMatrix
from graphrec.tasks.linkpred.train import LinkPredTask, split_edges


def _random_graph(n: int = 60, m: int = 300, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    e = rng.integers(0, n, size=(m, 2))
    e = e[e[:, 0] != e[:, 1]]
    e = np.unique(np.sort(e, axis=1), axis=0)
    return e


def test_ranking_metrics_by_hand() -> None:
    m = RankingMetrics(ks=(2, 3))
    m.add(np.array([5, 1, 7, 9]), {7, 9})  # hits at positions 2 and 3 (0-based)
    m.add(np.array([4, 2]), {4})
    r = m.result()
    assert r["recall@2"] == pytest.approx((0 + 1) / 2)
    assert r["recall@3"] == pytest.approx((0.5 + 1) / 2)
    assert r["mrr"] == pytest.approx((1 / 3 + 1) / 2)
    with pytest.raises(ValueError):
        m.add(np.array([1]), set())


def test_ranking_metrics_from_scores_by_hand() -> None:
    m = RankingMetrics(ks=(1, 3), average="pairwise")
    # item 0 (the user) is excluded: ranking 3, 1, 2, 4 against relevant {2, 4}
    m.add_scores(np.array([1.0, 0.5, 0.4, 0.9, 0.1]), np.array([2, 4]), exclude=0)
    # a tie with the best relevant item counts in the user's favour: rank 1 + #(scores above 0.7)
    m.add_scores(np.array([0.9, 0.7, 0.7, 0.2, 0.1]), np.array([2]))
    r = m.result()
    assert r["recall@1"] == 0.0
    assert r["recall@3"] == pytest.approx((0.5 + 1) / 2)
    assert r["mrr"] == pytest.approx((1 / 3 + 1 / 2) / 2) and r["users"] == 2
    with pytest.warns(RuntimeWarning):  # numpy's mean of no users
        assert np.isnan(RankingMetrics(ks=(1,), average="pairwise").result()["mrr"])
    assert RankingMetrics(ks=(1,)).result()["mrr"] == 0.0
    with pytest.raises(ValueError, match="average"):
        RankingMetrics(average="median")


def test_two_hop_scores_match_sparse_algebra() -> None:
    edges = _random_graph()
    n = 60
    indptr, indices = csr_from_edges(edges, n)
    a = sp.csr_matrix((np.ones(indices.size), indices, indptr), shape=(n, n))
    deg = np.asarray(a.sum(1)).ravel()
    cn = (a @ a).toarray()
    ra = (a @ sp.diags(1 / np.maximum(deg, 1)) @ a).toarray()
    aa = (a @ sp.diags(1 / np.log(np.maximum(deg, 2))) @ a).toarray()
    for u in range(n):
        hop = two_hop(indptr, indices, u)
        friends = set(a[u].indices)
        expected = {v for v in np.flatnonzero(cn[u]) if v != u and v not in friends}
        assert set(hop.candidates.tolist()) == expected
        np.testing.assert_allclose(hop.cn, cn[u, hop.candidates])
        np.testing.assert_allclose(hop.ra, ra[u, hop.candidates])
        np.testing.assert_allclose(hop.aa, aa[u, hop.candidates])


def test_pair_features_match_definitions() -> None:
    edges = _random_graph()
    n = 60
    indptr, indices = csr_from_edges(edges, n)
    a = sp.csr_matrix((np.ones(indices.size), indices, indptr), shape=(n, n))
    x = (np.random.default_rng(0).random((n, 12)) < 0.3).astype(np.float32)
    feat = PairFeaturizer(indptr, indices, ProfileMatrix.from_dense(x))
    cn = (a @ a).toarray()
    w = np.random.default_rng(1).standard_normal((12, 3))
    for u in (0, 7, 33):
        c = feat.candidates(u, shared_weights=w)
        f = c.features
        np.testing.assert_allclose(np.expm1(f[:, FEATURE_NAMES.index("cn")]), cn[u, c.nodes], rtol=1e-5)
        cos = (x[c.nodes] @ x[u]) / np.maximum(np.linalg.norm(x[c.nodes], axis=1) * np.linalg.norm(x[u]), 1e-12)
        np.testing.assert_allclose(f[:, FEATURE_NAMES.index("cosine")], cos, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(c.shared, (x[c.nodes] * x[u]) @ w, rtol=1e-5, atol=1e-6)
        assert f[:, FEATURE_NAMES.index("ra_rel")].max() == pytest.approx(1.0)


def test_split_is_seeded_and_disjoint() -> None:
    edges = _random_graph()
    a1, b1 = split_edges(edges, 0.1, 5)
    a2, b2 = split_edges(edges, 0.1, 5)
    np.testing.assert_array_equal(b1, b2)
    assert len(b1) == round(0.1 * len(edges)) and len(a1) + len(b1) == len(edges)
    assert not ({tuple(e) for e in a1.tolist()} & {tuple(e) for e in b1.tolist()})


def test_grouped_listwise_loss_equals_the_per_user_loss() -> None:
    """The segment-reduced loss of many lists = the mean of the per-list ListNet losses, value and
    gradient; an integer importance weight w counts a row w times."""
    import torch

    from graphrec.nn.link_ranker import grouped_listwise_loss, listwise_loss

    rng = np.random.default_rng(0)
    sizes = rng.integers(1, 40, size=25)
    group = torch.from_numpy(np.repeat(np.arange(sizes.size), sizes))
    positive = rng.random(int(sizes.sum())) < 0.2
    positive[np.cumsum(sizes) - sizes] = True  # every list has a positive
    scores = torch.from_numpy(rng.normal(0, 3, int(sizes.sum())) + 50.0).requires_grad_(True)  # large: needs the max shift
    pos = torch.from_numpy(positive)
    loss = grouped_listwise_loss(scores, pos, group, sizes.size)
    loss.backward()
    grad = scores.grad.clone()
    scores.grad = None
    expected = torch.stack([listwise_loss(scores[group == g], pos[group == g]) for g in range(sizes.size)]).mean()
    expected.backward()
    assert float(loss.detach()) == pytest.approx(float(expected.detach()), rel=1e-10)
    np.testing.assert_allclose(grad.numpy(), scores.grad.numpy(), rtol=1e-8, atol=1e-12)

    counts = np.where(positive, 1, rng.integers(1, 4, size=positive.size))  # replicate negatives
    weighted = grouped_listwise_loss(scores, pos, group, sizes.size, torch.from_numpy(np.log(counts)))
    rep = torch.from_numpy(np.repeat(np.arange(positive.size), counts))
    replicated = grouped_listwise_loss(scores[rep], pos[rep], group[rep], sizes.size)
    assert float(weighted.detach()) == pytest.approx(float(replicated.detach()), rel=1e-10)


def _lists(seed: int = 0):
    from graphrec.tasks.linkpred.train import TrainingLists

    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 300, size=200)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    total = int(offsets[-1])
    positive = rng.random(total) < 0.05
    positive[offsets[:-1]] = True
    hard = np.zeros(total, dtype=bool)
    for g in range(sizes.size):  # the first up-to-8 negatives of each list count as hard
        neg = np.flatnonzero(~positive[offsets[g] : offsets[g + 1]])[:8] + offsets[g]
        hard[neg] = True
    return TrainingLists(round=np.zeros(sizes.size, dtype=np.int64), user=np.arange(sizes.size), offsets=offsets,
                         nodes=np.arange(total), features=np.zeros((total, 1), dtype=np.float32), positive=positive, hard=hard)


def test_negative_subsampling_keeps_positives_and_hard_negatives_and_weights_the_rest() -> None:
    from graphrec.tasks.linkpred.train import sample_rows

    lists = _lists()
    group = lists.group_of_row
    rows, logw = sample_rows(lists, 40, np.random.default_rng(1))
    assert np.all(np.diff(rows) > 0)  # in group order
    kept = np.zeros(lists.positive.size, dtype=bool)
    kept[rows] = True
    assert kept[lists.positive].all() and kept[lists.hard].all()
    always = (lists.positive | lists.hard)[rows]
    assert np.all(logw[always] == 0) and np.all(logw[~always] >= 0)  # -log q, q = 1 where a list is short
    # about 40 negatives per list that has more; all of them where it has fewer
    negatives = np.bincount(group[rows][~lists.positive[rows]], minlength=lists.num_groups)
    available = np.bincount(group[~lists.positive], minlength=lists.num_groups)
    big = available >= 100
    assert abs(negatives[big].mean() - 40) < 2.0
    np.testing.assert_array_equal(negatives[available <= 40], available[available <= 40])
    # the weights make the kept easy negatives count as all of them, in expectation
    easy = ~(lists.positive | lists.hard)
    estimate = np.bincount(group[rows], weights=np.exp(logw) * easy[rows], minlength=lists.num_groups)
    truth = np.bincount(group[easy], minlength=lists.num_groups)
    assert abs(estimate[big].sum() / truth[big].sum() - 1) < 0.05  # ~1.5% standard error
    again, _ = sample_rows(lists, 40, np.random.default_rng(1))
    np.testing.assert_array_equal(rows, again)
    everything, w0 = sample_rows(lists, 0, np.random.default_rng(1))
    np.testing.assert_array_equal(everything, np.arange(lists.positive.size))
    np.testing.assert_array_equal(w0, 0)


def test_batch_shared_rows_equal_the_per_user_rows() -> None:
    """One vectorised gather for a batch of lists gives each list's x_u ⊙ x_v rows."""
    from graphrec.nn.sparse import RowSparse
    from graphrec.tasks.linkpred.train import _batch_shared_rows, _shared_rows

    rng = np.random.default_rng(4)
    x = (rng.random((50, 15)) < 0.3).astype(np.float32) * rng.integers(1, 4, size=(50, 15)).astype(np.float32)
    prof = ProfileMatrix.from_dense(x)
    users = np.array([3, 10, 41])
    lists = [rng.choice(50, size=k, replace=False) for k in (7, 0, 12)]
    group = np.repeat(np.arange(3), [len(c) for c in lists])
    batch = _batch_shared_rows(prof, users, group, np.concatenate(lists))
    expected = RowSparse.concat([_shared_rows(prof, int(u), c) for u, c in zip(users, lists)])
    np.testing.assert_array_equal(batch.to_dense(), expected.to_dense())
    np.testing.assert_array_equal(batch.to_dense(), x[np.concatenate(lists)] * x[users][group])


def test_gnn_inputs_are_the_profiles_and_the_log_degree() -> None:
    from graphrec.tasks.linkpred.train import _node_inputs

    edges = _random_graph()
    indptr, _ = csr_from_edges(edges, 60)
    x = (np.random.default_rng(2).random((60, 9)) < 0.3).astype(np.float32) * 2.0
    x[5] = 0.0
    dense = _node_inputs(ProfileMatrix.from_dense(x), indptr).to_dense()
    np.testing.assert_array_equal(dense[:, :9], x)
    np.testing.assert_allclose(dense[:, 9], np.log1p(np.diff(indptr)) / 5.0, rtol=1e-6)


@pytest.fixture(scope="module")
def ego():
    return load_ego_facebook()


@pytest.mark.slow
def test_model_learns_and_beats_every_heuristic_on_ego_facebook(ego) -> None:
    """A small, fast configuration already ranks held-out friends better than CN/AA/RA/PPR."""
    cfg = LinkPredConfig(seed=0, rounds=1, users_per_round=600, epochs=3, gnn_dim=0)
    report, result = evaluate_linkpred(ego.edges, ego.user_ids.size, ProfileMatrix.from_dense(ego.features), seed=0, max_users=300, config=cfg)
    model = report.metrics["model"]["recall@20"]
    best_name, best = report.best_baseline("recall@20")
    assert model > best, (model, best_name, best)
    assert result is not None and result.history[-1] < result.history[0]  # the loss went down


def test_numpy_scorer_equals_the_torch_module() -> None:
    """Serving (numpy) computes exactly what the trained torch module computes."""
    import torch

    from graphrec.tasks.linkpred.scorer import RankerWeights
    from graphrec.tasks.linkpred.train import _norm_adj, _node_inputs, _shared_rows
    from graphrec.nn.link_ranker import LinkRanker

    edges = _random_graph(n=80, m=500, seed=5)
    n = 80
    indptr, indices = csr_from_edges(edges, n)
    x = (np.random.default_rng(2).random((n, 10)) < 0.3).astype(np.float32)
    prof = ProfileMatrix.from_dense(x)
    torch.manual_seed(0)
    model = LinkRanker(len(FEATURE_NAMES), 10, shared_rank=4, hidden=16, gnn_dim=8)
    torch.nn.init.normal_(model.shared.weight)
    model.eval()
    feat = PairFeaturizer(indptr, indices, prof)
    mean = np.random.default_rng(3).random(len(FEATURE_NAMES)).astype(np.float32)
    std = 1 + np.random.default_rng(4).random(len(FEATURE_NAMES)).astype(np.float32)
    with torch.no_grad():
        h = model.embed(_node_inputs(prof, indptr), _norm_adj(indptr, indices, n))
        weights = RankerWeights(
            mean=mean,
            std=std,
            shared=model.shared.weight.numpy().T.copy(),
            layers=[(m.weight.numpy().copy(), m.bias.numpy().copy()) for m in model.mlp if isinstance(m, torch.nn.Linear)],
            embeddings=h.numpy(),
        )
        for u in range(0, n, 7):
            c = feat.candidates(u, shared_weights=weights.shared)
            if c.nodes.size == 0:
                continue
            pair = torch.from_numpy(((c.features - mean) / std).astype(np.float32))
            expected = model(pair, _shared_rows(prof, u, c.nodes), h[u], h[torch.from_numpy(c.nodes)]).numpy()
            np.testing.assert_allclose(weights.score(c, h[u].numpy()), expected, rtol=1e-4, atol=1e-5)


def test_extra_candidates_do_not_change_friend_of_friend_features() -> None:
    edges = _random_graph()
    indptr, indices = csr_from_edges(edges, 60)
    feat = PairFeaturizer(indptr, indices)
    base = feat.candidates(3)
    far = np.setdiff1d(np.arange(60), np.concatenate([base.nodes, feat.neighbors(3), [3]]))
    more = feat.candidates(3, extra=far[:5])
    assert set(more.nodes.tolist()) == set(base.nodes.tolist()) | set(far[:5].tolist())
    rows = {v: i for i, v in enumerate(more.nodes.tolist())}
    np.testing.assert_allclose(more.features[[rows[v] for v in base.nodes.tolist()]], base.features)


def _community_graph(n: int = 120, groups: int = 4, d: int = 10, seed: int = 0) -> Graph:
    """Dense communities with binary profiles that mark the community: plenty of triangles."""
    rng = np.random.default_rng(seed)
    group = np.arange(n) % groups
    pairs = [(u, v) for u in range(n) for v in range(u + 1, n) if rng.random() < (0.25 if group[u] == group[v] else 0.01)]
    x = ((rng.random((n, d)) < 0.1) | (np.eye(groups, d, dtype=bool)[group] & (rng.random((n, 1)) < 0.8))).astype(np.float32)
    return Graph.from_edges(np.array(pairs), x, [f"f{j}" for j in range(d)])


def test_fitted_model_round_trips_through_its_artifact(tmp_path: Path) -> None:
    """fit -> to_artifact -> save -> LinkModel.load gives the same ids, graph, profiles, ranker
    and index, and the same scores; a load validates the parts against each other."""
    graph = _community_graph()
    model = LinkPredTask().fit(graph, LinkPredConfig(seed=0, rounds=1, users_per_round=100, epochs=2, hidden=16, gnn_dim=4))
    assert model.ids == [str(i) for i in range(graph.num_nodes)] and model.profile_dim == 10 and model.index is not None
    content = model.to_artifact()
    assert content.manifest["pair_features"] == list(FEATURE_NAMES) and content.manifest["profile_dim"] == 10

    def save(arrays: dict[str, np.ndarray], manifest: dict[str, object]) -> artifacts.Artifact:
        version = artifacts.new_version()
        write = content.write_files
        assert write is not None
        return artifacts.save(tmp_path, "linkpred", arrays, {"data": {"revision": 0}, "feature_names": graph.feature_names, **manifest},
                              version=version, extra=lambda folder: write(folder, version))

    art = save(content.arrays, content.manifest)
    assert sorted(p.name for p in art.path.iterdir()) == ["arrays.safetensors", "embeddings.faiss", "ids.json", "manifest.json"]
    loaded = LinkModel.load(tmp_path)
    assert loaded.version == art.version and loaded.ids == model.ids and loaded.feature_names == graph.feature_names
    np.testing.assert_array_equal(loaded.indices, model.indices)
    assert loaded.index is not None and loaded.index.size == graph.num_nodes
    friends = loaded.neighbors(0)
    for m in (model, loaded):
        c = m.candidates(0, friends=friends)
        assert c.nodes.size > 0
    c0, c1 = model.candidates(0, friends=friends), loaded.candidates(0, friends=friends)
    np.testing.assert_array_equal(model.score(c0, model.user_embedding(0, friends)), loaded.score(c1, loaded.user_embedding(0, friends)))

    wrong = dict(content.manifest, pair_features=["cn"])
    save(content.arrays, wrong)
    with pytest.raises(artifacts.ArtifactError, match="other pair features"):
        LinkModel.load(tmp_path)
    save(content.arrays, dict(content.manifest, profile_dim=3))
    with pytest.raises(artifacts.ArtifactError, match="profile"):
        LinkModel.load(tmp_path)
    arrays = dict(content.arrays)
    arrays["ranker.embeddings"] = arrays["ranker.embeddings"][:-1]
    save(arrays, content.manifest)
    with pytest.raises(artifacts.ArtifactError, match="embeddings"):
        LinkModel.load(tmp_path)


def test_a_graph_without_training_signal_is_refused() -> None:
    graph = Graph.from_edges(np.array([[0, 1], [2, 3]]), np.zeros((4, 2), dtype=np.float32))
    with pytest.raises(ValueError, match="no training signal"):
        LinkPredTask().fit(graph, LinkPredConfig(rounds=1, epochs=1))
