#!/usr/bin/env python
"""Kill test for the nightly job (issue 4): SIGKILL ``graphrec score-bots`` at random moments and
check after each kill that the store holds only complete runs, never a mix.

For each backend: a generated store (``--users`` / ``--edges``, 1% labelled) and a small bot model;
one complete baseline run; then iterations until ``--kills`` jobs were actually killed, each of
which starts ``graphrec score-bots`` as a fresh process (alternating a new run date and
``--replace`` of the previous date), kills it with SIGKILL after a uniform random delay in
[0, the measured job time] (a job that finished first counts as an iteration, not a kill), and
checks:

* every ``scoring_runs`` row is ``complete`` and holds exactly ``n_scored`` = number of users scores;
* a replaced date still holds either its old run (same id, same scores) or a complete new one;
* an unkilled rerun then completes (or finds the date done), taking over the dead job's lock.

    .venv/bin/python benchmarks/kill_test_score_bots.py                    # ~5 minutes
    .venv/bin/python benchmarks/kill_test_score_bots.py --kills 40 --backends sqlite
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_score_bots_scale import bench_database, generate, load  # noqa: E402

from graphrec.store.store import GraphStore  # noqa: E402


def job(url: str, home: Path, run_date: dt.date, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "GRAPHREC_DATABASE_URL": url, "GRAPHREC_HOME": str(home)}
    return subprocess.Popen([str(ROOT / ".venv/bin/graphrec"), "score-bots", "--run-date", run_date.isoformat(), *extra],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def state(store: GraphStore) -> dict[int, tuple[str, str, int, int, float]]:
    """run id -> (date, status, n_scored, score rows, score sum)."""
    from sqlalchemy import text

    with store.read() as conn:
        rows = conn.execute(text(
            "SELECT r.id, r.run_date, r.status, r.n_scored, COUNT(s.user_id), COALESCE(SUM(s.score), 0) FROM scoring_runs r "
            "LEFT JOIN scores s ON s.run_id = r.id WHERE r.kind = 'bot' GROUP BY r.id, r.run_date, r.status, r.n_scored"
        )).all()
        orphans = conn.execute(text("SELECT COUNT(*) FROM scores WHERE run_id NOT IN (SELECT id FROM scoring_runs)")).scalar_one()
    assert orphans == 0, f"{orphans} scores without a run"
    return {int(r[0]): (str(r[1]), r[2], int(r[3]), int(r[4]), round(float(r[5]), 3)) for r in rows}


def check(store: GraphStore, n_users: int) -> dict[int, tuple]:
    runs = state(store)
    for rid, (day, status, n_scored, rows, _) in runs.items():
        assert status == "complete", f"run {rid} ({day}) is {status}"
        assert n_scored == rows == n_users, f"run {rid} ({day}): n_scored {n_scored}, {rows} score rows, {n_users} users"
    return runs


def run_backend(backend: str, args: argparse.Namespace, data: tuple, work: Path) -> dict[str, int]:
    from graphrec.tasks.base import train_and_register
    from graphrec.tasks.bots.config import BotConfig
    from graphrec.tasks.registry import get_task

    ids = data[0]
    home = work / f"home-{backend}"
    counts = {"kills": 0, "killed_before_commit": 0, "killed_after_commit": 0, "reruns_complete": 0}
    with bench_database(backend, work, "kill") as url:
        store = GraphStore(url, home=home)
        store.initialize()
        load(store, *data, seed=args.seed)
        train_and_register(store, get_task("bots"), BotConfig(seed=args.seed, folds=2, epochs=10))
        day = dt.date(2026, 1, 1)
        t = time.perf_counter()
        p = job(url, home, day)
        assert p.wait() == 0, p.stderr.read() if p.stderr else ""
        duration = time.perf_counter() - t
        check(store, len(ids))
        print(f"[{backend}] baseline run complete in {duration:.1f} s (fresh process); killing {args.kills} times")
        rng = random.Random(args.seed)
        i = -1
        while counts["kills"] < args.kills and i < 3 * args.kills:
            i += 1
            replace = i % 2 == 1
            target = day if replace else day + dt.timedelta(days=1)
            before = state(store)
            old = {rid: v for rid, v in before.items() if v[0] == target.isoformat()}
            delay = rng.uniform(0.0, duration)
            p = job(url, home, target, *(["--replace"] if replace else []))
            time.sleep(delay)
            finished = p.poll() is not None
            if not finished:
                p.send_signal(signal.SIGKILL)
            p.wait()
            counts["kills"] += 0 if finished else 1
            after = check(store, len(ids))
            new = {rid: v for rid, v in after.items() if v[0] == target.isoformat()}
            assert len(new) <= 1, f"two runs for {target}"
            committed = new != old
            if replace and old and not committed:
                assert new == old, "the replaced run changed without a new complete run"
            counts["killed_after_commit" if committed else "killed_before_commit"] += 0 if finished else 1
            rerun = job(url, home, target, *(["--replace"] if replace and not committed else []))
            assert rerun.wait() == 0, rerun.stderr.read() if rerun.stderr else ""
            counts["reruns_complete"] += 1
            final = check(store, len(ids))
            assert len([v for v in final.values() if v[0] == target.isoformat()]) == 1
            day = target
            print(f"  kill {i + 1:2d}: {'replace' if replace else 'new date'} {target} killed at {delay:5.2f} s "
                  f"({'finished first' if finished else ('after commit' if committed else 'before commit')}); consistent; rerun ok")
    return counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--edges", type=int, default=1_000_000)
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--backends", default="sqlite,postgresql")
    args = ap.parse_args()
    data = generate(args.users, args.edges, args.seed)
    work = Path(tempfile.mkdtemp(prefix="kill-test-"))
    results = {}
    try:
        for backend in args.backends.split(","):
            results[backend] = run_backend(backend, args, data, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("\n== kill test summary ==")
    for backend, c in results.items():
        print(f"  {backend:10s} kills {c['kills']:3d} (before commit {c['killed_before_commit']}, after commit {c['killed_after_commit']}), "
              f"reruns complete {c['reruns_complete']}, every check passed")


if __name__ == "__main__":
    main()
