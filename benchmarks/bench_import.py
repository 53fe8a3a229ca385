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
   process's only.
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
from typing import Any

import numpy as np
import pandas as pd

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PHASES = ("raw", "import", "snapshot", "reimport")
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
    """Peak resident set size of this process in MiB (Linux reports ``ru_maxrss`` in KiB)."""
    scale = 1.0 / (1024 * 1024) if sys.platform == "darwin" else 1.0 / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def libpq_conninfo(sqlalchemy_url: str) -> str:
    """The psycopg connection string of a ``postgresql+psycopg://`` SQLAlchemy URL."""
    from sqlalchemy.engine import make_url

    return make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(hide_password=False)


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
        for i in range(0, m, SQLITE_CHUNK):
            cur.executemany("INSERT INTO raw_edges (u, v) VALUES (?, ?)", pairs[i : i + SQLITE_CHUNK].tolist())
        con.execute("COMMIT")
        seconds = time.perf_counter() - start
        loaded = int(con.execute("SELECT COUNT(*) FROM raw_edges").fetchone()[0])
        con.close()
    else:
        import psycopg

        with psycopg.connect(libpq_conninfo(url)) as conn:
            conn.execute("CREATE TABLE bench_raw_edges (u bigint, v bigint)")
            conn.commit()
            start = time.perf_counter()
            payload = pg_binary_copy(pairs)
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


def database_size_mib(store: Any) -> float:
    """On-disk size of the store (SQLite file + WAL; PostgreSQL: tables of the search_path schema)."""
    if store.dialect == "sqlite":
        db = Path(store.engine.url.database)
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


PHASE_FUNCS: dict[str, Callable[[str, str, Dataset], dict[str, Any]]] = {
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
        sys.executable, str(Path(__file__).resolve()),
        "--phase", phase, "--backend", backend, "--url", url, "--data", str(data.folder), "--result", str(result_file),
        "--users", str(data.users), "--edges", str(data.edges), "--seed", str(data.seed),
    ]  # fmt: skip
    if profile:
        cmd.append("--profile")
    env = {**os.environ, "GRAPHREC_PROGRESS": "0"}
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False)
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
    import psycopg

    with psycopg.connect(libpq_conninfo(base_url), autocommit=True) as conn:
        conn.execute(sql)  # type: ignore[arg-type]


def pg_server_version(base_url: str) -> str:
    import psycopg

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


def fmt_rate(rows: int, seconds: float) -> str:
    return f"{rows / seconds:,.0f}" if seconds > 0 else "-"


def verdict(value: float, limit: float) -> str:
    return "ok" if value < limit else "MISSED"


def report_rows(steps: list[StepResult], data: Dataset) -> list[list[str]]:
    """Table rows: backend, step, seconds, rows/s, peak RSS, target, verdict, notes."""
    rows: list[list[str]] = []
    by_key = {(s.backend, s.phase): s for s in steps}
    backends = list(dict.fromkeys(s.backend for s in steps))
    for backend in backends:
        raw = by_key.get((backend, "raw"))
        imp = by_key.get((backend, "import"))
        snap = by_key.get((backend, "snapshot"))
        again = by_key.get((backend, "reimport"))
        load = lambda s: f"load {s.load_before:.1f}->{s.load_after:.1f}"  # noqa: E731
        for step in (raw, imp, snap, again):
            if step is not None and not step.ok:
                rows.append([backend, step.phase, "FAILED", "", "", "", "", step.error[:120]])
        raw_rate = 0.0
        if raw and raw.ok:
            f = raw.figures
            raw_rate = data.edges / f["seconds"]
            rows.append([backend, "raw baseline: edges", f"{f['seconds']:.1f}", fmt_rate(data.edges, f["seconds"]),
                         f"{f['peak_rss_mib']:,.0f}", "", "", load(raw)])  # fmt: skip
        if imp and imp.ok:
            f = imp.figures
            total = f["users_seconds"] + f["edges_seconds"]
            rss = f["peak_rss_mib"]
            rows.append([backend, "import_users", f"{f['users_seconds']:.1f}", fmt_rate(data.users, f["users_seconds"]),
                         "", "", "", f"write txn {f['users_write_seconds']:.1f} s"])  # fmt: skip
            ratio = f" = {(data.edges / f['edges_seconds']) / raw_rate:.2f}x raw" if raw_rate else ""
            rows.append([backend, "import_edges", f"{f['edges_seconds']:.1f}", fmt_rate(data.edges, f["edges_seconds"]),
                         "", "", "", f"write txn {f['edges_write_seconds']:.1f} s{ratio}"])  # fmt: skip
            rows.append([backend, "import total (users + edges)", f"{total:.1f}", "", f"{rss:,.0f}",
                         f"< {TARGET_IMPORT_S:.0f} s, < {TARGET_RSS_MIB:,.0f} MiB",
                         f"{verdict(total, TARGET_IMPORT_S)} / {verdict(rss, TARGET_RSS_MIB)}",
                         f"db {f['db_mib']:,.0f} MiB; {load(imp)}"])  # fmt: skip
        if snap and snap.ok:
            f = snap.figures
            rss = f["peak_rss_mib"]
            rows.append([backend, "snapshot + to_pyg", f"{f['seconds']:.1f}", fmt_rate(data.edges, f["seconds"]),
                         f"{rss:,.0f}", f"< {TARGET_SNAPSHOT_S:.0f} s, < {TARGET_RSS_MIB:,.0f} MiB",
                         f"{verdict(f['seconds'], TARGET_SNAPSHOT_S)} / {verdict(rss, TARGET_RSS_MIB)}",
                         f"snapshot {f['snapshot_seconds']:.1f} s + to_pyg {f['to_pyg_seconds']:.1f} s "
                         f"(+ {f['pyg_import_seconds']:.1f} s one-off torch_geometric import, not counted); {load(snap)}"])  # fmt: skip
        if again and again.ok:
            f = again.figures
            rows.append([backend, "re-import edges (0 added)", f"{f['seconds']:.1f}", fmt_rate(data.edges, f["seconds"]),
                         f"{f['peak_rss_mib']:,.0f}", "", "",
                         f"write txn {f['write_seconds']:.1f} s; {load(again)}"])  # fmt: skip
    return rows


