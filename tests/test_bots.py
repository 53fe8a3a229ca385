"""Bot detection: signals, the model learning on an injected bot region, and the nightly job's
idempotence, locking and crash safety on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from sqlalchemy import text

from conftest import store_with_models, train_once
from graphrec.cli import cli
from graphrec.core.graph import csr_from_edges
from graphrec.core.ops import structural_features
from graphrec.errors import JobLockedError, StoreStateError
from graphrec.jobs.nightly import NightlyResult, TaskRun, run_nightly
from graphrec.store.locks import JobLease
from graphrec.store.store import GraphStore
from graphrec.tasks.base import train_and_register
from graphrec.tasks.bots.config import BotConfig
from graphrec.tasks.bots.evaluate import evaluate_bots
from graphrec.tasks.bots.inject import (
    InjectedBots,
    honest_graph,
    inject_bot_region,
    load_into_store,
    sample_labels,
)
from graphrec.tasks.bots.signals import LabelPropagator, label_propagation_scores
from graphrec.tasks.registry import get_task

FAST = BotConfig(folds=3, epochs=40, threads=1)
TINY = BotConfig(folds=2, epochs=15, threads=1)


def small_graph(attack_edges: int = 3, seed: int = 0) -> InjectedBots:
    return inject_bot_region(honest_graph(600, mean_degree=10, n_features=8, seed=seed), n_bots=60, attack_edges=attack_edges, seed=seed)


def bots_run(result: NightlyResult) -> TaskRun:
    """The bot task's part of a nightly run."""
    return result.runs["bots"]


def test_clustering_estimate_matches_networkx() -> None:
    import networkx as nx

    g = nx.powerlaw_cluster_graph(400, 4, 0.5, seed=1)
    edges = np.array(list(g.edges()))
    indptr, indices = csr_from_edges(edges, 400)
    est = structural_features(indptr, indices, pairs=256, seed=0)[:, 1]
    exact = np.array([nx.clustering(g, i) for i in range(400)])
    assert np.abs(est - exact).mean() < 0.03
    assert np.corrcoef(est, exact)[0, 1] > 0.95


def test_label_signals_do_not_depend_on_label_count() -> None:
    g = small_graph()
    prop = LabelPropagator(g.graph.indptr, g.graph.indices, hops=2)
    bots = np.flatnonzero(g.is_bot)
    humans = np.flatnonzero(~g.is_bot)
    few = prop(bots[::4], humans[::4])
    many = prop(bots, humans)
    # enrichment columns are relative to the base rate: similar scale with 4x fewer labels
    assert few.shape == (g.num_nodes, prop.width)
    assert abs(few[:, 0].mean() - many[:, 0].mean()) < 0.25 * many[:, 0].mean()


@pytest.mark.slow
def test_model_learns_and_beats_baselines() -> None:
    # Many attack edges per bot (15 against ~10 inside the region): where label propagation degrades.
    g = small_graph(attack_edges=15, seed=2)
    indptr, indices = g.graph.indptr, g.graph.indices
    labelled = sample_labels(g.is_bot, 0.1, seed=2)
    test = np.setdiff1d(np.arange(g.num_nodes), labelled)
    report = evaluate_bots(g.graph, labelled, g.is_bot[labelled], test, g.is_bot[test], FAST)
    m = report.metrics
    assert m["model"]["roc_auc"] > 0.9
    assert m["model"]["roc_auc"] > m["label propagation"]["roc_auc"] + 0.02
    assert m["model"]["roc_auc"] > m["features only"]["roc_auc"] + 0.3  # profiles are clones: features alone fail
    lp = label_propagation_scores(indptr, indices, labelled[g.is_bot[labelled]], labelled[~g.is_bot[labelled]])
    assert lp[g.is_bot].mean() > lp[~g.is_bot].mean()


