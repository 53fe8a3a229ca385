"""Evaluation protocols and baselines of issue 13: hard-negative ranking (HeaRT), seed sweeps,
the gradient-boosted tree baseline of bot detection, and the loaders of the real graphs in the
shared data folder (on fixture files written here)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from graphrec.core.graph import Graph, csr_from_edges
from graphrec.core.metrics import NegativeRankMetrics, mean_std, ranks_against_negatives
from graphrec.core.ops import neighbour_mean
from graphrec.datasets.real import SHARED_DATA_ENV, load_bitcoin_otc, load_github_musae, load_real_graph, shared_data_dir
from graphrec.errors import InputError
from graphrec.tasks.bots.config import BotConfig
from graphrec.tasks.bots.evaluate import evaluate_bots, gradient_boosted_scores, tree_feature_names, tree_features
from graphrec.tasks.bots.inject import honest_graph, inject_bot_region, sample_labels
from graphrec.tasks.linkpred.config import LinkPredConfig
from graphrec.tasks.linkpred.evaluate import evaluate_linkpred, evaluate_seeds, hard_negative_pool, top_nodes
from graphrec.tasks.linkpred.profiles import ProfileMatrix
from graphrec.tasks.linkpred.train import split_edges


def _random_graph(n: int, m: int, seed: int) -> np.ndarray:
    """A connected-ish random graph with some triangles: a ring plus random chords."""
    rng = np.random.default_rng(seed)
    ring = np.stack([np.arange(n), (np.arange(n) + 1) % n], axis=1)
    extra = rng.integers(0, n, size=(m, 2))
    near = (extra[:, 0] + rng.integers(2, 6, size=m)) % n  # local chords close triangles
    extra = np.concatenate([extra, np.stack([extra[:, 0], near], axis=1)])
    e = np.concatenate([ring, extra])
    e = e[e[:, 0] != e[:, 1]]
    return np.unique(np.sort(e, axis=1), axis=0)


# -- hard negatives: the primitives by hand -------------------------------------------------------

def test_ranks_against_negatives_count_ties_half() -> None:
    neg = np.array([2.0, 1.0, 1.0, 0.0])
    # 3 beats all; 1 is below one and ties two: 1 + (1 + 3) / 2 = 3; 0.5 is below three: 4; -1 last: 5.
    assert ranks_against_negatives(np.array([3.0, 1.0, 0.5, -1.0]), neg).tolist() == [1.0, 3.0, 4.0, 5.0]
    # Nothing scored: a positive at -inf among negatives at -inf gets the middle rank, not the top.
    assert ranks_against_negatives(np.array([-np.inf]), np.full(4, -np.inf)).tolist() == [3.0]
    m = NegativeRankMetrics(ks=(1, 3))
    m.add(np.array([3.0, 1.0]), neg)
    m.add(np.array([0.5]), neg)
    r = m.result()
    assert r["pairs"] == 3
    assert r["mrr"] == pytest.approx((1 + 1 / 3 + 1 / 4) / 3)
    assert r["hits@1"] == pytest.approx(1 / 3) and r["hits@3"] == pytest.approx(2 / 3)


def test_hard_negative_pool_merges_round_robin_then_fills() -> None:
    a, b, c, d, e = 10, 11, 12, 13, 14
    lists = [np.array([a, b, c]), np.array([b, d]), np.array([e])]
    assert hard_negative_pool(lists, 4, np.array([0]), np.arange(20)).tolist() == [a, b, e, d]
    fill = np.array([14, 0, 3, 12, 5, 7, 1])  # a fixed random order of nodes
    assert hard_negative_pool(lists, 7, np.array([0, 1, 3]), fill).tolist() == [a, b, e, d, c, 5, 7]
    tie_rank = np.arange(20)[::-1]  # higher node id first on ties
    assert top_nodes(np.array([3, 4, 5, 6]), np.array([1.0, 2.0, 1.0, 1.0]), 3, tie_rank).tolist() == [4, 6, 5]


# -- hard negatives: the protocol, against a brute-force reading of its definition ---------------

def _brute_force_hard(edges: np.ndarray, n: int, seed: int, k: int) -> dict[str, dict[str, float]]:
    """The hard-negative figures of the heuristics, read off the definition with Python loops.

    CN, AA and RA sum over the common neighbours in ascending order (the order the protocol
    accumulates them, so equal scores stay exactly equal); PPR is :mod:`graphrec.core.ops`'s."""
    from graphrec.core.ops import personalized_pagerank, walk_transpose

    train, test = split_edges(edges, 0.1, seed)
    indptr, indices = csr_from_edges(train, n)
    nbrs = [set(indices[indptr[u] : indptr[u + 1]].tolist()) for u in range(n)]
    deg = [len(x) for x in nbrs]
    held: dict[int, set[int]] = {}
    for u, v in test.tolist():
        held.setdefault(u, set()).add(v)
        held.setdefault(v, set()).add(u)
    tie = np.random.default_rng(seed + 1).random(n) * 1e-9
    tie_order = list(np.argsort(-tie, kind="stable"))
    walk = walk_transpose(indptr, indices)

    def pair_sum(u: int, v: int, weight: Callable[[float], float]) -> float:
        total = 0.0
        for w in sorted(nbrs[u] & nbrs[v]):
            total += weight(deg[w])
        return total

    ranks: dict[str, list[float]] = {m: [] for m in ("common_neighbours", "adamic_adar", "resource_allocation", "personalized_pagerank")}
    for u in sorted(held):  # fewer than max_users: every user with a held-out friend
        e = np.zeros(n)
        e[u] = 1
        scores = {
            "common_neighbours": np.array([pair_sum(u, v, lambda d: 1.0) for v in range(n)]),
            "adamic_adar": np.array([pair_sum(u, v, lambda d: 1.0 / np.log(max(d, 2.0))) for v in range(n)]),
            "resource_allocation": np.array([pair_sum(u, v, lambda d: 1.0 / max(d, 1.0)) for v in range(n)]),
            "personalized_pagerank": personalized_pagerank(walk, e, restart=0.5),
        }
        excluded = {u, *nbrs[u], *held[u]}

        def top(values: np.ndarray) -> list[int]:
            cands = [v for v in range(n) if v not in excluded and values[v] > 0]
            return sorted(cands, key=lambda v: (-values[v], tie_order.index(v)))[:k]

        lists = [top(scores["common_neighbours"]), top(scores["resource_allocation"]), top(scores["personalized_pagerank"])]
        pool: list[int] = []
        for i in range(max(map(len, lists), default=0)):
            for lst in lists:
                if i < len(lst) and lst[i] not in pool:
                    pool.append(lst[i])
        pool = pool[:k]
        pool += [v for v in tie_order if v not in excluded and v not in pool][: k - len(pool)]
        for m, s in scores.items():
            for v in held[u]:
                above = sum(s[w] > s[v] for w in pool)
                at = sum(s[w] >= s[v] for w in pool)
                ranks[m].append(1 + (above + at) / 2)
    return {m: {"mrr": float(np.mean([1 / x for x in rs])), "hits@10": float(np.mean([x <= 10 for x in rs]))} for m, rs in ranks.items()}


