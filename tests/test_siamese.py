"""Siamese profile embeddings: loss, learning on a graph whose friendships follow a few profile
attributes, the FAISS user index (ids, incremental updates, deletions), and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from graphrec import artifacts
from graphrec.cli import cli
from graphrec.core.graph import Graph
from graphrec.core.index import EmbeddingIndex
from graphrec.nn.siamese import contrastive_loss
from graphrec.tasks.siamese.config import SiameseConfig
from graphrec.tasks.siamese.evaluate import evaluate_cold_start
from graphrec.store.importers import EdgeBatch, UserBatch
from graphrec.store.store import GraphStore

FAST = SiameseConfig(epochs=8, batch_size=256, hard_every=3)


def profile_graph(n: int = 600, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Friendships mostly inside 6 groups; 6 informative binary columns (the group, noisily) and
    34 frequent noise columns that dominate raw cosine similarity."""
    import networkx as nx

    rng = np.random.default_rng(seed)
    sizes = [n // 6] * 6
    p = np.full((6, 6), 0.002)
    np.fill_diagonal(p, 0.08)
    g = nx.stochastic_block_model(sizes, p.tolist(), seed=seed)
    group = np.repeat(np.arange(6), n // 6)
    informative = (np.eye(6)[group] * (rng.random((n, 6)) < 0.8)).astype(np.float32)
    noise = (rng.random((n, 34)) < 0.35).astype(np.float32)
    edges = np.array(sorted(g.edges()), dtype=np.int64)
    return edges, np.concatenate([informative, noise], axis=1)


def test_contrastive_loss_formula() -> None:
    a = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    b = torch.tensor([[0.6, 0.8], [0.6, 0.8]])
    d = float(torch.linalg.norm(a[0] - b[0]))
    loss = contrastive_loss(a, b, torch.tensor([1.0, 0.0]), margin=1.5)
    assert float(loss) == pytest.approx((d**2 / 2 + (1.5 - d) ** 2 / 2) / 2, rel=1e-5)
    assert float(contrastive_loss(a, b, torch.tensor([0.0, 0.0]), margin=0.5)) == 0.0


@pytest.mark.parametrize("loss", ["in_batch", "contrastive"])
def test_cold_start_beats_profile_cosine_and_popularity(loss: str) -> None:
    edges, feats = profile_graph()
    report = evaluate_cold_start(Graph.from_edges(edges, feats), SiameseConfig(epochs=8, batch_size=256, loss=loss), hidden_fraction=0.1, seed=1)
    m = report.metrics
    assert list(report.as_dict()) == ["seed", "hidden_users", "evaluated_users", "metrics", "seconds"] and report.seed == 1
    best = max(m["popularity"]["recall@50"], m["profile cosine"]["recall@50"])
    assert m["siamese"]["recall@50"] > 1.5 * best, m


@pytest.mark.parametrize("exact", [True, False])
def test_user_index_updates_and_deletions(exact: bool, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 16)).astype(np.float32)
    ids = [f"u{i}" for i in range(500)]
    idx = EmbeddingIndex.build(x, ids, model_version="v1", exact=exact)
    assert idx.nearest(x[7], 1)[0][0] == "u7"
    idx.remove(["u7"])
    assert all(e != "u7" for e, _ in idx.nearest(x[7], 50))
    idx.upsert(["u8"], -x[8:9])  # replaced vector: the old one must not answer any more
    assert "u8" not in [e for e, _ in idx.nearest(x[8], 10)]
    assert idx.nearest(-x[8], 1)[0][0] == "u8"
    idx.upsert(["new"], x[9:10] + 0.01)
    assert {e for e, _ in idx.nearest(x[9], 2)} == {"u9", "new"}
    assert idx.size == 500
    # the array search drops removed and replaced vectors too
    q = x[[7, 8]] / np.linalg.norm(x[[7, 8]], axis=1, keepdims=True)
    _, labels = idx.search(q, 20)
    assert not {idx.key(lab) for lab in labels.ravel().tolist() if lab >= 0} & {"u7", None}
    idx.save(tmp_path / "ix")
    again = EmbeddingIndex.load(tmp_path / "ix", model_version="v1", dim=16)
    assert again.nearest(x[9], 2) == idx.nearest(x[9], 2) and again.size == 500
    with pytest.raises(ValueError, match="model"):
        EmbeddingIndex.load(tmp_path / "ix", model_version="v2")
    with pytest.raises(ValueError, match="dimension"):
        EmbeddingIndex.load(tmp_path / "ix", dim=32)


def test_positional_index_is_one_faiss_file(tmp_path: Path) -> None:
    """The link model's form: row i has id i, saved as one FAISS file, validated on load."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 8)).astype(np.float32)
    idx = EmbeddingIndex.build(x)
    assert not idx.keyed and idx.size == 300 and 5 in idx
    sims, ids = idx.search(x[5] / np.linalg.norm(x[5]), 3)
    assert ids[0, 0] == 5 and sims.shape == (1, 3) and idx.nearest(x[5], 1)[0][0] == 5
    idx.save(tmp_path / "embeddings.faiss")
    again = EmbeddingIndex.load(tmp_path / "embeddings.faiss", size=300, dim=8)
    assert np.array_equal(again.search(x[:4], 5)[1], idx.search(x[:4], 5)[1])
    with pytest.raises(ValueError, match="vectors"):
        EmbeddingIndex.load(tmp_path / "embeddings.faiss", size=301)
    with pytest.raises(ValueError, match="positional"):
        idx.upsert(["a"], x[:1])


def test_numpy_encoder_matches_the_torch_module() -> None:
    """Serving embeds profiles in numpy: it must give the torch ProfileEncoder's embeddings."""
    from graphrec.core.scaling import Standardiser
    from graphrec.nn.siamese import ProfileEncoder
    from graphrec.tasks.siamese.model import NumpyEncoder

    rng = np.random.default_rng(0)
    x = np.concatenate([(rng.random((200, 10)) < 0.3), rng.normal(3.0, 2.0, (200, 5))], axis=1).astype(np.float32)
    scaler = Standardiser.fit(x, binary="keep", min_std=1e-6)
    torch.manual_seed(0)
    enc = ProfileEncoder(15, hidden=32, out_dim=8, dropout=0.2)
    with torch.no_grad():  # non-trivial LayerNorm affine parameters
        enc.net[2].weight.uniform_(0.5, 1.5)
        enc.net[2].bias.uniform_(-0.2, 0.2)
    enc.eval()
    with torch.no_grad():
        want = enc(torch.from_numpy(scaler.transform(x))).numpy()
    got = NumpyEncoder({k: v.numpy() for k, v in enc.state_dict().items()}, scaler)(x)
    assert got.shape == (200, 8) and got.dtype == np.float32
    assert np.abs(got - want).max() < 1e-5
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="columns"):
        NumpyEncoder({k: v.numpy() for k, v in enc.state_dict().items()}, scaler)(x[:, :14])


