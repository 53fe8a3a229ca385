"""Shared fixtures: every store test runs on SQLite and on the real PostgreSQL server.

PostgreSQL tests get a private schema (``search_path`` set through the connection options) that
is dropped afterwards. Set ``GRAPHREC_TEST_POSTGRES_URL`` to point elsewhere. When the server is
unreachable the PostgreSQL tests are skipped locally but fail under CI (``CI=true``), so CI can
never pass without having exercised PostgreSQL.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import create_engine, text

from graphrec.store.engine import dispose_engine
from graphrec.store.store import GraphStore

if TYPE_CHECKING:  # pragma: no cover
    from tests.service_harness import Backend, Server

PG_URL = os.environ.get("GRAPHREC_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
_pg_state: dict[str, object] = {}


def _pg_error() -> str | None:
    if "error" not in _pg_state:
        try:
            engine = create_engine(PG_URL)
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            engine.dispose()
            _pg_state["error"] = None
        except Exception as exc:  # pragma: no cover - depends on the machine
            _pg_state["error"] = str(exc).splitlines()[0]
    return _pg_state["error"]  # type: ignore[return-value]


def require_postgres() -> None:
    err = _pg_error()
    if err is not None:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required under CI but unreachable: {err}")
        pytest.skip(f"PostgreSQL unreachable: {err}")


@pytest.fixture
def pg_url() -> Iterator[str]:
    """URL of a fresh, empty PostgreSQL schema."""
    require_postgres()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in PG_URL else "?"
    url = f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    try:
        yield url
    finally:
        dispose_engine(url)
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    yield url
    dispose_engine(url)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """An empty database on each backend."""
    name = "sqlite_url" if request.param == "sqlite" else "pg_url"
    return request.getfixturevalue(name)


@pytest.fixture
def store(database_url: str, tmp_path: Path) -> GraphStore:
    """An initialised, empty store on each backend."""
    s = GraphStore(database_url, home=tmp_path / "home")
    s.initialize()
    return s


@pytest.fixture(scope="session")
def service_built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The HTTP service tests' graph, store and trained models, built once per session
    (tests/service_harness.py)."""
    from tests.service_harness import build

    return build(tmp_path_factory.mktemp("service"))


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, service_built: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator["Backend"]:
    """The HTTP service tests' graph and models on each backend, loaded once per test module."""
    from tests.service_harness import make_backend

    b, drop = make_backend(request.param, service_built, tmp_path_factory.mktemp(request.param))
    yield b
    drop()


@pytest.fixture(scope="module")
def server(backend: "Backend") -> Iterator["Server"]:
    """``graphrec serve`` on ``backend`` with read, write and admin tokens, once per test module."""
    from tests.service_harness import make_tokens, start_server

    srv = start_server(backend, tokens=make_tokens(backend))
    yield srv
    assert srv.stop() == 0


def train_once(folder: Path, load: Callable[[GraphStore], None], train: Callable[[GraphStore], None]) -> Path:
    """The models folder of a training run in a scratch SQLite store under ``folder``: ``load``
    writes the graph, ``train`` trains on it. Artifacts do not depend on the database they were
    trained from, so module fixtures train once and every test store serves a copy
    (:func:`store_with_models`)."""
    url = f"sqlite:///{folder / 'train.db'}"
    store = GraphStore(url, home=folder / "home")
    store.initialize()
    load(store)
    train(store)
    dispose_engine(url)
    return folder / "home"


def store_with_models(database_url: str, tmp_path: Path, home: Path, load: Callable[[GraphStore], None]) -> GraphStore:
    """An initialised store on ``database_url`` holding the graph ``load`` writes, with a private
    copy of the models folder ``home``."""
    shutil.copytree(home, tmp_path / "home")
    store = GraphStore(database_url, home=tmp_path / "home")
    store.initialize()
    load(store)
    return store


def ego_facebook_store(root: Path) -> GraphStore:
    """A SQLite store under ``root`` with the bundled ego-Facebook graph (models in ``root/home``)."""
    store = GraphStore(f"sqlite:///{root / 'g.db'}", home=root / "home")
    store.initialize()
    store.import_ego_facebook()
    return store


def write(path: Path, content: str | bytes) -> Path:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path
