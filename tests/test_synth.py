"""Synthetic users: generation and wiring, one-transaction writes, flags everywhere, purge, the
CLI on SQLite and PostgreSQL, and bot-training augmentation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from sqlalchemy import text

from graphrec.cli import cli
from graphrec.core.graph import Graph, csr_from_edges
from graphrec.errors import InputError, StoreStateError
from graphrec.store.importers import EdgeBatch, UserBatch
from graphrec.store.store import GraphStore
from graphrec.tasks.bots.inject import honest_graph, inject_bot_region, sample_labels
from graphrec.tasks.synth.config import SynthConfig
from graphrec.tasks.synth.evaluate import evaluate_from_store, realism
from graphrec.tasks.synth.model import SynthModel
from graphrec.tasks.synth.synthesize import synthesize
from graphrec.tasks.synth.wiring import wire_synthetic, with_synthetic


def _load_real(store: GraphStore, n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    g = honest_graph(n, mean_degree=8, n_features=12, seed=seed)
    edges, feats = g.edge_array(), g.features
    ids = [str(i) for i in range(n)]
    store.load_users(UserBatch("test", ids, [f"f{j}" for j in range(feats.shape[1])], feats, [{} for _ in ids], [], None))
    store.load_edges(EdgeBatch("test", ids, edges[:, 0].copy(), edges[:, 1].copy(), int(edges.shape[0])), create_users=False)
    return edges, feats


def _counts(store: GraphStore) -> tuple[int, int]:
    with store.read() as conn:
        users = int(conn.execute(text("SELECT COUNT(*) FROM users WHERE is_synthetic = :t"), {"t": True}).scalar_one())
        edges = int(conn.execute(text("SELECT COUNT(*) FROM friendships")).scalar_one())
    return users, edges


def test_wiring_anchors_on_similar_profiles_and_draws_real_degrees() -> None:
    graph = honest_graph(500, mean_degree=8, n_features=12, seed=1)
    edges, feats, indptr = graph.edge_array(), graph.features, graph.indptr
    rng = np.random.default_rng(0)
    syn = feats[rng.choice(500, 60)]
    pairs = wire_synthetic(graph, syn, seed=0)
    assert pairs[:, 1].max() < 500 and set(np.unique(pairs[:, 0])) == set(range(60))
    deg = np.bincount(pairs[:, 0], minlength=60)
    real_deg = np.diff(indptr)
    assert deg.min() >= 1 and deg.max() <= real_deg.max()
    # first friend of each synthetic user: its template, one of the 32 most similar real profiles
    # (cosine) of about its degree; most further friends are the template's friends
    unit = feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-9)
    s_unit = syn / np.maximum(np.linalg.norm(syn, axis=1, keepdims=True), 1e-9)
    first = np.array([pairs[pairs[:, 0] == s][0, 1] for s in range(60)])
    sims = s_unit @ unit.T
    rank = (sims > (s_unit * unit[first]).sum(axis=1, keepdims=True) + 1e-6).sum(axis=1)
    assert np.mean(rank < 32) > 0.9
    friends_of_template = [np.isin(pairs[pairs[:, 0] == s][1:, 1], graph.indices[indptr[f]: indptr[f + 1]]) for s, f in enumerate(first)]
    assert np.concatenate(friends_of_template).mean() > 0.8
    # copying a neighbourhood gives synthetic users clustering; random wiring of the same degrees gives ~0
    wired = with_synthetic(graph, syn, pairs)
    assert wired.num_nodes == 560 and wired.num_edges == len(edges) + len(pairs) and wired.is_synthetic[500:].all()
    r = realism(wired)
    rand = np.stack([pairs[:, 0] + 500, rng.integers(0, 500, size=len(pairs))], axis=1)
    ip2, ix2 = csr_from_edges(np.unique(np.sort(np.concatenate([edges, rand]), axis=1), axis=0), 560)
    random_graph = Graph(ip2, ix2, wired.features, is_synthetic=wired.is_synthetic)
    assert r.clustering_synthetic > 3 * realism(random_graph).clustering_synthetic
    assert r.degree_ks < 0.3
    # synthetic users are never friends of each other: every triangle they are in is closed through real users
    assert r.triangles_through_real == 1.0
    clique = np.array([(a, b) for a in range(500, 506) for b in range(a + 1, 506)])
    ip3, ix3 = csr_from_edges(np.unique(np.concatenate([wired.edge_array(), clique]), axis=0), 560)
    among = realism(Graph(ip3, ix3, wired.features, is_synthetic=wired.is_synthetic))
    assert 0.0 < among.triangles_through_real < 1.0


def test_synth_writes_flagged_users_and_purge_removes_them(store: GraphStore, tmp_path: Path) -> None:
    edges, _ = _load_real(store)
    rev = store.revision()
    report = synthesize(store, SynthConfig(model="vae", n=25, seed=0, epochs=3, threads=1))
    assert report.users_created == 25 and report.friendships_added > 25 and store.revision() > rev
    users, total_edges = _counts(store)
    assert users == 25 and total_edges == len(edges) + report.friendships_added
    snap = store.snapshot()
    syn = np.flatnonzero(snap.is_synthetic)
    assert syn.size == 25
    # synthetic users are wired to real users only
    for i in syn.tolist():
        assert not snap.is_synthetic[snap.neighbors(i)].any()
    assert store.snapshot(include_synthetic=False).num_nodes == 400
    # never candidates for real users
    ids = [str(snap.external_ids[i]) for i in syn[:5]]
    assert set(ids) <= store.excluded_candidates(ids + ["0"])
    # visible in every export
    store.export("users", tmp_path / "u.csv")
    store.export("friendships", tmp_path / "f.csv")
    rows = (tmp_path / "u.csv").read_text().splitlines()
    assert sum(",true," in r or r.split(",")[1] == "true" for r in rows[1:]) == 25
    frows = (tmp_path / "f.csv").read_text().splitlines()
    assert frows[0] == "source,target,synthetic" and sum(r.endswith(",true") for r in frows) == report.friendships_added
    # the run is recorded for reproducibility, with the realism of the batch written
    with store.read() as conn:
        row = conn.execute(text("SELECT seed, params, metrics, version FROM model_runs WHERE kind = 'synth'")).one()
    params, metrics = (json.loads(v) if isinstance(v, str) else v for v in row[1:3])
    assert row[0] == 0 and params["model"] == "vae" and params["n"] == 25
    assert metrics["realism"] == report.realism and metrics["batch"] == report.batch and set(metrics["final_losses"])
    # the generator is a saved, loadable artifact (no pickle) that draws the same profiles again
    loaded = SynthModel.load(store.settings.home)
    assert loaded.version == row[3] and loaded.feature_names == [f"f{j}" for j in range(12)]
    real = store.snapshot(include_synthetic=False)
    again = loaded.draw(Graph.from_snapshot(real, data_version=False), n=25, seed=0)
    written = snap.features[syn]
    np.testing.assert_array_equal(again.profiles, written)
    assert {**again.realism.as_dict(), "c2st_auc": report.realism["c2st_auc"]} == report.realism
    assert 0.0 <= report.realism["c2st_auc"] <= 1.0  # profile two-sample AUC against the held-out real users
    counts = store.purge_synthetic()
    assert counts["users"] == 25 and counts["friendships"] == report.friendships_added
    assert _counts(store) == (0, len(edges))


def test_synth_is_all_or_nothing(store: GraphStore, monkeypatch: pytest.MonkeyPatch) -> None:
    from graphrec.store import loader

    edges, _ = _load_real(store)

    def boom(*a, **k):  # noqa: ANN002, ANN003
        raise RuntimeError("connection lost")

    monkeypatch.setattr(loader, "write_edges", boom)
    with pytest.raises(RuntimeError):
        synthesize(store, SynthConfig(model="gan", n=10, seed=0, epochs=2, threads=1))
    assert _counts(store) == (0, len(edges))
    _assert_no_synth_run(store)


def _assert_no_synth_run(store: GraphStore) -> None:
    """No model_runs row for a batch that was not written, and no served generator."""
    from graphrec import artifacts

    with store.read() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM model_runs WHERE kind = 'synth'")).scalar_one() == 0
    assert artifacts.latest_version(store.settings.home, "synth") is None


def test_synth_run_is_recorded_with_its_users_or_not_at_all(store: GraphStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch whose users cannot be written (an id already taken) records no run; a batch that
    lands is recorded in the same transaction and its generator served."""
    from graphrec import artifacts
    from graphrec.tasks.synth import synthesize as synth_module

    edges, _ = _load_real(store)
    store.add_user("synthetic-fixed-3", is_synthetic=True)
    monkeypatch.setattr(synth_module, "new_batch_id", lambda: "fixed")
    with pytest.raises(InputError, match="already exists"):
        synthesize(store, SynthConfig(model="vae", n=5, seed=0, epochs=2, threads=1))
    assert _counts(store) == (1, len(edges))
    _assert_no_synth_run(store)
    monkeypatch.setattr(synth_module, "new_batch_id", lambda: "other")
    report = synthesize(store, SynthConfig(model="vae", n=5, seed=0, epochs=2, threads=1))
    with store.read() as conn:
        rows = conn.execute(text("SELECT version, data_revision FROM model_runs WHERE kind = 'synth'")).all()
    assert len(rows) == 1 and rows[0][0] == artifacts.latest_version(store.settings.home, "synth")
    assert report.batch == "other" and report.users_created == 5 and rows[0][1] < report.revision