def test_the_one_standardiser_reproduces_the_siamese_rule() -> None:
    from graphrec.core.scaling import Standardiser

    x = np.array([[0, 1.0, 5.0, 2.0], [1, 3.0, 5.0, 2.0], [0, 8.0, 5.0, 2.0 + 1e-7]], dtype=np.float32)
    s = Standardiser.fit(x, binary="keep", min_std=1e-6)
    assert s.mean[0] == 0 and s.std[0] == 1  # binary column kept
    assert s.mean[2] == 5 and s.std[2] == 1  # constant column centred
    assert s.std[3] == 1 and np.allclose(s(x)[:, 3], 0, atol=1e-6)
    assert np.allclose(s.std[1], x[:, 1].std()) and np.allclose(s.inverse(s(x)), x, atol=1e-5)
    again = Standardiser.from_arrays(s.to_arrays("scaler"), "scaler", width=4)
    assert np.array_equal(again.mean, s.mean) and np.array_equal(again.std, s.std)
    with pytest.raises(ValueError, match="columns"):
        Standardiser.from_arrays(s.to_arrays(), width=5)
    with pytest.raises(ValueError, match="missing scaler.std"):  # a missing array is a ValueError, as documented
        Standardiser.from_arrays({"scaler.mean": s.mean})


def test_a_scaling_rule_is_the_standardiser_with_its_options() -> None:
    from graphrec.core.scaling import ScalingRule, Standardiser

    x = np.random.default_rng(0).normal(size=(50, 6)).astype(np.float32)
    x[:, 1] = (x[:, 1] > 0).astype(np.float32)
    rule = ScalingRule(binary="keep", min_std=1e-6)
    a, b = rule.fit(x), Standardiser.fit(x, binary="keep", min_std=1e-6)
    assert np.array_equal(a.mean, b.mean) and np.array_equal(a.std, b.std)
    with pytest.raises(ValueError, match="binary"):
        ScalingRule(binary="sometimes")


def _cli(url: str, home: Path, *args: str):
    return CliRunner().invoke(cli, list(args), env={"GRAPHREC_DATABASE_URL": url, "GRAPHREC_HOME": str(home)}, catch_exceptions=False)


