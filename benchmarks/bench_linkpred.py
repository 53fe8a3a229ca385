#!/usr/bin/env python
"""Friend-recommendation benchmark (issue 3): quality against heuristics, and serving latency.

Quality (the protocol of ``graphrec eval linkpred``): on the bundled ego-Facebook graph, hold out
10% of friendships (per seed), rank every non-friend for up to 1,000 users with a held-out friend,
and print Recall@20, Recall@50 and MRR of the model beside common neighbours, Adamic-Adar,
resource allocation and personalized PageRank, all measured in the same run on the same split.
Targets printed beside them: model above the best heuristic on Recall@20 and MRR, and Recall@20
at least 10% above the best heuristic.

Latency: a SQLite store with ego-Facebook and a model trained on it (seed 0), then
* in-process ``Recommender.recommend(user, k=20)``: p50 / p99 over every user (target 2 / 10 ms);
* ``graphrec recommend --user ID --format json`` as a fresh process: median of 7 runs (target 0.8 s);
* batch ``graphrec recommend --users-file`` for all 4,039 users (target 30 s).

Run from the repository root::

    .venv/bin/python benchmarks/bench_linkpred.py                 # seeds 0; ~1 minute
    .venv/bin/python benchmarks/bench_linkpred.py --seeds 0,1,2 --ablation

``--ablation`` also trains without the GNN term and on every candidate row (no negative
subsampling, ``negatives=0``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from graphrec.datasets import load_ego_facebook  # noqa: E402
from graphrec.tasks.linkpred.evaluate import evaluate_linkpred  # noqa: E402
from graphrec.tasks.linkpred.profiles import ProfileMatrix  # noqa: E402
from graphrec.tasks.linkpred.config import LinkPredConfig  # noqa: E402


def quality(seeds: list[int], ablation: bool, threads: int = 2) -> None:
    data = load_ego_facebook()
    profiles = ProfileMatrix.from_dense(data.features)
    variants: list[tuple[str, dict[str, int]]] = [("model (gnn_dim=16)", {})]
    if ablation:
        variants += [("model (gnn_dim=0)", {"gnn_dim": 0}), ("model (all negatives)", {"negatives": 0})]
    for seed in seeds:
        print(f"\n== quality, ego-Facebook, seed {seed} ==")
        rows: dict[str, dict[str, float]] = {}
        for label, overrides in variants:
            config = LinkPredConfig(seed=seed, threads=threads, **overrides)
            report, result = evaluate_linkpred(data.edges, data.user_ids.size, profiles, seed=seed, config=config, include_model=True)
            if not rows:
                rows.update({k: v for k, v in report.metrics.items() if k != "model"})
            rows[label] = report.metrics["model"]
            print(f"  [{label}: trained in {report.seconds['model_training']:.1f} s]")
        print(f"  {'method':26s} {'recall@20':>9s} {'recall@50':>9s} {'mrr':>7s}")
        for name, m in rows.items():
            print(f"  {name:26s} {m['recall@20']:9.3f} {m['recall@50']:9.3f} {m['mrr']:7.3f}")
        heur = {k: v for k, v in rows.items() if not k.startswith("model")}
        best_r = max(heur.values(), key=lambda m: m["recall@20"])["recall@20"]
        best_m = max(heur.values(), key=lambda m: m["mrr"])["mrr"]
        model = rows[variants[0][0]]
        print(
            f"  target: recall@20 > {best_r:.3f} (best heuristic) -> {'met' if model['recall@20'] > best_r else 'MISSED'};"
            f" recall@20 >= {1.1 * best_r:.3f} (+10%) -> {'met' if model['recall@20'] >= 1.1 * best_r else 'MISSED'}"
            f" ({100 * (model['recall@20'] / best_r - 1):+.1f}%);"
            f" mrr > {best_m:.3f} -> {'met' if model['mrr'] > best_m else 'MISSED'}"
        )


def latency() -> None:
    from graphrec.serving.recommend import Recommender
    from graphrec.store.store import GraphStore
    from graphrec.tasks.base import train_and_register
    from graphrec.tasks.linkpred.train import LinkPredTask

    print("\n== latency, ego-Facebook, SQLite ==")
    work = Path(tempfile.mkdtemp(prefix="bench-linkpred-"))
    url = f"sqlite:///{work / 'g.db'}"
    store = GraphStore(url, home=work / "home")
    store.initialize()
    store.import_ego_facebook()
    t = time.perf_counter()
    reg = train_and_register(store, LinkPredTask(), LinkPredConfig(seed=0))
    print(f"  training (train linkpred, seed 0): {time.perf_counter() - t:.1f} s  (target < 300 s)")
    rec = Recommender(store)
    users = rec.ids
    rec.recommend(users[0])
    times = []
    for u in users:
        t = time.perf_counter()
        rec.recommend(u, k=20)
        times.append(time.perf_counter() - t)
    p50, p99 = np.percentile(times, 50) * 1e3, np.percentile(times, 99) * 1e3
    print(f"  in-process recommend(k=20) over {len(users)} users: p50 {p50:.2f} ms (target < 2), p99 {p99:.2f} ms (target < 10)")
    env = {**os.environ, "GRAPHREC_DATABASE_URL": url, "GRAPHREC_HOME": str(work / "home")}
    exe = str(Path(sys.executable).with_name("graphrec"))
    runs = []
    for u in ("0", "107", "1684", "3980", "500", "2000", "4000"):
        t = time.perf_counter()
        subprocess.run([exe, "recommend", "--user", u, "--format", "json"], env=env, check=True, capture_output=True)
        runs.append(time.perf_counter() - t)
    print(f"  fresh process `graphrec recommend --user ID --format json`: median {statistics.median(runs):.3f} s, max {max(runs):.3f} s (target < 0.8 s)")
    users_file = work / "users.txt"
    users_file.write_text("\n".join(users) + "\n")
    t = time.perf_counter()
    subprocess.run([exe, "recommend", "--users-file", str(users_file), "--output", str(work / "recs.jsonl")], env=env, check=True, capture_output=True)
    print(f"  batch for all {len(users)} users (one process): {time.perf_counter() - t:.1f} s (target < 30 s)")
    print(f"  model version {reg.version}; work folder {work}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0", help="comma-separated split seeds")
    parser.add_argument("--ablation", action="store_true", help="also train without the GNN term and on every negative")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--threads", type=int, default=2, help="training threads (1 when sharing the CPU)")
    args = parser.parse_args()
    if not args.skip_quality:
        quality([int(s) for s in args.seeds.split(",")], args.ablation, args.threads)
    if not args.skip_latency:
        latency()


if __name__ == "__main__":
    main()
