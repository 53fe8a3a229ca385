"""Synthetic-profile benchmark (issue 7): are synthetic ego-Facebook profiles realistic, and not
copies?

Real profiles are split 70/30 (seeded). Each generator is trained on the 70% and draws as many
profiles as the held-out 30%. Figures, all in this run:

* **Classifier two-sample test** (Lopez-Paz & Oquab, ICLR 2017): 5-fold cross-validated ROC-AUC
  of gradient boosting telling held-out real profiles from synthetic ones (0.5 = indistinguishable;
  the bar is <= 0.65). Reference rows: each feature drawn independently from its frequency
  (about 0.93) and real training rows resampled (about 0.56).
* **Distance to closest record** (DCR): Euclidean distance (the square root of the Hamming
  distance on binary rows) from each synthetic profile to its nearest training profile, against the same for held-out real profiles. Copies would sit closer
  than real unseen people do; the check is a one-sided Mann-Whitney U test that synthetic DCRs
  are smaller (a small p-value fails it) and the medians side by side.
* **Graph realism**: 400 synthetic users wired into the real graph (a copy of part of a
  similar real user's neighbourhood, :mod:`graphrec.tasks.synth.wiring`): KS statistic of degrees and mean clustering, synthetic
  against real.

The figures are computed by :mod:`graphrec.tasks.synth.evaluate` (``profile_figures``,
``batch_realism``), the same code that records realism with every ``graphrec synth`` run.

    python benchmarks/bench_synth_profiles.py --seeds 0,1,2 --threads 1
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from graphrec.core.graph import Graph  # noqa: E402
from graphrec.datasets import load_ego_facebook  # noqa: E402
from graphrec.tasks.synth.evaluate import batch_realism, profile_figures  # noqa: E402
from graphrec.tasks.synth.profiles import fit_profile_generator  # noqa: E402
from graphrec.tasks.synth.wiring import wire_synthetic  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--models", default="vae,gan")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--wire", type=int, default=400, help="synthetic users wired into the graph for the realism figures")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    data = load_ego_facebook()
    x = data.features
    n, d = x.shape
    idx = {int(u): i for i, u in enumerate(data.user_ids.tolist())}
    edges = np.vectorize(idx.__getitem__)(data.edges)
    graph = Graph.from_edges(edges, x, list(data.feature_names))
    print(f"ego-Facebook profiles: {n} users x {d} binary features; 70/30 split; C2ST = 5-fold gradient boosting ROC-AUC (bar <= 0.65)")
    print(f"{'seed':>4s} {'generator':22s} {'C2ST AUC':>8s} {'DCR median syn/real':>20s} {'DCR p(syn<real)':>15s} {'copies':>6s} "
          f"{'deg KS':>7s} {'clust syn/real':>15s} {'train s':>8s}")
    for seed in [int(s) for s in args.seeds.split(",")]:
        rng = np.random.default_rng(seed)
        perm = rng.permutation(n)
        cut = int(0.7 * n)
        train, held = x[perm[:cut]], x[perm[cut:]]
        m = held.shape[0]
        rows: list[tuple[str, np.ndarray, float]] = [
            ("independent columns", (rng.random((m, d)) < train.mean(axis=0)).astype(np.float32), 0.0),
            ("resampled train rows", train[rng.integers(0, cut, size=m)], 0.0),
        ]
        for kind in args.models.split(","):
            t = time.perf_counter()
            gen = fit_profile_generator(train, kind=kind, seed=seed, threads=args.threads)
            secs = time.perf_counter() - t
            if kind == "vae":
                rows.append(("vae, N(0, I) prior", gen.sample(m, seed=seed, prior="standard"), secs))
                rows.append(("vae, mixture prior", gen.sample(m, seed=seed), secs))
            else:
                rows.append((kind, gen.sample(m, seed=seed), secs))
        for name, syn, secs in rows:
            f = profile_figures(train, held, syn, seed=seed, folds=5)
            wired = syn[: args.wire]
            r = batch_realism(graph, wired, wire_synthetic(graph, wired, seed=seed))
            print(f"{seed:4d} {name:22s} {f.c2st_auc:8.3f} {f.dcr_median_synthetic:9.2f} / {f.dcr_median_holdout:<8.2f} "
                  f"{f.dcr_p_value_smaller:15.3g} {f.share_exact_copies:6.1%} "
                  f"{r.degree_ks:7.3f} {r.clustering_synthetic:6.3f} / {r.clustering_real:<6.3f} {secs:8.1f}", flush=True)


if __name__ == "__main__":
    main()
