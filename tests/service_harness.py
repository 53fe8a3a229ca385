"""Test harness for the HTTP service: a small community graph with trained models and nightly
runs, loaded into SQLite or PostgreSQL, and ``graphrec serve`` started as a real subprocess on a
free loopback port."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from graphrec.store.engine import dispose_engine
from graphrec.store.store import GraphStore

ROOT = Path(__file__).resolve().parents[1]
N_USERS, GROUPS = 240, 6


def write_graph(root: Path) -> tuple[Path, Path]:
    """users.csv (12 binary profile features) and edges.txt of a 240-user graph of 6 communities."""
    rng = np.random.default_rng(0)
    group = np.arange(N_USERS) % GROUPS
    lines = [f"{u} {v}" for u in range(N_USERS) for v in range(u + 1, N_USERS)
             if rng.random() < (0.12 if group[u] == group[v] else 0.004)]
    edges = root / "edges.txt"
    edges.write_text("\n".join(lines) + "\n", encoding="utf-8")
    feats = (rng.random((N_USERS, 12)) < 0.1) | (np.eye(GROUPS, 12, dtype=bool)[group] & (rng.random((N_USERS, 1)) < 0.8))
    rows = ["id," + ",".join(f"f{j}" for j in range(12))] + [f"{u}," + ",".join(str(int(x)) for x in feats[u]) for u in range(N_USERS)]
    users = root / "users.csv"
    users.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return users, edges


def load_graph(store: GraphStore, users: Path, edges: Path) -> None:
    """The graph, and one complete bot run and one anomaly run (users 0..9 flagged), as the
    nightly job would write them."""
    from graphrec.store.scores import NewScoringRun

    store.initialize()
    store.import_users(users)
    store.import_edges(edges)
    snap = store.snapshot()
    ids = np.asarray(snap.user_ids, dtype=np.int64)
    scores = np.linspace(1.0, 0.0, ids.size)
    flagged = np.zeros(ids.size, dtype=bool)
    flagged[:10] = True
    runs = [NewScoringRun(kind=kind, run_date=dt.date(2026, 11, 29), user_ids=ids, scores=scores, flagged=flagged, threshold=0.96,
                          details={i: {"why": f"{kind} test signal {i}"} for i in range(20)},
                          summary={"model_version": None})
            for kind in ("bot", "anomaly")]
    store.write_scoring_runs(runs)


def train_models(url: str, home: Path) -> dict[str, str]:
    """Two link models (seeds 0 and 1; the first serves) and a Siamese model; their versions."""
    from graphrec import artifacts
    from graphrec.tasks.base import train_and_register
    from graphrec.tasks.registry import get_task

    store = GraphStore(url, home=home)
    versions = {}
    for name, task, cfg in (("linkpred", "linkpred", {"epochs": 20, "seed": 0}), ("linkpred2", "linkpred", {"epochs": 20, "seed": 1}),
                            ("siamese", "siamese", {"epochs": 5, "seed": 0})):
        t = get_task(task)
        reg = train_and_register(store, t, t.config_type(**cfg))
        versions[name] = reg.version
    artifacts.set_latest(home, "linkpred", versions["linkpred"])
    return versions


@dataclass
class Backend:
    """A loaded store and a models folder for one server."""

    url: str
    home: Path
    versions: dict[str, str]
    dialect: str
    cleanup: list[Any] = field(default_factory=list)

    def store(self) -> GraphStore:
        return GraphStore(self.url, home=self.home)


def pg_schema_url(base: str) -> tuple[str, Any]:
    """A fresh PostgreSQL schema's URL and its drop function."""
    from sqlalchemy import create_engine, text

    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"

    def drop() -> None:
        from graphrec.store.engine import dispose_engine

        dispose_engine(url)
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    url = f"{base}{sep}options=-csearch_path%3D{schema}"
    return url, drop


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A running ``graphrec serve`` subprocess."""

    proc: subprocess.Popen[bytes]
    base: str
    log: Path
    tokens: dict[str, str]

    def client(self, scope: str | None = "admin", **kw: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[scope]}"} if scope else {}
        return httpx.Client(base_url=self.base, headers=headers, timeout=60, **kw)

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return int(self.proc.returncode)


def make_tokens(backend: Backend) -> dict[str, str]:
    from graphrec.store.tokens import create_token

    store = backend.store()
    tag = uuid.uuid4().hex[:6]
    return {scope: create_token(store, f"{scope}-{tag}", [scope]).secret for scope in ("read", "write", "admin")}


def start_server(backend: Backend, *args: str, workers: int = 1, tokens: dict[str, str] | None = None, log_dir: Path | None = None,
                 wait_ready: bool = True) -> Server:
    """``graphrec --log-format json serve`` on a free port; waits until ``/readyz`` answers 200."""
    port = free_port()
    log = (log_dir or backend.home) / f"serve-{port}.log"
    env = {**os.environ, "GRAPHREC_DATABASE_URL": backend.url, "GRAPHREC_HOME": str(backend.home), "GRAPHREC_LOG_LEVEL": "WARNING"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    cmd = [sys.executable, "-c", "from graphrec.cli import main; main()", "--log-format", "json", "serve", "--port", str(port), "--workers", str(workers),
           "--watch-seconds", "0.3", *args]
    with log.open("wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    server = Server(proc, f"http://127.0.0.1:{port}", log, tokens or {})
    if wait_ready:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}: {server.log_text()[-2000:]}")
            try:
                if httpx.get(server.base + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                server.stop()
                raise RuntimeError(f"server not ready in 90 s: {server.log_text()[-2000:]}")
            time.sleep(0.1)
    return server


def copy_home(home: Path, to: Path) -> Path:
    shutil.copytree(home, to)
    return to


def build(root: Path) -> dict[str, Any]:
    """The graph files, a SQLite store with the nightly runs, and the trained models, once per
    session (tests/conftest.py ``service_built``); each backend copies them."""
    users, edges = write_graph(root)
    url = f"sqlite:///{root / 'base.db'}"
    load_graph(GraphStore(url, home=root / "home"), users, edges)
    versions = train_models(url, root / "home")
    dispose_engine(url)  # closes its connections: the WAL is checkpointed into the file copied below
    return {"root": root, "users": users, "edges": edges, "db": root / "base.db", "home": root / "home", "versions": versions}


def make_backend(kind: str, built: dict[str, Any], where: Path) -> tuple[Backend, Any]:
    """A private copy of the built store (SQLite) or the same graph loaded into a fresh
    PostgreSQL schema, with a private copy of the models folder; and its clean-up."""
    from tests.conftest import PG_URL, require_postgres

    home = copy_home(built["home"], where / "home")
    if kind == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            if Path(f"{built['db']}{suffix}").exists():
                shutil.copy(f"{built['db']}{suffix}", where / f"g.db{suffix}")
        return Backend(f"sqlite:///{where / 'g.db'}", home, built["versions"], "sqlite"), lambda: None
    require_postgres()
    url, drop = pg_schema_url(PG_URL)
    load_graph(GraphStore(url, home=home), built["users"], built["edges"])
    return Backend(url, home, built["versions"], "postgresql"), drop
