#!/usr/bin/env python
"""Scaling curve of the nightly bot scoring: the local engine against the ray engine (issue 17).

For each size (default 250k, 1M and 4M users at about ``--degree`` friends each):

1. Generate a social graph with social-network degree and clustering statistics
   (:func:`social_graph`: users in communities of heavy-tailed sizes, most friendships inside
   the community, the rest Chung-Lu across the graph), 16 profile columns, 5% bots (shifted
   profiles, extra friendships among themselves), 1% of users labelled. The degree and sampled
   clustering figures are printed.
2. Load it into a fresh PostgreSQL schema (the production store; not timed against a target).
3. A bot model is trained once, on the smallest graph (``--folds`` / ``--epochs``; inductive, so
   it scores every size) and served to every store.
4. Run the nightly job (``run_nightly``) in a fresh process per engine: ``local`` (sizes up to
   ``--local-max``; the local engine holds the whole graph, 4M users do not fit its memory
   budget) and ``ray`` (a local Ray cluster with ``--workers`` CPUs, one actor per partition of
   500k users). Per stage (snapshot = store read, inference = bot scoring, write = store write),
   the wall time, rows/s and the peak memory of every process: the driver's and each Ray worker's
   (its private memory, and with the pages of Ray's shared object store it mapped).
5. Print the table, the comparison with the targets (Ray at 1M <= 1.5x the local wall time; each
   Ray worker's peak at 4M below the local engine's peak at 1M; 4M end to end under 20 min) and
   the machine's load average beside every figure; ``--out`` also writes the figures as JSON.

    .venv/bin/python benchmarks/bench_scale.py                                   # ~40 minutes
    .venv/bin/python benchmarks/bench_scale.py --sizes 50000 --local-max 50000  # a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_score_bots_scale import bench_database, load, plant_bots  # noqa: E402

from graphrec.store.store import GraphStore  # noqa: E402

JOB = """
import json, sys, time
from graphrec.distributed.engine import RayOptions
from graphrec.jobs.nightly import run_nightly
from graphrec.store.store import GraphStore
import datetime as dt
url, home, engine, workers, work, day = sys.argv[1:7]
store = GraphStore(url, home=home)
t = time.perf_counter()
result = run_nightly(store, run_date=dt.date.fromisoformat(day), replace=True, engine_name=engine,
                     ray_options=RayOptions(num_cpus=int(workers), workers=int(workers)), work_dir=work, threads=int(workers))
