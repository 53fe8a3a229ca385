#!/usr/bin/env python
"""Import and snapshot benchmark for the graphrec store (issue 2).

What it measures
----------------
1. **Data**: a seeded synthetic social graph: ``--users`` users (default 1,000,000) and exactly
   ``--edges`` undirected friendships (default 10,000,000), sampled Chung-Lu style (endpoint
   probability proportional to a power-law weight, degree exponent ~2.5), with self-loops and
   duplicates removed and each pair written once as ``u v`` with ``u < v``. User ids are sparse
   random integers (like SNAP ids), so the heavy nodes are scattered through the id space. It is
   written as a SNAP edge file (``edges.txt``), a users CSV (``users.csv``: ``id`` plus 8 numeric
   feature columns) and the already-parsed int64 pairs (``edges.npy``, for the baseline).
2. **Per backend** (SQLite file in the work folder; PostgreSQL in a fresh ``bench_<hex>`` schema
   reached through ``?options=-csearch_path=...`` and dropped at the end), each step in its own
   fresh Python subprocess, whose peak RSS (``ru_maxrss``) is reported:

   * ``raw``: the baseline, a bare two-column table with no constraints or indexes, loaded with
     the same edge rows from the already-parsed int64 pairs (SQLite: chunked ``executemany`` in
     one transaction; PostgreSQL: binary ``COPY ... FROM STDIN`` with psycopg 3). Only the load
     and commit are timed, not reading ``edges.npy``.
   * ``import``: ``GraphStore(url).initialize()`` (untimed), then ``import_users(users.csv)`` and
     ``import_edges(edges.txt)`` through graphrec's public API, each timed end to end (parse +
     write); the write-transaction share comes from ``ImportReport.seconds``.
   * ``snapshot``: ``store.snapshot().to_pyg()``; checks ``num_nodes == N`` and
     ``edge_index`` has ``2*M`` columns. ``torch_geometric`` is imported before the clock starts
     (a one-off ~1-2 s per process, reported separately).
   * ``reimport``: ``import_edges(edges.txt)`` again; must report ``friendships_added == 0``.

   The server's own memory (PostgreSQL backends) is not in the RSS figures: they are the Python
   process's only. The data is generated in a subprocess too, so the orchestrating parent stays
   small: Linux carries ``ru_maxrss`` across ``exec``, so every child starts out reporting at
   least its parent's peak (each child also records ``VmHWM`` as a cross-check).
3. **Targets** printed beside the figures: users + edges import under 60 s per backend, peak RSS
   under 4 GB, snapshot + ``to_pyg`` under 20 s. graphrec's edges/s is printed beside the raw
   baseline's edges/s with the ratio.

The 1-minute load average before and after each step is printed too, because the machine may be
shared (figures taken while something else runs are slower than on an idle machine).

How to run
----------
From the repository root (PostgreSQL at ``--pg-url``, default ``$GRAPHREC_TEST_POSTGRES_URL`` or
``postgresql+psycopg://postgres@127.0.0.1:5432/test``)::

    .venv/bin/python benchmarks/bench_import.py --users 20000 --edges 200000      # seconds
    .venv/bin/python benchmarks/bench_import.py 2>&1 | tee bench-import.log       # full: minutes

Flags: ``--users``, ``--edges``, ``--seed``, ``--backends sqlite,postgresql``, ``--keep`` (keep
the work folder and, for PostgreSQL, the schema), ``--workdir`` (parent of the work folder),
``--pg-url``, ``--json`` (write all figures as JSON), ``--profile`` (run each step under cProfile,
print the top functions and keep ``<backend>-<step>.prof`` in the work folder; profiled timings
are slower and are not benchmark figures).

This is a script, not a test: pytest only collects ``tests/`` (``testpaths``), and nothing here
is named ``test_*``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import secrets
import shutil
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import psycopg

if TYPE_CHECKING:  # pragma: no cover
    from graphrec import GraphStore

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PHASES = ("raw", "import", "snapshot", "reimport")  # per backend, in this order
FEATURE_COLUMNS = 8
SQLITE_CHUNK = 200_000  # rows per executemany call in the SQLite baseline (graphrec uses the same)
COPY_CHUNK = 1 << 24  # bytes per COPY write in the PostgreSQL baseline

TARGET_IMPORT_S = 60.0
TARGET_RSS_MIB = 4096.0
TARGET_SNAPSHOT_S = 20.0


# ---------------------------------------------------------------------------------------------
# data generation


@dataclass(frozen=True)
class Dataset:
    folder: Path
    users: int
    edges: int
    seed: int

    @property
    def edge_file(self) -> Path:
        return self.folder / "edges.txt"

    @property
    def users_file(self) -> Path:
        return self.folder / "users.csv"

    @property
    def pairs_file(self) -> Path:
        return self.folder / "edges.npy"


def chung_lu_pairs(n: int, m: int, rng: np.random.Generator, gamma: float = 2.5) -> np.ndarray:
    """Exactly ``m`` distinct undirected pairs ``(lo, hi)`` of node indices ``0..n-1``, ``lo < hi``.

    Endpoints are drawn independently with probability proportional to ``(i + 1) ** (-1 / (gamma
    - 1))``, which gives a power-law degree tail with exponent ``gamma``; self-loops and repeated
    pairs are dropped and more pairs drawn until ``m`` remain.
    """
    if n < 2 or m > n * (n - 1) // 2:
        raise ValueError(f"cannot place {m} distinct friendships among {n} users")
    cdf = np.cumsum(np.arange(1, n + 1, dtype=np.float64) ** (-1.0 / (gamma - 1.0)))
    cdf /= cdf[-1]
    keys = np.empty(0, dtype=np.int64)
    while keys.size < m:
        draw = int((m - keys.size) * 1.2) + 1024
        u = np.minimum(np.searchsorted(cdf, rng.random(draw), side="right"), n - 1)
        v = np.minimum(np.searchsorted(cdf, rng.random(draw), side="right"), n - 1)
        keep = u != v
        lo, hi = np.minimum(u[keep], v[keep]), np.maximum(u[keep], v[keep])
        keys = np.unique(np.concatenate([keys, lo.astype(np.int64) * n + hi]))
    keys = rng.permutation(keys)[:m]  # random subset, random file order
    return np.stack([keys // n, keys % n], axis=1)


def generate(folder: Path, n: int, m: int, seed: int) -> Dataset:
    """Write the edge file, users CSV and parsed pairs for ``n`` users and ``m`` friendships."""
    rng = np.random.default_rng(seed)
    external = rng.choice(10 * n, size=n, replace=False).astype(np.int64) + 1  # sparse ids
    pairs = external[chung_lu_pairs(n, m, rng)]
    pairs.sort(axis=1)  # canonical u < v in external ids
    data = Dataset(folder, n, m, seed)
    np.save(data.pairs_file, pairs)
    with data.edge_file.open("w", encoding="utf-8") as fh:
        fh.write(f"# graphrec synthetic Chung-Lu graph, seed {seed}\n# Nodes: {n} Edges: {m}\n# FromNodeId\tToNodeId\n")
        pd.DataFrame(pairs).to_csv(fh, sep=" ", header=False, index=False)
    features = {
        "age": rng.integers(13, 90, n).astype(np.float64),
        "account_age_days": rng.integers(0, 5000, n).astype(np.float64),
        "posts_per_day": rng.lognormal(0.0, 1.0, n),
        "followers_log": rng.normal(4.0, 1.5, n),
        "activity": rng.random(n),
        "verified": (rng.random(n) < 0.02).astype(np.float64),
        "lat": rng.uniform(-60.0, 70.0, n),
        "lon": rng.uniform(-180.0, 180.0, n),
    }
    assert len(features) == FEATURE_COLUMNS
    pd.DataFrame({"id": external, **features}).to_csv(data.users_file, index=False, float_format="%.6g")
    return data


# ---------------------------------------------------------------------------------------------
# child phases (each runs in its own process)


def peak_rss_mib() -> float:
    """Peak resident set size of this process in MiB (Linux reports ``ru_maxrss`` in KiB).

    Linux carries ``ru_maxrss`` across ``execve`` (measured: every child of a parent that had
    generated the data reported the parent's 1.2 GiB), so a child reports at least its parent's
    peak at the time of the fork. The orchestrating parent
    therefore stays small (the data is generated in a child too); :func:`own_peak_rss_mib`
    cross-checks.
    """
    scale = 1.0 / (1024 * 1024) if sys.platform == "darwin" else 1.0 / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def own_peak_rss_mib() -> float | None:
    """This process image's own RSS high-water mark (``VmHWM``, Linux only; reset by exec)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def libpq_conninfo(sqlalchemy_url: str) -> str:
    """The libpq ``key=value`` connection string of a ``postgresql+psycopg://`` SQLAlchemy URL.

    (Not a rendered URI: SQLAlchemy encodes spaces in query values as ``+``, which libpq keeps
    literally, so an ``options`` value with two ``-c`` settings would arrive garbled.)
    """
    from psycopg.conninfo import make_conninfo
    from sqlalchemy.engine import make_url

    url = make_url(sqlalchemy_url)
    params: dict[str, Any] = {"host": url.host, "port": url.port, "user": url.username, "password": url.password}
    params["dbname"] = url.database
    params.update({k: v if isinstance(v, str) else v[-1] for k, v in url.query.items()})
    return make_conninfo(**{k: v for k, v in params.items() if v is not None})


def pg_binary_copy(pairs: np.ndarray) -> bytes:
    """PostgreSQL binary COPY stream for rows of two ``bigint`` columns."""
    row = np.dtype([("n", ">i2"), ("la", ">i4"), ("a", ">i8"), ("lb", ">i4"), ("b", ">i8")])
    arr = np.empty(pairs.shape[0], dtype=row)
    arr["n"], arr["la"], arr["a"], arr["lb"], arr["b"] = 2, 8, pairs[:, 0], 8, pairs[:, 1]
    return b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0) + arr.tobytes() + struct.pack(">h", -1)