def test_synth_label_needs_labelled_users(store: GraphStore) -> None:
    _load_real(store)
    with pytest.raises(StoreStateError, match="fewer than 2"):
        synthesize(store, SynthConfig(n=5, label="bot", epochs=2, threads=1))
    with pytest.raises(InputError, match="--n must be at least 1"):
        SynthConfig(n=0)
    with pytest.raises(InputError, match="unknown synthetic-profile model 'flow'"):
        SynthConfig(model="flow")
    for i in range(6):
        store.set_label(str(i), "bot")
    report = synthesize(store, SynthConfig(n=8, label="bot", seed=1, epochs=3, threads=1))
    labels = store.labels(source="synthetic")
    assert len(labels) == 8 and set(labels.values()) == {"bot"} and report.label == "bot"
    assert SynthModel.load(store.settings.home).class_names == ["(unlabelled)", "bot"]


def test_synth_needs_a_real_graph(store: GraphStore) -> None:
    store.add_friendships([("a", "b")], create_users=True)
    with pytest.raises(StoreStateError, match="at least 10 real users with friendships"):
        synthesize(store, SynthConfig(n=3, epochs=1))


def _cli(url: str, home: Path, *args: str):
    env = {"GRAPHREC_DATABASE_URL": url, "GRAPHREC_HOME": str(home)}
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def test_cli_synth_and_purge(store: GraphStore, database_url: str) -> None:
    _load_real(store)
    home = store.settings.home
    r = _cli(database_url, home, "synth", "--model", "gan", "--n", "12", "--epochs", "3", "--format", "json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["users_created"] == 12 and out["model"] == "gan" and out["example_ids"][0].startswith("synthetic-")
    assert {"degree_ks", "clustering_synthetic", "clustering_real", "triangles_through_real", "c2st_auc"} <= set(out["realism"])
    assert set(out["privacy"]) >= {"exact_copy_rate", "holdout_exact_copy_rate", "dcr_p_value_smaller", "membership_auc"}
    r = _cli(database_url, home, "synth")
    assert r.exit_code == 2 and "--n" in r.output
    r = _cli(database_url, home, "synth", "purge", "--yes", "--format", "json")
    assert r.exit_code == 0 and json.loads(r.stdout)["users"] == 12
    assert _counts(store)[0] == 0


def test_realism_of_the_synthetic_users_in_the_store(store: GraphStore, database_url: str) -> None:
    edges, _ = _load_real(store, n=200)
    with pytest.raises(StoreStateError, match="no synthetic users"):
        evaluate_from_store(store)
    report = synthesize(store, SynthConfig(model="gan", n=10, epochs=2))
    # one batch and nothing changed since: the store's figures are the ones the run recorded
    found = evaluate_from_store(store)
    assert (found.real_users, found.synthetic_users) == (200, 10)
    graph_figures = {k: v for k, v in report.realism.items() if k != "c2st_auc"}  # the profile C2ST needs the run's held-out users
    assert found.as_dict() == {"real_users": 200, "synthetic_users": 10, "realism": graph_figures}
    r = _cli(database_url, store.settings.home, "synth", "purge", "--yes", "--format", "json")
    assert r.exit_code == 0 and json.loads(r.stdout) == {"removed": "synthetic users", "friendships": report.friendships_added,
                                                          "labels": 0, "scores": 0, "users": 10}
    with pytest.raises(StoreStateError):
        evaluate_from_store(store)
    assert _counts(store) == (0, len(edges))


def test_augmentation_balances_classes_for_training_only() -> None:
    from graphrec.tasks.bots.augment import augment_training_graph
    from graphrec.tasks.bots.config import BotConfig
    from graphrec.tasks.bots.train import train_bot_detector
    from graphrec.tasks.registry import profile_generator_factory

    inj = inject_bot_region(honest_graph(500, mean_degree=8, n_features=8, seed=0), n_bots=50, attack_edges=3, seed=0)
    g, is_bot = inj.graph, inj.is_bot
    labelled = sample_labels(is_bot, 0.1, seed=0)
    y = is_bot[labelled]
    aug = augment_training_graph(g, labelled, y, kind="vae", seed=0, epochs=3, threads=1, generators=profile_generator_factory())
    assert aug.added == int((~y).sum() - y.sum()) and aug.scarce_class == "bot"
    assert aug.is_bot.sum() == (~aug.is_bot).sum() and aug.graph.num_nodes == g.num_nodes + aug.added
    # synthetic bots copy real labelled bots' friends, so they sit where those bots sit: their
    # friends are bots as often as the labelled bots' friends are, far above the base rate
    new_rows = np.arange(g.num_nodes, g.num_nodes + aug.added)
    nbrs = np.concatenate([aug.graph.neighbors(int(i)) for i in new_rows])
    real_nbrs = np.concatenate([g.neighbors(int(i)) for i in labelled[y]])
    assert abs(is_bot[nbrs].mean() - is_bot[real_nbrs].mean()) < 0.15
    assert is_bot[nbrs].mean() > 4 * is_bot.mean()
    cfg = BotConfig(folds=2, epochs=10, threads=1)
    model = train_bot_detector(aug.graph, aug.labelled, aug.is_bot, cfg, n_real=aug.n_real)
    # out-of-fold metrics count real labelled users only
    assert model.metrics["labelled_bots"] == int(y.sum()) and model.metrics["synthetic_examples"] == aug.added


def test_privacy_figures_tell_copies_from_fresh_rows() -> None:
    from graphrec.tasks.synth.privacy import privacy_figures

    rng = np.random.default_rng(0)
    binary = (rng.random((1200, 40)) < 0.08).astype(np.float32)  # sparse binary profiles: real rows coincide too
    train, holdout, fresh = binary[:800], binary[800:1000], binary[1000:]
    ok = privacy_figures(train, holdout, fresh)
    assert ok.decided and ok.passed and ok.reasons == []
    copies = privacy_figures(train, holdout, train[rng.choice(800, 200)])
    assert copies.decided and not copies.passed and copies.exact_copy_rate == 1.0
    assert any("copy a training row" in r for r in copies.reasons) and any("closer" in r for r in copies.reasons)
    continuous = rng.normal(size=(1200, 6))
    near = continuous[:800][rng.choice(800, 200)] + rng.normal(scale=0.01, size=(200, 6))  # jittered copies: no exact copy
    leaky = privacy_figures(continuous[:800], continuous[800:1000], near)
    assert leaky.exact_copy_rate == 0.0 and not leaky.passed and any("closer" in r for r in leaky.reasons)
    assert privacy_figures(continuous[:800], continuous[800:1000], continuous[1000:]).passed
    small = privacy_figures(train, holdout[:5], train[:5])
    assert not small.decided and small.passed  # too few rows to decide: recorded, not refused


def test_a_generator_that_copies_is_refused_unless_forced(store: GraphStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """The privacy gate: a batch that replays real users' profiles is refused and nothing is
    written; --force writes it and records the figures as forced."""
    from graphrec.tasks.synth.privacy import PrivacyGateError

    edges, feats = _load_real(store)
    rng = np.random.default_rng(1)
    monkeypatch.setattr(SynthModel, "sample", lambda self, n, label=None, seed=0: feats[rng.choice(feats.shape[0], n)].copy())
    with pytest.raises(PrivacyGateError, match="nothing written"):
        synthesize(store, SynthConfig(model="vae", n=40, seed=0, epochs=2, threads=1))
    assert _counts(store) == (0, len(edges))
    _assert_no_synth_run(store)
    r = CliRunner().invoke(cli, ["synth", "--n", "40", "--epochs", "2", "--threads", "1"],
                           env={"GRAPHREC_DATABASE_URL": store.engine.url.render_as_string(hide_password=False),
                                "GRAPHREC_HOME": str(store.settings.home)})
    assert r.exit_code == 4 and "refused" in r.output and _counts(store)[0] == 0
    report = synthesize(store, SynthConfig(model="vae", n=40, seed=0, epochs=2, threads=1, force=True))
    assert report.users_created == 40 and report.privacy["forced"] and not report.privacy["passed"]
    assert report.privacy["exact_copy_rate"] > report.privacy["holdout_exact_copy_rate"]
    with store.read() as conn:
        recorded = conn.execute(text("SELECT metrics FROM model_runs WHERE kind = 'synth'")).scalar_one()
    recorded = json.loads(recorded) if isinstance(recorded, str) else recorded
    assert recorded["privacy"]["forced"] is True and recorded["privacy"]["reasons"]
