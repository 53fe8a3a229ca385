"""Issue 14, part A: the store and data commands a new user meets in the first hour.

Malformed database URLs, read commands on a mistyped SQLite path, silent new feature columns,
import errors one at a time, an unconfirmed ``db downgrade``, export file modes, the demo bots of
``import ego-facebook --with-demo-bots`` and the output of ``stats`` / ``user show`` / --help.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from graphrec.store.migrate import SCHEMA_HEAD
from click.testing import CliRunner

import graphrec.cli  # noqa: F401  (registers every command family)
from graphrec.cli.app import cli, kv_table
from graphrec.errors import InputError
from graphrec.store.store import GraphStore
from tests.conftest import write


def run(url: str | None, *args: str, input: str | None = None) -> click.testing.Result:
    base = ["--database-url", url] if url is not None else []
    return CliRunner().invoke(cli, [*base, *args], input=input)


def _error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


# -- 1. malformed or unsupported database URLs --------------------------------------------------
@pytest.mark.parametrize("url", ["notaurl", "mysql://x", "postgresql://u:secret@h:notaport/d"])
def test_a_bad_database_url_is_one_error_line_and_exit_2(url: str) -> None:
    r = run(url, "stats")
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output and r.exception is None or isinstance(r.exception, SystemExit)
    lines = _error_lines(r.output)
    assert len(lines) == 1 and "database URL" in lines[0]
    assert "secret" not in r.output  # never print a password
    with pytest.raises(InputError, match="database URL"):
        GraphStore(url)


# -- 2. read commands never create a SQLite file ---------------------------------------------------
@pytest.mark.parametrize("args", [["stats"], ["user", "show", "1"], ["user", "friends", "1"], ["db", "current"],
                                  ["export", "users", "-o", "OUT"]])
def test_read_commands_do_not_create_a_database_file(tmp_path: Path, args: list[str]) -> None:
    db = tmp_path / "mistyped.db"
    args = [str(tmp_path / "out.csv") if a == "OUT" else a for a in args]
    r = run(f"sqlite:///{db}", *args)
    assert not db.exists() and not list(tmp_path.glob("mistyped.db*"))
    if args[0] != "db":
        assert r.exit_code == 4
        assert _error_lines(r.output) and f"no database at {db}" in _error_lines(r.output)[0]
        assert "graphrec db upgrade" in r.output
    else:
        assert r.exit_code == 0 and "up_to_date" in r.output
    assert run(f"sqlite:///{db}", "db", "upgrade").exit_code == 0 and db.exists()  # writes still create it


# -- 3. new feature columns must be explicit -----------------------------------------------------
def test_add_user_rejects_a_new_feature_column_unless_allowed(store: GraphStore) -> None:
    store.add_user("a", features={"age": 31})  # the first feature columns define the feature space
    revision = store.revision()
    with pytest.raises(InputError, match=r"new feature column.*'new_key'.*allow_new_columns=True"):
        store.add_user("b", features={"age": 20, "new_key": 1})
    assert not store.has_user("b") and store.snapshot().feature_names == ["age"] and store.revision() == revision
    with pytest.raises(InputError, match="'other'"):
        store.update_user("a", features={"other": 2})
    assert store.get_user("a").features == {"age": 31.0}
    store.add_user("b", features={"new_key": 1}, allow_new_columns=True)
    assert store.snapshot().feature_names == ["age", "new_key"]
    store.update_user("a", features={"other": 2}, allow_new_columns=True)
    assert store.get_user("a").features == {"age": 31.0, "other": 2.0}


def test_import_users_needs_add_columns_for_new_feature_columns(database_url: str, tmp_path: Path) -> None:
    assert run(database_url, "import", "users", str(write(tmp_path / "a.csv", "id,age\n1,30\n2,40\n"))).exit_code == 0
    wider = write(tmp_path / "b.csv", "id,age,height,weight\n1,30,1.8,80\n")
    r = run(database_url, "import", "users", str(wider))
    assert r.exit_code == 2 and "'height', 'weight'" in r.output and "--add-columns" in r.output
    store = GraphStore(database_url)
    assert store.snapshot().feature_names == ["age"]
    r = run(database_url, "import", "users", str(wider), "--add-columns", "--format", "json")
    assert r.exit_code == 0 and '"feature_columns_added": 2' in r.output
    assert store.snapshot().feature_names == ["age", "height", "weight"]


# -- 4. several import problems in one error -------------------------------------------------------
def test_users_file_with_several_problems_reports_the_first_few_with_lines_and_a_count(store: GraphStore, tmp_path: Path) -> None:
    rows = ["id,age,score", "1,30,0.5", "x,31,0.1", "3,,0.2", "1,33,0.3", "5,34,inf", "6,35,0.4", "y,36,0.6", "z,37,0.7"]
    path = write(tmp_path / "users.csv", "\n".join(rows) + "\n")
    with pytest.raises(InputError) as info:
        store.import_users(path)
    message = str(info.value)
    assert message.startswith(f"{path}:3: non-numeric user id 'x'")
    assert "line 4: empty value in feature column 'age'" in message and "line 5: duplicate user id '1'" in message
    assert "line 6: inf in feature column 'score'" in message and "line 8: non-numeric user id 'y'" in message
    assert "(6 problems in all, first 5 shown)" in message and "line 9" not in message
    assert "\n" not in message and info.value.exit_code == 2
    assert store.count_users() == 0


def test_edge_and_label_files_report_several_problems(store: GraphStore, tmp_path: Path) -> None:
    edges = write(tmp_path / "edges.txt", "1 2\n2 2\n2 1\nx 3\n4 4\n")
    with pytest.raises(InputError) as info:
        store.import_edges(edges, id_type="int")
    message = str(info.value)
    assert message.startswith(f"{edges}:2: self-loop")
    assert "line 3: duplicate friendship" in message and "line 4: non-numeric source id 'x'" in message
    assert "line 5: self-loop: user '4'" in message and "(4 problems in all)" in message
    assert store.count_users() == 0
    store.add_friendships([("1", "2")], create_users=True)
    labels = write(tmp_path / "labels.csv", "id,label\n1,bot\n2,\n1,human\n")
    with pytest.raises(InputError, match=r":3: empty label for user '2'; line 4: duplicate label for user '1'.*\(2 problems in all\)"):
        store.import_labels(labels)
    assert store.labels() == {}


def test_one_problem_keeps_the_plain_message(store: GraphStore, tmp_path: Path) -> None:
    edges = write(tmp_path / "edges.txt", "1 2\n2 2\n")
    with pytest.raises(InputError) as info:
        store.import_edges(edges)
    assert str(info.value) == f"{edges}:2: self-loop: user '2' befriends itself"


# -- 5. db downgrade asks first --------------------------------------------------------------------
def _loaded(url: str, tmp_path: Path) -> None:
    assert run(url, "import", "users", str(write(tmp_path / "u.csv", "id,age\n1,30\n2,40\n3,50\n"))).exit_code == 0


def test_downgrade_plan_names_the_tables_and_rows_and_changes_nothing(database_url: str, tmp_path: Path) -> None:
    _loaded(database_url, tmp_path)
    store = GraphStore(database_url)
    plan = store.downgrade_plan("base")
    assert plan.before == SCHEMA_HEAD and plan.after is None
    assert plan.dropped["users"] == 3 and plan.dropped["feature_columns"] == 1 and "friendships" in plan.dropped
    assert "users: 3" in plan.describe()
    assert store.count_users() == 3 and store.schema_status().up_to_date  # rolled back
    with pytest.raises(InputError, match="not confirmed"):
        store.downgrade("base", confirm=lambda p: False)
    assert store.count_users() == 3


def test_db_downgrade_needs_yes_off_a_terminal(sqlite_url: str, tmp_path: Path) -> None:
    _loaded(sqlite_url, tmp_path)
    r = run(sqlite_url, "db", "downgrade", "base")
    assert r.exit_code == 2 and "--yes" in _error_lines(r.output)[0] and "users: 3" in r.output
    assert GraphStore(sqlite_url).count_users() == 3
    r = run(sqlite_url, "db", "downgrade", "base", "--yes")
    assert r.exit_code == 0 and f"database schema: {SCHEMA_HEAD} -> empty" in r.output
    assert GraphStore(sqlite_url).schema_status().current is None


def test_db_downgrade_prompts_on_a_terminal(sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _loaded(sqlite_url, tmp_path)
    class _Tty:
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("graphrec.cli.data.sys", type("S", (), {"stdin": _Tty()}))
    r = run(sqlite_url, "db", "downgrade", "base", input="n\n")
    assert r.exit_code == 2 and "Proceed?" in r.output and "users: 3" in r.output
    assert GraphStore(sqlite_url).count_users() == 3
    r = run(sqlite_url, "db", "downgrade", "base", input="y\n")
    assert r.exit_code == 0 and GraphStore(sqlite_url).schema_status().current is None


# -- 6. exports honour the umask -------------------------------------------------------------------
@pytest.fixture
def umask() -> Iterator[None]:
    old = os.umask(0o022)
    os.umask(old)
    yield
    os.umask(old)


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_exports_honour_the_umask(store: GraphStore, tmp_path: Path, umask: None, mask: int, mode: int) -> None:
    store.add_user("a", features={"age": 3})
    os.umask(mask)
    for what in ("users", "friendships", "labels"):
        out = tmp_path / f"{what}.csv"
        store.export(what, out)
        assert stat.S_IMODE(out.stat().st_mode) == mode, what


# -- 7. demo bots ----------------------------------------------------------------------------------
def test_ego_facebook_with_demo_bots_is_one_labelled_flagged_transaction(database_url: str, tmp_path: Path) -> None:
    r = run(database_url, "import", "ego-facebook", "--with-demo-bots", "--format", "json")
    assert r.exit_code == 0, r.output
    store = GraphStore(database_url, home=tmp_path / "home")
    assert store.revision() == 1  # one transaction
    snap = store.snapshot()
    bots = [str(u) for u, s in zip(snap.external_ids.tolist(), snap.is_synthetic.tolist()) if s]
    assert snap.num_nodes == 4039 + 200 and len(bots) == 200 and all(int(b) >= 100_000 for b in bots)
    labels = store.labels(source="demo")
    bot_labels = {u for u, lab in labels.items() if lab == "bot"}
    assert len(bot_labels) == 20 and bot_labels <= set(bots)  # a stratified sample: 10% of each class
    assert sum(lab == "human" for lab in labels.values()) == 404 and not (set(labels) - bot_labels) & set(bots)
    assert all(store.degree(b) > 0 for b in bots[:5])
    assert store.excluded_candidates(bots) == set(bots)  # never recommended to real users
    again = run(database_url, "import", "ego-facebook", "--with-demo-bots", "--format", "json")
    assert again.exit_code == 0 and '"changed": false' in again.output and store.revision() == 1


def test_demo_bots_are_written_with_the_dataset_or_not_at_all(sqlite_url: str) -> None:
    from graphrec.store.importers import BatchExtension, EdgeBatch, UserBatch
    from graphrec.tasks.bots.demo import demo_bot_extension

    store = GraphStore(sqlite_url)
    store.initialize()

    def broken(users: UserBatch, edges: EdgeBatch) -> BatchExtension:
        ext = demo_bot_extension(users, edges)
        ext.edges.ids[-1] = "not-a-user"  # fails while writing the bots' friendships
        return ext

    with pytest.raises(InputError):
        store.import_ego_facebook(extend=broken)
    assert store.count_users() == 0 and store.revision() == 0


# -- 8. output ---------------------------------------------------------------------------------------
def test_ids_sort_numerically_and_tables_show_no_python_reprs(store: GraphStore) -> None:
    for u in ("0", "48", "119", "126", "7"):
        store.add_user(u)
    for u in ("48", "119", "126", "7"):
        store.add_friendship("0", u)
    assert store.neighbours("0") == ["7", "48", "119", "126"]
    table = kv_table({"a": None, "b": ["x", "y"], "c": 0.5115686274509804, "d": {"k": None}, "e": [], "f": True})
    assert "None" not in table and "[" not in table and "'" not in table and "0.5116" in table
    assert "0.51156" not in table


def test_user_show_has_labels_and_a_short_feature_line(sqlite_url: str, tmp_path: Path) -> None:
    header = "id," + ",".join(f"f{j}" for j in range(40))
    row = "1," + ",".join("1" if j % 2 else "0" for j in range(40))
    assert run(sqlite_url, "import", "users", str(write(tmp_path / "u.csv", f"{header}\n{row}\n"))).exit_code == 0
    assert run(sqlite_url, "import", "labels", str(write(tmp_path / "l.csv", "id,label\n1,human\n"))).exit_code == 0
    r = run(sqlite_url, "user", "show", "1")
    assert r.exit_code == 0
    lines = {line.split()[0]: line for line in r.output.splitlines()}
    assert "import=human" in lines["labels"]
    assert "20 non-zero of 40" in lines["features"] and "(12 more" in lines["features"] and "f39" not in lines["features"]
    assert "None" not in r.output and "{" not in r.output
    r = run(sqlite_url, "user", "show", "1", "--format", "json")
    assert '"labels": {"import": "human"}' in r.output and '"f39": 1.0' in r.output


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    for name, cmd in group.commands.items():
        yield (*prefix, name), cmd
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, (*prefix, name))


MY_COMMANDS = {"db", "import", "stats", "user", "export"}


def test_help_of_data_commands_has_no_markup_and_describes_every_option() -> None:
    checked = 0
    for path, cmd in _commands(cli):
        if path[0] not in MY_COMMANDS:
            continue
        r = CliRunner().invoke(cli, [*path, "--help"])
        assert r.exit_code == 0 and "``" not in r.output and ":mod:" not in r.output, path
        for param in cmd.params:
            if isinstance(param, click.Option):
                assert param.help, f"{' '.join(path)} {param.opts[0]} has no description"
        checked += 1
    assert checked >= 12
    r = CliRunner().invoke(cli, ["db", "downgrade", "--help"])
    assert "'base'" in r.output and "--yes" in r.output


def test_unknown_users_are_reported_together(store: GraphStore, tmp_path: Path) -> None:
    store.add_user("1")
    labels = write(tmp_path / "labels.csv", "id,label\n1,bot\n7,bot\n8,human\n9,human\n")
    with pytest.raises(InputError) as info:
        store.import_labels(labels)
    message = str(info.value)
    assert message.startswith(f"{labels}:3: unknown user '7'") and "line 4: unknown user '8'" in message
    assert "line 5: unknown user '9'" in message and "(3 problems in all)" in message
    assert store.labels() == {}


@pytest.mark.slow
def test_the_demo_bots_are_found_by_the_bot_model(sqlite_url: str, tmp_path: Path) -> None:
    """The point of the demo: a bot model trained on the demo labels ranks the unlabelled demo bots
    above the real users (the labels sit on synthetic users, hence include_synthetic)."""
    import numpy as np
    from sklearn.metrics import roc_auc_score

    from graphrec.core.graph import Graph
    from graphrec.tasks.base import train_and_register
    from graphrec.tasks.bots.config import BotConfig
    from graphrec.tasks.bots.demo import DemoBots, import_ego_facebook_with_demo_bots
    from graphrec.tasks.registry import get_task

    store = GraphStore(sqlite_url, home=tmp_path / "home")
    store.initialize()
    import_ego_facebook_with_demo_bots(store, demo=DemoBots())
    reg = train_and_register(store, get_task("bots"), BotConfig(seed=0, folds=3, epochs=30, include_synthetic=True, threads=1))
    graph = Graph.from_snapshot(store.snapshot())
    run = reg.model.score_graph(graph)
    labelled = set(store.labels(source="demo"))
    unlabelled = np.array([u not in labelled for u in graph.external_ids])
    is_bot = np.asarray(graph.is_synthetic, dtype=bool)
    assert roc_auc_score(is_bot[unlabelled], run.scores[unlabelled]) > 0.95
    flagged = run.flagged & unlabelled
    assert flagged.sum() > 0 and is_bot[flagged].mean() > 0.8  # what is flagged is mostly demo bots