HEADER = ["backend", "step", "seconds", "rows/s", "peak RSS MiB", "target", "met", "notes"]


def markdown_table(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "|".join("---" for _ in HEADER) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def comparison_lines(steps: list[StepResult], data: Dataset) -> list[str]:
    out = []
    by_key = {(s.backend, s.phase): s for s in steps}
    for backend in dict.fromkeys(s.backend for s in steps):
        raw, imp = by_key.get((backend, "raw")), by_key.get((backend, "import"))
        if raw and raw.ok and imp and imp.ok:
            g = data.edges / imp.figures["edges_seconds"]
            r = data.edges / raw.figures["seconds"]
            out.append(f"{backend:>10}: graphrec import_edges {g:>12,.0f} edges/s | raw bulk load {r:>12,.0f} edges/s | "
                       f"graphrec/raw = {g / r:.2f} (raw is {r / g:.1f}x faster)")  # fmt: skip
    return out


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
    p.add_argument("--phase", choices=PHASES, help=argparse.SUPPRESS)
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
    failed = False
    pg_version = ""
    try:
        start = time.perf_counter()
        data = generate(folder, args.users, args.edges, args.seed)
        print(f"data: {data.users:,} users, {data.edges:,} friendships, seed {data.seed}, generated in "
              f"{time.perf_counter() - start:.1f} s -> {folder} (edges.txt {data.edge_file.stat().st_size / 2**20:,.0f} MiB, "
              f"users.csv {data.users_file.stat().st_size / 2**20:,.0f} MiB)")  # fmt: skip
        for backend in args.backend_list:
            schema = ""
            if backend == "sqlite":
                url = f"sqlite:///{folder / 'graphrec.db'}"
            else:
                from sqlalchemy.engine import make_url

                pg_version = pg_server_version(args.pg_url)
                schema = f"bench_{secrets.token_hex(4)}"
                pg_admin(args.pg_url, f"CREATE SCHEMA {schema}")
                url = make_url(args.pg_url).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
                    hide_password=False
                )
                print(f"postgresql {pg_version}: schema {schema}")
            try:
                for phase in PHASES:
                    step = run_step(backend, phase, url, data, args.profile)
                    steps.append(step)
                    status = "ok" if step.ok else f"FAILED: {step.error}"
                    print(f"  {backend}/{phase}: {status} (subprocess wall {step.wall_s:.1f} s, "
                          f"load {step.load_before:.1f}->{step.load_after:.1f})", flush=True)  # fmt: skip
                    if not step.ok:
                        failed = True
                        if phase != "raw":
                            break
            finally:
                if schema and not args.keep:
                    pg_admin(args.pg_url, f"DROP SCHEMA {schema} CASCADE")
    finally:
        if args.keep:
            print(f"kept: {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)

    rows = report_rows(steps, data)
    print()
    print(f"N = {data.users:,} users, M = {data.edges:,} friendships; targets: import < {TARGET_IMPORT_S:.0f} s, "
          f"peak RSS < {TARGET_RSS_MIB:,.0f} MiB, snapshot + to_pyg < {TARGET_SNAPSHOT_S:.0f} s")  # fmt: skip
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
                    "postgresql": pg_version,
                    "users": data.users,
                    "edges": data.edges,
                    "seed": data.seed,
                    "steps": [asdict(s) for s in steps],
                },
                indent=2,
            ),
            encoding="utf-8",
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
