"""The README's bot-detection path on the bundled graph: demo bots in, a model trained from their
labels, a nightly run that passes the sanity guard, and the flagged users shown."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from graphrec.cli import cli


def _run(url: str, home: Path, *args: str) -> tuple[int, str]:
    """Exit code and output: stdout alone for JSON, stdout and stderr (progress, errors) otherwise."""
    r = CliRunner().invoke(cli, list(args), env={"GRAPHREC_DATABASE_URL": url, "GRAPHREC_HOME": str(home)})
    return r.exit_code, (r.stdout if "json" in args and r.exit_code == 0 else r.output)


@pytest.mark.slow
def test_demo_bots_are_detected_end_to_end(tmp_path: Path) -> None:
    url, home = f"sqlite:///{tmp_path / 'demo.db'}", tmp_path / "home"
    assert _run(url, home, "db", "upgrade")[0] == 0
    code, out = _run(url, home, "import", "ego-facebook", "--with-demo-bots")
    assert code == 0, out
    # The demo bots are synthetic: without --include-synthetic there are no bot labels to learn from.
    code, out = _run(url, home, "train", "bots", "--epochs", "30", "--folds", "3")
    assert code != 0 and "got 0 and" in out and "add --include-synthetic" in out
    code, out = _run(url, home, "train", "bots", "--epochs", "30", "--folds", "3", "--include-synthetic", "--format", "json")
    assert code == 0, out
    # The guard compares the flagged share with the rate of the labels the model learned from
    # (the demo's synthetic labels here), so the run is written without --force.
    code, out = _run(url, home, "score", "--format", "json")
    assert code == 0, out
    code, out = _run(url, home, "bots", "--top", "20", "--format", "json")
    assert code == 0, out
    rows = json.loads(out)
    rows = rows.get("bots", rows) if isinstance(rows, dict) else rows
    # The demo bots' ids start at FIRST_BOT_ID, above every ego-Facebook id.
    from graphrec.tasks.bots.demo import FIRST_BOT_ID

    synthetic = [r for r in rows if int(r["user"]) >= FIRST_BOT_ID]
    assert len(rows) == 20 and len(synthetic) >= 18, rows[:3]


def test_model_folders_and_files_honour_the_umask(tmp_path: Path) -> None:
    """A model a batch job trains is readable by a service running as another user under the
    usual umask 022 (folders 0755, files 0644), and private under umask 077."""
    import os
    import stat

    import numpy as np

    from graphrec import artifacts

    for mask, folder_mode, file_mode in ((0o022, 0o755, 0o644), (0o077, 0o700, 0o600)):
        old = os.umask(mask)
        try:
            home = tmp_path / f"home{mask:o}"
            art = artifacts.save(home, "demo", {"w": np.zeros(3, dtype=np.float32)}, {"params": {}})
        finally:
            os.umask(old)
        assert stat.S_IMODE(art.path.stat().st_mode) == folder_mode
        for f in [*art.path.iterdir(), home / "models" / "demo" / "LATEST"]:
            assert stat.S_IMODE(f.stat().st_mode) == file_mode, f


def test_stats_reports_each_models_revision_against_the_store(tmp_path: Path) -> None:
    """`stats` says which served model is older than the store, and how to refresh it."""
    import numpy as np

    from graphrec.store.store import GraphStore

    url, home = f"sqlite:///{tmp_path / 's.db'}", tmp_path / "home"
    assert _run(url, home, "db", "upgrade")[0] == 0
    store = GraphStore(url)
    rng = np.random.default_rng(0)
    for i in range(60):
        store.add_user(str(i), features={"f0": float(rng.random()), "f1": float(rng.random())}, allow_new_columns=True)
    for i in range(60):
        for j in (1, 2, 7):
            if i + j < 60:
                store.add_friendship(str(i), str(i + j))
    code, out = _run(url, home, "stats")
    assert code == 0 and "models: none trained yet" in out, out
    code, out = _run(url, home, "train", "anomaly", "--format", "json")
    assert code == 0, out
    code, out = _run(url, home, "stats", "--format", "json")
    (model,) = json.loads(out)["models"]
    assert model["stale"] is False and "up to date" in model["message"]
    store.add_friendship("0", "50")  # the store moves on
    code, out = _run(url, home, "stats")
    assert code == 0 and "store is at" in out and "graphrec train anomaly" in out, out


def test_progress_lines_show_at_the_default_level_off_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    """Off a terminal, training progress is logged even at the default level (WARNING), so a
    pipe never sees a silent minute; --log-level error silences it."""
    from graphrec.logs import configure_logging
    from graphrec.progress import progress

    try:
        configure_logging("WARNING")
        with progress("train demo", total=2, unit="epoch") as bar:
            bar.update()
            bar.update()
        assert "train demo" in capsys.readouterr().err
        configure_logging("ERROR")
        with progress("train quiet", total=1) as bar:
            bar.update()
        assert "train quiet" not in capsys.readouterr().err
    finally:
        configure_logging("WARNING")


def _all_commands(group: "click.Group", ctx: "click.Context", path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    import click

    out: list[tuple[str, ...]] = []
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        assert cmd is not None
        out.append((*path, name))
        if isinstance(cmd, click.Group):
            out += _all_commands(cmd, ctx, (*path, name))
    return out


def test_every_command_help_is_plain_and_describes_every_option() -> None:
    """No reStructuredText markup in any --help page, and every option has a description."""
    import click

    ctx = click.Context(cli)
    paths = [(), *_all_commands(cli, ctx)]
    assert len(paths) > 30
    bad = []
    for path in paths:
        r = CliRunner().invoke(cli, [*path, "--help"])
        assert r.exit_code == 0, (path, r.output)
        if "``" in r.output or ":class:" in r.output or ":func:" in r.output or ":mod:" in r.output:
            bad.append((" ".join(path), "markup"))
        cmd: click.Command = cli
        for word in path:
            assert isinstance(cmd, click.Group)
            sub = cmd.get_command(ctx, word)
            assert sub is not None
            cmd = sub
        bad += [(" ".join(path), p.name) for p in cmd.params
                if isinstance(p, click.Option) and not p.hidden and not (p.help or "").strip() and p.name != "help"]
    assert bad == []


def test_cli_marks_a_real_user_synthetic_only_when_asked(tmp_path: Path) -> None:
    """`import users` refuses to turn an existing real user synthetic (synth purge would then
    delete them) unless --allow-synthetic-change is given."""
    url, home = f"sqlite:///{tmp_path / 's.db'}", tmp_path / "home"
    (tmp_path / "u.csv").write_text("id,age\n1,30\n2,40\n")
    (tmp_path / "s.csv").write_text("id,age,is_synthetic\n1,30,true\n")
    assert _run(url, home, "import", "users", str(tmp_path / "u.csv"))[0] == 0
    code, out = _run(url, home, "import", "users", str(tmp_path / "s.csv"))
    assert code == 2 and "--allow-synthetic-change" in out and len(out.strip().splitlines()) == 1, out
    code, out = _run(url, home, "import", "users", str(tmp_path / "s.csv"), "--allow-synthetic-change", "--format", "json")
    assert code == 0, out
    code, out = _run(url, home, "user", "show", "1", "--format", "json")
    assert json.loads(out)["is_synthetic"] is True


def test_a_nul_byte_in_a_user_id_is_one_input_error_on_both_backends(database_url: str) -> None:
    """A user id with a NUL byte (e.g. a NUL line in `recommend --users-file`) is bad input for
    that id on SQLite and PostgreSQL alike, so a batch reports that line and goes on (PostgreSQL
    used to raise a driver error that aborted the whole batch)."""
    from graphrec.errors import InputError
    from graphrec.store.store import GraphStore

    store = GraphStore(database_url)
    store.initialize()
    store.add_user("a")
    for call in (lambda: store.user_profile("a\x00b"), lambda: store.serving_context("\x00"), lambda: store.add_user("b\x00")):
        with pytest.raises(InputError, match="NUL byte"):
            call()
    assert store.user_profile("a")["id"] == "a"
