"""Generated input files fed to every importer (hypothesis).

For each generated edges, users or labels file the importer either

* imports it cleanly, and then exporting the store, importing the export into an empty store and
  exporting again gives byte-identical files and the same snapshot fingerprint (a lossless round
  trip); or
* refuses it with a :class:`~graphrec.errors.GraphrecError` whose message is one line, and the
  store is unchanged (same revision, same statistics).

Anything else (another exception type, a multi-line message, a changed store after a refusal, a
lossy round trip) is a bug. SQLite only: each example starts from a copy of one initialised store
file, which keeps a few hundred examples within seconds; the importers share their parsing and
validation code across backends, and the backend-specific cases have their own tests.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from graphrec.errors import GraphrecError  # noqa: E402
from graphrec.store.store import GraphStore  # noqa: E402

#: Cells that exercise the importers' rules: ids, decimals, junk, empties, zip-like text, numbers.
ID_TOKENS = ["1", "2", "3", "4", "10", "11", "007", "-5", "1.0", "x", "", "0", "99999999999999999999", "a b", "9" * 400]
VALUE_TOKENS = ["0", "1", "2.5", "-3", "1e-7", "NaN", "inf", "", "unknown", "Paris", "01234", "true", "false", "x,y", "\"q\"",
                "caf\u00e9", "nul\x00byte"]
COLUMN_NAMES = ["age", "city", "score", "zip", "is_synthetic", "label", "source", "id", "", "weird name"]

settings.register_profile("graphrec", max_examples=60, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One initialised, empty SQLite store file, copied for every example."""
    path = tmp_path_factory.mktemp("fuzz") / "template.db"
    GraphStore(f"sqlite:///{path}").initialize()
    return path


def _fresh(template: Path, folder: Path, name: str) -> GraphStore:
    path = folder / f"{name}.db"
    for suffix in ("", "-wal", "-shm"):  # the store runs in WAL mode: copy the log with the file
        Path(f"{path}{suffix}").unlink(missing_ok=True)
        if Path(f"{template}{suffix}").exists():
            shutil.copyfile(f"{template}{suffix}", f"{path}{suffix}")
    return GraphStore(f"sqlite:///{path}")


def _state(store: GraphStore) -> tuple[int, dict[str, object]]:
    return store.revision(), store.stats().as_dict()


def _check(template: Path, folder: Path, kind: str, text: str) -> None:
    """Import ``text`` as ``kind``; assert a clean, losslessly round-tripping import or a one-line
    refusal that leaves the store unchanged."""
    folder.mkdir(parents=True, exist_ok=True)
    store = _fresh(template, folder, "store")
    # A few users and a friendship first, so labels and edges can meet existing users.
    store.import_users(_write(folder / "base.csv", "id,age\n1,30\n2,40\n3,50\n"), allow_new_columns=True)
    store.import_edges(_write(folder / "base.txt", "1 2\n"))
    before = _state(store)
    source = _write(folder / ("in.txt" if kind == "edges" else "in.csv"), text)
    importer = {"edges": store.import_edges, "labels": store.import_labels}.get(kind)
    try:
        if kind == "users":
            store.import_users(source, allow_new_columns=True)
        else:
            assert importer is not None
            importer(source)
    except GraphrecError as exc:
        message = str(exc)
        assert message and "\n" not in message, f"multi-line error for {text!r}: {message!r}"
        assert _state(store) == before, f"a refused import changed the store: {text!r}"
        return
    out1, out2 = folder / "out1", folder / "out2"
    for out in (out1, out2):
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
    for what in ("users", "friendships", "labels"):
        store.export(what, out1 / f"{what}.csv")
    other = _fresh(template, folder, "other")
    other.import_users(out1 / "users.csv", allow_new_columns=True)
    other.import_edges(out1 / "friendships.csv")
    other.import_labels(out1 / "labels.csv")
    for what in ("users", "friendships", "labels"):
        other.export(what, out2 / f"{what}.csv")
        assert (out1 / f"{what}.csv").read_bytes() == (out2 / f"{what}.csv").read_bytes(), (what, text)
    assert other.snapshot().fingerprint() == store.snapshot().fingerprint(), text


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _csv_line(cells: list[str]) -> str:
    return ",".join(cells)


edge_lines = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(ID_TOKENS), st.sampled_from(ID_TOKENS)).map(lambda p: f"{p[0]} {p[1]}"),
        st.tuples(st.sampled_from(ID_TOKENS), st.sampled_from(ID_TOKENS), st.sampled_from(VALUE_TOKENS)).map(lambda p: "\t".join(p)),
        st.sampled_from(["# comment", "", "   ", "1", "1 2 3 4"]),
    ),
    min_size=0, max_size=8,
)


@st.composite
def users_files(draw: st.DrawFn) -> str:
    columns = draw(st.lists(st.sampled_from(COLUMN_NAMES), min_size=0, max_size=3))
    bom = draw(st.sampled_from(["", "\ufeff"]))
    rows = draw(st.lists(st.tuples(st.sampled_from(ID_TOKENS), st.lists(st.sampled_from(VALUE_TOKENS), min_size=max(len(columns) - 1, 0),
                                                                        max_size=len(columns) + 1)), max_size=6))
    lines = [bom + _csv_line(["id", *columns])] + [_csv_line([uid, *cells]) for uid, cells in rows]
    return "\n".join(lines) + "\n"


@st.composite
def label_files(draw: st.DrawFn) -> str:
    rows = draw(st.lists(st.tuples(st.sampled_from(ID_TOKENS), st.sampled_from(["bot", "human", "", "x,y", "spam"])), max_size=6))
    return "\n".join(["id,label", *(_csv_line([u, lab]) for u, lab in rows)]) + "\n"


@settings(settings.get_profile("graphrec"))
@given(lines=edge_lines)
def test_edges_files_import_cleanly_or_fail_in_one_line(template: Path, tmp_path: Path, lines: list[str]) -> None:
    _check(template, tmp_path / "edges", "edges", "\n".join(lines) + "\n")


@settings(settings.get_profile("graphrec"))
@given(text=users_files())
def test_users_files_import_cleanly_or_fail_in_one_line(template: Path, tmp_path: Path, text: str) -> None:
    _check(template, tmp_path / "users", "users", text)


@settings(settings.get_profile("graphrec"))
@given(text=label_files())
def test_label_files_import_cleanly_or_fail_in_one_line(template: Path, tmp_path: Path, text: str) -> None:
    _check(template, tmp_path / "labels", "labels", text)