def phase_raw(backend: str, url: str, data: Dataset) -> dict[str, Any]:
    """Baseline: bulk-load the parsed pairs into a bare two-column table."""
    pairs = np.load(data.pairs_file)
    m = int(pairs.shape[0])
    if backend == "sqlite":
        path = data.folder / "raw-baseline.db"
        path.unlink(missing_ok=True)
        con = sqlite3.connect(path, isolation_level=None)
        con.execute("PRAGMA journal_mode = WAL")  # same settings as graphrec's SQLite engine
        con.execute("PRAGMA synchronous = NORMAL")
        con.execute("CREATE TABLE raw_edges (u INTEGER, v INTEGER)")
        start = time.perf_counter()
        con.execute("BEGIN")
        cur = con.cursor()
        for i in range(0, m, SQLITE_CHUNK):  # .tolist() is on the clock: sqlite3 needs Python ints
            cur.executemany("INSERT INTO raw_edges (u, v) VALUES (?, ?)", pairs[i : i + SQLITE_CHUNK].tolist())
        con.execute("COMMIT")
        seconds = time.perf_counter() - start
        loaded = int(con.execute("SELECT COUNT(*) FROM raw_edges").fetchone()[0])
        con.close()
    else:
        with psycopg.connect(libpq_conninfo(url)) as conn:
            conn.execute("CREATE TABLE bench_raw_edges (u bigint, v bigint)")
            conn.commit()
            start = time.perf_counter()
            payload = pg_binary_copy(pairs)  # encoding is on the clock too
            with conn.cursor() as cur, cur.copy("COPY bench_raw_edges (u, v) FROM STDIN (FORMAT binary)") as copy:
                for i in range(0, len(payload), COPY_CHUNK):
                    copy.write(payload[i : i + COPY_CHUNK])
            conn.commit()
            seconds = time.perf_counter() - start
            loaded = int(conn.execute("SELECT COUNT(*) FROM bench_raw_edges").fetchone()[0])  # type: ignore[index]
            conn.execute("DROP TABLE bench_raw_edges")
            conn.commit()
    if loaded != m:
        raise RuntimeError(f"raw baseline loaded {loaded} rows, expected {m}")
    return {"seconds": seconds, "rows": m}


