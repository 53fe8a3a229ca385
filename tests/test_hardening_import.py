"""Issue 15 part A: importers and exports fail with one clear line, and never store something
other than what the file says (on SQLite and PostgreSQL where the store is involved)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from conftest import write
from graphrec.cli import cli
from graphrec.errors import InputError
from graphrec.store.importers import read_edges, read_labels, read_users
from graphrec.store.schema import Block, User
from graphrec.store.store import GraphStore


def _blocks(store: GraphStore) -> set[tuple[str, str]]:
    with store.read() as conn:
        ext = dict(conn.execute(select(User.id, User.external_id)).all())
        return {(ext[a], ext[b]) for a, b in conn.execute(select(Block.blocker_id, Block.blocked_id))}


def _state(store: GraphStore) -> tuple[str, int]:
    return store.snapshot().fingerprint(), store.revision()


# -- 1. block direction -----------------------------------------------------------------------


def test_blocks_keep_their_direction_and_mutual_blocks_are_two(store: GraphStore, tmp_path: Path) -> None:
    store.import_edges(write(tmp_path / "g.txt", "1 2\n3 4\n5 6\n"))
    r = store.import_blocks(write(tmp_path / "b.txt", "5 2\n3 4\n4 3\n"))
    assert r.blocks_added == 3
    assert _blocks(store) == {("5", "2"), ("3", "4"), ("4", "3")}
    with pytest.raises(InputError, match=r"b2\.txt:2: duplicate block '3' -- '4' \(first on line 1\)"):
        store.import_blocks(write(tmp_path / "b2.txt", "3 4\n3 4\n"))
    # friendships stay undirected
    with pytest.raises(InputError, match="duplicate friendship"):
        read_edges(write(tmp_path / "g2.txt", "3 4\n4 3\n"))


# -- 2. short CSV rows ------------------------------------------------------------------------


def test_short_csv_rows_are_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"u\.csv:2: row has fewer fields than the 3 header columns"):
        read_users(write(tmp_path / "u.csv", "id,age,city\n101,31\n"))
    with pytest.raises(InputError, match=r"l\.csv:3: row has fewer fields"):
        read_labels(write(tmp_path / "l.csv", "id,label,source\n1,bot,x\n2,bot\n"))
    # empty trailing fields are fine
    assert read_users(write(tmp_path / "ok.csv", "id,age,city\n101,31,\n")).external_ids == ["101"]


# -- 3. SNAP decimals -------------------------------------------------------------------------


@pytest.mark.parametrize("content", ["1.0 2\n", "1 2\n3 4e0\n", "# c. e\n1 2\n2 1.5\n"])
def test_snap_decimals_are_not_integer_ids(tmp_path: Path, content: str) -> None:
    with pytest.raises(InputError, match=r"non-numeric (source|target) id"):
        read_edges(write(tmp_path / "g.txt", content))


def test_snap_comments_with_dots_still_read(tmp_path: Path) -> None:
    batch = read_edges(write(tmp_path / "g.txt", "# Nodes: 3. Edges: 2e0\n1 2\n2 3\n"))
    assert sorted(batch.ids) == ["1", "2", "3"]


# -- 4. exports that break, lossless round trip -----------------------------------------------


def test_a_non_numeric_cell_in_a_feature_column_is_refused(store: GraphStore, tmp_path: Path) -> None:
    store.import_users(write(tmp_path / "u1.csv", "id,age\n1,30\n2,40\n"))
    before = _state(store)
    with pytest.raises(InputError, match=r"u2\.csv:3: column 'age' is a feature column of the store but has non-numeric"):
        store.import_users(write(tmp_path / "u2.csv", "id,age\n3,31\n4,unknown\n"))
    assert _state(store) == before
    store.export("users", tmp_path / "out.csv")  # still exportable


def test_a_text_column_cannot_become_a_feature(store: GraphStore, tmp_path: Path) -> None:
    store.import_users(write(tmp_path / "u1.csv", "id,age\n1,unknown\n"))
    before = _state(store)
    with pytest.raises(InputError, match=r"column 'age' is a text attribute in the store"):
        store.import_users(write(tmp_path / "u2.csv", "id,age\n3,31\n"), allow_new_columns=True)
    assert _state(store) == before
    store.export("users", tmp_path / "out.csv")


def _other(store: GraphStore, sqlite_url: str) -> GraphStore:
    other = GraphStore(sqlite_url) if store.dialect != "sqlite" else GraphStore(sqlite_url.replace("store.db", "other.db"))
    other.initialize()
    return other


def test_an_attribute_named_id_round_trips(store: GraphStore, tmp_path: Path, sqlite_url: str) -> None:
    store.import_users(write(tmp_path / "u.csv", "uid,id,age\n1,A-1,30\n2,B-2,40\n"), id_column="uid")
    out = tmp_path / "users.csv"
    result = store.export("users", out).as_dict()
    assert result["id_column"] == "_id"
    assert out.read_text().splitlines()[0] == "_id,is_synthetic,id,age"
    other = _other(store, sqlite_url)
    other.import_users(out, id_column="_id")
    assert other.snapshot().fingerprint() == store.snapshot().fingerprint()
    assert other.get_user("1").attributes == {"id": "A-1"}
    out2 = tmp_path / "users2.csv"
    other.export("users", out2)
    assert out2.read_text() == out.read_text()
    assert "id_column" not in store.export("friendships", tmp_path / "f.csv").as_dict()


def test_zip_codes_round_trip(store: GraphStore, tmp_path: Path, sqlite_url: str) -> None:
    store.import_users(write(tmp_path / "u.csv", "id,zip,age\n1,01234,30\n2,98765,40\n"), text_columns=["zip"])
    out = tmp_path / "users.csv"
    store.export("users", out)
    assert "1,false,01234,30" in out.read_text()
    other = _other(store, sqlite_url)
    other.import_users(out)  # no --text-columns needed: the leading zero marks text
    assert other.get_user("1").attributes == {"zip": "01234"}
    assert other.snapshot().fingerprint() == store.snapshot().fingerprint()


# -- 5. purge must not delete real users ------------------------------------------------------


def test_marking_a_real_user_synthetic_must_be_explicit(store: GraphStore, tmp_path: Path) -> None:
    store.import_edges(write(tmp_path / "g.txt", "1 2\n"))
    before = _state(store)
    flip = write(tmp_path / "u.csv", "id,is_synthetic\n1,true\n9,true\n")
    with pytest.raises(InputError, match=r"u\.csv:2: user '1' is a real user .*--allow-synthetic-change"):
        store.import_users(flip)
    assert _state(store) == before
    store.import_users(write(tmp_path / "same.csv", "id,is_synthetic\n1,false\n"))  # no change: fine
    store.import_users(flip, allow_synthetic_change=True)
    assert store.get_user("1").is_synthetic


# -- 6. bytes, headers, sizes, ids, delimiters ------------------------------------------------


def test_a_byte_order_mark_is_accepted(store: GraphStore, tmp_path: Path) -> None:
    store.import_users(write(tmp_path / "u.csv", b"\xef\xbb\xbfid,age\n1,30\n2,40\n"))
    store.import_labels(write(tmp_path / "l.csv", b"\xef\xbb\xbfid,label\n1,bot\n"))
    assert store.labels() == {"1": "bot"}


def test_long_column_names_and_fields_are_one_line_errors(store: GraphStore, tmp_path: Path) -> None:
    before = _state(store)
    with pytest.raises(InputError, match=r"u\.csv:1: column name longer than 255 characters"):
        store.import_users(write(tmp_path / "u.csv", f"id,{'c' * 300}\n1,2\n"))
    with pytest.raises(InputError, match=r"u2\.csv:3: field of column 'bio' longer than 131072 characters"):
        store.import_users(write(tmp_path / "u2.csv", f"id,bio\n1,x\n2,{'y' * 140_000}\n"))
    with pytest.raises(InputError, match=r"u3\.csv:1: header field longer than 131072"):
        store.import_users(write(tmp_path / "u3.csv", f"id,{'h' * 140_000}\n1,2\n"))
    assert _state(store) == before


@pytest.mark.parametrize("digits", [300, 5000])
def test_huge_ids_are_one_line_errors(store: GraphStore, tmp_path: Path, digits: int) -> None:
    big = "7" * digits
    before = _state(store)
    for name, content in (("g.txt", f"1 2\n{big} 1\n"), ("g.csv", f"a,b\n1,2\n{big},1\n")):
        with pytest.raises(InputError, match=re.escape(name) + r":\d+: source id longer than 255 characters"):
            store.import_edges(write(tmp_path / name, content))
        r = store.import_edges(tmp_path / name, skip_invalid=True)
        assert r.skipped == {"invalid_id": 1}
    with pytest.raises(InputError, match=r"u\.csv:3: user id longer than 255"):
        store.import_users(write(tmp_path / "u.csv", f"id,age\n1,3\n{big},4\n"))
    with pytest.raises(InputError, match=r"l\.csv:2: user id longer than 255"):
        store.import_labels(write(tmp_path / "l.csv", f"id,label\n{big},bot\n"))
    assert store.snapshot().external_ids.tolist() == ["1", "2"]
    assert before != _state(store)


@pytest.mark.parametrize("reader", [read_edges, read_users, read_labels])
def test_a_multi_character_delimiter_is_a_one_line_error(tmp_path: Path, reader) -> None:
    with pytest.raises(InputError, match=r"--delimiter must be a single character.*';;'"):
        reader(write(tmp_path / "x.csv", "id;;label\n1;;bot\n"), delimiter=";;")


@pytest.mark.parametrize(
    ("name", "content", "kwargs", "line"),
    [
        ("u.csv", b"id,city\n1,Par\x00is\n", {}, 2),
        ("u.csv", b"id,city\na\x00b,Paris\n", {"id_type": "str"}, 2),
        ("g.csv", b"a,b\nx,y\nx\x00,z\n", {"id_type": "str"}, 3),
        ("l.csv", b"id,label\n1,b\x00t\n", {}, 2),
    ],
)
def test_nul_bytes_are_rejected_the_same_on_both_backends(store: GraphStore, tmp_path: Path, name: str, content: bytes,
                                                          kwargs: dict, line: int) -> None:
    store.import_users(write(tmp_path / "base.csv", "id,city\n1,Rome\n"))
    before = _state(store)
    path = write(tmp_path / name, content)
    importer = {"u": store.import_users, "g": store.import_edges, "l": store.import_labels}[name[0]]
    with pytest.raises(InputError, match=rf"{name[0]}\.csv:{line}: NUL byte"):
        importer(path, **kwargs)
    assert _state(store) == before


def test_cli_errors_are_one_line_with_exit_code_2(database_url: str, tmp_path: Path) -> None:
    env = {"GRAPHREC_DATABASE_URL": database_url}
    cases = [
        ["import", "users", str(write(tmp_path / "short.csv", "id,age,city\n101,31\n"))],
        ["import", "users", str(write(tmp_path / "d.csv", "id;;age\n1;;2\n")), "--delimiter", ";;"],
        ["import", "edges", str(write(tmp_path / "g.txt", f"1 2\n{'9' * 5000} 1\n")), "--skip-invalid"],
        ["import", "edges", str(write(tmp_path / "dec.txt", "1.0 2\n"))],
    ]
    for args in cases:
        r = CliRunner().invoke(cli, args, env=env)
        if "--skip-invalid" in args:
            assert r.exit_code == 0, r.output
            continue
        assert r.exit_code == 2, (args, r.output)
        assert "Traceback" not in r.output
        assert len([ln for ln in r.output.splitlines() if ln.startswith("error: ")]) == 1, r.output
        assert r.output.rstrip().splitlines()[-1].startswith("error: "), r.output


# -- import ego-facebook --path: odd folders ---------------------------------------------------


def _ego_folder(folder: Path, **override: str) -> Path:
    folder.mkdir()
    files = {
        "0.featnames": "0 gender;anonymized feature 1\n1 school;anonymized feature 2\n",
        "0.feat": "1 1 0\n2 0 1\n",
        "0.egofeat": "1 1\n",
        "0.circles": "circle0\t1\t2\n",
        "facebook_combined.txt": "0 1\n0 2\n1 2\n",
    }
    files.update(override)
    for name, content in files.items():
        (folder / name).write_text(content)
    return folder


def test_a_small_ego_facebook_folder_imports(store: GraphStore, tmp_path: Path) -> None:
    r = store.import_ego_facebook(_ego_folder(tmp_path / "ego"))
    assert r.users_created == 3 and r.friendships_added == 3


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"abc.featnames": "0 x\n"}, r"unexpected file name 'abc\.featnames'"),
        ({"0.1.featnames": "0 x\n"}, r"unexpected file name '0\.1\.featnames'"),
        ({f"{'9' * 30}.featnames": "0 x\n"}, r"unexpected file name"),
        ({"0.featnames": "0 a\n2 b\n"}, r"0\.featnames:2: feature index 2 where 1 was expected"),
        ({"0.featnames": "1 a\n0 b\n"}, r"0\.featnames:1: feature index 1 where 0 was expected"),
        ({"0.featnames": "x a\n"}, r"0\.featnames:1: feature index 'x' is not an integer"),
        ({"0.featnames": f"0 {'n' * 300}\n1 b\n"}, r"0\.featnames:1: feature name longer than 255"),
        ({"0.circles": f"{'c' * 300}\t1\n"}, r"0\.circles:1: circle name longer than 255"),
        ({"facebook_combined.txt": f"0 1\n{'7' * 300} 1\n"}, r"facebook_combined\.txt:2: user id '7+\.\.\.' is not an integer"),
        ({"facebook_combined.txt": "0 1\n99999999999999999999 1\n"}, r"facebook_combined\.txt:2: user id .* is not an integer"),
        ({"0.circles": "c\t1\nc\t1\n"}, r"0\.circles:2: duplicate circle 'c' \(first on line 1\)"),
        ({"0.feat": "1 1 0\n1.0 0 1\n"}, r"0\.feat:2: user id '1\.0' is not an integer"),
    ],
)
def test_odd_ego_facebook_folders_are_one_line_errors(store: GraphStore, tmp_path: Path, override: dict[str, str],
                                                      message: str) -> None:
    before = _state(store)
    with pytest.raises(InputError, match=message):
        store.import_ego_facebook(_ego_folder(tmp_path / "ego", **override))
    assert _state(store) == before
