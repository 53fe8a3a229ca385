"""The graphrec CLI: settings, commands, JSON output, one-line errors and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from graphrec.store.migrate import SCHEMA_HEAD
from click.testing import CliRunner

from conftest import write
from graphrec.cli import cli
from graphrec.config import Settings

ROOT = Path(__file__).resolve().parents[1]


def run(url: str, *args: str, env: dict[str, str] | None = None):
    runner = CliRunner()
    return runner.invoke(cli, list(args), env={"GRAPHREC_DATABASE_URL": url, **(env or {})}, catch_exceptions=False)


@pytest.mark.slow
def test_full_flow_json(database_url: str, tmp_path: Path) -> None:
    r = run(database_url, "db", "upgrade")
    assert r.exit_code == 0 and f"-> {SCHEMA_HEAD}" in r.output
    r = run(database_url, "import", "ego-facebook", "--format", "json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["friendships_added"] == 88234
    r = run(database_url, "stats", "--format", "json")
    stats = json.loads(r.stdout)
    assert stats["users"] == 4039 and stats["friendships"] == 88234 and stats["components"] == 1
    assert stats["density"] == pytest.approx(2 * 88234 / (4039 * 4038))
    labels = write(tmp_path / "labels.csv", "id,label\n0,human\n107,bot\n")
    r = run(database_url, "import", "labels", str(labels), "--format", "json")
    assert json.loads(r.stdout)["labels_written"] == 2
    out = tmp_path / "users.csv"
    r = run(database_url, "export", "users", "--output", str(out), "--format", "json")
    assert json.loads(r.stdout)["rows"] == 4039
    header = out.read_text().splitlines()[0].split(",")
    assert header[:2] == ["id", "is_synthetic"] and len(header) == 2 + 1406
    r = run(database_url, "user", "mutual", "0", "1", "--format", "json")
    assert json.loads(r.stdout)["mutual_friends"]
    r = run(database_url, "user", "show", "107", "--format", "json")
    assert json.loads(r.stdout)["degree"] == 1045


def test_errors_are_one_line_with_exit_codes(sqlite_url: str, tmp_path: Path) -> None:
    r = run(sqlite_url, "stats")
    assert r.exit_code == 4 and "not initialised" in r.output and "graphrec db upgrade" in r.output
    bad = write(tmp_path / "edges.txt", "1 2\n2 2\n")
    r = run(sqlite_url, "import", "edges", str(bad))
    assert r.exit_code == 2
    lines = [l for l in r.output.splitlines() if l.startswith("error:")]
    assert lines == [f"error: {bad}:2: self-loop: user '2' befriends itself"]
    r = run(sqlite_url, "import", "edges", str(write(tmp_path / "ok.txt", "1 2\n")))
    assert r.exit_code == 0
    r = run(sqlite_url, "user", "friends", "77")
    assert r.exit_code == 3 and "error: unknown user '77'" in r.output
    r = run(sqlite_url, "import", "labels", str(tmp_path / "missing.csv"))
    assert r.exit_code == 2 and "missing.csv: no such file" in r.output
    r = run(sqlite_url, "export", "users", "--output", str(tmp_path / "no" / "such" / "dir.csv"))
    assert r.exit_code == 2 and "folder does not exist" in r.output


def test_database_url_option_and_home_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "x" / "g.db"
    db.parent.mkdir()
    monkeypatch.delenv("GRAPHREC_HOME", raising=False)
    s = Settings.resolve(f"sqlite:///{db}")
    assert s.home == db.parent / "graphrec-home"
    monkeypatch.setenv("GRAPHREC_HOME", str(tmp_path / "h"))
    assert Settings.resolve(f"sqlite:///{db}").home == tmp_path / "h"
    assert Settings.resolve("postgresql://u@h/db").database_url.startswith("postgresql+psycopg://")
    r = CliRunner().invoke(cli, ["--database-url", f"sqlite:///{db}", "db", "upgrade"], env={"GRAPHREC_DATABASE_URL": "sqlite:////nonexistent/dir/x.db"})
    assert r.exit_code == 0 and db.exists()


def test_default_database_is_sqlite_in_working_directory(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRAPHREC_")}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), "import", "edges", str(write(tmp_path / "e.txt", "1 2\n2 3\n")), "--format", "json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["friendships_added"] == 2
    assert (tmp_path / "graphrec.db").exists()
    assert proc.stderr.count("\n") <= 1  # no progress bars when not on a terminal


def test_schema_commands_and_user_show(sqlite_url: str, tmp_path: Path) -> None:
    r = run(sqlite_url, "db", "current", "--format", "json")
    assert r.exit_code == 0 and json.loads(r.stdout) == {"database": sqlite_url, "current": None, "head": SCHEMA_HEAD, "up_to_date": False}
    assert run(sqlite_url, "import", "edges", str(write(tmp_path / "e.txt", "1 2\n2 3\n"))).exit_code == 0
    r = run(sqlite_url, "db", "current", "--format", "json")
    assert json.loads(r.stdout)["up_to_date"] is True
    r = run(sqlite_url, "user", "show", "2", "--format", "json")
    shown = json.loads(r.stdout)
    assert list(shown) == ["id", "is_synthetic", "deleted", "degree", "labels", "attributes", "features", "feature_columns",
                           "created_at", "updated_at"]
    assert (shown["id"], shown["degree"], shown["deleted"], shown["features"]) == ("2", 2, False, {})
    r = run(sqlite_url, "user", "show", "9")
    assert r.exit_code == 3 and "error: unknown user '9'" in r.output
    r = run(sqlite_url, "db", "downgrade", "base", "--yes")
    assert r.exit_code == 0 and r.stdout.strip() == f"database schema: {SCHEMA_HEAD} -> empty"
    r = run(sqlite_url, "user", "show", "2")
    assert r.exit_code == 4 and "not initialised" in r.output


def test_log_level_option_and_environment(sqlite_url: str, tmp_path: Path) -> None:
    edges = str(write(tmp_path / "e.txt", "1 2\n2 3\n"))
    quiet = run(sqlite_url, "import", "edges", edges, "--format", "json")
    assert quiet.exit_code == 0 and quiet.stderr.count("INFO ") == 0  # default WARNING
    r = run(sqlite_url, "--log-level", "info", "import", "edges", edges, "--format", "json")
    assert r.exit_code == 0 and json.loads(r.stdout)["friendships_added"] == 0  # stdout stays the JSON
    lines = [l for l in r.stderr.splitlines() if l.startswith("INFO graphrec.store.store: ")]
    assert lines and "edges import from" in lines[0]
    r = run(sqlite_url, "stats", "--format", "json", env={"GRAPHREC_LOG_LEVEL": "DEBUG"})
    assert r.exit_code == 0 and json.loads(r.stdout)["users"] == 3
    r = run(sqlite_url, "--log-level", "chatty", "stats")
    assert r.exit_code == 2 and "chatty" in r.output
    r = run(sqlite_url, "--log-level", "error", "--help")
    assert r.exit_code == 0 and "--log-level" in r.output and "GRAPHREC_LOG_LEVEL" in r.output


def test_log_records_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    import logging

    from graphrec.logs import configure_logging

    configure_logging("INFO")
    configure_logging("INFO")  # idempotent: one handler
    try:
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("graphrec.test").exception("failed\nbadly")
        logging.getLogger("graphrec.test").debug("not shown")
        err = capsys.readouterr().err
        mine = [l for l in err.splitlines() if "graphrec.test" in l]
        assert len(mine) == 1 and mine[0].startswith("ERROR graphrec.test: failed | badly | Traceback")
        with pytest.raises(ValueError, match="unknown log level"):
            configure_logging("LOUD")
    finally:
        configure_logging("WARNING")


def test_a_per_epoch_series_prints_as_its_first_and_last_value() -> None:
    from graphrec.cli.app import kv_table

    out = kv_table({"train_loss": [0.5 - i / 200 for i in range(60)], "groups": [1, 2, 3]})
    assert "train_loss  0.5 -> 0.205 (60 values)" in out and "groups      1, 2, 3" in out