def database_size_mib(store: GraphStore) -> float:
    """On-disk size of the store (SQLite file + WAL; PostgreSQL: tables of the search_path schema)."""
    if store.dialect == "sqlite":
        db = Path(str(store.engine.url.database))
        return sum(p.stat().st_size for p in (db, Path(f"{db}-wal")) if p.exists()) / 2**20
    from sqlalchemy import text

    with store.engine.connect() as conn:
        size = conn.execute(
            text(
                "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                "WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r'"
            )
        ).scalar_one()
    return int(size) / 2**20


def phase_import(backend: str, url: str, data: Dataset) -> dict[str, Any]:
    """graphrec: initialize the schema, import the users CSV, then the edge file."""
    from graphrec import GraphStore

    store = GraphStore(url)
    store.initialize()
    start = time.perf_counter()
    users = store.import_users(data.users_file)
    users_s = time.perf_counter() - start
    start = time.perf_counter()
    edges = store.import_edges(data.edge_file)
    edges_s = time.perf_counter() - start
    if users.users_created != data.users or edges.friendships_added != data.edges or edges.users_created:
        raise RuntimeError(
            f"unexpected import counts: users_created={users.users_created} (want {data.users}), "
            f"friendships_added={edges.friendships_added} (want {data.edges}), "
            f"users created by the edge import={edges.users_created} (want 0)"
        )
    return {
        "users_seconds": users_s,
        "users_write_seconds": users.seconds,
        "edges_seconds": edges_s,
        "edges_write_seconds": edges.seconds,
        "db_mib": database_size_mib(store),
    }


