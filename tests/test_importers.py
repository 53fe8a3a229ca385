"""Importers: formats, validation with file:line errors, atomicity, idempotency, round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text

from conftest import write
from graphrec.errors import InputError
from graphrec.fileio import atomic_output
from graphrec.store.importers import read_edges, read_labels, read_users
from graphrec.store.store import GraphStore


def _counts(store: GraphStore) -> dict[str, int]:
    with store.read() as conn:
        return {
            t: int(conn.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar_one())
            for t in ("users", "friendships", "labels", "feature_columns", "blocks")
        } | {"revision": store.revision()}


# -- parsing (no database) ----------------------------------------------------------------------


def test_snap_edges_with_comments_blank_lines_and_extra_columns(tmp_path: Path) -> None:
    f = write(tmp_path / "g.txt", "# a comment\n1 2\n\n2\t3 0.5\n# another\n3 1\n")
    batch = read_edges(f)
    pairs = {(batch.ids[a], batch.ids[b]) for a, b in zip(batch.src, batch.dst)}
    assert {frozenset(p) for p in pairs} == {frozenset(("1", "2")), frozenset(("2", "3")), frozenset(("1", "3"))}
    assert batch.rows_read == 3


def test_csv_edges_with_chosen_columns(tmp_path: Path) -> None:
    f = write(tmp_path / "g.csv", "weight,from,to\n1,alice,bob\n2,bob,carol\n")
    batch = read_edges(f, source_column="from", target_column="to", id_type="str")
    assert sorted(batch.ids) == ["alice", "bob", "carol"] and batch.src.size == 2
    with pytest.raises(InputError, match=r"g\.csv:1: no target column 'dst'"):
        read_edges(f, source_column="from", target_column="dst", id_type="str")


@pytest.mark.parametrize(
    ("name", "content", "kwargs", "message"),
    [
        ("loop.txt", "1 2\n3 3\n", {}, r"loop\.txt:2: self-loop: user '3'"),
        ("dup.txt", "1 2\n# c\n2 3\n2 1\n", {}, r"dup\.txt:4: duplicate friendship '2' -- '1' \(first on line 1\)"),
        ("nonnum.txt", "1 2\n\n3 x7\n", {}, r"nonnum\.txt:3: non-numeric target id 'x7'"),
        ("one.txt", "1 2\n3\n", {}, r"one\.txt:2: missing target id"),
        ("bad.csv", "a,b\n1,2\n1,\n", {}, r"bad\.csv:3: missing target id"),
        ("nonnum.csv", "a,b\n1,2\n\"x,y\",3\n", {}, r"nonnum\.csv:3: non-numeric source id 'x,y'"),
        ("wide.csv", "a,b\n1,2\n1,2,3\n", {}, r"wide\.csv:3: expected 2 fields, found 3"),
        ("wider.csv", "a,b\n1,2,3\n", {}, r"wider\.csv:2: rows have more fields than the 2 header columns"),
        ("empty.csv", "", {}, r"empty\.csv:1: empty file"),
        ("latin1.txt", "1 2\n3 4\n5 \xe96\n".encode("latin-1"), {}, r"latin1\.txt:3: not valid UTF-8"),
        ("nofile.txt", None, {}, r"nofile\.txt: no such file"),
    ],
)
def test_bad_edge_files_name_file_line_and_problem(tmp_path: Path, name: str, content: str | bytes | None, kwargs: dict, message: str) -> None:
    path = tmp_path / name
    if content is not None:
        write(path, content)
    with pytest.raises(InputError, match=message) as info:
        read_edges(path, **kwargs)
    assert "\n" not in str(info.value)


def test_skip_invalid_counts_what_it_skipped(tmp_path: Path) -> None:
    f = write(tmp_path / "g.txt", "1 2\n2 1\n3 3\n4 x\n4 5\n")
    batch = read_edges(f, skip_invalid=True)
    assert batch.src.size == 2
    assert batch.skipped == {"invalid_id": 1, "self_loop": 1, "duplicate": 1}


def test_users_csv_numeric_columns_become_features(tmp_path: Path) -> None:
    f = write(tmp_path / "u.csv", "id,age,city,zip,score,is_synthetic\n1,30,Paris,02139,0.5,false\n2,41,,10001,1e-3,true\n")
    batch = read_users(f, text_columns=["zip"])
    assert batch.feature_names == ["age", "score"]
    np.testing.assert_allclose(batch.features, [[30, 0.5], [41, 0.001]], rtol=1e-6)
    assert batch.attributes == [{"city": "Paris", "zip": "02139"}, {"zip": "10001"}]
    assert batch.is_synthetic.tolist() == [False, True]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("id,age\n1,3\n2,nan\n", r"u\.csv:3: nan in feature column 'age'"),
        ("id,age\n1,3\n2,inf\n", r"u\.csv:3: inf in feature column 'age'"),
        ("id,age\n1,3\n1,4\n", r"u\.csv:3: duplicate user id '1'"),
        ("name,age\na,3\n", r"u\.csv:1: no id column 'id'"),
        ("id,age,age\n1,2,3\n", r"u\.csv:1: duplicate column 'age'"),
        ("id,age\n1,3\nx,4\n", r"u\.csv:3: non-numeric user id 'x'"),
        ("id,age\n1,3\n,4\n", r"u\.csv:3: missing user id"),
        ("id,is_synthetic\n1,maybe\n", r"u\.csv:2: is_synthetic must be"),
    ],
)
def test_bad_users_files(tmp_path: Path, content: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        read_users(write(tmp_path / "u.csv", content))


def test_forced_feature_column_rejects_text_and_empty(tmp_path: Path) -> None:
    f = write(tmp_path / "u.csv", "id,age\n1,3\n2,\n3,old\n")
    with pytest.raises(InputError, match=r"u\.csv:3: empty value in feature column 'age'"):
        read_users(f, feature_columns=["age"])


def test_bad_labels_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"l\.csv:3: duplicate label for user '1'"):
        read_labels(write(tmp_path / "l.csv", "id,label\n1,bot\n1,human\n"))
    with pytest.raises(InputError, match=r"l\.csv:2: empty label"):
        read_labels(write(tmp_path / "l.csv", "id,label\n1,\n"))
    with pytest.raises(InputError, match=r"l\.csv:1: no label column 'label'"):
        read_labels(write(tmp_path / "l.csv", "id,kind\n1,bot\n"))


# -- writing (both backends) --------------------------------------------------------------------


def test_import_edges_creates_users_and_is_idempotent(store: GraphStore, tmp_path: Path) -> None:
    f = write(tmp_path / "g.txt", "1 2\n2 3\n3 1\n3 4\n")
    r1 = store.import_edges(f)
    assert (r1.users_created, r1.friendships_added, r1.changed) == (4, 4, True)
    before = _counts(store)
    r2 = store.import_edges(f)
    assert (r2.users_created, r2.friendships_added, r2.friendships_present, r2.changed) == (0, 0, 4, False)
    assert _counts(store) == before  # revision untouched too
    f2 = write(tmp_path / "g2.txt", "2 1\n4 5\n")  # one known pair reversed, one new
    r3 = store.import_edges(f2)
    assert (r3.friendships_added, r3.friendships_present, r3.users_created) == (1, 1, 1)
    assert store.neighbours("4") == ["3", "5"]


def test_failed_imports_leave_the_store_untouched(store: GraphStore, tmp_path: Path) -> None:
    store.import_edges(write(tmp_path / "g.txt", "1 2\n2 3\n"))
    before = _counts(store)
    with pytest.raises(InputError, match=r"g2\.txt:2: unknown user '9'"):
        store.import_edges(write(tmp_path / "g2.txt", "1 3\n3 9\n"), create_users=False)
    with pytest.raises(InputError, match=r"l\.csv:3: unknown user '42'"):
        store.import_labels(write(tmp_path / "l.csv", "id,label\n1,bot\n42,human\n"))
    with pytest.raises(InputError, match=r"u\.csv:3: NaN in feature column"):
        store.import_users(write(tmp_path / "u.csv", "id,age\n1,3\n2,NaN\n"))
    with pytest.raises(InputError, match="self-loop"):
        store.import_edges(write(tmp_path / "g3.txt", "5 6\n6 6\n"))
    assert _counts(store) == before


def test_import_users_updates_only_what_changed(store: GraphStore, tmp_path: Path) -> None:
    f = write(tmp_path / "u.csv", "id,age,city\n1,30,Paris\n2,41,Rome\n")
    r1 = store.import_users(f)
    assert (r1.users_created, r1.feature_columns_added) == (2, 1)
    r2 = store.import_users(f)
    assert not r2.changed
    r3 = store.import_users(write(tmp_path / "u2.csv", "id,height,city\n1,1.8,Paris\n3,1.6,\n"), allow_new_columns=True)
    assert (r3.users_created, r3.users_updated, r3.feature_columns_added) == (1, 1, 1)
    assert store.get_user("1").features == {"age": 30.0, "height": pytest.approx(1.8)}
    assert store.get_user("2").attributes == {"city": "Rome"}
    assert store.get_user("3").attributes == {}


def test_import_labels_upserts(store: GraphStore, tmp_path: Path) -> None:
    store.import_edges(write(tmp_path / "g.txt", "1 2\n2 3\n"))
    r1 = store.import_labels(write(tmp_path / "l.csv", "id,label\n1,bot\n2,human\n"))
    assert r1.labels_written == 2
    assert not store.import_labels(tmp_path / "l.csv").changed
    r3 = store.import_labels(write(tmp_path / "l2.csv", "id,label,source\n1,human,appeal\n2,bot,\n"))
    assert r3.labels_written == 2
    assert store.labels(source="import") == {"1": "bot", "2": "bot"}
    assert store.labels(source="appeal") == {"1": "human"}


def test_import_blocks(store: GraphStore, tmp_path: Path) -> None:
    store.import_edges(write(tmp_path / "g.txt", "1 2\n2 3\n"))
    r = store.import_blocks(write(tmp_path / "b.csv", "blocker,blocked\n1,3\n3,2\n"))
    assert r.blocks_added == 2
    assert store.blocked_either_way("3") == ["1", "2"]
    with pytest.raises(InputError, match=r"b2\.csv:2: unknown user '7'"):
        store.import_blocks(write(tmp_path / "b2.csv", "blocker,blocked\n1,7\n"))


def test_string_ids(store: GraphStore, tmp_path: Path) -> None:
    store.import_edges(write(tmp_path / "g.csv", "src,dst\nalice,bob\nbob,carol\n"), id_type="str")
    assert store.mutual_friends("alice", "carol") == ["bob"]


def _export_all(store: GraphStore, folder: Path) -> Path:
    folder.mkdir()
    for what in ("users", "friendships", "labels"):
        result = store.export(what, folder / f"{what}.csv")
        assert result.as_dict()["output"] == str(folder / f"{what}.csv")
    return folder


def test_export_import_round_trip_is_lossless(store: GraphStore, tmp_path: Path, sqlite_url: str) -> None:
    users = write(
        tmp_path / "u.csv",
        "id,age,score,city,is_synthetic\n10,30,0.1,Paris,false\n11,41,-2.75,,true\n12,0,1e-7,Rome,false\n13,5,3.4028235e38,Oslo,false\n",
    )
    store.import_users(users)
    store.import_edges(write(tmp_path / "g.txt", "10 11\n11 12\n14 10\n"))
    store.import_labels(write(tmp_path / "l.csv", "id,label\n10,bot\n12,human\n"))
    out1 = _export_all(store, tmp_path / "out1")
    other = GraphStore(sqlite_url) if store.dialect != "sqlite" else GraphStore(sqlite_url.replace("store.db", "other.db"))
    other.initialize()
    other.import_users(out1 / "users.csv")
    other.import_edges(out1 / "friendships.csv")
    other.import_labels(out1 / "labels.csv")
    assert other.snapshot().fingerprint() == store.snapshot().fingerprint()
    out2 = _export_all(other, tmp_path / "out2")
    for name in ("users.csv", "friendships.csv", "labels.csv"):
        assert (out1 / name).read_text() == (out2 / name).read_text(), name
    text_users = (out1 / "users.csv").read_text().splitlines()
    assert text_users[0] == "id,is_synthetic,city,age,score"
    assert text_users[1] == "10,false,Paris,30,0.1"
    assert text_users[2] == "11,true,,41,-2.75"


def test_export_never_leaves_partial_files(store: GraphStore, tmp_path: Path) -> None:
    store.add_user("a", attributes={"age": "x"}, features={"age": 3})  # name clash: cannot export
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(Exception, match="share the name 'age'"):
        store.export("users", out / "users.csv")
    assert list(out.iterdir()) == []
    with pytest.raises(InputError, match="cannot export 'circles'"):
        store.export("circles", out / "circles.csv")


def test_atomic_output_keeps_the_old_file_on_failure(tmp_path: Path) -> None:
    target = write(tmp_path / "out.csv", "old\n")
    with pytest.raises(RuntimeError):
        with atomic_output(target) as fh:
            fh.write("new, half written")
            raise RuntimeError("boom")
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]


def test_utf8_check_streams_and_names_the_line(tmp_path: Path) -> None:
    from graphrec.store.importers import _check_utf8

    data = ("1 2\n" * 7).encode() + b"3 \xc3\xa9\n5 \xff6\n"
    f = write(tmp_path / "e.txt", data)
    for chunk in (1, 3, 4, 1 << 20):
        with pytest.raises(InputError, match=r"e\.txt:9: not valid UTF-8 \(byte 0xff") as info:
            _check_utf8(f, chunk=chunk)
        assert "offset %d" % data.index(b"\xff") in str(info.value)
    _check_utf8(write(tmp_path / "ok.txt", "é\n" * 10), chunk=3)


def test_bulk_lookup_of_text_ids_with_special_characters(store: GraphStore, tmp_path: Path) -> None:
    """More than 500 ids take the temporary-table path (COPY text format on PostgreSQL)."""
    ids = [f"user{i}" for i in range(600)] + ["tab\there", "back\\slash", "new\\nline", "quote\"d", "comma,x"]
    rows = "\n".join('"' + i.replace('"', '""') + '",' + str(k) for k, i in enumerate(ids))
    store.import_users(write(tmp_path / "u.csv", "id,rank\n" + rows + "\n"), id_type="str")
    edges = "\n".join('"' + a.replace('"', '""') + '","' + b.replace('"', '""') + '"' for a, b in zip(ids, ids[1:]))
    report = store.import_edges(write(tmp_path / "e.csv", "a,b\n" + edges + "\n"), id_type="str", create_users=False)
    assert report.users_created == 0 and report.friendships_added == len(ids) - 1
    assert store.neighbours("back\\slash") == sorted(["tab\there", "new\\nline"])
