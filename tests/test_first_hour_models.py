"""Issue 14, the first hour (models, jobs, progress): the sanity guard on scoring runs, the
served-model registry (``graphrec models``), ``synth purge`` confirmation, progress reporting and
``--log-format json`` on every command, error hints and help texts."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner
from sqlalchemy import text

from conftest import store_with_models, train_once
from graphrec import artifacts
from graphrec.cli import cli
from graphrec.errors import InputError, StoreStateError
from graphrec.jobs.models import list_models, promote, rollback, show_model
from graphrec.jobs.nightly import FlagRateError, run_nightly
from graphrec.store.store import GraphStore
from graphrec.tasks.base import train_and_register
from graphrec.tasks.bots.config import BotConfig
from graphrec.tasks.bots.inject import honest_graph, inject_bot_region, load_into_store, sample_labels
from graphrec.tasks.registry import get_task

TINY = BotConfig(folds=2, epochs=10, threads=1)


def _graph():  # noqa: ANN202
    return inject_bot_region(honest_graph(300, mean_degree=8, n_features=6, seed=0), n_bots=30, attack_edges=3, seed=0)


def _load(store: GraphStore, *, random_labels: bool = False) -> None:
    g = _graph()
    labelled = sample_labels(g.is_bot, 0.2, seed=0)
    if random_labels:  # the case: labels that say nothing about who is a bot
        g = dataclasses.replace(g, is_bot=np.random.default_rng(3).permutation(g.is_bot))
    load_into_store(store, g, labelled)


@pytest.fixture(scope="module")
def bot_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny bot model, trained once (artifacts do not depend on the database)."""
    return train_once(tmp_path_factory.mktemp("first_hour_bots"), _load, lambda store: train_and_register(store, get_task("bots"), TINY))


@pytest.fixture
def bot_store(database_url: str, tmp_path: Path, bot_home: Path) -> GraphStore:
    return store_with_models(database_url, tmp_path, bot_home, _load)


def _break_threshold(home: Path) -> None:
    """Make the served bot model flag everyone (threshold 0): a model that learnt nothing."""
    version = artifacts.latest_version(home, "bot")
    assert version is not None
    folder = home / "models" / "bot" / version
    manifest = json.loads((folder / artifacts.MANIFEST).read_text())
    manifest["threshold"] = 0.0
    artifacts.write_manifest(folder, manifest)


def _runs(store: GraphStore) -> list[tuple]:
    with store.read() as conn:
        return list(conn.execute(text("SELECT id, status, summary FROM scoring_runs WHERE kind = 'bot' ORDER BY id")).all())


def _cli(store: GraphStore, *args: str, input: str | None = None):  # noqa: ANN202, A002
    env = {"GRAPHREC_DATABASE_URL": store.engine.url.render_as_string(hide_password=False), "GRAPHREC_HOME": str(store.settings.home)}
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False, input=input)


# -- 1. the sanity guard --------------------------------------------------------------------------
def test_a_sane_bot_run_passes_the_guard(bot_store: GraphStore) -> None:
    result = run_nightly(bot_store, run_date=dt.date(2026, 11, 1))
    run = result.runs["bots"]
    assert run.status == "complete" and not run.forced
    assert run.flag_check is not None and run.flag_check.passed
    assert run.flag_check.labelled > 0 and 0 < run.flag_check.labelled_rate < 0.5


def test_a_run_flagging_far_more_than_the_labels_is_refused_unless_forced(bot_store: GraphStore) -> None:
    _break_threshold(bot_store.settings.home)
    with pytest.raises(FlagRateError) as err:
        run_nightly(bot_store, run_date=dt.date(2026, 11, 1))
    message = str(err.value)
    assert "flagged 330 / 330 = 100.0%" in message and "labelled bot rate" in message and "--force" in message
    assert err.value.exit_code == 4
    assert _runs(bot_store) == []  # nothing written
    dry = run_nightly(bot_store, run_date=dt.date(2026, 11, 1), dry_run=True)
    assert dry.runs["bots"].flag_check is not None and not dry.runs["bots"].flag_check.passed
    forced = run_nightly(bot_store, run_date=dt.date(2026, 11, 1), force=True)
    assert forced.runs["bots"].forced and forced.as_dict()["tasks"]["bots"]["forced"] is True
    rows = _runs(bot_store)
    assert len(rows) == 1 and rows[0][1] == "complete"
    summary = rows[0][2] if isinstance(rows[0][2], dict) else json.loads(rows[0][2])
    assert summary["forced"] is True and summary["flag_check"]["flagged"] == 330