def phase_snapshot(backend: str, url: str, data: Dataset) -> dict[str, Any]:
    """graphrec: ``store.snapshot().to_pyg()`` and check its size."""
    from graphrec import GraphStore

    start = time.perf_counter()
    import torch_geometric.data  # noqa: F401  (one-off import cost, reported separately)

    import_s = time.perf_counter() - start
    store = GraphStore(url)
    start = time.perf_counter()
    snap = store.snapshot()
    snapshot_s = time.perf_counter() - start
    start = time.perf_counter()
    pyg = snap.to_pyg()
    to_pyg_s = time.perf_counter() - start
    nodes, cols = int(pyg.num_nodes), int(pyg.edge_index.size(1))
    if nodes != data.users or cols != 2 * data.edges:
        raise RuntimeError(f"PyG Data has {nodes} nodes / {cols} edge columns, want {data.users} / {2 * data.edges}")
    return {
        "snapshot_seconds": snapshot_s,
        "to_pyg_seconds": to_pyg_s,
        "seconds": snapshot_s + to_pyg_s,
        "pyg_import_seconds": import_s,
    }


def phase_reimport(backend: str, url: str, data: Dataset) -> dict[str, Any]:
    """graphrec: import the same edge file again; nothing may be added."""
    from graphrec import GraphStore

    store = GraphStore(url)
    start = time.perf_counter()
    report = store.import_edges(data.edge_file)
    seconds = time.perf_counter() - start
    if report.friendships_added != 0 or report.changed:
        raise RuntimeError(f"re-import changed the store: {report.as_dict()}")
    return {"seconds": seconds, "write_seconds": report.seconds, "friendships_present": report.friendships_present}


def phase_generate(backend: str, url: str, data: Dataset) -> dict[str, Any]:
    """Write the synthetic data set (in a child, so the parent's RSS stays small)."""
    start = time.perf_counter()
    generate(data.folder, data.users, data.edges, data.seed)
    pairs = np.load(data.pairs_file)
    _, counts = np.unique(pairs, return_counts=True)
    return {
        "seconds": time.perf_counter() - start,
        "edge_file_mib": data.edge_file.stat().st_size / 2**20,
        "users_file_mib": data.users_file.stat().st_size / 2**20,
        "max_degree": int(counts.max()),
        "median_degree": float(np.median(np.concatenate([counts, np.zeros(data.users - counts.size)]))),
        "isolated_users": int(data.users - counts.size),
    }


PHASE_FUNCS: dict[str, Callable[[str, str, Dataset], dict[str, Any]]] = {
    "generate": phase_generate,
    "raw": phase_raw,
    "import": phase_import,
    "snapshot": phase_snapshot,
    "reimport": phase_reimport,
}


def run_child(args: argparse.Namespace) -> None:
    """Entry point of a ``--phase`` subprocess: run one step, write its figures as JSON."""
    data = Dataset(Path(args.data), args.users, args.edges, args.seed)
    func = PHASE_FUNCS[args.phase]
    rss_start = peak_rss_mib()
    if args.profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        result = profiler.runcall(func, args.backend, args.url, data)
        prof_path = data.folder / f"{args.backend}-{args.phase}.prof"
        profiler.dump_stats(prof_path)
        stats = pstats.Stats(profiler, stream=sys.stderr).strip_dirs()
        print(f"\n--- profile {args.backend}/{args.phase} (cumulative) ---", file=sys.stderr)
        stats.sort_stats("cumulative").print_stats(25)
        print(f"--- profile {args.backend}/{args.phase} (own time) ---", file=sys.stderr)
        stats.sort_stats("tottime").print_stats(20)
    else:
        result = func(args.backend, args.url, data)
    result["rss_start_mib"] = rss_start
    result["peak_rss_mib"] = peak_rss_mib()
    result["own_peak_rss_mib"] = own_peak_rss_mib()
    Path(args.result).write_text(json.dumps(result), encoding="utf-8")