@pytest.fixture(scope="module")
def trained_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bot model trained once on the small injected graph (artifacts are independent of the
    database they were trained from, so every store below serves a copy of it)."""
    return train_once(tmp_path_factory.mktemp("bots"), _load_small_graph, lambda store: train_and_register(store, get_task("bots"), FAST))


def _load_small_graph(store: GraphStore) -> None:
    g = small_graph()
    load_into_store(store, g, sample_labels(g.is_bot, 0.15, seed=0))


@pytest.fixture
def bot_store(database_url: str, tmp_path: Path, trained_home: Path) -> GraphStore:
    return store_with_models(database_url, tmp_path, trained_home, _load_small_graph)


def _runs(store: GraphStore) -> list[tuple]:
    with store.read() as conn:
        return conn.execute(text("SELECT id, run_date, status, n_scored FROM scoring_runs WHERE kind = 'bot' ORDER BY id")).all()


def _score_rows(store: GraphStore) -> int:
    with store.read() as conn:
        return int(conn.execute(text("SELECT COUNT(*) FROM scores")).scalar_one())


def test_job_writes_one_complete_run_and_is_idempotent(bot_store: GraphStore) -> None:
    day = dt.date(2026, 11, 1)
    first = run_nightly(bot_store, run_date=day)
    assert first.status == "complete" and list(first.runs) == ["bots"] and bots_run(first).users_scored == 660
    assert 0 < bots_run(first).flagged < 200
    assert [r[2] for r in _runs(bot_store)] == ["complete"]
    assert _score_rows(bot_store) == 660
    again = run_nightly(bot_store, run_date=day)
    assert again.status == "skipped" and bots_run(again).run_id == bots_run(first).run_id
    assert _score_rows(bot_store) == 660 and len(_runs(bot_store)) == 1
    replaced = run_nightly(bot_store, run_date=day, replace=True)
    assert replaced.status == "complete" and len(_runs(bot_store)) == 1 and _score_rows(bot_store) == 660
    dry = run_nightly(bot_store, run_date=dt.date(2026, 11, 2), dry_run=True)
    assert dry.status == "dry-run" and len(_runs(bot_store)) == 1
    nxt = run_nightly(bot_store, run_date=dt.date(2026, 11, 2))
    assert bots_run(nxt).newly_flagged == 0 and bots_run(nxt).no_longer_flagged == 0  # same data, same model
    assert len(_runs(bot_store)) == 2 and _score_rows(bot_store) == 1320


def _job_events(**kwargs) -> tuple[NightlyResult, dict[str, dict]]:  # noqa: ANN003
    """Run the job with a JSON-lines log; the result and the events by name."""
    import io

    from graphrec.jobs.log import JobLog

    stream = io.StringIO()
    result = run_nightly(log=JobLog("score-bots", "json", stream), **kwargs)
    return result, {e["event"]: e for e in map(json.loads, stream.getvalue().splitlines())}


def test_complete_event_keeps_the_fields_log_queries_read(bot_store: GraphStore) -> None:
    """The ``complete`` event carries the bot run's run_id, users, flagged and newly_flagged at
    the top level, as the score-bots job always logged them, beside ``runs`` and ``seconds``."""
    result, events = _job_events(store=bot_store, run_date=dt.date(2026, 11, 1))
    done, bot = events["complete"], bots_run(result)
    assert list(done)[4:] == ["run_id", "users", "flagged", "newly_flagged", "runs", "seconds"]
    assert (done["run_id"], done["users"], done["flagged"], done["newly_flagged"]) == (bot.run_id, 660, bot.flagged, 0)
    assert done["runs"] == {"bots": {"run_id": bot.run_id, "users": 660, "flagged": bot.flagged, "newly_flagged": 0}}
    assert {"store_read", "bot_score", "store_write", "total"} <= set(done["seconds"])
    assert events["scored"]["task"] == "bots" and events["scored"]["users"] == 660 and "anomalies scored" not in events


def test_scores_separate_injected_bots(bot_store: GraphStore) -> None:
    run_nightly(bot_store, run_date=dt.date(2026, 11, 1))
    with bot_store.read() as conn:
        rows = conn.execute(text("SELECT u.external_id, s.score FROM scores s JOIN users u ON u.id = s.user_id")).all()
    score = {int(e): s for e, s in rows}
    bots = [score[i] for i in range(600, 660)]
    humans = [score[i] for i in range(600)]
    assert np.mean(bots) > 0.5 > np.mean(humans)


def test_lock_blocks_a_second_job_and_stale_locks_are_taken_over(bot_store: GraphStore) -> None:
    holder = JobLease(bot_store, "score-bots").acquire()
    with pytest.raises(JobLockedError):
        run_nightly(bot_store, run_date=dt.date(2026, 11, 1))
    assert _runs(bot_store) == []
    holder.release()
    # a lock left by a killed process on this host (dead pid) is taken over at once
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout.strip()
    with bot_store.write() as conn:
        conn.execute(text("INSERT INTO job_locks (name, owner, acquired_at, expires_at) VALUES ('score-bots', :o, :a, :e)"),
                     {"o": f"{socket.gethostname()}:{dead}:x", "a": dt.datetime(2026, 1, 1), "e": dt.datetime(2099, 1, 1)})
    assert run_nightly(bot_store, run_date=dt.date(2026, 11, 1)).status == "complete"
    with bot_store.read() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM job_locks")).scalar_one() == 0


def test_failure_during_write_leaves_previous_run(bot_store: GraphStore, monkeypatch: pytest.MonkeyPatch) -> None:
    from graphrec.store import scores as score_store

    run_nightly(bot_store, run_date=dt.date(2026, 11, 1))
    real = score_store._insert_scores

    def half_then_fail(conn, run_id, user_ids, scores, flagged):
        real(conn, run_id, user_ids[:300], scores[:300], flagged[:300])
        raise RuntimeError("disk full")

    monkeypatch.setattr(score_store, "_insert_scores", half_then_fail)
    with pytest.raises(RuntimeError):
        run_nightly(bot_store, run_date=dt.date(2026, 11, 2))
    assert [(r[1], r[2]) for r in _runs(bot_store)] == [(dt.date(2026, 11, 1), "complete")] or len(_runs(bot_store)) == 1
    assert _score_rows(bot_store) == 660
    monkeypatch.undo()
    assert run_nightly(bot_store, run_date=dt.date(2026, 11, 2)).status == "complete"


def test_feature_change_requires_retrain(bot_store: GraphStore) -> None:
    bot_store.add_user("new-user", features={"extra_column": 1.0}, allow_new_columns=True)
    with pytest.raises(StoreStateError, match="retrain"):
        run_nightly(bot_store, run_date=dt.date(2026, 11, 1))
    assert bots_run(run_nightly(bot_store, run_date=dt.date(2026, 11, 1), retrain=True, configs={"bots": TINY})).users_scored == 661


def test_recommender_drops_flagged_bots(bot_store: GraphStore) -> None:
    run_nightly(bot_store, run_date=dt.date(2026, 11, 1))
    with bot_store.read() as conn:
        flagged = {r[0] for r in conn.execute(text("SELECT u.external_id FROM scores s JOIN users u ON u.id = s.user_id WHERE s.flagged = :t"), {"t": True})}
    assert flagged
    excluded = bot_store.excluded_candidates(sorted(flagged) + ["0", "1"], score_kind="bot", score_threshold="flagged")
    assert flagged <= excluded and "0" not in excluded


def _cli(url: str, home: Path, *args: str):
    env = {"GRAPHREC_DATABASE_URL": url, "GRAPHREC_HOME": str(home)}
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def test_cli_bot_commands(bot_store: GraphStore, database_url: str, tmp_path: Path) -> None:
    home = bot_store.settings.home
    r = _cli(database_url, home, "bots", "--top", "3")
    assert r.exit_code == 4 and "score-bots" in r.output
    r = _cli(database_url, home, "score-bots", "--run-date", "2026-11-03", "--log-format", "json", "--format", "json")
    assert r.exit_code == 0, r.output
    lines = [json.loads(x) for x in r.output.strip().splitlines()]
    assert {"started", "snapshot", "scored", "complete"} <= {x.get("event") for x in lines}
    summary = lines[-1]
    assert summary["status"] == "complete" and summary["users_scored"] == 660
    r = _cli(database_url, home, "bots", "--top", "5", "--format", "json")
    top = json.loads(r.stdout)["bots"]
    assert len(top) == 5 and all(int(b["user"]) >= 600 for b in top)
    assert {"friends", "clustering", "friends_labelled_bot"} <= set(top[0]["signals"])
    out = tmp_path / "scores.csv"
    r = _cli(database_url, home, "scores", "export", "--kind", "bot", "--output", str(out))
    assert r.exit_code == 0, r.output
    rows = out.read_text().splitlines()
    assert rows[0] == "id,score,is_synthetic" and len(rows) == 661
    r = _cli(database_url, home, "score-bots", "--run-date", "2026-13-01")
    assert r.exit_code == 2


@pytest.mark.slow
def test_cli_eval_and_train_bots(sqlite_url: str, tmp_path: Path) -> None:
    store = GraphStore(sqlite_url, home=tmp_path / "home")
    store.initialize()
    g = small_graph()
    load_into_store(store, g, sample_labels(g.is_bot, 0.15, seed=0))
    database_url, home = sqlite_url, tmp_path / "home"
    r = _cli(database_url, home, "eval", "bots", "--folds", "2", "--epochs", "30", "--format", "json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert next(iter(data)) == "seed" and data["seed"] == 0
    assert set(data["metrics"]) == {"model", "features only", "gradient-boosted trees", "label propagation", "personalized pagerank"}
    assert data["metrics"]["model"]["roc_auc"] > 0.9
    r = _cli(database_url, home, "train", "bots", "--folds", "2", "--epochs", "15", "--format", "json")
    assert r.exit_code == 0 and json.loads(r.stdout)["model"] == "bot"


def test_train_without_labels_is_a_clear_error(store: GraphStore) -> None:
    store.add_user("a")
    with pytest.raises(StoreStateError, match="labelled bots"):
        train_and_register(store, get_task("bots"), FAST)


@pytest.mark.slow
@pytest.mark.skipif(os.name != "posix", reason="uses SIGKILL")
def test_killed_job_leaves_store_consistent(sqlite_url: str, tmp_path: Path, trained_home: Path) -> None:
    """A job killed with SIGKILL mid-run leaves the previous complete run; a rerun completes."""
    import signal
    import time

    store = GraphStore(sqlite_url, home=tmp_path / "home")
    shutil.copytree(trained_home, tmp_path / "home")
    store.initialize()
    g = small_graph()
    load_into_store(store, g, sample_labels(g.is_bot, 0.15, seed=0))
    run_nightly(store, run_date=dt.date(2026, 11, 1))
    env = {**os.environ, "GRAPHREC_DATABASE_URL": sqlite_url, "GRAPHREC_HOME": str(tmp_path / "home")}
    proc = subprocess.Popen([sys.executable, "-m", "graphrec.cli", "score-bots", "--run-date", "2026-11-02"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(2.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    runs = _runs(store)
    assert all(r[2] == "complete" for r in runs)
    assert _score_rows(store) == 660 * len(runs)
    assert run_nightly(store, run_date=dt.date(2026, 11, 2)).status in {"complete", "skipped"}
    assert _score_rows(store) == 1320


def test_score_bots_summary_keeps_its_shape(bot_store: GraphStore, database_url: str) -> None:
    """`graphrec score-bots` prints what it always printed; `graphrec score` reports every task."""
    home = bot_store.settings.home
    r = _cli(database_url, home, "score-bots", "--run-date", "2026-11-04", "--format", "json")
    assert r.exit_code == 0, r.output
    legacy = json.loads(r.stdout.strip().splitlines()[-1])
    assert list(legacy) == ["status", "run_date", "run_id", "model_version", "users_scored", "flagged", "newly_flagged",
                            "no_longer_flagged", "threshold", "anomalies", "seconds"]
    assert legacy["anomalies"] is None and {"store_read", "model_score", "store_write", "total"} <= set(legacy["seconds"])
    r = _cli(database_url, home, "score", "--run-date", "2026-11-04", "--task", "bots", "--format", "json")
    assert r.exit_code == 0, r.output
    new = json.loads(r.stdout.strip().splitlines()[-1])
    assert new["status"] == "skipped" and list(new["tasks"]) == ["bots"]
    assert new["tasks"]["bots"]["run_id"] == legacy["run_id"] and new["tasks"]["bots"]["model_version"] == legacy["model_version"]
    r = _cli(database_url, home, "score", "--task", "nope")
    assert r.exit_code == 2 and "unknown scoring task" in r.output
    r = _cli(database_url, home, "scores", "export", "--kind", "nope", "--output", str(home / "x.csv"))
    assert r.exit_code == 2 and "unknown scoring kind" in r.output


def test_job_without_any_scoring_model_is_not_ready(store: GraphStore, database_url: str) -> None:
    store.add_user("a")
    with pytest.raises(StoreStateError, match="no trained scoring model"):
        run_nightly(store, run_date=dt.date(2026, 11, 1))
    r = _cli(database_url, store.settings.home, "score-bots")
    assert r.exit_code == 4


def test_job_runs_the_anomaly_model_without_a_bot_model(store: GraphStore, database_url: str) -> None:
    """Only an anomaly model trained: the nightly job scores anomalies (it used to exit 4)."""
    from graphrec.tasks.anomaly.config import AnomalyConfig

    g = small_graph()
    load_into_store(store, g, sample_labels(g.is_bot, 0.15, seed=0))
    train_and_register(store, get_task("anomaly"), AnomalyConfig(seed=0, epochs=30, threads=1))
    result, events = _job_events(store=store, run_date=dt.date(2026, 11, 1))
    # the anomaly task's steps keep their old event names; "scored" stays the bot run's
    assert "anomalies scored" in events and "scored" not in events and events["anomalies scored"]["task"] == "anomaly"
    assert events["complete"]["run_id"] == result.runs["anomaly"].run_id and events["complete"]["users"] == 660
    assert result.status == "complete" and list(result.runs) == ["anomaly"]
    assert result.runs["anomaly"].users_scored == 660 and result.runs["anomaly"].run_id is not None
    legacy = result.as_score_bots_dict()
    assert legacy["run_id"] is None and legacy["anomalies"]["users_scored"] == 660
    assert legacy["anomalies"]["run_id"] == result.runs["anomaly"].run_id
    with store.read() as conn:
        kinds = [r[0] for r in conn.execute(text("SELECT kind FROM scoring_runs WHERE status = 'complete'"))]
    assert kinds == ["anomaly"]
    r = _cli(database_url, store.settings.home, "anomalies", "--top", "3", "--format", "json")
    assert r.exit_code == 0 and json.loads(r.stdout)["source"].startswith("run ")
    out = store.settings.home / "anomaly.csv"
    r = _cli(database_url, store.settings.home, "scores", "export", "--kind", "anomaly", "--output", str(out))
    assert r.exit_code == 0, r.output
    assert len(out.read_text().splitlines()) == 661
    r = _cli(database_url, store.settings.home, "bots")
    assert r.exit_code == 4 and "graphrec score" in r.output


def test_bot_artifact_is_validated_on_load(trained_home: Path, tmp_path: Path) -> None:
    from graphrec import artifacts
    from graphrec.tasks.bots.model import BotModel

    model = BotModel.load(trained_home)
    assert model.positive_label == "bot" and len(model.fold_states) == 3 and 0.0 <= model.threshold <= 1.0
    assert model.input_names[: len(model.feature_names)] == model.feature_names

    def broken(change) -> Path:
        home = tmp_path / f"home{len(list(tmp_path.iterdir()))}"
        shutil.copytree(trained_home, home)
        folder = home / "models" / "bot" / str(model.version)
        manifest = json.loads((folder / "manifest.json").read_text())
        change(manifest)
        artifacts.write_manifest(folder, manifest)
        return home

    cases = [
        lambda m: m.update(folds=2),  # fewer folds than the arrays hold
        lambda m: m.update(folds=4),  # more folds than the arrays hold
        lambda m: m.update(threshold=1.5),
        lambda m: m.update(threshold=float("nan")),
        lambda m: m["params"].update(hidden=32),  # arrays are shaped for 64
        lambda m: m.update(feature_names=m["feature_names"][:-1]),  # scaler width no longer matches
    ]
    for change in cases:
        with pytest.raises(artifacts.ArtifactError):
            BotModel.load(broken(change))


def test_score_command_table(bot_store: GraphStore, database_url: str) -> None:
    r = _cli(database_url, bot_store.settings.home, "score", "--run-date", "2026-11-08", "--dry-run")
    assert r.exit_code == 0, r.output
    lines = r.output.strip().splitlines()
    row = next(line for line in lines if line.startswith("bots "))
    assert "dry-run run of 2026-11-08" in r.output and row.split()[1] == "dry-run" and row.split()[4] == "660"


def test_correct_and_smooth_averages_over_neighbours_whatever_the_degree() -> None:
    """Correct and Smooth diffuses with the random-walk operator: on a graph where every unlabelled
    node sees the same labelled evidence, a node's smoothed score does not grow with its degree
    (with the symmetric D^-1/2 A D^-1/2 it did, ranking users by degree; that turned fraud
    detection on bitcoin-otc below chance)."""
    from graphrec.core.graph import csr_from_edges
    from graphrec.tasks.bots.signals import correct_and_smooth

    # Two stars: hub 0 with 10 leaves, hub 11 with 2 leaves; each hub is also linked to one
    # labelled bot (20 and 21) and one labelled human (22 and 23).
    edges = [(0, i) for i in range(1, 11)] + [(11, 12), (11, 13), (0, 20), (0, 22), (11, 21), (11, 23)]
    indptr, indices = csr_from_edges(np.array(edges), 24)
    prob = np.full(24, 0.5, dtype=np.float32)
    out = correct_and_smooth(indptr, indices, prob, np.array([20, 21]), np.array([22, 23]))
    assert np.all((out >= 0) & (out <= 1))
    assert abs(float(out[0]) - float(out[11])) < 1e-4  # same evidence, degrees 12 and 4
    assert abs(float(out[1]) - float(out[12])) < 1e-4


def test_post_processing_leaves_the_default_only_on_evidence() -> None:
    """The bot model keeps random-walk Correct and Smooth unless another post-processing beats it
    reliably out of fold: a noise-level lead is not enough, a clear one is."""
    from graphrec.tasks.bots.train import DEFAULT_SMOOTHING, choose_smoothing

    rng = np.random.default_rng(0)
    y = np.arange(300) < 120
    signal = y + rng.normal(0, 1.0, 300)
    noisy = {"walk": signal, "none": signal + rng.normal(0, 0.05, 300), "symmetric": signal - 0.3 * y}
    choice, auc = choose_smoothing(y, noisy)
    assert choice == DEFAULT_SMOOTHING == "walk" and set(auc) == {"walk", "none", "symmetric"}
    clear = {"walk": signal, "none": signal, "symmetric": signal + 2.0 * y}
    choice, auc = choose_smoothing(y, clear)
    assert choice == "symmetric" and auc["symmetric"] > auc["walk"]
    assert choose_smoothing(y, {"none": signal})[0] == "none"  # a fixed choice stays