def test_hard_negative_figures_match_the_definition() -> None:
    n = 60
    edges = _random_graph(n, 90, seed=3)
    report, _ = evaluate_linkpred(edges, n, None, seed=4, include_model=False, hard_negatives=8)
    expected = _brute_force_hard(edges, n, seed=4, k=8)
    for method, figures in expected.items():
        for metric, value in figures.items():
            assert report.hard[method][metric] == pytest.approx(value, rel=1e-9, abs=1e-12), (method, metric)
    assert report.hard["common_neighbours"]["pairs"] == 2 * report.params["test_edges"]


def test_hard_negatives_leave_the_full_ranking_unchanged_and_score_the_model() -> None:
    n = 120
    edges = _random_graph(n, 260, seed=1)
    cfg = LinkPredConfig(seed=0, rounds=1, users_per_round=100, epochs=1, gnn_dim=0, threads=1)
    profiles = ProfileMatrix.from_dense(np.random.default_rng(0).integers(0, 2, size=(n, 5)).astype(np.float32))
    with_hard, _ = evaluate_linkpred(edges, n, profiles, seed=0, config=cfg, hard_negatives=20)
    without, _ = evaluate_linkpred(edges, n, profiles, seed=0, config=cfg, hard_negatives=0)
    assert with_hard.metrics == without.metrics and without.hard == {}
    assert set(with_hard.hard) == {"common_neighbours", "adamic_adar", "resource_allocation", "personalized_pagerank", "model"}
    for m in with_hard.hard.values():
        assert 0 < m["mrr"] <= 1 and 0 <= m["hits@1"] <= m["hits@10"] <= m["hits@20"] <= 1
    assert with_hard.params["hard_negatives"] == 20


