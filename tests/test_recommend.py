"""Artifacts and the Recommender: filters, reasons, cold start, live friendships, CLI."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from sqlalchemy import text

from conftest import ego_facebook_store, write
from graphrec import artifacts
from graphrec.cli import cli
from graphrec.errors import InputError, NotFoundError
from graphrec.serving.recommend import Recommender, recommend_batch, recommend_user
from graphrec.store import NewScoringRun
from graphrec.store.store import GraphStore
from graphrec.tasks.base import train_and_register
from graphrec.tasks.linkpred.config import LinkPredConfig
from graphrec.tasks.linkpred.train import LinkPredTask

FAST = LinkPredConfig(seed=0, rounds=1, users_per_round=400, epochs=2, gnn_dim=8)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> GraphStore:
    store = ego_facebook_store(tmp_path_factory.mktemp("rec"))
    train_and_register(store, LinkPredTask(), FAST)
    return store


def test_artifact_round_trip_without_pickle(tmp_path: Path) -> None:
    arrays = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.array([1, 2], dtype=np.int64)}
    art = artifacts.save(tmp_path, "demo", arrays, {"params": {"x": 1}, "seed": 3})
    loaded = artifacts.load(tmp_path, "demo")
    assert loaded.version == art.version and loaded.manifest["seed"] == 3
    np.testing.assert_array_equal(loaded.arrays["a"], arrays["a"])
    assert not any(p.suffix in (".pkl", ".pt", ".pickle") for p in art.path.iterdir())
    (art.path / artifacts.ARRAYS).unlink()
    with pytest.raises(artifacts.ArtifactError, match="incomplete"):
        artifacts.load(tmp_path, "demo")
    with pytest.raises(artifacts.ArtifactError, match="train one first"):
        artifacts.load(tmp_path, "other")


def test_model_run_recorded_with_data_version(trained: GraphStore) -> None:
    with trained.read() as conn:
        kind, seed, rev, params = conn.execute(text("SELECT kind, seed, data_revision, params FROM model_runs")).one()
    assert (kind, seed, rev) == ("linkpred", 0, trained.revision())
    assert (json.loads(params) if isinstance(params, str) else params)["epochs"] == 2


def test_recommendations_are_filtered_and_explained(trained: GraphStore) -> None:
    rec = Recommender(trained, bot_threshold=None)
    out = rec.recommend("0", k=10)
    assert len(out) == 10
    friends = set(trained.neighbours("0"))
    assert all(s.user != "0" and s.user not in friends for s in out)
    assert [s.score for s in out] == sorted((s.score for s in out), reverse=True)
    top = out[0]
    assert top.mutual_friends == len(trained.mutual_friends("0", top.user)) > 0
    assert top.reasons[0].startswith(f"{top.mutual_friends} mutual friend")
    with pytest.raises(InputError):
        rec.recommend("0", k=0)
    with pytest.raises(NotFoundError):
        rec.recommend("no-such-user")


def test_blocked_deleted_synthetic_and_bots_are_never_suggested(tmp_path: Path, trained: GraphStore) -> None:
    store = GraphStore(trained.settings.database_url, home=trained.settings.home)
    rec = Recommender(store, bot_threshold=0.9)
    first = [s.user for s in rec.recommend("1", k=6)]
    blocked, blocker, deleted, synthetic, bot = first[:5]
    store.block("1", blocked)
    store.block(blocker, "1")
    store.remove_user(deleted)
    with store.write() as conn:
        conn.execute(text("UPDATE users SET is_synthetic = :t WHERE external_id = :e"), {"t": True, "e": synthetic})
        uid = conn.execute(text("SELECT id FROM users WHERE external_id = :e"), {"e": bot}).scalar_one()
    store.write_scoring_runs([NewScoringRun("bot", dt.date(2026, 11, 27), np.array([uid]), np.array([0.97]), np.array([True]), 0.5)])
    try:
        after = [s.user for s in rec.recommend("1", k=6)]
        assert not set(after) & {blocked, blocker, deleted, synthetic, bot}
        assert first[5] in after
        lenient = Recommender(store, bot_threshold=None)
        assert bot in [s.user for s in lenient.recommend("1", k=6)]
    finally:
        store.unblock("1", blocked)
        store.unblock(blocker, "1")
        with store.write() as conn:
            conn.execute(text("UPDATE users SET deleted_at = NULL, is_synthetic = :f WHERE external_id IN (:a, :b)"), {"f": False, "a": deleted, "b": synthetic})
            conn.execute(text("DELETE FROM scoring_runs"))


def test_new_users_after_training(trained: GraphStore) -> None:
    """A user who joined after training: served from live friends, or from the profile alone."""
    rec = Recommender(trained)
    trained.add_user("newbie-1")
    trained.add_friendship("newbie-1", "0")
    trained.add_friendship("newbie-1", "1")
    out = rec.recommend("newbie-1", k=5)
    assert len(out) == 5 and all(s.user not in ("0", "1") for s in out)
    assert all(s.mutual_friends >= 1 for s in out)
    profile = trained.get_user("5").features
    trained.add_user("newbie-2", features=profile)
    cold = rec.recommend("newbie-2", k=5)
    assert len(cold) == 5 and all(s.mutual_friends == 0 for s in cold)
    assert any("similar profile" in r for s in cold for r in s.reasons)


@pytest.mark.slow
def test_cli_train_recommend_and_batch(tmp_path: Path) -> None:
    env = {"GRAPHREC_DATABASE_URL": f"sqlite:///{tmp_path / 'c.db'}", "GRAPHREC_HOME": str(tmp_path / "home")}
    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(cli, list(args), env=env, catch_exceptions=False)

    assert run("import", "ego-facebook").exit_code == 0
    r = run("recommend", "--user", "0")
    assert r.exit_code == 4 and "graphrec train linkpred" in r.output
    r = run("train", "linkpred", "--epochs", "1", "--gnn-dim", "0", "--format", "json")
    assert r.exit_code == 0, r.output
    r = run("recommend", "--user", "0", "-k", "3", "--format", "json")
    data = json.loads(r.stdout)
    assert data["user"] == "0" and len(data["recommendations"]) == 3
    assert set(data["recommendations"][0]) == {"user", "score", "mutual_friends", "reasons"}
    r = run("recommend", "--user", "0", "-k", "0")
    assert r.exit_code == 2 and "-k" in r.output
    r = run("recommend", "--user", "0", "--bot-threshold", "-1")
    assert r.exit_code == 2 and "--bot-threshold" in r.output
    r = run("recommend", "--user", "0", "--model-version", "../../etc")
    assert r.exit_code == 4 and "invalid model version" in r.output
    r = run("recommend", "--users-file", str(write(tmp_path / "bad.txt", b"0\n\xff1\n")), "--output", str(tmp_path / "x.jsonl"))
    assert r.exit_code == 2 and "bad.txt:2: not valid UTF-8" in r.output
    r = run("recommend", "--user", "nobody")
    assert r.exit_code == 3
    users = write(tmp_path / "users.txt", "\ufeff0\n107\n\nnobody\n")  # a BOM is tolerated
    out = tmp_path / "recs.jsonl"
    r = run("recommend", "--users-file", str(users), "--output", str(out), "-k", "2", "--format", "json")
    assert r.exit_code == 3 and "1 of 3 users could not be served" in r.output
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["user"] for x in lines] == ["0", "107", "nobody"]
    assert len(lines[1]["recommendations"]) == 2 and "unknown user" in lines[2]["error"]


def test_unfriended_users_are_not_suggested_back_and_mutuals_are_live(trained: GraphStore) -> None:
    rec = Recommender(trained, bot_threshold=None)
    friend = max(trained.neighbours("0"), key=lambda f: len(trained.mutual_friends("0", f)))
    trained.remove_friendship("0", friend)
    try:
        out = rec.recommend("0", k=20)
        assert friend not in [s.user for s in out]
        top = out[0]
        mutual = trained.mutual_friends("0", top.user)
        trained.remove_friendship(top.user, mutual[0])  # the candidate's side changes after training
        again = {s.user: s for s in rec.recommend("0", k=20)}
        if top.user in again:
            assert again[top.user].mutual_friends == len(mutual) - 1
        trained.add_friendship(top.user, mutual[0])
    finally:
        trained.add_friendship("0", friend)


def test_broken_artifacts_give_clear_errors(trained: GraphStore, tmp_path: Path) -> None:
    import shutil

    version = artifacts.latest_version(trained.settings.home, "linkpred")
    src = trained.settings.home / "models" / "linkpred" / version
    home = tmp_path / "home"
    dst = home / "models" / "linkpred" / version
    shutil.copytree(src, dst)
    artifacts.set_latest(home, "linkpred", version)
    store = GraphStore(trained.settings.database_url, home=home)
    (dst / "ids.json").unlink()
    with pytest.raises(artifacts.ArtifactError, match="incomplete or corrupt"):
        Recommender(store)
    shutil.copy(src / "ids.json", dst / "ids.json")
    (dst / "embeddings.faiss").write_bytes(b"not an index")
    with pytest.raises(artifacts.ArtifactError, match="unreadable FAISS index"):
        Recommender(store)
    with pytest.raises(artifacts.ArtifactError, match="no linkpred model version 'nope'"):
        Recommender(store, version="nope")


@pytest.mark.slow
def test_cli_eval_linkpred_prints_model_beside_heuristics(trained: GraphStore) -> None:
    r = CliRunner().invoke(
        cli,
        ["eval", "linkpred", "--max-users", "60", "--epochs", "1", "--gnn-dim", "0", "--format", "json"],
        env={"GRAPHREC_DATABASE_URL": trained.settings.database_url, "GRAPHREC_HOME": str(trained.settings.home)},
        catch_exceptions=False,
    )
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert set(data["metrics"]) == {"common_neighbours", "adamic_adar", "resource_allocation", "personalized_pagerank", "model"}
    assert data["params"]["max_users"] == 60
    assert all(0 <= m["recall@20"] <= m["recall@50"] <= 1 for m in data["metrics"].values())


def test_recommend_batch_is_a_library_function(trained: GraphStore, tmp_path: Path) -> None:
    users = write(tmp_path / "users.txt", "0\nnobody\n107\n")
    out = tmp_path / "recs.jsonl"
    report = recommend_batch(trained, users, out, k=3, bot_threshold=None)
    assert (report.users, report.failed, report.output) == (3, 1, out)
    assert report.as_dict() == {"users": 3, "failed": 1, "output": str(out), "model": artifacts.latest_version(trained.settings.home, "linkpred")}
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["user"] for x in lines] == ["0", "nobody", "107"] and lines[1]["line"] == 2
    with pytest.raises(NotFoundError, match="1 of 3 users could not be served"):
        report.check()
    with pytest.raises(InputError, match="no such file"):
        recommend_batch(trained, tmp_path / "missing.txt", tmp_path / "x.jsonl")
    # one user: the same line as the batch writes, and the model that ranked it
    one = recommend_user(trained, "107", k=3, bot_threshold=None)
    assert one.as_dict() == lines[2] and one.model == report.model
    with pytest.raises(NotFoundError):
        recommend_user(trained, "nobody")


# -- the link and Siamese models trained on different feature columns ---------------------------
def _small_store(url: str, root: Path) -> GraphStore:
    """240 users in 6 communities with 12 binary profile columns that mark the community."""
    rng = np.random.default_rng(0)
    n, groups = 240, 6
    group = np.arange(n) % groups
    lines = [f"{u} {v}" for u in range(n) for v in range(u + 1, n) if rng.random() < (0.12 if group[u] == group[v] else 0.004)]
    feats = (rng.random((n, 12)) < 0.1) | (np.eye(groups, 12, dtype=bool)[group] & (rng.random((n, 1)) < 0.8))
    rows = ["id," + ",".join(f"f{j}" for j in range(12))] + [f"{u}," + ",".join(str(int(x)) for x in feats[u]) for u in range(n)]
    store = GraphStore(url, home=root / "home")
    store.initialize()
    store.import_users(write(root / "users.csv", "\n".join(rows) + "\n"))
    store.import_edges(write(root / "edges.txt", "\n".join(lines) + "\n"))
    return store


def _train(store: GraphStore, name: str) -> None:
    from graphrec.tasks.registry import get_task

    if name == "linkpred":
        train_and_register(store, LinkPredTask(), LinkPredConfig(seed=0, rounds=1, users_per_round=200, epochs=1, gnn_dim=8))
    else:
        task = get_task(name)
        train_and_register(store, task, task.config_type(seed=0, epochs=1))  # type: ignore[call-arg]


@pytest.mark.parametrize("first", ["linkpred", "siamese"])
def test_models_trained_on_different_feature_columns_both_serve(database_url: str, tmp_path: Path, first: str) -> None:
    """Regression: ``import users`` added a feature column between the link model's and the Siamese
    model's trainings. Each model must read the user's current profile at its own width; the
    recommender used to hand the Siamese encoder the link model's width, and every recommend
    (warm or cold start) crashed when the link model was the narrower one."""
    from graphrec.serving.similar import SimilarUsers
    from graphrec.tasks.linkpred.model import LinkModel

    store = _small_store(database_url, tmp_path)
    second = "siamese" if first == "linkpred" else "linkpred"
    _train(store, first)
    rng = np.random.default_rng(1)
    extra = ["id,f12"] + [f"{u},{int(rng.random() < 0.3)}" for u in range(240)]
    report = store.import_users(write(tmp_path / "more.csv", "\n".join(extra) + "\n"), allow_new_columns=True)
    assert report.feature_columns_added == 1
    _train(store, second)
    link_width, siamese_width = LinkModel.load(store.settings.home).profile_dim, SimilarUsers(store).width
    assert (link_width, siamese_width) == ((12, 13) if first == "linkpred" else (13, 12))

    store.add_user("cold", features=store.get_user("3").features)  # a profile, no friends
    rec = Recommender(store, bot_threshold=None)
    warm = rec.recommend("0", k=5)
    assert len(warm) == 5 and not {s.user for s in warm} & (set(store.neighbours("0")) | {"0"})
    cold = rec.recommend("cold", k=5)
    assert [s.user for s in cold] == [e for e, _ in SimilarUsers(store).similar("cold", 5)]
    assert all(s.mutual_friends == 0 and "similar profile" in s.reasons[0] for s in cold)

    env = {"GRAPHREC_DATABASE_URL": database_url, "GRAPHREC_HOME": str(store.settings.home)}
    for user in ("0", "cold"):
        r = CliRunner().invoke(cli, ["recommend", "--user", user, "-k", "5", "--format", "json"], env=env, catch_exceptions=False)
        assert r.exit_code == 0, r.output
        assert len(json.loads(r.stdout)["recommendations"]) == 5