def test_cli_score_refuses_with_the_figures_and_force_writes(bot_store: GraphStore) -> None:
    _break_threshold(bot_store.settings.home)
    r = _cli(bot_store, "score", "--run-date", "2026-11-02")
    assert r.exit_code == 4
    error = [line for line in r.output.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "flagged 330 / 330 = 100.0%" in error[0] and "labelled bot rate" in error[0]
    r = _cli(bot_store, "score", "--run-date", "2026-11-02", "--force")
    assert r.exit_code == 0, r.output
    assert "written with --force" in r.output


def test_a_retrain_that_passes_the_guard_serves_the_new_model(bot_store: GraphStore) -> None:
    before = artifacts.latest_version(bot_store.settings.home, "bot")
    result = run_nightly(bot_store, run_date=dt.date(2026, 11, 3), retrain=True, tasks=["bots"], configs={"bots": TINY})
    run = result.runs["bots"]
    assert run.status == "complete" and run.flag_check is not None and run.flag_check.passed
    assert artifacts.latest_version(bot_store.settings.home, "bot") == run.model_version != before


def test_train_bots_warns_when_the_threshold_fell_back(sqlite_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = GraphStore(sqlite_url, home=tmp_path / "home")
    store.initialize()
    _load(store, random_labels=True)
    with caplog.at_level(logging.WARNING):
        r = _cli(store, "train", "bots", "--folds", "2", "--epochs", "5", "--threads", "1", "--format", "json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["threshold_fallback"] is True and "not reachable" in out["warning"]
    assert any(rec.levelno == logging.WARNING and "target precision" in rec.getMessage() for rec in caplog.records)


# -- 2. graphrec models -----------------------------------------------------------------------------
@pytest.fixture
def two_bot_models(database_url: str, tmp_path: Path) -> tuple[GraphStore, str, str]:
    store = GraphStore(database_url, home=tmp_path / "home")
    store.initialize()
    _load(store)
    first = train_and_register(store, get_task("bots"), TINY).version
    second = train_and_register(store, get_task("bots"), BotConfig(folds=2, epochs=10, threads=1, seed=1)).version
    return store, first, second


def test_models_list_show_rollback_and_promote(two_bot_models: tuple[GraphStore, str, str]) -> None:
    store, first, second = two_bot_models
    home = store.settings.home
    listed = list_models(store).as_dict()["models"]
    assert [(m["kind"], m["version"], m["serving"]) for m in listed] == [("bot", first, False), ("bot", second, True)]
    assert all(m["recorded"] and m["metric"] == "oof_roc_auc" and m["data_revision"] == store.revision() for m in listed)
    shown = show_model(store, "bots")  # task name accepted
    assert shown["version"] == second and shown["serving"] and shown["params"]["seed"] == 1
    back = rollback(store, "bot")
    assert (back.previous, back.serving) == (second, first) and artifacts.latest_version(home, "bot") == first
    with pytest.raises(StoreStateError, match="nothing to roll back"):
        rollback(store, "bot")
    up = promote(store, "bot", second)
    assert up.serving == second and artifacts.latest_version(home, "bot") == second
    assert rollback(store, "bot").serving == first
    with pytest.raises(InputError, match="unknown model kind"):
        list_models(store, "nonsense")
    with pytest.raises(InputError, match="no bot model version"):
        promote(store, "bot", "20990101T000000-abcdef")


def test_models_cli(two_bot_models: tuple[GraphStore, str, str]) -> None:
    store, first, second = two_bot_models
    r = _cli(store, "models", "list")
    assert r.exit_code == 0, r.output
    assert f"* bot       {second}" in r.output and f"  bot       {first}" in r.output
    r = _cli(store, "models", "rollback", "bots", "--format", "json")
    assert r.exit_code == 0 and json.loads(r.stdout)["serving"] == first
    r = _cli(store, "models", "show", "bot", "--format", "json")
    assert json.loads(r.stdout)["version"] == first
    r = _cli(store, "models", "promote", "bot", second)
    assert r.exit_code == 0 and artifacts.latest_version(store.settings.home, "bot") == second
    for args in (("models", "list", "nonsense"), ("models", "promote", "bot", "nope"), ("models", "rollback", "nonsense")):
        r = _cli(store, *args)
        assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1 and r.output.startswith("error: "), r.output


def test_unrecorded_version_never_serves(two_bot_models: tuple[GraphStore, str, str]) -> None:
    store, first, second = two_bot_models
    with store.write() as conn:
        conn.execute(text("DELETE FROM model_runs WHERE version = :v"), {"v": first})
    with pytest.raises(StoreStateError, match="no recorded training run"):
        promote(store, "bot", first)
    assert artifacts.latest_version(store.settings.home, "bot") == second


def test_missing_model_hint_names_the_real_command(store: GraphStore) -> None:
    _load(store)
    with pytest.raises(artifacts.ArtifactError, match=r"run `graphrec train bots` first"):
        get_task("bots").load(store.settings.home)


# -- 3. synth purge asks ----------------------------------------------------------------------------
@pytest.fixture
def synthetic_store(store: GraphStore) -> GraphStore:
    """Four real users and three synthetic ones: friendships 0-1, 1-2 (real), s0-0, s0-s1 and
    s2-3 (touching synthetic users); s0 and s1 labelled bot."""
    for i in range(4):
        store.add_user(str(i))
    for s in ("s0", "s1", "s2"):
        store.add_user(s, is_synthetic=True)
    for a, b in (("0", "1"), ("1", "2"), ("s0", "0"), ("s0", "s1"), ("s2", "3")):
        store.add_friendship(a, b)
    store.set_label("s0", "bot")
    store.set_label("s1", "bot")
    return store


def _counts(store: GraphStore) -> tuple[int, int]:
    stats = store.stats()
    return stats.users, stats.friendships


def test_purge_previews_and_needs_yes_off_a_terminal(synthetic_store: GraphStore) -> None:
    store = synthetic_store
    r = _cli(store, "synth", "purge", "--dry-run", "--format", "json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == {"would_remove": "synthetic users", "users": 3, "friendships": 3, "labelled_users": 2, "total_users": 7}
    assert _counts(store) == (7, 5)
    r = _cli(store, "synth", "purge")  # CliRunner's stdin is not a terminal
    assert r.exit_code == 2 and r.output.startswith("error: ") and len(r.output.strip().splitlines()) == 1
    assert "3 synthetic users (of 7), 3 friendships" in r.output and "--yes" in r.output
    assert _counts(store) == (7, 5)
    r = _cli(store, "synth", "purge", "--yes", "--format", "json")
    assert r.exit_code == 0 and json.loads(r.stdout)["users"] == 3
    assert _counts(store) == (4, 2)


def test_purge_prompts_on_a_terminal(synthetic_store: GraphStore, monkeypatch: pytest.MonkeyPatch) -> None:
    import graphrec.cli.models as cli_models

    store = synthetic_store
    monkeypatch.setattr(cli_models, "stdin_is_terminal", lambda: True)
    r = _cli(store, "synth", "purge", input="n\n")
    assert r.exit_code == 2 and "remove 3 synthetic users" in r.output and "cancelled" in r.output
    assert _counts(store) == (7, 5)
    r = _cli(store, "synth", "purge", "--format", "json", input="y\n")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout.strip().splitlines()[-1])["users"] == 3 and _counts(store) == (4, 2)


# -- 4. progress ------------------------------------------------------------------------------------
def test_progress_logs_every_tenth_off_a_terminal(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from graphrec.progress import progress

    monkeypatch.setenv("GRAPHREC_PROGRESS", "0")
    with caplog.at_level(logging.INFO, logger="graphrec.progress"):
        with progress("train demo", total=20, unit="epoch") as p:
            for _ in range(20):
                p.update(info="loss 0.1")
    records = [r for r in caplog.records if r.name == "graphrec.progress"]
    messages = [r.getMessage() for r in records]
    assert messages[0] == "train demo: started, 20 epochs" and messages[-1].startswith("train demo: done in")
    steps = messages[1:-1]
    assert len(steps) == 9 and steps[0].startswith("train demo: epoch 2/20 (10%)") and "ETA" in steps[0]
    fields = records[1].fields  # type: ignore[attr-defined]
    assert fields["stage"] == "train demo" and fields["done"] == 2 and fields["total"] == 20 and fields["eta_s"] is not None


def test_progress_draws_a_bar_on_a_terminal(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                            caplog: pytest.LogCaptureFixture) -> None:
    from graphrec.progress import progress

    monkeypatch.setenv("GRAPHREC_PROGRESS", "1")
    with caplog.at_level(logging.INFO, logger="graphrec.progress"):
        with progress("train demo", total=4, unit="fold") as p:
            for _ in range(4):
                p.update()
    err = capsys.readouterr().err
    assert "train demo:" in err and "/4 [" in err and "fold/s" in err
    assert not [r for r in caplog.records if r.name == "graphrec.progress"]  # the bar replaces the log lines


def test_every_command_takes_log_format_json_and_training_reports_progress(sqlite_url: str, tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from graphrec.logs import set_log_format

    monkeypatch.setenv("GRAPHREC_PROGRESS", "0")
    store = GraphStore(sqlite_url, home=tmp_path / "home")
    store.initialize()
    _load(store)
    try:
        r = _cli(store, "--log-format", "json", "--log-level", "INFO", "train", "bots", "--folds", "2", "--epochs", "5", "--threads", "1",
                 "--format", "json")
        assert r.exit_code == 0, r.output
        events = [json.loads(line) for line in r.stderr.splitlines() if line.startswith("{")]
        assert events and all({"ts", "level", "logger", "message"} <= set(e) for e in events)
        folds = [e for e in events if e.get("stage") == "train bots"]
        assert folds[0]["message"].startswith("train bots: started") and folds[-1]["message"].startswith("train bots: done")
        assert any(e["done"] == 1 and e["total"] == 2 for e in folds)
        r = _cli(store, "--log-format", "json", "--log-level", "INFO", "train", "anomaly", "--threads", "1")
        assert r.exit_code == 0, r.output
        assert any(json.loads(x).get("stage", "").startswith("train anomaly") for x in r.stderr.splitlines() if x.startswith("{"))
        r = _cli(store, "--log-level", "INFO", "models", "list")  # text again unless asked
        assert r.exit_code == 0 and not r.stderr.lstrip().startswith("{")
    finally:
        set_log_format("text")


# -- 5. hints and --kind ------------------------------------------------------------------------------
def test_hints_name_real_commands(store: GraphStore, tmp_path: Path) -> None:
    r = _cli(store, "scores", "export", "--kind", "nonsense", "--output", str(tmp_path / "x.csv"))
    assert r.exit_code == 2 and r.output.startswith("error: unknown scoring kind 'nonsense'") and len(r.output.strip().splitlines()) == 1
    r = _cli(store, "bots", "--top", "3")
    assert r.exit_code == 4 and "`graphrec score`" in r.output and "`the" not in r.output
    store.add_user("a")
    r = _cli(store, "score")
    assert r.exit_code == 4 and "`graphrec train bots`" in r.output and "train bot`" not in r.output


# -- 6. help texts ------------------------------------------------------------------------------------
MY_COMMANDS = [("train", "linkpred"), ("train", "bots"), ("train", "siamese"), ("train", "anomaly"), ("eval", "linkpred"), ("eval", "bots"),
               ("eval", "siamese"), ("synth",), ("synth", "purge"), ("models",), ("models", "list"), ("models", "show"),
               ("models", "promote"), ("models", "rollback"), ("score",), ("score-bots",), ("train",), ("eval",)]


@pytest.mark.parametrize("path", MY_COMMANDS, ids=lambda p: " ".join(p))
def test_help_has_no_markup_and_describes_every_option(path: tuple[str, ...]) -> None:
    r = CliRunner().invoke(cli, [*path, "--help"])
    assert r.exit_code == 0, r.output
    assert "``" not in r.output and ":class:" not in r.output and ":func:" not in r.output
    group: click.Command = cli
    ctx = click.Context(cli)
    for word in path:
        assert isinstance(group, click.Group)
        sub = group.get_command(ctx, word)
        assert sub is not None
        group = sub
    undocumented = [p.name for p in group.params if isinstance(p, click.Option) and not p.hidden and not (p.help or "").strip()]
    assert undocumented == []