# -- seed sweeps ---------------------------------------------------------------------------------

def test_mean_std_by_hand() -> None:
    runs = [{"a": {"x": 1.0}}, {"a": {"x": 2.0}}, {"a": {"x": 6.0}}]
    mean, std = mean_std(runs)
    assert mean == {"a": {"x": 3.0}} and std["a"]["x"] == pytest.approx(np.sqrt(7.0))  # sample std, ddof=1
    assert mean_std(runs[:1])[1] == {"a": {"x": 0.0}}
    with pytest.raises(KeyError):
        mean_std([{"a": {"x": 1.0}}, {"b": {"x": 1.0}}])


def test_seed_sweep_reports_mean_and_std_over_seeds() -> None:
    n = 80
    edges = _random_graph(n, 150, seed=2)
    sweep = evaluate_seeds(edges, n, None, [0, 1, 2], include_model=False, hard_negatives=10)
    d = sweep.as_dict()
    assert d["params"]["seeds"] == [0, 1, 2] and "seed" not in d["params"]
    per_seed = [evaluate_linkpred(edges, n, None, seed=s, include_model=False, hard_negatives=10)[0] for s in (0, 1, 2)]
    for part, attr in (("metrics", "metrics"), ("hard_negatives", "hard")):
        for method, figures in d[part].items():
            for metric, value in figures.items():
                values = [getattr(r, attr)[method][metric] for r in per_seed]
                assert value == pytest.approx(np.mean(values))
                assert d["std"][part][method][metric] == pytest.approx(np.std(values, ddof=1))
    assert [r["params"]["seed"] for r in d["per_seed"]] == [0, 1, 2]
    assert d["per_seed"][1]["metrics"] == per_seed[1].metrics
    one = evaluate_seeds(edges, n, None, [1], include_model=False, hard_negatives=10).as_dict()
    assert set(one) == {"params", "metrics", "seconds", "hard_negatives"}  # a single seed keeps the old keys, no std
    assert one["params"]["seed"] == 1 and one["metrics"] == per_seed[1].metrics