# ---------------------------------------------------------------------------------------------
# parent: orchestration and report


@dataclass
class StepResult:
    backend: str
    phase: str
    ok: bool
    wall_s: float
    load_before: float
    load_after: float
    figures: dict[str, Any] = field(default_factory=dict)
    error: str = ""


def run_step(backend: str, phase: str, url: str, data: Dataset, profile: bool) -> StepResult:
    """Run one phase in a fresh interpreter and collect its figures."""
    result_file = data.folder / f"result-{backend}-{phase}.json"
    result_file.unlink(missing_ok=True)
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--phase",
        phase,
        "--backend",
        backend,
        "--url",
        url,
        "--data",
        str(data.folder),
        "--result",
        str(result_file),
        "--users",
        str(data.users),
        "--edges",
        str(data.edges),
        "--seed",
        str(data.seed),
    ]
    if profile:
        cmd.append("--profile")
    env = {**os.environ, "GRAPHREC_PROGRESS": "0"}
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    step = StepResult(backend, phase, proc.returncode == 0, wall, load_before, os.getloadavg()[0])
    if proc.stderr.strip():
        sys.stderr.write(proc.stderr)
    if proc.returncode == 0:
        step.figures = json.loads(result_file.read_text(encoding="utf-8"))
    else:
        lines = proc.stderr.strip().splitlines()
        step.error = lines[-1] if lines else f"exit status {proc.returncode}"
    return step


def pg_admin(base_url: str, sql: str) -> None:
    with psycopg.connect(libpq_conninfo(base_url), autocommit=True) as conn:
        conn.execute(sql)  # type: ignore[arg-type]


def pg_server_version(base_url: str) -> str:
    with psycopg.connect(libpq_conninfo(base_url)) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "?"


