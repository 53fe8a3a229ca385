"""Synthetic users: generation and wiring, one-transaction writes, flags everywhere, purge, the
CLI on SQLite and PostgreSQL, and bot-training augmentation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from sqlalchemy import text

from graphrec.tasks.bots.inject import honest_graph, inject_bot_region, sample_labels
from graphrec.cli import cli
from graphrec.errors import StoreStateError
from graphrec.core.graph import csr_from_edges
from graphrec.store.importers import EdgeBatch, UserBatch
from graphrec.store.store import GraphStore
from graphrec.tasks.synth.synthesize import synthesize
from graphrec.tasks.synth.wiring import realism, wire_synthetic


def _load_real(store: GraphStore, n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    edges, feats = honest_graph(n, mean_degree=8, n_features=12, seed=seed)
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
    edges, feats = honest_graph(500, mean_degree=8, n_features=12, seed=1)
    indptr, indices = csr_from_edges(edges, 500)
    rng = np.random.default_rng(0)
    syn = feats[rng.choice(500, 60)]
    pairs = wire_synthetic(indptr, indices, feats, syn, seed=0)
    assert pairs[:, 1].max() < 500 and set(np.unique(pairs[:, 0])) == set(range(60))
    deg = np.bincount(pairs[:, 0], minlength=60)
    real_deg = np.diff(indptr)
    assert deg.min() >= 1 and deg.max() <= real_deg.max()
    # first friend of each synthetic user: the most similar real profile (cosine)
    unit = feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-9)
    s_unit = syn / np.maximum(np.linalg.norm(syn, axis=1, keepdims=True), 1e-9)
    first = np.array([pairs[pairs[:, 0] == s][0, 1] for s in range(60)])
    best = (s_unit @ unit.T).max(axis=1)
    assert np.allclose((s_unit * unit[first]).sum(axis=1), best, atol=1e-5)
    # triadic closure gives synthetic users clustering; random wiring of the same degrees gives ~0
    all_edges = np.concatenate([edges, np.stack([pairs[:, 0] + 500, pairs[:, 1]], axis=1)])
    ip, ix = csr_from_edges(np.sort(all_edges, axis=1), 560)
    flag = np.zeros(560, dtype=bool)
    flag[500:] = True
    r = realism(ip, ix, flag)
    rand = np.stack([pairs[:, 0] + 500, rng.integers(0, 500, size=len(pairs))], axis=1)
    ip2, ix2 = csr_from_edges(np.unique(np.sort(np.concatenate([edges, rand]), axis=1), axis=0), 560)
    assert r.clustering_synthetic > 3 * realism(ip2, ix2, flag).clustering_synthetic
    assert r.degree_ks < 0.3


def test_synth_writes_flagged_users_and_purge_removes_them(store: GraphStore, tmp_path: Path) -> None:
    edges, _ = _load_real(store)
    rev = store.revision()
    report = synthesize(store, model="vae", n=25, seed=0, epochs=3, threads=1)
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
    from graphrec.store.exporters import export_friendships, export_users

    with store.read() as conn:
        export_users(conn, tmp_path / "u.csv")
        export_friendships(conn, tmp_path / "f.csv")
    rows = (tmp_path / "u.csv").read_text().splitlines()
    assert sum(",true," in r or r.split(",")[1] == "true" for r in rows[1:]) == 25
    frows = (tmp_path / "f.csv").read_text().splitlines()
    assert frows[0] == "source,target,synthetic" and sum(r.endswith(",true") for r in frows) == report.friendships_added
    # the run is recorded for reproducibility
    with store.read() as conn:
        row = conn.execute(text("SELECT seed, params FROM model_runs WHERE kind = 'synth'")).one()
    assert row[0] == 0
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
        synthesize(store, model="gan", n=10, seed=0, epochs=2, threads=1)
    assert _counts(store) == (0, len(edges))


def test_synth_label_needs_labelled_users(store: GraphStore) -> None:
    _load_real(store)
    with pytest.raises(StoreStateError, match="fewer than 2"):
        synthesize(store, n=5, label="bot", epochs=2, threads=1)
    for i in range(6):
        store.set_label(str(i), "bot")
    report = synthesize(store, n=8, label="bot", seed=1, epochs=3, threads=1)
    labels = store.labels(source="synthetic")
    assert len(labels) == 8 and set(labels.values()) == {"bot"} and report.label == "bot"


def _cli(url: str, home: Path, *args: str):
    env = {"GRAPHREC_DATABASE_URL": url, "GRAPHREC_HOME": str(home)}
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def test_cli_synth_and_purge(store: GraphStore, database_url: str) -> None:
    _load_real(store)
    home = store.settings.home
    r = _cli(database_url, home, "synth", "--model", "gan", "--n", "12", "--epochs", "3", "--format", "json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["users_created"] == 12 and out["model"] == "gan" and out["example_ids"][0].startswith("synthetic-")
    assert {"degree_ks", "clustering_synthetic", "clustering_real"} <= set(out["realism"])
    r = _cli(database_url, home, "synth")
    assert r.exit_code == 2 and "--n" in r.output
    r = _cli(database_url, home, "synth", "purge", "--format", "json")
    assert r.exit_code == 0 and json.loads(r.output)["users"] == 12
    assert _counts(store)[0] == 0


def test_augmentation_balances_classes_for_training_only() -> None:
    from graphrec.tasks.bots.augment import augment_training_graph
    from graphrec.tasks.bots.train import BotTrainConfig, train_bot_detector

    edges, feats = honest_graph(500, mean_degree=8, n_features=8, seed=0)
    g = inject_bot_region(edges, feats, n_bots=50, attack_edges=3, seed=0)
    indptr, indices = csr_from_edges(g.edges, g.num_nodes)
    labelled = sample_labels(g.is_bot, 0.1, seed=0)
    y = g.is_bot[labelled]
    aug = augment_training_graph(indptr, indices, g.features, labelled, y, kind="vae", seed=0, epochs=3, threads=1)
    assert aug.added == int((~y).sum() - y.sum()) and aug.scarce_class == "bot"
    assert aug.is_bot.sum() == (~aug.is_bot).sum() and aug.indptr.size - 1 == g.num_nodes + aug.added
    # synthetic bots copy real labelled bots' friends, so they sit where those bots sit: their
    # friends are bots as often as the labelled bots' friends are, far above the base rate
    new_rows = np.arange(g.num_nodes, g.num_nodes + aug.added)
    nbrs = np.concatenate([aug.indices[aug.indptr[i]: aug.indptr[i + 1]] for i in new_rows])
    real_nbrs = np.concatenate([indices[indptr[i]: indptr[i + 1]] for i in labelled[y]])
    assert abs(g.is_bot[nbrs].mean() - g.is_bot[real_nbrs].mean()) < 0.15
    assert g.is_bot[nbrs].mean() > 4 * g.is_bot.mean()
    cfg = BotTrainConfig(folds=2, epochs=10, threads=1)
    model = train_bot_detector(aug.indptr, aug.indices, aug.features, [f"f{j}" for j in range(8)], aug.labelled, aug.is_bot, cfg, n_real=aug.n_real)
    # out-of-fold metrics count real labelled users only
    assert model.metrics["labelled_bots"] == int(y.sum()) and model.metrics["synthetic_examples"] == aug.added
