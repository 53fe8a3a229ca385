#!/usr/bin/env python
"""Nightly scoring at scale: the nightly job (``graphrec score-bots``, the alias of ``graphrec
score``, whose summary this reads) on 1,000,000 users, bot and anomaly scores in one run.

Steps:
1. Generate a seeded Chung-Lu graph (``--users``, ``--edges``; the generator of
   ``bench_import.py``) with 16 continuous profile columns. 5% of users are bots whose profiles are
   shifted a little and who get extra friendships among themselves; 1% of users are labelled.
2. Load it into a fresh store on each backend (not timed: that is ``bench_import.py``'s job).
3. Train a bot model once (reduced configuration ``--folds`` / ``--epochs``; reported, not part
   of the bar) and, unless ``--no-anomaly``, the default anomaly model; give every backend a copy.
4. Run ``graphrec score-bots --format json`` as a fresh process per backend: wall time, peak RSS
   of the process (``RUSAGE_CHILDREN``) and the job's own split between the store (snapshot read,
   runs write), the bot model (input signals, inference, explanations) and the anomaly model. Target: under 300 s and
   under 8 GiB on this 2-core machine, against SQLite and PostgreSQL.
5. Run it again with the same run date: it must be skipped without writing anything.

    .venv/bin/python benchmarks/bench_score_bots_scale.py                         # ~15 minutes
    .venv/bin/python benchmarks/bench_score_bots_scale.py --users 100000 --edges 1000000
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_import import chung_lu_pairs  # noqa: E402

from graphrec.store.importers import EdgeBatch, LabelBatch, UserBatch  # noqa: E402
from graphrec.store.store import GraphStore  # noqa: E402

PG_BASE = os.environ.get("GRAPHREC_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def generate(n: int, m: int, seed: int) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return plant_bots(n, chung_lu_pairs(n, m, rng), rng, extra_per_bot=5)


def plant_bots(n: int, pairs: np.ndarray, rng: np.random.Generator, *, extra_per_bot: int) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """The benchmark's users over the friendships ``pairs``: 16 normal profile columns, 5% bots
    whose first 4 columns are shifted by 0.5 and who get ``extra_per_bot`` friendships among
    themselves. Returns external ids, the friendships, the profiles and the bot mask."""
    is_bot = rng.random(n) < 0.05
    features = rng.normal(0.0, 1.0, (n, 16)).astype(np.float32)
    features[is_bot, :4] += 0.5
    bots = np.flatnonzero(is_bot)
    extra = np.sort(rng.choice(bots, size=(bots.size * extra_per_bot, 2)), axis=1)
    extra = extra[extra[:, 0] != extra[:, 1]]
    keys = np.unique(np.concatenate([pairs[:, 0] * n + pairs[:, 1], extra[:, 0] * n + extra[:, 1]]))
    pairs = np.stack([keys // n, keys % n], axis=1)
    return [str(i) for i in range(n)], pairs, features, is_bot


def load(store: GraphStore, ids: list[str], pairs: np.ndarray, features: np.ndarray, is_bot: np.ndarray, seed: int) -> None:
    rng = np.random.default_rng(seed + 1)
    store.load_users(UserBatch("bench", ids, [f"x{j}" for j in range(features.shape[1])], features, [{} for _ in ids], [], None))
    store.load_edges(EdgeBatch("bench", ids, pairs[:, 0].copy(), pairs[:, 1].copy(), int(pairs.shape[0])), create_users=False)
    lab = np.sort(rng.choice(len(ids), size=len(ids) // 100, replace=False))
    store.load_labels(LabelBatch("bench", [ids[i] for i in lab], ["bot" if is_bot[i] else "human" for i in lab], ["bench"] * lab.size))


@contextlib.contextmanager
def bench_database(backend: str, work: Path, prefix: str = "bench") -> Iterator[str]:
    """URL of a fresh database for ``backend``: a SQLite file in ``work`` or a private PostgreSQL
    schema, dropped (and the engine disposed) afterwards."""
    from sqlalchemy import create_engine, text

    from graphrec.store.engine import dispose_engine

    schema = None
    if backend == "sqlite":
        url = f"sqlite:///{work / f'{prefix}.db'}"
    else:
        schema = f"{prefix}_{uuid.uuid4().hex[:8]}"
        with create_engine(PG_BASE, isolation_level="AUTOCOMMIT").connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = f"{PG_BASE}?options=-csearch_path%3D{schema}"
    try:
        yield url
    finally:
        dispose_engine(url)
        if schema:
            with create_engine(PG_BASE, isolation_level="AUTOCOMMIT").connect() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


def run_job(url: str, home: Path, run_date: str) -> tuple[dict, float, float]:
    env = {**os.environ, "GRAPHREC_DATABASE_URL": url, "GRAPHREC_HOME": str(home)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.perf_counter()
    proc = subprocess.run([str(ROOT / ".venv/bin/graphrec"), "score-bots", "--run-date", run_date, "--format", "json", "--threads", "2"],
                          env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if proc.returncode != 0:
        raise SystemExit(f"score-bots failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1]), wall, max(peak, before) / 1024.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=1_000_000)
    ap.add_argument("--edges", type=int, default=10_000_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--folds", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--no-anomaly", action="store_true", help="score bots only (no anomaly model)")
    args = ap.parse_args()

    from graphrec.tasks.base import train_and_register
    from graphrec.tasks.bots.config import BotConfig
    from graphrec.tasks.registry import get_task

    t = time.perf_counter()
    ids, pairs, features, is_bot = generate(args.users, args.edges, args.seed)
    print(f"generated {len(ids):,} users, {len(pairs):,} friendships, 16 features, {int(is_bot.sum()):,} bots in {time.perf_counter() - t:.1f} s")
    work = Path(tempfile.mkdtemp(prefix="bench-bots-"))
    model_home = work / "model-home"
    rows = []
    try:
        for backend in args.backends.split(","):
            with bench_database(backend, work, "bots") as url:
                store = GraphStore(url, home=work / f"home-{backend}")
                store.initialize()
                t = time.perf_counter()
                load(store, ids, pairs, features, is_bot, args.seed)
                print(f"[{backend}] loaded in {time.perf_counter() - t:.1f} s")
                if not model_home.exists():
                    t = time.perf_counter()
                    cfg = BotConfig(seed=args.seed, folds=args.folds, epochs=args.epochs, threads=2)
                    reg = train_and_register(store, get_task("bots"), cfg)
                    print(f"[{backend}] trained the bot model ({args.folds} folds x {args.epochs} epochs, full batch) in "
                          f"{time.perf_counter() - t:.1f} s; out-of-fold {reg.manifest['metrics']['out_of_fold']}")
                    if not args.no_anomaly:
                        anomaly = get_task("anomaly")
                        t = time.perf_counter()
                        anomaly_reg = train_and_register(store, anomaly, anomaly.config_type(seed=args.seed, threads=2))  # type: ignore[call-arg]
                        print(f"[{backend}] trained the anomaly model in {time.perf_counter() - t:.1f} s: {anomaly_reg.manifest['metrics']}")
                    shutil.copytree(reg.artifact.path.parents[2], model_home)
                else:
                    shutil.copytree(model_home, work / f"home-{backend}", dirs_exist_ok=True)
                summary, wall, peak = run_job(url, work / f"home-{backend}", "2026-11-27")
                again, wall2, _ = run_job(url, work / f"home-{backend}", "2026-11-27")
                assert again["status"] == "skipped", again
                sec = summary["seconds"]
                store_s = sec.get("store_read", 0) + sec.get("store_write", 0)
                model_s = sec.get("model_score", 0)
                anomaly_s = sec.get("anomaly_score", 0)
                rows.append((backend, wall, peak, store_s, model_s, anomaly_s))
                print(f"[{backend}] score-bots: {wall:.1f} s wall, peak RSS {peak:,.0f} MiB; job seconds {sec}; "
                      f"scored {summary['users_scored']:,}, flagged {summary['flagged']:,}; anomalies {summary.get('anomalies')}; "
                      f"rerun same date: {again['status']} in {wall2:.1f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n== graphrec score-bots, {args.users:,} users / {len(pairs):,} friendships / 16 features (targets: < 300 s, < 8192 MiB) ==")
    print(f"  {'backend':10s} {'wall s':>7s} {'peak MiB':>9s} {'store s':>8s} {'bots s':>8s} {'anomaly s':>9s} {'other s':>8s}  met")
    for backend, wall, peak, store_s, model_s, anomaly_s in rows:
        other = wall - store_s - model_s - anomaly_s
        ok = "yes" if wall < 300 and peak < 8192 else "NO"
        print(f"  {backend:10s} {wall:7.1f} {peak:9,.0f} {store_s:8.1f} {model_s:8.1f} {anomaly_s:9.1f} {other:8.1f}  {ok}")
    print("  store = snapshot read + runs write; bots = input signals, layer-wise inference of every fold model, Correct and Smooth, "
          "explanations; anomaly = friends' mean profiles, autoencoder, spectral codes and edge disagreement, ranks, explanations; "
          "other = process start-up and imports, lock, model load")


if __name__ == "__main__":
    main()