def machine_description() -> dict[str, str]:
    cpu = "?"
    with open("/proc/cpuinfo", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    with open("/proc/meminfo", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    return {
        "cpu": cpu,
        "nproc": str(os.cpu_count()),
        "memory": f"{mem_kib / 2**20:.1f} GiB",
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


@dataclass
class Row:
    """One line of the figures table."""

    backend: str
    step: str
    seconds: float | None = None
    rows: int | None = None  # rows per second = rows / seconds
    rss_mib: float | None = None
    target: str = ""
    met: str = ""
    notes: str = ""

    def cells(self) -> list[str]:
        rate = f"{self.rows / self.seconds:,.0f}" if self.rows and self.seconds else ""
        return [
            self.backend,
            self.step,
            "" if self.seconds is None else f"{self.seconds:.1f}",
            rate,
            "" if self.rss_mib is None else f"{self.rss_mib:,.0f}",
            self.target,
            self.met,
            self.notes,
        ]


def verdict(value: float, limit: float) -> str:
    return "ok" if value < limit else "MISSED"


def load_note(step: StepResult) -> str:
    return f"load {step.load_before:.1f}->{step.load_after:.1f}"


def backend_rows(backend: str, steps: dict[str, StepResult], data: Dataset) -> list[Row]:
    """The table rows of one backend (failed steps show their error)."""
    rows = [Row(backend, s.phase, met="FAILED", notes=s.error[:120]) for s in steps.values() if not s.ok]
    ok = {phase: s for phase, s in steps.items() if s.ok}
    raw_rate = 0.0
    if raw := ok.get("raw"):
        f = raw.figures
        raw_rate = data.edges / f["seconds"]
        rows.append(Row(backend, "raw baseline: edges", f["seconds"], data.edges, f["peak_rss_mib"], notes=load_note(raw)))
    if imp := ok.get("import"):
        f = imp.figures
        total, rss = f["users_seconds"] + f["edges_seconds"], f["peak_rss_mib"]
        ratio = f"; {(data.edges / f['edges_seconds']) / raw_rate:.2f}x raw" if raw_rate else ""
        rows += [
            Row(backend, "import_users", f["users_seconds"], data.users, notes=f"write txn {f['users_write_seconds']:.1f} s"),
            Row(
                backend,
                "import_edges",
                f["edges_seconds"],
                data.edges,
                notes=f"write txn {f['edges_write_seconds']:.1f} s{ratio}",
            ),
            Row(
                backend,
                "import total (users + edges)",
                total,
                rss_mib=rss,
                target=f"< {TARGET_IMPORT_S:.0f} s, < {TARGET_RSS_MIB:,.0f} MiB",
                met=f"{verdict(total, TARGET_IMPORT_S)} / {verdict(rss, TARGET_RSS_MIB)}",
                notes=f"db {f['db_mib']:,.0f} MiB; {load_note(imp)}",
            ),
        ]
    if snap := ok.get("snapshot"):
        f = snap.figures
        rss = f["peak_rss_mib"]
        rows.append(
            Row(
                backend,
                "snapshot + to_pyg",
                f["seconds"],
                data.edges,
                rss,
                target=f"< {TARGET_SNAPSHOT_S:.0f} s, < {TARGET_RSS_MIB:,.0f} MiB",
                met=f"{verdict(f['seconds'], TARGET_SNAPSHOT_S)} / {verdict(rss, TARGET_RSS_MIB)}",
                notes=(
                    f"snapshot {f['snapshot_seconds']:.1f} s + to_pyg {f['to_pyg_seconds']:.1f} s "
                    f"(+ {f['pyg_import_seconds']:.1f} s torch_geometric import, not counted); {load_note(snap)}"
                ),
            )
        )
    if again := ok.get("reimport"):
        f = again.figures
        notes = f"0 added; write txn {f['write_seconds']:.1f} s; {load_note(again)}"
        rows.append(Row(backend, "re-import edges", f["seconds"], data.edges, f["peak_rss_mib"], notes=notes))
    return rows


def report_rows(steps: list[StepResult], data: Dataset) -> list[list[str]]:
    """Table cells for all backends, in the order they ran."""
    per_backend: dict[str, dict[str, StepResult]] = {}
    for step in steps:
        per_backend.setdefault(step.backend, {})[step.phase] = step
    return [row.cells() for backend, by_phase in per_backend.items() for row in backend_rows(backend, by_phase, data)]


HEADER = ["backend", "step", "seconds", "rows/s", "peak RSS MiB", "target", "met", "notes"]


def markdown_table(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "|".join("---" for _ in HEADER) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def comparison_lines(steps: list[StepResult], data: Dataset) -> list[str]:
    """graphrec's edges/s beside the raw baseline's, per backend."""
    out = []
    by_key = {(s.backend, s.phase): s for s in steps}
    for backend in dict.fromkeys(s.backend for s in steps):
        raw, imp = by_key.get((backend, "raw")), by_key.get((backend, "import"))
        if raw and raw.ok and imp and imp.ok:
            g = data.edges / imp.figures["edges_seconds"]
            r = data.edges / raw.figures["seconds"]
            out.append(
                f"{backend:>10}: graphrec import_edges {g:>12,.0f} edges/s | raw bulk load {r:>12,.0f} edges/s | "
                f"graphrec/raw = {g / r:.2f} (raw is {r / g:.1f}x faster)"
            )
    return out


def pg_store_url(base_url: str, schema: str) -> str:
    """``base_url`` with ``-csearch_path=<schema>`` added to its libpq ``options``."""
    from sqlalchemy.engine import make_url

    base = make_url(base_url)
    options = f"{base.query.get('options', '')} -csearch_path={schema}".strip()  # keep the caller's options
    return base.update_query_dict({"options": options}).render_as_string(hide_password=False)


def run_backend(backend: str, args: argparse.Namespace, data: Dataset, steps: list[StepResult], servers: dict[str, str]) -> bool:
    """Run every phase on one backend (PostgreSQL: in a fresh schema, dropped afterwards); True if all passed.

    Appends each phase's result to ``steps`` and the server version to ``servers``."""
    schema = ""
    if backend == "sqlite":
        servers[backend] = sqlite3.sqlite_version
        url = f"sqlite:///{data.folder / 'graphrec.db'}"
    else:
        schema = f"bench_{secrets.token_hex(4)}"
        pg_admin(args.pg_url, f"CREATE SCHEMA {schema}")
        url = pg_store_url(args.pg_url, schema)
        servers[backend] = pg_server_version(args.pg_url)
        print(f"postgresql {servers[backend]}: schema {schema}")
    all_ok = True
    try:
        for phase in PHASES:
            step = run_step(backend, phase, url, data, args.profile)
            steps.append(step)
            status = "ok" if step.ok else f"FAILED: {step.error}"
            print(
                f"  {backend}/{phase}: {status} (subprocess wall {step.wall_s:.1f} s, "
                f"load {step.load_before:.1f}->{step.load_after:.1f})",
                flush=True,
            )
            if not step.ok:
                all_ok = False
                if phase != "raw":  # later phases need the import
                    break
    finally:
        if schema and not args.keep:
            pg_admin(args.pg_url, f"DROP SCHEMA {schema} CASCADE")
    return all_ok


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--users", type=int, default=1_000_000, help="number of users N (default 1,000,000)")
    p.add_argument("--edges", type=int, default=10_000_000, help="number of friendships M (default 10,000,000)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the synthetic graph (default 0)")
    p.add_argument("--backends", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql")
    p.add_argument("--keep", action="store_true", help="keep the work folder (and the PostgreSQL schema)")
    p.add_argument("--workdir", default=None, help="parent folder for the work folder (default: system temp)")
    p.add_argument("--pg-url", default=os.environ.get("GRAPHREC_TEST_POSTGRES_URL", DEFAULT_PG_URL))
    p.add_argument("--json", default=None, help="also write all figures to this JSON file")
    p.add_argument("--profile", action="store_true", help="run each step under cProfile (slower)")
    # internal: one step in a subprocess
    p.add_argument("--phase", choices=list(PHASE_FUNCS), help=argparse.SUPPRESS)
    p.add_argument("--backend", help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = set(backends) - {"sqlite", "postgresql"}
    if unknown or not backends:
        p.error(f"--backends takes sqlite and/or postgresql, got {args.backends!r}")
    args.backend_list = backends
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.phase:
        run_child(args)
        return 0

    machine = machine_description()
    started = dt.datetime.now().astimezone()
    print(f"graphrec import/snapshot benchmark  {started:%Y-%m-%d %H:%M %Z}")
    print(f"machine: {machine['cpu']}, {machine['nproc']} CPUs, {machine['memory']} RAM; Python {machine['python']}")
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    folder = Path(tempfile.mkdtemp(prefix="graphrec-bench-", dir=args.workdir))
    steps: list[StepResult] = []
    servers: dict[str, str] = {}
    failed = False
    data = Dataset(folder, args.users, args.edges, args.seed)
    try:
        gen = run_step("data", "generate", "", data, profile=False)
        if not gen.ok:
            raise SystemExit(f"data generation failed: {gen.error}")
        g = gen.figures
        print(
            f"data: {data.users:,} users, {data.edges:,} friendships, seed {data.seed}, generated in {g['seconds']:.1f} s "
            f"-> {folder} (edges.txt {g['edge_file_mib']:,.0f} MiB, users.csv {g['users_file_mib']:,.0f} MiB); "
            f"degree max {g['max_degree']:,}, median {g['median_degree']:.0f}, isolated users {g['isolated_users']:,}"
        )
        for backend in args.backend_list:
            try:
                failed |= not run_backend(backend, args, data, steps, servers)
            except (OSError, psycopg.Error) as exc:  # e.g. no PostgreSQL server: report it, go on with the next
                failed = True
                print(f"  {backend}: setup FAILED: {type(exc).__name__}: {exc}".rstrip(), flush=True)
    finally:
        if args.keep:
            print(f"kept: {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)

    rows = report_rows(steps, data)
    print()
    print(
        f"N = {data.users:,} users, M = {data.edges:,} friendships; targets: import < {TARGET_IMPORT_S:.0f} s, "
        f"peak RSS < {TARGET_RSS_MIB:,.0f} MiB, snapshot + to_pyg < {TARGET_SNAPSHOT_S:.0f} s"
    )
    print(markdown_table(rows))
    print()
    for line in comparison_lines(steps, data):
        print(line)
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "started": started.isoformat(),
                    "command": sys.argv,
                    "machine": machine,
                    "servers": servers,
                    "users": data.users,
                    "edges": data.edges,
                    "seed": data.seed,
                    "data": gen.figures,
                    "steps": [asdict(s) for s in steps],
                },
                indent=2,
            ),
            encoding="utf-8",
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