def test_similar_cold_start_recommend_and_sync(database_url: str, tmp_path: Path) -> None:
    edges, feats = profile_graph()
    store = GraphStore(database_url, home=tmp_path / "home")
    store.initialize()
    ids = [str(i) for i in range(feats.shape[0])]
    store.load_users(UserBatch("t", ids, [f"f{j}" for j in range(feats.shape[1])], feats, [{} for _ in ids], [], None))
    store.load_edges(EdgeBatch("t", ids, edges[:, 0].copy(), edges[:, 1].copy(), len(edges)), create_users=False)
    home = tmp_path / "home"
    r = _cli(database_url, home, "similar", "--user", "0")
    assert r.exit_code == 4 and "train siamese" in r.output
    r = _cli(database_url, home, "train", "siamese", "--epochs", "6", "--format", "json")
    assert r.exit_code == 0, r.output
    r = _cli(database_url, home, "similar", "--user", "0", "-k", "10", "--format", "json")
    sims = json.loads(r.stdout)["similar"]
    assert len(sims) == 10 and all(s["user"] != "0" for s in sims)
    assert np.mean([int(s["user"]) < 100 for s in sims]) >= 0.7  # user 0 is in group 0 (users 0-99)
    # a new user with only a profile (group 2's attribute) and no friends
    store.add_user("newbie", features={"f2": 1.0, "f10": 1.0})
    r = _cli(database_url, home, "recommend", "--user", "newbie", "-k", "5", "--format", "json")
    assert r.exit_code == 4  # no link model yet: the recommender needs one
    r = _cli(database_url, home, "train", "linkpred", "--epochs", "1", "--gnn-dim", "0")
    assert r.exit_code == 0, r.output
    r = _cli(database_url, home, "recommend", "--user", "newbie", "-k", "5", "--format", "json")
    assert r.exit_code == 0, r.output
    assert list(json.loads(r.stdout))[:2] == ["user", "recommendations"] and json.loads(r.stdout)["user"] == "newbie"
    recs = json.loads(r.stdout)["recommendations"]
    assert len(recs) == 5 and all("similar profile" in x["reasons"][0] for x in recs)
    r = _cli(database_url, home, "recommend", "--user", "newbie", "-k", "5")
    assert r.output.splitlines()[0] == f"friend suggestions for newbie (model {artifacts.latest_version(home, 'linkpred')})"
    assert len(r.output.splitlines()) == 9  # header, 5 suggestions, the filter footer, 2 freshness lines
    assert np.mean([200 <= int(x["user"]) < 300 for x in recs]) >= 0.6
    # deleted users never come back; the sync indexes the new user
    victim = sims[0]["user"]
    store.remove_user(victim)
    r = _cli(database_url, home, "similar", "--user", "0", "-k", "10", "--format", "json")
    assert victim not in [s["user"] for s in json.loads(r.stdout)["similar"]]
    r = _cli(database_url, home, "index", "sync", "--format", "json")
    out = json.loads(r.stdout)
    assert out["upserted"] >= 1 and out["removed"] == 1
    r = _cli(database_url, home, "similar", "--user", "newbie", "-k", "3", "--format", "json")
    assert r.exit_code == 0 and len(json.loads(r.stdout)["similar"]) == 3
    r = _cli(database_url, home, "similar", "--user", "nobody")
    assert r.exit_code == 3


def test_similar_reads_profiles_at_the_models_own_width(database_url: str, tmp_path: Path) -> None:
    """Columns added to the store after training (``import users``) do not reach the encoder:
    every request and the index sync read the profile at the width the model was trained on."""
    from graphrec.serving.similar import SimilarUsers, find_similar, sync_index
    from graphrec.tasks.base import train_and_register
    from graphrec.tasks.siamese.model import SiameseModel
    from graphrec.tasks.siamese.train import SiameseTask

    edges, feats = profile_graph(300, seed=2)
    store = GraphStore(database_url, home=tmp_path / "home")
    store.initialize()
    ids = [str(i) for i in range(feats.shape[0])]
    store.load_users(UserBatch("t", ids, [f"f{j}" for j in range(feats.shape[1])], feats, [{} for _ in ids], [], None))
    store.load_edges(EdgeBatch("t", ids, edges[:, 0].copy(), edges[:, 1].copy(), len(edges)), create_users=False)
    reg = train_and_register(store, SiameseTask(), SiameseConfig(epochs=2, batch_size=256))
    assert reg.manifest["in_dim"] == 40 and reg.manifest["index_synced_at"] and (reg.artifact.path / "index" / "index.json").exists()
    loaded = SiameseModel.load(store.settings.home)
    assert loaded.version == reg.version and loaded.in_dim == 40 and loaded.index.size == 300
    store.add_user("wide", features={"f3": 1.0, "brand_new_column": 1.0}, allow_new_columns=True)  # the store now has 41 columns
    svc = SimilarUsers(store)
    ext, z = svc.embed_user("wide")
    assert ext == "wide" and z.shape == (64,)
    assert len(find_similar(store, "wide", 5)["similar"]) == 5 and len(find_similar(store, "0", 5)["similar"]) == 5
    out = sync_index(store)
    assert out["model_version"] == reg.version and out["upserted"] >= 1 and out["indexed"] == 301
    # a manifest that disagrees with the weights is refused, not served
    from graphrec import artifacts

    manifest = json.loads((reg.artifact.path / "manifest.json").read_text())
    (reg.artifact.path / "manifest.json").write_text(json.dumps({**manifest, "in_dim": 41}))
    with pytest.raises(artifacts.ArtifactError, match="columns"):
        SiameseModel.load(store.settings.home, reg.version)
