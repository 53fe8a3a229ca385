#!/usr/bin/env python
"""Real-graph benchmark (issue 13): the models against the strongest simple baselines measured in
the same run, on the public real graphs of the shared data folder, over several seeds.

Graphs (:mod:`graphrec.datasets.real`; folder ``--data``, env ``GRAPHREC_SHARED_DATA`` or
``../shared/data``): ``ego-facebook`` (4,039 users), ``github-musae`` (37,700 GitHub developers,
mutual follows) and ``bitcoin-otc`` (5,881 users of a trust network, made undirected).

For every graph and seed:

* **Link prediction**, the protocol of ``graphrec eval linkpred``
  (:func:`graphrec.tasks.linkpred.evaluate.evaluate_linkpred`): hold out 10% of friendships,
  evaluate up to ``--max-users`` (1,000) users with a held-out friend (sampled per seed on larger
  graphs), Recall@20/50 and MRR over every non-friend, and MRR / Hits@K of each held-out friend
  among the user's ``--hard-negatives`` (100) hard negatives (top CN, RA and PPR candidates,
  HeaRT); the ranker beside CN, AA, RA and PPR.
* **Node classification** where labels exist, the protocol of ``graphrec eval bots``
  (:func:`graphrec.tasks.bots.evaluate.evaluate_bots`): a stratified split with
  ``--test-fraction`` (0.3) of the labelled users held out; the bot model beside gradient-boosted
  trees on profile + structure + 1-2-hop neighbour means, a feature-only logistic regression,
  label propagation and personalized PageRank. bitcoin-otc: ``fraud`` (positive) vs ``benign``
  (REV2 ground truth, 316 users), a real fraud label. github-musae: ``ml`` (positive) vs ``web``
  developers, *not* a bot label, a second node-classification benchmark on a real graph.
  ego-Facebook has no labels.

Printed per graph: every method per seed, then mean ± std over the seeds with the model beside the
strongest baseline of each figure (and the difference), and the load average (1/5/15 minutes) at
the start and the end of each block: figures taken under load are no timing figures.

    .venv/bin/python benchmarks/bench_real_graphs.py                          # all graphs, seeds 0,1,2
    .venv/bin/python benchmarks/bench_real_graphs.py --graphs bitcoin-otc --seeds 0 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from graphrec.core.metrics import mean_std  # noqa: E402
from graphrec.core.splits import stratified_split  # noqa: E402
from graphrec.datasets.real import REAL_GRAPHS, RealGraph, load_real_graph  # noqa: E402
from graphrec.tasks.bots.config import BotConfig  # noqa: E402
from graphrec.tasks.bots.evaluate import evaluate_bots  # noqa: E402
from graphrec.tasks.linkpred.config import LinkPredConfig  # noqa: E402
from graphrec.tasks.linkpred.evaluate import evaluate_seeds  # noqa: E402
from graphrec.tasks.linkpred.profiles import ProfileMatrix  # noqa: E402

#: Figures compared model vs strongest baseline: (table, metric).
LINK_FIGURES = (("metrics", "recall@20"), ("metrics", "mrr"), ("hard", "mrr"), ("hard", "hits@20"))
NODE_FIGURES = ("roc_auc", "average_precision")


def load() -> str:
    a, b, c = os.getloadavg()
    return f"load average {a:.2f} {b:.2f} {c:.2f}"


def fmt(mean: float, std: float | None) -> str:
    return f"{mean:.4f}" if std is None else f"{mean:.4f}±{std:.4f}"


def side_by_side(title: str, mean: dict[str, dict[str, float]], std: dict[str, dict[str, float]], metrics: tuple[str, ...],
                 n: int) -> list[dict[str, Any]]:
    """Print the model beside the strongest baseline (by mean) of each metric; return the rows."""
    rows = []
    print(f"  {title}: model vs strongest baseline (mean{'±std' if n > 1 else ''} over {n} seed{'s' if n > 1 else ''})")
    for metric in metrics:
        base = {k: v[metric] for k, v in mean.items() if k != "model"}
        best = max(base, key=base.__getitem__)
        model, other = mean["model"][metric], base[best]
        s_model = std["model"][metric] if n > 1 else None
        s_best = std[best][metric] if n > 1 else None
        verdict = "above" if model > other else "NOT above"
        print(f"    {metric:18s} model {fmt(model, s_model):>16s}   {best:24s} {fmt(other, s_best):>16s}   "
              f"diff {model - other:+.4f} ({100 * (model / other - 1) if other else float('nan'):+.1f}%)  {verdict}")
        rows.append({"metric": metric, "model": model, "baseline": best, "baseline_value": other, "model_std": s_model, "baseline_std": s_best})
    return rows


def table(title: str, metrics: dict[str, dict[str, float]], columns: tuple[str, ...]) -> None:
    print(f"  {title}")
    print(f"    {'method':26s} " + " ".join(f"{c:>10s}" for c in columns))
    for name, m in metrics.items():
        print(f"    {name:26s} " + " ".join(f"{m[c]:10.4f}" for c in columns))


def link_prediction(data: RealGraph, seeds: list[int], args: argparse.Namespace) -> dict[str, Any]:
    print(f"\n== link prediction, {data.name}: {data.num_nodes} users, {len(data.edges)} friendships; seeds {seeds}; {load()} ==")
    t = time.perf_counter()
    cfg = LinkPredConfig(threads=args.threads) if args.threads else LinkPredConfig()
    sweep = evaluate_seeds(data.edges, data.num_nodes, ProfileMatrix.from_dense(data.features), seeds, config=cfg,
                           max_users=args.max_users, hard_negatives=args.hard_negatives)
    elapsed = time.perf_counter() - t
    for r in sweep.reports:
        p = r.params
        print(f"  -- seed {p['seed']}: {p['max_users']} users evaluated, {p['test_edges']} held-out friendships; "
              f"model trained in {r.seconds.get('model_training', float('nan')):.1f} s")
        table("full ranking (every non-friend)", r.metrics, ("recall@20", "recall@50", "mrr"))
        table(f"hard negatives ({args.hard_negatives} per user)", r.hard, ("mrr", "hits@1", "hits@10", "hits@20"))
    n = len(seeds)
    full_mean, full_std = sweep.mean_std()
    hard_mean, hard_std = sweep.mean_std(hard=True)
    rows = side_by_side("full ranking", full_mean, full_std, ("recall@20", "recall@50", "mrr"), n)
    rows += side_by_side("hard negatives", hard_mean, hard_std, ("mrr", "hits@1", "hits@10", "hits@20"), n)
    print(f"  [{elapsed:.0f} s; {load()}]")
    return {"graph": data.name, "task": "linkpred", "seeds": seeds, "seconds": round(elapsed, 1), "summary": rows,
            "per_seed": [r.as_dict() for r in sweep.reports]}


def node_classification(data: RealGraph, seeds: list[int], args: argparse.Namespace) -> dict[str, Any] | None:
    nodes, positive = data.labelled()
    if nodes.size == 0:
        print(f"\n== node classification, {data.name}: no labels, skipped ==")
        return None
    what = "fraud vs benign (REV2 ground truth)" if data.name == "bitcoin-otc" else f"{data.positive_label} (positive) vs the rest — not a bot label"
    print(f"\n== node classification, {data.name}: {what}; {nodes.size} labelled ({int(positive.sum())} positive); "
          f"test fraction {args.test_fraction}; seeds {seeds}; {load()} ==")
    graph = data.to_graph()
    t = time.perf_counter()
    runs = []
    for seed in seeds:
        tr, te = stratified_split(positive, args.test_fraction, seed)
        cfg = BotConfig(seed=seed, epochs=args.epochs, folds=args.folds)
        if args.threads:
            cfg = replace(cfg, threads=args.threads)
        rep = evaluate_bots(graph, nodes[tr], positive[tr], nodes[te], positive[te], cfg)
        print(f"  -- seed {seed}: train {rep.n_train}, test {rep.n_test} ({rep.test_bots} positive); "
              f"model trained+scored in {rep.seconds.get('model', float('nan')):.1f} s; post-processing {rep.smoothing}")
        table("test users", rep.metrics, ("roc_auc", "average_precision", "f1"))
        runs.append(rep)
    mean, std = mean_std([r.metrics for r in runs])
    rows = side_by_side("test users", mean, std, NODE_FIGURES, len(seeds))
    elapsed = time.perf_counter() - t
    print(f"  [{elapsed:.0f} s; {load()}]")
    return {"graph": data.name, "task": "node classification", "positive": data.positive_label, "seeds": seeds,
            "seconds": round(elapsed, 1), "summary": rows, "per_seed": [r.as_dict() for r in runs]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--graphs", default=",".join(REAL_GRAPHS), help=f"comma-separated, of {', '.join(REAL_GRAPHS)}")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--data", help="shared data folder (default: $GRAPHREC_SHARED_DATA or ../shared/data)")
    ap.add_argument("--max-users", type=int, default=1000, help="link prediction: users evaluated per seed")
    ap.add_argument("--hard-negatives", type=int, default=100, help="link prediction: hard negatives per user")
    ap.add_argument("--test-fraction", type=float, default=0.3, help="node classification: labelled users held out")
    ap.add_argument("--epochs", type=int, default=BotConfig.epochs, help="node classification: bot model epochs")
    ap.add_argument("--folds", type=int, default=BotConfig.folds, help="node classification: bot model folds")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: the configs' default)")
    ap.add_argument("--skip-linkpred", action="store_true")
    ap.add_argument("--skip-nodes", action="store_true")
    ap.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    args = ap.parse_args()
    graphs = [g.strip() for g in args.graphs.split(",") if g.strip()]
    unknown = [g for g in graphs if g not in REAL_GRAPHS]
    if unknown:
        ap.error(f"unknown graph {unknown[0]!r}; known: {', '.join(REAL_GRAPHS)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    print(f"bench_real_graphs: graphs {graphs}, seeds {seeds}, {os.cpu_count()} CPUs, {load()}")
    results: list[dict[str, Any]] = []
    for name in graphs:
        data = load_real_graph(name, args.data)
        print(f"\n##### {name}: {data.num_nodes} users, {len(data.edges)} friendships, {data.features.shape[1]} profile columns; "
              + "; ".join(f"{k}: {v}" for k, v in data.notes.items()))
        if not args.skip_linkpred:
            results.append(link_prediction(data, seeds, args))
        if not args.skip_nodes:
            out = node_classification(data, seeds, args)
            if out is not None:
                results.append(out)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=lambda o: o.item() if isinstance(o, np.generic) else str(o)))
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
