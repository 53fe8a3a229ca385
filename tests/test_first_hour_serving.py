"""Issue 14, serving: what each recommendation filter removed, model staleness on every serving
command, USER as a positional argument, tables without Python reprs, clean help texts, and the
detectors as scikit-learn / PyGOD-style estimators."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import click
import numpy as np
import pytest
from click.testing import CliRunner, Result

from conftest import ego_facebook_store
from graphrec.cli import cli
from graphrec.serving.freshness import model_freshness
from graphrec.serving.recommend import recommend_user
from graphrec.store.scores import NewScoringRun
from graphrec.store.store import GraphStore
from graphrec.tasks.base import train_and_register
from graphrec.tasks.linkpred.config import LinkPredConfig
from graphrec.tasks.linkpred.train import LinkPredTask

FAST = LinkPredConfig(seed=0, rounds=1, users_per_round=200, epochs=1, gnn_dim=0)


def small_graph(path: Path, n: int = 240, seed: int = 0) -> Path:
    """Four communities of ``n / 4`` users, dense inside, a few edges across (an edge list)."""
    rng = np.random.default_rng(seed)
    size = n // 4
    edges = set()
    for a in range(n):
        for _ in range(6):
            b = (a // size) * size + int(rng.integers(size)) if rng.random() < 0.9 else int(rng.integers(n))
            if a != b:
                edges.add((min(a, b), max(a, b)))
    path.write_text("".join(f"{a} {b}\n" for a, b in sorted(edges)), encoding="utf-8")
    return path


@pytest.fixture
def served(database_url: str, tmp_path: Path) -> GraphStore:
    """A small graph with a trained, served link model, on each backend."""
    store = GraphStore(database_url, home=tmp_path / "home")
    store.initialize()
    store.import_edges(small_graph(tmp_path / "edges.txt"))
    train_and_register(store, LinkPredTask(), FAST)
    return store


def invoke(store: GraphStore, *args: str) -> Result:
    env = {"GRAPHREC_DATABASE_URL": store.settings.database_url, "GRAPHREC_HOME": str(store.settings.home)}
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def write_run(store: GraphStore, kind: str, scores: dict[str, float], flagged: set[str], *, threshold: float,
              details: dict[str, dict[str, Any]] | None = None, summary: dict[str, Any] | None = None) -> None:
    """A complete scoring run of ``kind`` over every user (users not in ``scores`` score 0)."""
    snap = store.snapshot()
    ext = snap.external_ids.tolist()
    values = np.array([scores.get(e, 0.0) for e in ext])
    marks = np.array([e in flagged for e in ext])
    where = {e: i for i, e in enumerate(ext)}
    store.write_scoring_runs([NewScoringRun(
        kind, dt.date(2026, 11, 30), snap.user_ids, values, marks, threshold,
        details={where[e]: d for e, d in (details or {}).items()}, summary=summary or {"data_revision": snap.revision},
        replace=True)])


# -- 1. what each filter removed --------------------------------------------------------------
def test_recommend_says_how_many_candidates_each_filter_removed(served: GraphStore) -> None:
    store = served
    first = [s.user for s in recommend_user(store, "0", k=8, bot_threshold=None).suggestions]
    blocked, deleted, synthetic, bot = first[:4]
    store.block("0", blocked)
    store.remove_user(deleted)
    _mark_synthetic(store, synthetic)
    write_run(store, "bot", {bot: 0.97}, {bot}, threshold=0.8123456)

    result = recommend_user(store, "0", k=8)
    kept = [s.user for s in result.suggestions]
    assert not {blocked, deleted, synthetic, bot} & set(kept) and len(kept) == 8
    friends = len(store.neighbours("0"))
    assert result.filtered == {"self": 1, "friends": friends, "unfriended": 0, "blocked": 1, "deleted": 1, "synthetic": 1, "bots": 1}
    assert "flagged by bot run" in result.bot_filter and "threshold 0.8123" in result.bot_filter

    data = json.loads(invoke(store, "recommend", "0", "-k", "8", "--format", "json").output)
    assert data["filtered"]["bots"] == 1 and data["filtered"]["blocked"] == 1 and "threshold 0.8123" in data["bot_filter"]
    table = invoke(store, "recommend", "0", "-k", "8").output
    footer = [line for line in table.splitlines() if line.startswith("filtered out:")]
    assert footer == [f"filtered out: 1 self, {friends} friends, 1 blocked, 1 deleted, 1 synthetic, 1 bots; "
                      f"bot filter: {result.bot_filter}"]
    lenient = recommend_user(store, "0", k=8, bot_threshold=None)
    assert lenient.filtered["bots"] == 0 and lenient.bot_filter == "off" and bot in [s.user for s in lenient.suggestions]
    numeric = recommend_user(store, "0", k=8, bot_threshold=0.5)
    assert numeric.filtered["bots"] == 1 and numeric.bot_filter == "bot score above 0.5"


def _mark_synthetic(store: GraphStore, user: str) -> None:
    from sqlalchemy import text

    with store.write() as conn:
        conn.execute(text("UPDATE users SET is_synthetic = :t WHERE external_id = :e"), {"t": True, "e": user})


def test_batch_report_sums_the_filters(served: GraphStore, tmp_path: Path) -> None:
    served.block("0", recommend_user(served, "0", k=3, bot_threshold=None).suggestions[0].user)
    users = tmp_path / "users.txt"
    users.write_text("0\n1\n", encoding="utf-8")
    r = invoke(served, "recommend", "--users-file", str(users), "--output", str(tmp_path / "out.jsonl"), "-k", "3", "--format", "json")
    report = json.loads(r.stdout)
    lines = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert report["filtered"]["blocked"] == 1 == lines[0]["filtered"]["blocked"]
    assert report["filtered"]["friends"] == lines[0]["filtered"]["friends"] + lines[1]["filtered"]["friends"] > 0
    table = invoke(served, "recommend", "--users-file", str(users), "--output", str(tmp_path / "out.jsonl"), "-k", "3").output
    assert "[" not in table and "{" not in table and "blocked=1" in table


# -- 2. staleness --------------------------------------------------------------------------------
def test_serving_commands_say_when_the_model_is_older_than_the_store(served: GraphStore) -> None:
    store = served
    trained_at = store.revision()
    fresh = json.loads(invoke(store, "recommend", "0", "-k", "2", "--format", "json").output)["freshness"]
    assert [f["stale"] for f in fresh] == [False] and fresh[0]["revision"] == trained_at
    assert [f.stale for f in model_freshness(store)] == [False]

    store.add_friendship("0", "239")
    store.add_friendship("1", "238")
    now = store.revision()
    assert now > trained_at
    fresh = json.loads(invoke(store, "recommend", "0", "-k", "2", "--format", "json").output)["freshness"]
    assert fresh[0]["stale"] and fresh[0]["store_revision"] == now
    expected = f"trained at store revision {trained_at}; store is at {now}: run `graphrec train linkpred` to refresh"
    assert expected in fresh[0]["message"]
    assert expected in invoke(store, "recommend", "--user", "0", "-k", "2").output
    [stats_view] = model_freshness(store)
    assert stats_view.stale and stats_view.what.startswith("linkpred model ") and expected in stats_view.message()

    write_run(store, "bot", {"3": 0.9}, {"3"}, threshold=0.5, summary={"data_revision": trained_at})
    write_run(store, "anomaly", {"4": 0.7}, {"4"}, threshold=0.6, summary={"data_revision": now})
    bots = json.loads(invoke(store, "bots", "--format", "json").output)["freshness"]
    assert bots[0]["stale"] and f"bot run" in bots[0]["message"] and "`graphrec score`" in bots[0]["message"]
    assert f"scored at store revision {trained_at}; store is at {now}" in invoke(store, "bots").output
    anomalies = json.loads(invoke(store, "anomalies", "--format", "json").output)["freshness"]
    assert not anomalies[0]["stale"] and "up to date" in invoke(store, "anomalies").output


# -- 3. USER positional, similar's header --------------------------------------------------------
def test_recommend_takes_the_user_as_argument_or_option(served: GraphStore) -> None:
    by_arg = json.loads(invoke(served, "recommend", "5", "-k", "3", "--format", "json").output)
    by_opt = json.loads(invoke(served, "recommend", "--user", "5", "-k", "3", "--format", "json").output)
    assert by_arg["recommendations"] == by_opt["recommendations"] and by_arg["user"] == "5"
    assert invoke(served, "recommend", "5", "--user", "5", "-k", "3").exit_code == 0
    r = invoke(served, "recommend", "5", "--user", "6")
    assert r.exit_code == 2 and "error: two different users given" in r.output
    r = invoke(served, "recommend")
    assert r.exit_code == 2 and "USER" in r.output


@pytest.fixture(scope="module")
def with_siamese(tmp_path_factory: pytest.TempPathFactory) -> GraphStore:
    from graphrec.tasks.siamese.config import SiameseConfig
    from graphrec.tasks.siamese.train import SiameseTask

    store = ego_facebook_store(tmp_path_factory.mktemp("sim"))
    train_and_register(store, SiameseTask(), SiameseConfig(epochs=1, batch_size=256))
    return store


def test_similar_has_a_header_takes_the_user_as_argument_and_reports_freshness(with_siamese: GraphStore) -> None:
    store = with_siamese
    table = invoke(store, "similar", "0", "-k", "3").output.splitlines()
    assert table[0].startswith("users similar to 0 (siamese model ") and table[1].split() == ["user", "similarity"]
    assert len(table) == 2 + 3 + 1 and "up to date" in table[-1]
    by_opt = json.loads(invoke(store, "similar", "--user", "0", "-k", "3", "--format", "json").output)
    by_arg = json.loads(invoke(store, "similar", "0", "-k", "3", "--format", "json").output)
    assert by_arg == by_opt and by_arg["freshness"][0]["stale"] is False
    assert invoke(store, "similar", "0", "--user", "1").exit_code == 2


# -- 4. tables: no reprs, floats rounded ---------------------------------------------------------
def test_tables_print_no_python_reprs_and_round_floats(served: GraphStore) -> None:
    write_run(served, "bot", {"3": 0.5115686274509804, "4": 0.25}, {"3"}, threshold=0.4999999,
              details={"3": {"friends": 7, "clustering": 0.123456789, "label": None, "circles": ["synthetic-1", "synthetic-2"]}})
    write_run(served, "anomaly", {"3": 0.7777777777}, {"3"}, threshold=0.61234567,
              details={"3": {"driver": "structure", "friends": 7, "friends_outside_own_communities": {"share": 0.333333333}}})
    for args in (["bots", "--top", "2"], ["anomalies", "--top", "1"], ["recommend", "0", "-k", "5"]):
        out = invoke(served, *args).output
        assert "None" not in out and "['" not in out and "{" not in out, out
        assert not re.search(r"\d\.\d{5,}", out), out
    bots = invoke(served, "bots", "--top", "2").output
    assert "0.5116" in bots and "threshold 0.5" in bots and "label=-" in bots and "circles=synthetic-1, synthetic-2" in bots
    assert "clustering=0.1235" in bots
    assert "share=0.3333" in invoke(served, "anomalies", "--top", "1").output


# -- 7. help texts ------------------------------------------------------------------------------
SERVING_COMMANDS = [["recommend"], ["similar"], ["bots"], ["anomalies"], ["scores", "export"], ["index", "sync"]]


@pytest.mark.parametrize("path", SERVING_COMMANDS, ids=" ".join)
def test_serving_help_has_no_markup_and_describes_every_option(path: list[str]) -> None:
    r = CliRunner().invoke(cli, [*path, "--help"], catch_exceptions=False)
    assert r.exit_code == 0 and "``" not in r.output, r.output
    command: Any = cli
    for word in path:
        command = command.commands[word]
    undocumented = [p.name for p in command.params if isinstance(p, click.Option) and not p.help]
    assert undocumented == []


# -- 5. the detectors as estimators: sklearn clone, PyG Data -------------------------------------
@pytest.fixture(scope="module")
def labelled_store(tmp_path_factory: pytest.TempPathFactory) -> GraphStore:
    """The bundled ego-Facebook graph with 12 labelled bots (one dense region) and 30 humans."""
    store = ego_facebook_store(tmp_path_factory.mktemp("est"))
    for user in range(3980, 3992):
        store.set_label(str(user), "bot")
    for user in range(0, 300, 10):
        store.set_label(str(user), "human")
    return store


def test_estimators_clone_with_sklearn_and_mirror_the_task_configs() -> None:
    from sklearn.base import clone

    from graphrec import AnomalyEstimator, BotEstimator
    from graphrec.estimators import config_field_names
    from graphrec.tasks.anomaly.config import AnomalyConfig
    from graphrec.tasks.bots.config import BotConfig

    for est, config_type in ((BotEstimator(folds=3, epochs=7), BotConfig), (AnomalyEstimator(detector="vanilla", contamination=0.1), AnomalyConfig)):
        assert sorted(est.get_params()) == sorted(config_field_names(config_type))
        copy = clone(est)
        assert copy is not est and copy.get_params() == est.get_params()
        assert copy.set_params(seed=3) is copy and copy.get_params()["seed"] == 3 and est.get_params()["seed"] == 0
        assert copy.config() == config_type(**copy.get_params())
    assert BotEstimator(folds=3).config().folds == 3
    with pytest.raises(ValueError):
        BotEstimator(smooth="sideways").config()


def test_anomaly_estimator_fits_and_scores_the_pyg_data_of_a_snapshot(labelled_store: GraphStore) -> None:
    from sklearn.base import clone

    from graphrec import AnomalyEstimator
    from graphrec.core.graph import Graph

    snap = labelled_store.snapshot()
    data = snap.to_pyg()
    est = AnomalyEstimator(detector="vanilla", contamination=0.05, epochs=2, threads=1).fit(data)
    scores = est.decision_function(data)
    assert scores.shape == (snap.num_nodes,) and est.threshold_ is not None
    assert int(est.predict(data).sum()) == int((scores > est.threshold_).sum()) > 0
    same = clone(est).fit(Graph.from_snapshot(snap, data_version=False))  # the same graph, as a Graph
    np.testing.assert_allclose(same.decision_function(snap), scores, rtol=1e-4, atol=1e-5)
    assert est.explain([int(np.argmax(scores))])[0]


def test_bot_estimator_fits_on_pyg_data_with_its_labels(labelled_store: GraphStore) -> None:
    from graphrec import BotEstimator

    data = labelled_store.snapshot().to_pyg()
    est = BotEstimator(folds=2, epochs=10, hidden=16, threads=1).fit(data)
    prob = est.predict_proba(data)
    assert prob.shape == (data.num_nodes,) and 0.0 <= float(prob.min()) <= float(prob.max()) <= 1.0
    bots = np.arange(3980, 3992)
    assert prob[bots].mean() > prob[np.arange(0, 300)].mean()
    assert set(np.unique(est.predict(data)).tolist()) <= {0, 1}
    y = np.full(data.num_nodes, -1)  # labels given as y: 1 bot, 0 not, -1 unlabelled
    y[bots[:6]], y[:40:2] = 1, 0
    again = BotEstimator(folds=2, epochs=10, hidden=16, threads=1).fit(data, y)
    assert again.predict_proba(data, y).shape == (data.num_nodes,)


# -- 6. the API reference builds from the docstrings ---------------------------------------------
def test_api_reference_builds_strictly_from_the_docstrings(tmp_path: Path) -> None:
    import subprocess
    import sys

    pytest.importorskip("mkdocs", reason="mkdocs is not installed (dev dependency)")
    pytest.importorskip("mkdocstrings_handlers.python", reason="mkdocstrings[python] is not installed (dev dependency)")
    root = Path(__file__).resolve().parents[1]
    site = tmp_path / "site"
    res = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(root / "docs" / "mkdocs.yml"), "-d", str(site)],
                         capture_output=True, text=True, cwd=root, timeout=300)
    assert res.returncode == 0, res.stderr
    serving = (site / "serving" / "index.html").read_text(encoding="utf-8")
    assert "model_freshness" in serving and "recommend_filtered" in serving
    assert "get_params" in (site / "estimators" / "index.html").read_text(encoding="utf-8")
    assert "snapshot" in (site / "graph" / "index.html").read_text(encoding="utf-8").lower()


def test_mutual_friends_in_reasons_are_in_numeric_order_on_a_fresh_model(served: GraphStore) -> None:
    """The up-to-date path (mutual friends from the trained graph) sorts ids as the live path does."""
    from graphrec.store.store import id_sort_key

    result = recommend_user(served, "0", k=20, bot_threshold=None)
    assert not result.freshness[0].stale  # type: ignore[index]
    many = [s for s in result.suggestions if s.mutual_friends >= 2]
    assert many
    for s in many:
        shown = s.reasons[0].split("(", 1)[1].rstrip(")").replace(", ...", "").split(", ")
        assert shown == sorted(shown, key=id_sort_key) == sorted(served.mutual_friends("0", s.user), key=id_sort_key)[: len(shown)]