print(json.dumps({"wall": time.perf_counter() - t, "result": result.as_dict()}))
"""


def social_graph(n: int, degree: float, seed: int, *, inside: float = 0.6) -> np.ndarray:
    """``int64[m, 2]`` distinct friendships ``lo < hi`` among ``n`` users, mean degree about
    ``degree``: each user belongs to one community (sizes drawn from a Pareto law, 10 to 2,000
    members, mean about 60), a share ``inside`` of the friendships join two members of the same
    community chosen uniformly (dense communities: high clustering, as in friendship graphs), the
    rest join users drawn with Chung-Lu weights across the whole graph (a power-law degree tail,
    exponent 2.5). Vectorised: a few seconds per million users."""
    rng = np.random.default_rng(seed)
    sizes = np.clip((rng.pareto(1.5, size=n // 20 + 1) + 1) * 20, 10, 2000).astype(np.int64)
    sizes = sizes[: np.searchsorted(np.cumsum(sizes), n) + 1]
    sizes[-1] -= sizes.sum() - n
    sizes = sizes[sizes > 0]
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    m = int(n * degree / 2)
    m_in = int(m * inside)
    # inside: pick a community by its number of possible pairs' share, then two members
    weight = sizes.astype(np.float64)
    comm = rng.choice(sizes.size, size=int(m_in * 1.15), p=weight / weight.sum())
    a = starts[comm] + (rng.random(comm.size) * sizes[comm]).astype(np.int64)
    b = starts[comm] + (rng.random(comm.size) * sizes[comm]).astype(np.int64)
    cdf = np.cumsum(np.arange(1, n + 1, dtype=np.float64) ** (-1.0 / 1.5))
    cdf /= cdf[-1]
    perm = rng.permutation(n)  # hubs spread over the communities
    draw = int((m - m_in) * 1.15)
    c = perm[np.minimum(np.searchsorted(cdf, rng.random(draw), side="right"), n - 1)]
    d = perm[np.minimum(np.searchsorted(cdf, rng.random(draw), side="right"), n - 1)]
    u, v = np.concatenate([a, c]), np.concatenate([b, d])
    keep = u != v
    lo, hi = np.minimum(u[keep], v[keep]), np.maximum(u[keep], v[keep])
    keys = np.unique(lo.astype(np.int64) * n + hi)
    return np.stack([keys // n, keys % n], axis=1)


def generate(n: int, degree: float, seed: int) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    return plant_bots(n, social_graph(n, degree, seed), np.random.default_rng(seed + 7), extra_per_bot=3)


def graph_stats(n: int, pairs: np.ndarray) -> dict[str, float]:
    """Mean and max degree, and mean local clustering (estimated, 64 pairs a user, sampled users)."""
    from graphrec.core.graph import csr_from_edges
    from graphrec.core.ops import structural_features

    indptr, indices = csr_from_edges(pairs, n)
    deg = np.diff(indptr)
    clustering = structural_features(indptr, indices, pairs=64, seed=0)[:, 1]
    return {"mean_degree": round(float(deg.mean()), 2), "max_degree": int(deg.max()), "mean_clustering": round(float(clustering[deg >= 2].mean()), 3)}


def run_job(url: str, home: Path, engine: str, workers: int, work: Path, day: str) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    proc = subprocess.run([sys.executable, "-c", JOB, url, str(home), engine, str(workers), str(work), day],
                          capture_output=True, text=True, env={**os.environ, "RAY_DEDUP_LOGS": "0"})
    if proc.returncode != 0:
        raise SystemExit(f"{engine} job failed ({proc.returncode}): {proc.stderr[-3000:]}")
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    out["load"] = (round(load_before, 2), round(os.getloadavg()[0], 2))
    return out


def rows(size: int, friendships: int, engine: str, job: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per stage of a job: wall seconds, rows/s, driver and worker peaks (MiB)."""
    secs = job["result"]["seconds"]
    peaks = job["result"].get("peak_memory_mib", {})
    out = []
    for stage, key, peak_key, count in (("snapshot", "store_read", "read", friendships), ("inference", "bot_score", "score", size),
                                        ("write", "store_write", "write", size)):
        s = float(secs.get(key, float("nan")))
        peak = peaks.get(peak_key, {})
        workers = peak.get("bots_workers") or []
        shared = peak.get("bots_workers_with_object_store") or []
        out.append({"users": size, "engine": engine, "stage": stage, "seconds": round(s, 1), "rows_per_s": round(count / s) if s else None,
                    "rows": "friendships" if stage == "snapshot" else "users", "driver_peak_mib": peak.get("driver"),
                    "worker_peak_mib": max(workers) if workers else None, "workers": len(workers),
                    "worker_peak_with_store_mib": max(shared) if shared else None, "load": job["load"]})
    out.append({"users": size, "engine": engine, "stage": "total (process)", "seconds": round(job["wall"], 1),
                "rows_per_s": round(size / job["wall"]), "rows": "users", "driver_peak_mib": peaks.get("write", {}).get("driver"),
                "worker_peak_mib": out[-1]["worker_peak_mib"], "workers": out[-1]["workers"],
                "worker_peak_with_store_mib": out[-1]["worker_peak_with_store_mib"], "load": job["load"]})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="250000,1000000,4000000")
    ap.add_argument("--degree", type=float, default=20.0)
    ap.add_argument("--local-max", type=int, default=1_000_000, help="largest size the local engine runs")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--folds", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--out", type=Path, help="write the figures as JSON")
    args = ap.parse_args()

    from graphrec.tasks.base import train_and_register
    from graphrec.tasks.bots.config import BotConfig
    from graphrec.tasks.registry import get_task

    sizes = [int(s) for s in args.sizes.split(",")]
    work = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    model_home = work / "model-home"
    table: list[dict[str, Any]] = []
    graphs: dict[int, dict[str, Any]] = {}
    print(f"machine: {os.cpu_count()} CPUs, load {os.getloadavg()}")
    try:
        for size in sizes:
            t = time.perf_counter()
            ids, pairs, features, is_bot = generate(size, args.degree, args.seed)
            stats = graph_stats(size, pairs)
            graphs[size] = {"friendships": int(pairs.shape[0]), **stats}
            print(f"[{size:,}] generated {pairs.shape[0]:,} friendships in {time.perf_counter() - t:.0f} s: {stats}", flush=True)
            with bench_database("postgresql", work, "scale") as url:
                store = GraphStore(url, home=work / f"home-{size}")
                store.initialize()
                t = time.perf_counter()
                load(store, ids, pairs, features, is_bot, args.seed)
                graphs[size]["load_seconds"] = round(time.perf_counter() - t, 1)
                print(f"[{size:,}] loaded into PostgreSQL in {graphs[size]['load_seconds']} s (load {os.getloadavg()[0]:.2f})", flush=True)
                del ids, pairs, features, is_bot
                if not model_home.exists():
                    t = time.perf_counter()
                    config = BotConfig(seed=args.seed, folds=args.folds, epochs=args.epochs, threads=args.workers)
                    train_and_register(GraphStore(url, home=model_home), get_task("bots"), config)
                    print(f"[{size:,}] trained the bot model in {time.perf_counter() - t:.0f} s", flush=True)
                shutil.rmtree(work / f"home-{size}", ignore_errors=True)
                shutil.copytree(model_home, work / f"home-{size}")
                engines = (["local"] if size <= args.local_max else []) + ["ray"]
                for i, engine in enumerate(engines):
                    job = run_job(url, work / f"home-{size}", engine, args.workers, work / f"parts-{size}", f"2026-11-{i + 1:02d}")
                    table += rows(size, graphs[size]["friendships"], engine, job)
                    bot = job["result"]["tasks"]["bots"]
                    print(f"[{size:,}] {engine}: {job['wall']:.0f} s, {bot['flagged']:,} flagged, peaks {job['result']['peak_memory_mib']}",
                          flush=True)
                shutil.rmtree(work / f"parts-{size}", ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print()
    print(f"{'users':>9s} {'engine':>6s} {'stage':>16s} {'seconds':>8s} {'rows/s':>10s} {'rows':>11s} {'driver MiB':>10s} "
          f"{'worker MiB':>10s} {'+store MiB':>10s} {'workers':>7s}  load (start, end)")
    for r in table:
        print(f"{r['users']:>9,d} {r['engine']:>6s} {r['stage']:>16s} {r['seconds']:>8.1f} {r['rows_per_s'] or 0:>10,d} {r['rows']:>11s} "
              f"{r['driver_peak_mib'] or 0:>10.0f} {r['worker_peak_mib'] or 0:>10.0f} {r['worker_peak_with_store_mib'] or 0:>10.0f} "
              f"{r['workers']:>7d}  {r['load']}")

    def total(size: int, engine: str) -> dict[str, Any] | None:
        return next((r for r in table if r["users"] == size and r["engine"] == engine and r["stage"].startswith("total")), None)

    print()
    print("targets:")
    mid, big = 1_000_000, 4_000_000
    loc, ray_ = total(mid, "local"), total(mid, "ray")
    if loc and ray_:
        ratio = ray_["seconds"] / loc["seconds"]
        print(f"  Ray overhead at 1M: {ray_['seconds']:.0f} s vs local {loc['seconds']:.0f} s = {ratio:.2f}x (target <= 1.5x): "
              f"{'met' if ratio <= 1.5 else 'MISSED'}")
    ray_big = total(big, "ray")
    if loc and ray_big:
        ok = (ray_big["worker_peak_mib"] or 0) < (loc["driver_peak_mib"] or 0)
        print(f"  worker peak at 4M: {ray_big['worker_peak_mib']:.0f} MiB vs the local engine's peak at 1M {loc['driver_peak_mib']:.0f} MiB "
              f"(target below): {'met' if ok else 'MISSED'}; Ray driver peak at 4M {ray_big['driver_peak_mib']:.0f} MiB")
    if ray_big:
        print(f"  4M end to end: {ray_big['seconds'] / 60:.1f} min (target < 20 min): {'met' if ray_big['seconds'] < 1200 else 'MISSED'}")
    if args.out:
        args.out.write_text(json.dumps({"graphs": graphs, "rows": table}, indent=1))


if __name__ == "__main__":
    main()
