#!/usr/bin/env python
"""``graphrec serve`` under load (issue 16): HTTP throughput and latency per route against the
in-process library, on the bundled ego-Facebook graph with trained models.

Steps:
1. Set up (not timed): ego-Facebook in a fresh SQLite store, the link model and the Siamese model
   trained (seed 0), a bot run so the bot filter has something to read; read and write tokens.
   ``--reuse DIR`` keeps the set-up in DIR between runs.
2. In-process library throughput, one thread (the figure HTTP is compared with): the functions
   the routes call, on the same loaded models.
3. ``graphrec serve --workers 2`` on a loopback port; for each route a bounded, self-stopping load
   run from a separate process: an asyncio HTTP/1.1 keep-alive client (uvloop, raw streams: its own
   CPU cost is small and reported) with ``--concurrency`` connections for ``--seconds``, random
   users. Reports requests/s, p50/p95/p99 and errors (any non-2xx answer or transport failure).
4. Writes on PostgreSQL (``--pg-url``; skipped when unreachable): the same graph in a fresh
   schema, the server against it, a mix of friendship adds and removes, user upserts and labels.
5. Memory per worker (RSS of each worker process after its load runs).

Every figure is printed with the machine's load average beside it, and the targets of issue 16
side by side. Run from the repository root::

    .venv/bin/python benchmarks/bench_serve.py                 # about 4 minutes with set-up
    .venv/bin/python benchmarks/bench_serve.py --reuse /tmp/bench-serve --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import multiprocessing as mp
import os
import platform
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGETS = {"recommendations": 500.0, "similar": 1000.0, "writes (PostgreSQL)": 300.0}
P99_TARGET_MS = {"recommendations": 50.0}


# -- the load generator (runs in its own process) ---------------------------------------------------
@dataclass
class LoadResult:
    route: str
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]
    client_cpu_s: float
    load: float
    statuses: dict[int, int]

    def pct(self, q: float) -> float:
        xs = sorted(self.latencies_ms)
        return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def _request_bytes(method: str, path: str, token: str, body: bytes | None) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
    if body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + (body or b"")


async def _connection(port: int, make: Any, deadline: float, max_requests: int, out: dict[str, Any]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.monotonic() < deadline and out["n"] < max_requests:
            out["n"] += 1
            request = make()
            start = time.perf_counter()
            writer.write(request)
            status_line = await reader.readline()
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:].strip())
            if length:
                await reader.readexactly(length)
            out["lat"].append((time.perf_counter() - start) * 1000)
            status = int(status_line.split()[1]) if status_line else 0
            out["status"][status] = out["status"].get(status, 0) + 1
    except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
        out["status"][0] = out["status"].get(0, 0) + 1
    finally:
        writer.close()


def _load_process(route: str, port: int, token: str, users: list[str], seconds: float, concurrency: int, seed: int,
                  max_requests: int, queue: Any) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass
    rng = random.Random(seed)
    counter = iter(range(10**9))

    def make() -> bytes:
        u = rng.choice(users)
        if route == "recommendations":
            return _request_bytes("GET", f"/v1/users/{u}/recommendations?k=20", token, None)
        if route == "similar":
            return _request_bytes("GET", f"/v1/users/{u}/similar?k=10", token, None)
        if route == "profile":
            return _request_bytes("GET", f"/v1/users/{u}", token, None)
        # writes: friendship add / remove, user upsert, label, in equal shares
        i = next(counter)
        v = rng.choice(users)
        kind = i % 4
        if kind == 0 and u != v:
            return _request_bytes("PUT", f"/v1/friendships/{u}/{v}", token, None)
        if kind == 1 and u != v:
            return _request_bytes("DELETE", f"/v1/friendships/{u}/{v}", token, None)
        if kind == 2:
            body = b'{"attributes": {"bench": "%d"}}' % i
            return _request_bytes("PUT", f"/v1/users/bench-{seed}-{i % 500}", token, body)
        return _request_bytes("PUT", f"/v1/users/{u}/labels/bench", token, b'{"label": "seen-%d"}' % (i % 3))

    async def run() -> dict[str, Any]:
        out: dict[str, Any] = {"n": 0, "lat": [], "status": {}}
        start = time.monotonic()
        await asyncio.gather(*(_connection(port, make, start + seconds, max_requests, out) for _ in range(concurrency)))
        out["seconds"] = time.monotonic() - start
        return out

    cpu = time.process_time()
    out = asyncio.run(run())
    statuses = out["status"]
    errors = sum(n for s, n in statuses.items() if not 200 <= s < 300)
    queue.put(LoadResult(route, len(out["lat"]), errors, out["seconds"], out["lat"], time.process_time() - cpu, os.getloadavg()[0], statuses))


def run_load(route: str, port: int, token: str, users: list[str], seconds: float, concurrency: int, seed: int = 0,
             max_requests: int = 200_000) -> LoadResult:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_load_process, args=(route, port, token, users, seconds, concurrency, seed, max_requests, queue))
    proc.start()
    result: LoadResult = queue.get(timeout=seconds + 120)
    proc.join(30)
    return result


# -- set-up and the server ---------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def graphrec(*args: str, env: dict[str, str]) -> str:
    res = subprocess.run([sys.executable, "-c", "from graphrec.cli import main; main()", *args], capture_output=True, text=True,
                         env=env, cwd=ROOT)
    if res.returncode != 0:
        raise SystemExit(f"graphrec {' '.join(args)} failed: {res.stderr.strip()[-2000:]}")
    return res.stdout


def prepare(work: Path) -> tuple[str, Path]:
    """ego-Facebook, trained link and Siamese models, a bot run (users flagged by a fixed rule:
    the benchmark needs a run to filter on, not a good one)."""
    import numpy as np

    from graphrec.store.scores import NewScoringRun
    from graphrec.store.store import GraphStore

    url, home = f"sqlite:///{work / 'g.db'}", work / "home"
    if (work / "ready").exists():
        return url, home
    env = {**os.environ, "GRAPHREC_DATABASE_URL": url, "GRAPHREC_HOME": str(home)}
    t = time.perf_counter()
    graphrec("db", "upgrade", env=env)
    graphrec("import", "ego-facebook", env=env)
    graphrec("train", "linkpred", "--seed", "0", env=env)
    graphrec("train", "siamese", "--seed", "0", env=env)
    store = GraphStore(url, home=home)
    snap = store.snapshot()
    ids = np.asarray(snap.user_ids, dtype=np.int64)
    scores = np.random.default_rng(0).random(ids.size)
    store.write_scoring_runs([NewScoringRun(kind="bot", run_date=dt.date.today(), user_ids=ids, scores=scores, flagged=scores > 0.99,
                                            threshold=0.99, summary={"model_version": None})])
    (work / "ready").write_text("ok")
    print(f"set-up (import, train linkpred + siamese): {time.perf_counter() - t:.0f} s")
    return url, home


@dataclass
class Served:
    proc: subprocess.Popen[bytes]
    port: int

    def worker_rss_mb(self) -> list[float]:
        """RSS of each worker process (the server's children; the server itself with one worker)."""
        # the workers are spawned processes (multiprocessing's resource tracker is a child too: left out)
        kids = subprocess.run(["pgrep", "-P", str(self.proc.pid), "-f", "spawn_main"], capture_output=True, text=True).stdout.split()
        pids = [int(p) for p in kids] or [self.proc.pid]
        out = []
        for pid in pids:
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        out.append(int(line.split()[1]) / 1024)
            except OSError:
                pass
        return out

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def start(url: str, home: Path, workers: int, log: Path, threads: int = 2) -> Served:
    import httpx

    port = free_port()
    env = {**os.environ, "GRAPHREC_DATABASE_URL": url, "GRAPHREC_HOME": str(home)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with log.open("wb") as fh:
        proc = subprocess.Popen([sys.executable, "-c", "from graphrec.cli import main; main()", "serve", "--port", str(port),
                                 "--workers", str(workers), "--threads", str(threads), "--no-access-log", "--watch-seconds", "5"],
                                stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                # every worker loads its models before it accepts; a few requests warm them all
                for _ in range(20):
                    httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
                return Served(proc, port)
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("server not ready in 120 s")


def in_process(url: str, home: Path, users: list[str], seconds: float) -> dict[str, tuple[float, float]]:
    """Requests/s and p99 (ms) of the library functions the routes call, one thread."""
    from graphrec.serving.served import ServedModels, served_recommendations, served_similar
    from graphrec.store.store import GraphStore

    store = GraphStore(url, home=home)
    served = ServedModels(store, interval=0)
    served.start()
    rng = random.Random(1)
    out = {}
    for route, call in (("recommendations", lambda u: served_recommendations(served, u, k=20).summary()),
                        ("similar", lambda u: served_similar(served, u, k=10)),
                        ("profile", lambda u: store.user_profile(u))):
        for u in users[:30]:
            call(u)
        lat = []
        end = time.monotonic() + seconds
        start_t = time.perf_counter()
        while time.monotonic() < end:
            t = time.perf_counter()
            call(rng.choice(users))
            lat.append((time.perf_counter() - t) * 1000)
        elapsed = time.perf_counter() - start_t
        lat.sort()
        out[route] = (len(lat) / elapsed, lat[int(0.99 * (len(lat) - 1))])
    store.engine.dispose()
    return out


def in_process_writes(url: str, home: Path, users: list[str], seconds: float) -> float:
    """Writes/s of the same write mix through the store, one thread."""
    from graphrec.errors import GraphrecError
    from graphrec.store.store import GraphStore

    store = GraphStore(url, home=home)
    rng = random.Random(2)
    n, end, start_t = 0, time.monotonic() + seconds, time.perf_counter()
    while time.monotonic() < end:
        u, v = rng.choice(users), rng.choice(users)
        kind = n % 4
        try:
            if kind == 0 and u != v:
                store.add_friendship(u, v)
            elif kind == 1 and u != v:
                store.remove_friendship(u, v)
            elif kind == 2:
                store.put_user(f"inproc-{n % 500}", attributes={"bench": str(n)})
            else:
                store.set_label(u, f"seen-{n % 3}", source="bench")
        except GraphrecError:
            pass
        n += 1
    rate = n / (time.perf_counter() - start_t)
    store.engine.dispose()
    return rate


def machine() -> str:
    return f"{platform.node()} {os.cpu_count()} cores, Python {platform.python_version()}, {platform.platform()}"


def row(result: LoadResult, library: float | None, workers: int) -> str:
    ratio = f"{result.rate / library:5.2f}x" if library else "    -"
    per_core = f"{result.rate / workers / library:5.2f}x" if library else "    -"
    return (f"{result.route:26s} {result.rate:9.0f} {result.pct(0.5):7.1f} {result.pct(0.95):7.1f} {result.pct(0.99):7.1f} "
            f"{result.errors:6d} {library or float('nan'):9.0f} {ratio:>7s} {per_core:>9s} {result.client_cpu_s / result.seconds:8.2f} "
            f"{result.load:5.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each load run")
    parser.add_argument("--concurrency", type=int, default=16, help="keep-alive connections of the load generator")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="graphrec serve --threads: requests each worker runs at once")
    parser.add_argument("--reuse", type=Path, help="keep the set-up (store, models) in this folder between runs")
    parser.add_argument("--pg-url", default=os.environ.get("GRAPHREC_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--skip-pg", action="store_true")
    parser.add_argument("--low-concurrency", type=int, default=4,
                        help="also load recommendations with this many connections: the latency at a lighter load (0: skip)")
    parser.add_argument("--routes", default="recommendations,similar,profile", help="read routes to load, comma-separated")
    args = parser.parse_args()

    print(f"machine: {machine()}")
    print(f"date: {dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}; load average at start: "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    work = args.reuse or Path(tempfile.mkdtemp(prefix="bench-serve-"))
    work.mkdir(parents=True, exist_ok=True)
    url, home = prepare(work)
    from graphrec.store.store import GraphStore
    from graphrec.store.tokens import create_token

    store = GraphStore(url, home=home)
    users = [str(u) for u in store.snapshot().external_ids]
    tag = uuid.uuid4().hex[:6]
    read_token = create_token(store, f"bench-read-{tag}", ["read"]).secret
    store.engine.dispose()

    print(f"\nin-process library, one thread, {args.seconds:.0f} s each ...")
    library = in_process(url, home, users, args.seconds)
    for route, (rate, p99) in library.items():  # every route, whatever --routes loads
        print(f"  {route:16s} {rate:8.0f} requests/s  p99 {p99:6.1f} ms")

    print(f"\ngraphrec serve --workers {args.workers} --threads {args.threads} on SQLite, {args.concurrency} connections, {args.seconds:.0f} s per route ...")
    server = start(url, home, args.workers, work / "serve.log", args.threads)
    results: list[tuple[LoadResult, float | None]] = []
    try:
        for route in [r for r in args.routes.split(",") if r]:
            results.append((run_load(route, server.port, read_token, users, args.seconds, args.concurrency), library[route][0]))
        if "recommendations" in args.routes.split(",") and args.low_concurrency:
            low = run_load("recommendations", server.port, read_token, users, args.seconds, args.low_concurrency, seed=5)
            low.route = f"recommendations ({args.low_concurrency} conn)"
            results.append((low, library["recommendations"][0]))
        rss = server.worker_rss_mb()
    finally:
        code = server.stop()
    print(f"  server stopped with exit code {code} (SIGTERM)")

    pg_result: LoadResult | None = None
    pg_library = None
    pg_rss: list[float] = []
    if not args.skip_pg:
        pg_result, pg_library, pg_rss = run_postgres(args, home, users, work)

    header = (f"{'route':26s} {'req/s':>9s} {'p50 ms':>7s} {'p95 ms':>7s} {'p99 ms':>7s} {'errors':>6s} {'lib/s':>9s} "
              f"{'HTTP/lib':>7s} {'per core':>9s} {'client':>8s} {'load':>5s}")
    print("\n" + header)
    print("-" * len(header))
    for result, lib in results:
        print(row(result, lib, args.workers))
    if pg_result is not None:
        pg_result.route = "writes (PostgreSQL)"
        print(row(pg_result, pg_library, args.workers))
    print("(HTTP/lib: HTTP requests/s over the in-process library's, one thread; per core: the same per server worker; "
          "client: the load generator's CPU, in cores)")
    for result, _ in results + ([(pg_result, None)] if pg_result is not None else []):
        bad = {status: n for status, n in result.statuses.items() if not 200 <= status < 300}
        if bad:
            print(f"  {result.route}: non-2xx answers by status (0 = transport failure): {bad}")
    print(f"\nmemory per worker (RSS after load): SQLite {', '.join(f'{m:.0f} MiB' for m in rss)}"
          + (f"; PostgreSQL {', '.join(f'{m:.0f} MiB' for m in pg_rss)}" if pg_rss else ""))

    print("\ntargets (issue 16):")
    by_route = {r.route: r for r, _ in results}
    if pg_result is not None:
        by_route[pg_result.route] = pg_result
    for route, target in TARGETS.items():
        r = by_route.get(route)
        if r is None:
            print(f"  {route:22s} >= {target:.0f}/s: not measured")
            continue
        ok = r.rate >= target and r.errors == 0
        p99 = P99_TARGET_MS.get(route)
        extra = ""
        if p99 is not None:
            ok = ok and r.pct(0.99) < p99
            extra = f", p99 {r.pct(0.99):.1f} ms (target < {p99:.0f})"
        print(f"  {route:22s} {r.rate:7.0f}/s (target >= {target:.0f}){extra}, errors {r.errors}: {'MET' if ok else 'MISSED'}")
    print(f"\nload average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; peak RSS of this process "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    if args.reuse is None:
        shutil.rmtree(work, ignore_errors=True)


def run_postgres(args: argparse.Namespace, home: Path, users: list[str], work: Path) -> tuple[LoadResult | None, float | None, list[float]]:
    from sqlalchemy import create_engine, text

    from graphrec.store.store import GraphStore
    from graphrec.store.tokens import create_token

    try:
        admin = create_engine(args.pg_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            schema = f"bench_{uuid.uuid4().hex[:10]}"
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:  # noqa: BLE001
        print(f"\nPostgreSQL unreachable ({str(exc).splitlines()[0]}): writes not measured")
        return None, None, []
    sep = "&" if "?" in args.pg_url else "?"
    url = f"{args.pg_url}{sep}options=-csearch_path%3D{schema}"
    try:
        store = GraphStore(url, home=home)
        store.initialize()
        store.import_ego_facebook()
        token = create_token(store, "bench-write", ["write"]).secret
        store.engine.dispose()
        print(f"\nwrites on PostgreSQL, in-process one thread, {args.seconds:.0f} s ...")
        library = in_process_writes(url, home, users, args.seconds)
        print(f"  writes {library:8.0f}/s")
        print(f"graphrec serve --workers {args.workers} on PostgreSQL, writes, {args.concurrency} connections ...")
        server = start(url, home, args.workers, work / "serve-pg.log", args.threads)
        try:
            result = run_load("writes", server.port, token, users, args.seconds, args.concurrency, seed=3)
            rss = server.worker_rss_mb()
        finally:
            server.stop()
        return result, library, rss
    finally:
        from graphrec.store.engine import dispose_engine

        dispose_engine(url)
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


if __name__ == "__main__":
    main()
