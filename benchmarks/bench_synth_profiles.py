"""Synthetic-user benchmark (issues 7 and 18): are synthetic ego-Facebook users realistic, and
not copies of real ones?

Real profiles are split 70/30 (seeded). Each generator is trained on the 70% and draws as many
profiles as the held-out 30%. Figures, all in this run and all from the code that ``graphrec
synth`` runs on every batch:

* **C2ST** (classifier two-sample test, Lopez-Paz & Oquab, ICLR 2017): 5-fold cross-validated
  ROC-AUC of gradient boosting telling held-out real profiles from synthetic ones (0.5 =
  indistinguishable; bar <= 0.65 for the served generator);
  :func:`graphrec.tasks.synth.evaluate.profile_c2st`.
* **Privacy** (:func:`graphrec.tasks.synth.privacy.privacy_figures`, the gate of ``graphrec
  synth``): the share of synthetic rows equal to a training row against the share of held-out
  real rows equal to one (one-sided two-proportion test p; bar: not significantly above,
  p >= 0.05), the distance to the closest training record (Hamming; one-sided Mann-Whitney p that
  synthetic rows sit closer; bar p >= 0.05) and a distance-based membership-inference attack's
  ROC-AUC (bar <= 0.55). ``gate``: what ``graphrec synth`` would do with the batch.
* **Graph realism** (:func:`graphrec.tasks.synth.evaluate.batch_realism`): ``--wire`` synthetic
  users wired into the real graph by :mod:`graphrec.tasks.synth.wiring`; degree KS statistic
  (bar <= 0.1), mean clustering synthetic / real (bar: within 15%) and the share of the synthetic
  users' triangles closed through two real users.

Rows: two references (each feature drawn independently from its frequency; real training rows
resampled, i.e. a generator that copies), the served VAE (mixture latents), the served GAN
(straight-through Bernoulli outputs, PacGAN packing 4) and the GAN as it was before issue 18
(sigmoid outputs, no packing: the ablation, trained with the same seed and epochs).

    python benchmarks/bench_synth_profiles.py --seeds 0,1,2 --threads 1
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from graphrec.core.graph import Graph  # noqa: E402
from graphrec.datasets import load_ego_facebook  # noqa: E402
from graphrec.tasks.synth.evaluate import batch_realism, profile_c2st  # noqa: E402
from graphrec.tasks.synth.privacy import privacy_figures  # noqa: E402
from graphrec.tasks.synth.profiles import DEFAULT_EPOCHS, fit_profile_generator  # noqa: E402
from graphrec.tasks.synth.wiring import wire_synthetic  # noqa: E402


def gan_before_issue_18(train: np.ndarray, rows: int, seed: int, epochs: int) -> np.ndarray:
    """The profile GAN as served before issue 18: sigmoid outputs seen as probabilities by the
    discriminator, no packing (otherwise the served settings)."""
    import torch

    import generative

    torch.manual_seed(seed)
    gan = generative.GAN(train.shape[1], latent_dim=64, hidden=(256, 256), output="sigmoid", ema_decay=0.999)
    generative.fit(gan, train, epochs=epochs, batch_size=128, seed=seed, progress=False)
    return gan.sample_binary(rows, generator=torch.Generator().manual_seed(seed)).numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--models", default="vae,gan,gan-before")
    ap.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--wire", type=int, default=400, help="synthetic users wired into the graph for the realism figures")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    data = load_ego_facebook()
    x = data.features.astype(np.float32)
    n, d = x.shape
    idx = {int(u): i for i, u in enumerate(data.user_ids.tolist())}
    edges = np.vectorize(idx.__getitem__)(data.edges)
    graph = Graph.from_edges(edges, x, list(data.feature_names))
    print(f"ego-Facebook: {n} users x {d} binary features; 70/30 split; {args.epochs} epochs; torch threads {args.threads}; "
          f"load average at start {os.getloadavg()[0]:.2f}")
    print("bars: served C2ST <= 0.65; copies not above held-out (p >= 0.05); DCR p >= 0.05; MIA <= 0.55; degree KS <= 0.1; "
          "clustering within 15% of real")
    print(f"{'seed':>4s} {'generator':24s} {'C2ST':>6s} {'copies syn/held':>16s} {'copy p':>7s} {'DCR p':>7s} {'MIA':>6s} "
          f"{'gate':>7s} {'deg KS':>6s} {'clust syn/real':>14s} {'tri real':>8s} {'train s':>7s} {'load':>5s}")
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
            if kind == "gan-before":
                syn = gan_before_issue_18(train, m, seed, args.epochs)
                rows.append(("gan before (ablation)", syn, time.perf_counter() - t))
                continue
            gen = fit_profile_generator(train, kind=kind, seed=seed, epochs=args.epochs, threads=args.threads)
            secs = time.perf_counter() - t
            rows.append((f"{kind} (served)", gen.sample(m, seed=seed), secs))
        for name, syn, secs in rows:
            c2st = profile_c2st(held, syn, seed=seed)
            p = privacy_figures(train, held, syn, seed=seed)
            wired = syn[: args.wire]
            r = batch_realism(graph, wired, wire_synthetic(graph, wired, seed=seed))
            gate = "pass" if p.passed else "REFUSE"
            print(f"{seed:4d} {name:24s} {c2st:6.3f} {p.exact_copy_rate:7.1%} / {p.holdout_exact_copy_rate:<6.1%} "
                  f"{p.copy_p_value:7.2g} {p.dcr_p_value_smaller:7.2g} {p.membership_auc:6.3f} {gate:>7s} {r.degree_ks:6.3f} "
                  f"{r.clustering_synthetic:6.3f}/{r.clustering_real:<6.3f} {r.triangles_through_real:8.3f} {secs:7.1f} "
                  f"{os.getloadavg()[0]:5.2f}", flush=True)


if __name__ == "__main__":
    main()
