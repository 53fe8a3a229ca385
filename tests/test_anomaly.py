"""Anomaly detection: injection, the autoencoders learning, the detector API, persistence, the
CLI and the nightly job writing anomaly scores in the same transaction as bot scores."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.metrics import roc_auc_score
from sqlalchemy import text

from conftest import store_with_models, train_once
from graphrec.cli import cli
from graphrec.core.graph import Graph
from graphrec.jobs.nightly import run_nightly
from graphrec.store.store import GraphStore
from graphrec.tasks.anomaly import AEConfig, FeatureAEDetector, make_detector
from graphrec.tasks.anomaly.config import AnomalyConfig
from graphrec.tasks.anomaly.evaluate import evaluate_injection
from graphrec.tasks.anomaly.inject import community_graph, inject_anomalies
from graphrec.tasks.anomaly.model import AnomalyModel
from graphrec.tasks.anomaly.structure import edge_disagreement, spectral_codes
from graphrec.tasks.anomaly.train import AnomalyTask
from graphrec.tasks.base import train_and_register
from graphrec.tasks.bots.inject import honest_graph, inject_bot_region, load_into_store, sample_labels
from graphrec.tasks.registry import get_task

FAST_AE = {"epochs": 30}


INJECTION = {"n_cliques": 4, "clique_size": 12, "n_contextual": 50, "seed": 3}


@pytest.fixture(scope="module")
def base_graph() -> Graph:
    return community_graph(1500, communities=12, mean_degree=10, n_features=120, seed=3)


@pytest.fixture(scope="module")
def injected(base_graph):
    return inject_anomalies(base_graph, **INJECTION)


def test_injection_plants_cliques_and_far_profiles() -> None:
    g = community_graph(800, communities=8, mean_degree=6, n_features=40, seed=1)
    x = g.features
    inj = inject_anomalies(g, n_cliques=3, clique_size=10, n_contextual=30, k=50, seed=1)
    assert inj.structural.sum() == 30 and inj.contextual.sum() == 30 and not (inj.structural & inj.contextual).any()
    keys = {tuple(e) for e in inj.graph.edge_array().tolist()}
    members = np.flatnonzero(inj.structural)
    # every member has at least 9 friends among the other members (its own clique)
    for m in members.tolist():
        assert sum((min(m, o), max(m, o)) in keys for o in members.tolist() if o != m) >= 9
    swapped = np.flatnonzero(inj.contextual)
    assert not np.array_equal(inj.graph.features[swapped], x[swapped])
    # each swapped profile is some user's original profile, far from the replaced one
    for i in swapped.tolist():
        assert (x == inj.graph.features[i]).all(axis=1).any()
    assert np.array_equal(inj.graph.features[~inj.contextual], x[~inj.contextual])
    with pytest.raises(ValueError, match="cannot inject"):
        inject_anomalies(g, n_cliques=100, clique_size=10, n_contextual=0)


def test_spectral_codes_separate_communities() -> None:
    # two dense communities joined by one edge: intra-community edges agree, the bridge does not
    from graphrec.core.graph import csr_from_edges

    a = [(i, j) for i in range(10) for j in range(i + 1, 10)]
    b = [(i + 10, j + 10) for i in range(10) for j in range(i + 1, 10)]
    edges = np.array(a + b + [(0, 10)])
    indptr, indices = csr_from_edges(edges, 20)
    codes = spectral_codes(indptr, indices, 2, seed=0)
    dis = edge_disagreement(indptr, indices, codes, [2])[2]
    assert dis[0] > 5 * dis[5] and dis[10] > 5 * dis[15]


def test_context_detector_beats_isolation_forest(base_graph) -> None:
    results, _ = evaluate_injection(base_graph, kinds=("context",), threads=1, **INJECTION)
    by = {r.detector: r for r in results}
    assert by["context"].roc_auc >= 0.85
    assert by["context"].roc_auc >= by["iforest"].roc_auc + 0.1
    # both kinds are found: the cliques by the structure view, the swapped profiles by the attributes
    assert by["context"].roc_auc_structural >= 0.75 and by["context"].roc_auc_contextual >= 0.9


@pytest.mark.parametrize("variant,tied", [("vanilla", False), ("denoising", False), ("sparse", False), ("vanilla", True)])
def test_feature_autoencoders_learn_the_normal_manifold(variant: str, tied: bool) -> None:
    # normal rows lie near a 3-d subspace of a 16-d space; anomalies have the same scale but not
    # the structure: a trained autoencoder reconstructs the former far better than an untrained one
    rng = np.random.default_rng(0)
    w = rng.normal(size=(3, 16))
    normal = rng.normal(size=(900, 3)) @ w + 0.05 * rng.normal(size=(900, 16))
    odd = rng.normal(size=(60, 16)) * normal.std(axis=0)
    x = np.concatenate([normal, odd]).astype(np.float32)
    y = np.r_[np.zeros(900), np.ones(60)]
    graph = Graph(np.zeros(x.shape[0] + 1, dtype=np.int64), np.zeros(0, dtype=np.int64), x)
    det = FeatureAEDetector(AEConfig(variant=variant, tied=tied, code=4, epochs=40), seed=0, threads=1).fit(graph)
    untrained = FeatureAEDetector(AEConfig(variant=variant, tied=tied, code=4, epochs=0), seed=0, threads=1).fit(graph)
    auc, base = roc_auc_score(y, det.decision_score_), roc_auc_score(y, untrained.decision_score_)
    assert auc >= 0.95 and auc > base + 0.1
    assert det.history_[-1] < det.history_[0]


@pytest.mark.slow
def test_dominant_learns(injected) -> None:
    graph = injected.graph
    det = make_detector("dominant", seed=0, threads=1, epochs=60).fit(graph)
    assert det.history_[-1] < 0.8 * det.history_[0]
    y = injected.is_anomaly
    assert roc_auc_score(y, det.decision_score_) > 0.6


def test_detector_api_threshold_predict_and_explain(injected) -> None:
    g = injected.graph
    graph = Graph(g.indptr, g.indices, g.features, [f"col{j}" for j in range(g.features.shape[1])])
    det = make_detector("context", contamination=0.1, seed=0, threads=1, **FAST_AE)
    with pytest.raises(RuntimeError, match="not fitted"):
        det.decision_function(graph)
    det.fit(graph)
    assert det.threshold_ is not None and abs(det.labels_.mean() - 0.1) < 0.02
    pred = det.predict(graph)
    assert pred.dtype == np.int8 and np.array_equal(pred, det.labels_)
    top = np.argsort(-det.decision_score_)[:20]
    info = det.explain(top)
    assert all(i["driver"] in ("attributes", "structure") for i in info)
    swapped = [i for i, n in zip(info, top.tolist()) if injected.contextual[n]]
    assert swapped and all(i["driver"] == "attributes" and i["features"][0]["feature"].startswith("col") for i in swapped)
    # the worst-fitting feature of a swapped profile is one the user has and the friends lack (or vice versa)
    f = swapped[0]["features"][0]
    assert abs(f["value"] - f["expected"]) > 0.5
    # same seed, same scores
    again = make_detector("context", contamination=0.1, seed=0, threads=1, **FAST_AE).fit(graph)
    assert np.allclose(again.decision_score_, det.decision_score_)


def test_users_without_friends_are_not_flagged_for_missing_context() -> None:
    g = community_graph(600, communities=6, mean_degree=8, n_features=30, seed=2)
    x = np.concatenate([g.features, g.features[:20]])  # 20 extra users with no friends
    graph = Graph.from_edges(g.edge_array(), x)
    det = make_detector("context", seed=0, threads=1, **FAST_AE).fit(graph)
    assert (det.decision_score_[600:] == 0).all()


def test_bad_input_is_rejected() -> None:
    x = np.ones((4, 2), dtype=np.float32)
    x[2, 1] = np.nan
    with pytest.raises(ValueError, match="node 2 .*not finite"):
        Graph.from_edges(np.array([[0, 1]]), x)
    with pytest.raises(ValueError, match="contamination"):
        make_detector("context", contamination=0.7)
    with pytest.raises(ValueError, match="unknown anomaly detector"):
        make_detector("pca")
    with pytest.raises(ValueError, match="variant"):
        AEConfig(variant="contractive")


# -- store, CLI and the nightly job -----------------------------------------------------------
def _cli(url: str, home: Path, *args: str):
    env = {"GRAPHREC_DATABASE_URL": url, "GRAPHREC_HOME": str(home)}
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


@pytest.fixture(scope="module")
def bot_and_anomaly_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    def train(store: GraphStore) -> None:
        bots = get_task("bots")
        train_and_register(store, bots, bots.config_type(folds=2, epochs=15, threads=1))  # type: ignore[call-arg]
        train_and_register(store, AnomalyTask(), AnomalyConfig(seed=0, threads=1, **FAST_AE))

    return train_once(tmp_path_factory.mktemp("anomaly"), _load_bot_graph, train)


def _bot_graph():
    return inject_bot_region(honest_graph(600, mean_degree=10, n_features=8, seed=0), n_bots=60, attack_edges=3, seed=0)


def _load_bot_graph(store: GraphStore) -> None:
    g = _bot_graph()
    load_into_store(store, g, sample_labels(g.is_bot, 0.15, seed=0))


@pytest.fixture
def job_store(database_url: str, tmp_path: Path, bot_and_anomaly_home: Path) -> GraphStore:
    return store_with_models(database_url, tmp_path, bot_and_anomaly_home, _load_bot_graph)


def _runs(store: GraphStore) -> list[tuple]:
    with store.read() as conn:
        return conn.execute(text("SELECT kind, run_date, status, n_scored FROM scoring_runs ORDER BY kind, id")).all()


def test_nightly_job_writes_bot_and_anomaly_runs_together(job_store: GraphStore, monkeypatch: pytest.MonkeyPatch) -> None:
    from graphrec.store import scores as score_store

    day = dt.date(2026, 11, 5)
    result = run_nightly(job_store, run_date=day, threads=1)
    assert result.runs["anomaly"].users_scored == 660
    assert [(k, s, n) for k, _, s, n in _runs(job_store)] == [("anomaly", "complete", 660), ("bot", "complete", 660)]
    assert run_nightly(job_store, run_date=day).status == "skipped"

    # a failure while writing the anomaly scores rolls the bot run back too
    real = score_store._insert_scores
    calls = {"n": 0}

    def fail_on_second(conn, run_id, user_ids, scores, flagged):  # noqa: ANN001
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("disk full")
        real(conn, run_id, user_ids, scores, flagged)

    monkeypatch.setattr(score_store, "_insert_scores", fail_on_second)
    with pytest.raises(RuntimeError, match="disk full"):
        run_nightly(job_store, run_date=dt.date(2026, 11, 6))
    assert [str(r[1]) for r in _runs(job_store)] == [day.isoformat()] * 2
    monkeypatch.undo()
    assert "anomaly" not in run_nightly(job_store, run_date=dt.date(2026, 11, 6), tasks=["bots"]).runs
    kinds = [(k, str(d)) for k, d, _, _ in _runs(job_store)]
    assert ("bot", "2026-11-06") in kinds and ("anomaly", "2026-11-06") not in kinds


def test_cli_train_list_and_export_anomalies(job_store: GraphStore, database_url: str, tmp_path: Path) -> None:
    home = job_store.settings.home
    r = _cli(database_url, home, "train", "anomaly", "--seed", "1", "--contamination", "0.08", "--format", "json")
    assert r.exit_code == 0, r.output
    trained = json.loads(r.stdout)
    assert trained["detector"] == "context" and 0 < trained["flagged"] <= 0.1 * 660
    r = _cli(database_url, home, "anomalies", "--top", "5", "--format", "json")
    assert r.exit_code == 0, r.output
    live = json.loads(r.stdout)
    assert live["source"].startswith("live") and len(live["anomalies"]) == 5
    first = live["anomalies"][0]
    assert first["flagged"] and first["driver"] in ("attributes", "structure") and "features" in first
    r = _cli(database_url, home, "score-bots", "--run-date", "2026-11-07", "--format", "json")
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["anomalies"]["users_scored"] == 660
    r = _cli(database_url, home, "anomalies", "--top", "3")
    assert r.exit_code == 0 and r.output.startswith("run ")
    scores = [float(line.split()[1]) for line in r.output.strip().splitlines()[2:]]
    assert len(scores) == 3 and scores == sorted(scores, reverse=True)
    out = tmp_path / "anomaly.csv"
    r = _cli(database_url, home, "scores", "export", "--kind", "anomaly", "--output", str(out))
    assert r.exit_code == 0, r.output
    rows = out.read_text().splitlines()
    assert rows[0] == "id,score,is_synthetic" and len(rows) == 661


def test_model_round_trip_and_feature_check(job_store: GraphStore) -> None:
    from graphrec.errors import StoreStateError

    model = AnomalyModel.load(job_store.settings.home)
    graph = Graph.from_snapshot(job_store.snapshot())
    first = model.score_graph(graph)
    again = AnomalyModel.load(job_store.settings.home, model.version)
    second = again.score_graph(graph)
    assert np.array_equal(second.scores, first.scores) and second.details == first.details
    assert np.array_equal(first.flagged, first.scores > model.threshold) and model.threshold == again.threshold
    assert len(first.details) >= max(int(first.flagged.sum()), 100)  # the flagged users, at least the top 100, are explained
    job_store.add_user("new-user", features={"other_column": 1.0}, allow_new_columns=True)
    with pytest.raises(StoreStateError, match="retrain"):
        model.check_compatible(Graph.from_snapshot(job_store.snapshot()).feature_names)


def test_a_malformed_artifact_is_refused(job_store: GraphStore) -> None:
    import json as _json

    from graphrec import artifacts

    model = AnomalyModel.load(job_store.settings.home)
    folder = job_store.settings.home / "models" / "anomaly" / str(model.version)
    manifest = _json.loads((folder / "manifest.json").read_text())
    manifest["feature_names"] = manifest["feature_names"][:-1]  # one column fewer than the network reads
    (folder / "manifest.json").write_text(_json.dumps(manifest))
    with pytest.raises(artifacts.ArtifactError, match="columns"):
        AnomalyModel.load(job_store.settings.home, model.version)


def test_cli_without_model_is_a_clear_error(store: GraphStore, database_url: str) -> None:
    r = _cli(database_url, store.settings.home, "anomalies")
    assert r.exit_code == 4 and "train anomaly" in r.output