def test_cli_eval_linkpred_seed_sweep(sqlite_url: str, tmp_path: Path) -> None:
    from graphrec.cli import cli
    from graphrec.store.store import GraphStore

    edges = _random_graph(90, 200, seed=5)
    (tmp_path / "edges.csv").write_text("source,target\n" + "".join(f"{a},{b}\n" for a, b in edges.tolist()))
    store = GraphStore(sqlite_url, home=tmp_path / "home")
    store.initialize()
    store.import_edges(tmp_path / "edges.csv")
    env = {"GRAPHREC_DATABASE_URL": sqlite_url, "GRAPHREC_HOME": str(tmp_path / "home")}
    args = ["eval", "linkpred", "--max-users", "30", "--epochs", "1", "--gnn-dim", "0", "--hard-negatives", "10", "--threads", "1"]
    r = CliRunner().invoke(cli, [*args, "--seeds", "0,1", "--format", "json"], env=env, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["params"]["seeds"] == [0, 1]
    assert set(data["hard_negatives"]) == set(data["metrics"]) and "model" in data["std"]["hard_negatives"]
    r = CliRunner().invoke(cli, [*args, "--seeds", "0,1"], env=env, catch_exceptions=False)
    assert r.exit_code == 0 and "±" in r.output and "hard negatives (10 per user" in r.output and "seeds=0,1" in r.output
    r = CliRunner().invoke(cli, [*args, "--seeds", "0,x"], env=env)
    assert r.exit_code == 2 and "comma-separated integers" in r.output


# -- the gradient-boosted tree baseline ----------------------------------------------------------

def test_tree_features_are_profile_structure_and_two_neighbour_means() -> None:
    g = Graph.from_edges(np.array([[0, 1], [1, 2], [2, 3]]), np.arange(8, dtype=np.float32).reshape(4, 2))
    x = tree_features(g)
    assert x.shape == (4, 3 * 5) and len(tree_feature_names(["a", "b"])) == 15
    own = x[:, :5]
    np.testing.assert_allclose(x[:, 5:10], neighbour_mean(g.indptr, g.indices, own))
    np.testing.assert_allclose(x[:, 10:], neighbour_mean(g.indptr, g.indices, x[:, 5:10]))
    np.testing.assert_allclose(x[1, 5:7], [(0 + 4) / 2, (1 + 5) / 2])  # node 1's neighbours are 0 and 2


def test_tree_baseline_beats_chance_on_an_injected_bot_region() -> None:
    from sklearn.metrics import roc_auc_score

    g = inject_bot_region(honest_graph(600, mean_degree=10, n_features=8, seed=0), n_bots=60, attack_edges=3, seed=0)
    labelled = sample_labels(g.is_bot, 0.15, seed=0)
    test = np.setdiff1d(np.arange(g.num_nodes), labelled)
    s = gradient_boosted_scores(tree_features(g.graph, seed=0), labelled, g.is_bot[labelled], seed=0)
    assert roc_auc_score(g.is_bot[test], s[test]) > 0.8
    again = gradient_boosted_scores(tree_features(g.graph, seed=0), labelled, g.is_bot[labelled], seed=0)
    np.testing.assert_array_equal(s, again)  # seeded
    report = evaluate_bots(g.graph, labelled, g.is_bot[labelled], test, g.is_bot[test], BotConfig(folds=2, epochs=15, threads=1))
    assert report.metrics["gradient-boosted trees"]["roc_auc"] == pytest.approx(roc_auc_score(g.is_bot[test], s[test]))
    assert list(report.metrics) == ["model", "features only", "gradient-boosted trees", "label propagation", "personalized pagerank"]


# -- real-data loaders on fixture files ----------------------------------------------------------

def _github(root: Path, *, features: bool = True, label_column: str = "target") -> Path:
    d = root / "github-musae"
    d.mkdir(parents=True)
    (d / "edges.csv").write_text("id_1,id_2\n0,1\n1,2\n2,0\n3,1\n1,0\n")  # 1,0 repeats 0,1
    (d / "target.csv").write_text(f"id,{label_column}\n0,0\n1,1\n2,0\n3,1\n4,0\n")  # user 4 has no edge
    if features:
        (d / "musae_git_features.json").write_text(json.dumps({"0": [7, 9], "1": [9], "2": [9, 5, 7], "3": [5, 11], "4": []}))
    return d


def _otc(root: Path) -> Path:
    d = root / "bitcoin-otc"
    d.mkdir(parents=True)
    (d / "otc_network.csv").write_text("1,2,4,1289241911.72836\n2,1,2,1289241941.5\n3,1,-10,1289243140.3\n2,4,1,1289245277.3\n")
    (d / "otc_gt.csv").write_text("1,+1\n3,-1\n5,-1\n")  # user 5 has no rating
    return d


def test_github_loader_parses_edges_labels_and_top_k_features(tmp_path: Path) -> None:
    _github(tmp_path)
    g = load_github_musae(tmp_path, max_features=2)
    assert g.user_ids.tolist() == [0, 1, 2, 3, 4]
    assert g.edges.tolist() == [[0, 1], [0, 2], [1, 2], [1, 3]]
    assert g.labels is not None and g.labels.tolist() == ["web", "ml", "web", "ml", "web"]
    nodes, positive = g.labelled()
    assert nodes.tolist() == [0, 1, 2, 3, 4] and positive.tolist() == [False, True, False, True, False]
    # Feature 9 appears 3 times, 5 and 7 twice each: keep 9 and 5 (ties: the smaller id).
    assert g.feature_names == ["feature_9", "feature_5"]
    assert g.features.tolist() == [[1, 0], [1, 0], [1, 1], [0, 1], [0, 0]]
    graph = g.to_graph()
    assert graph.num_nodes == 5 and graph.num_edges == 4 and graph.external_id(3) == "3"
    # Without the feature file: no profile columns; the original release's column name works too.
    other = tmp_path / "other"
    _github(other, features=False, label_column="ml_target")
    assert load_github_musae(other).features.shape == (5, 0)


def test_bitcoin_loader_undirected_trust_graph_fraud_labels_and_rating_profile(tmp_path: Path) -> None:
    _otc(tmp_path)
    g = load_bitcoin_otc(tmp_path)
    assert g.user_ids.tolist() == [1, 2, 3, 4, 5]
    assert g.edges.tolist() == [[0, 1], [0, 2], [1, 3]]  # 1-2 rated both ways: one friendship
    assert g.labels is not None and g.labels.tolist() == ["benign", None, "fraud", None, "fraud"] and g.positive_label == "fraud"
    # By default the profile leaves out the ratings a user received (the labels were made from them).
    assert g.feature_names == ["log_ratings_given", "log_ratings_received", "mean_rating_given", "negative_share_given"]
    user3 = dict(zip(g.feature_names, g.features[2].tolist()))
    assert user3 == pytest.approx({"log_ratings_given": np.log1p(1), "log_ratings_received": 0.0, "mean_rating_given": -1.0, "negative_share_given": 1.0})
    full = load_bitcoin_otc(tmp_path, features="ratings")
    user1 = dict(zip(full.feature_names, full.features[0].tolist()))
    assert user1["log_ratings_given"] == pytest.approx(np.log1p(1)) and user1["log_ratings_received"] == pytest.approx(np.log1p(2))
    assert user1["mean_rating_received"] == pytest.approx((2 - 10) / 2 / 10) and user1["negative_share_received"] == pytest.approx(0.5)
    assert load_bitcoin_otc(tmp_path, friendships="positive").edges.tolist() == [[0, 1], [1, 3]]
    assert load_bitcoin_otc(tmp_path, features="none").features.shape == (5, 0)


def test_import_files_read_back_through_the_importers(tmp_path: Path) -> None:
    from graphrec.store.importers import read_edges, read_labels, read_users

    _otc(tmp_path / "data")
    g = load_real_graph("bitcoin-otc", tmp_path / "data")
    paths = g.write_import_files(tmp_path / "out")
    users = read_users(paths["users"])
    assert users.external_ids == ["1", "2", "3", "4", "5"] and users.feature_names == list(g.feature_names)
    np.testing.assert_allclose(users.features, g.features, rtol=1e-5)
    edges = read_edges(paths["edges"])
    assert len(edges.src) == len(g.edges)
    labels = read_labels(paths["labels"])
    assert list(zip(labels.external_ids, labels.labels)) == [("1", "benign"), ("3", "fraud"), ("5", "fraud")]


def test_shared_folder_resolution_and_clear_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _github(tmp_path)
    monkeypatch.setenv(SHARED_DATA_ENV, str(tmp_path))
    assert shared_data_dir() == tmp_path
    assert load_real_graph("github-musae").num_nodes == 5  # found through the environment
    with pytest.raises(InputError, match="no bitcoin-otc folder"):
        load_real_graph("bitcoin-otc")
    with pytest.raises(InputError, match=SHARED_DATA_ENV):
        shared_data_dir(tmp_path / "nowhere")
    monkeypatch.setenv(SHARED_DATA_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(InputError, match="no shared data folder"):
        load_github_musae()
    (tmp_path / "github-musae" / "edges.csv").write_text("id_1,id_2\n0,1\n2,x\n")
    with pytest.raises(InputError, match=r"edges.csv:3: expected an integer"):
        load_github_musae(tmp_path)
    with pytest.raises(ValueError, match="unknown graph"):
        load_real_graph("nope", tmp_path)


def test_csr_of_a_loaded_graph_is_symmetric(tmp_path: Path) -> None:
    _github(tmp_path)
    g = load_github_musae(tmp_path)
    indptr, indices = csr_from_edges(g.edges, g.num_nodes)
    a = np.zeros((g.num_nodes, g.num_nodes))
    a[np.repeat(np.arange(g.num_nodes), np.diff(indptr)), indices] = 1
    np.testing.assert_array_equal(a, a.T)
