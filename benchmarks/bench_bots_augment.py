"""Augmentation benchmark (issue 7): does ``train bots --augment vae|gan`` help with 1% labels?

The bot-injection setting of ``bench_bots_injection.py`` (ego-Facebook + a 400-bot region with
``--attack-edges`` attack edges per bot), with only ``--label-fraction`` (1%) of users labelled
(stratified: 4 bots, 40 non-bots). The same model is trained without augmentation and with
class-conditional synthetic examples of the scarce class from a VAE and from a GAN
(:mod:`graphrec.tasks.bots.augment`), on the same labels, and scored on every unlabelled user. The
``copy`` row is the ablation without a generator (synthetic examples copy a real example's
friends *and* profile), so the generator's own contribution shows. ROC-AUC
and average precision per seed and their mean; the effect is reported whichever way it goes.

    python benchmarks/bench_bots_augment.py --seeds 0,1,2,3,4 --threads 1
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sklearn.metrics import average_precision_score, roc_auc_score  # noqa: E402

from graphrec.core.graph import Graph  # noqa: E402
from graphrec.datasets import load_ego_facebook  # noqa: E402
from graphrec.tasks.bots.augment import augment_training_graph  # noqa: E402
from graphrec.tasks.bots.config import BotConfig  # noqa: E402
from graphrec.tasks.bots.inject import inject_bot_region, sample_labels  # noqa: E402
from graphrec.tasks.bots.train import train_bot_detector  # noqa: E402
from graphrec.tasks.registry import profile_generator_factory  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--bots", type=int, default=400)
    ap.add_argument("--attack-edges", type=int, default=10)
    ap.add_argument("--label-fraction", type=float, default=0.01)
    ap.add_argument("--epochs", type=int, default=BotConfig.epochs)
    ap.add_argument("--gen-epochs", type=int, default=40, help="training epochs of the VAE / GAN that make the synthetic examples")
    ap.add_argument("--variants", default="none,copy,vae,gan")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    data = load_ego_facebook()
    idx = {int(u): i for i, u in enumerate(data.user_ids.tolist())}
    edges = np.vectorize(idx.__getitem__)(data.edges)
    honest = Graph.from_edges(edges, data.features, list(data.feature_names))
    generators = profile_generator_factory()
    variants = args.variants.split(",")
    print(f"ego-Facebook + {args.bots} bots, {args.attack_edges} attack edges/bot, {args.label_fraction:.0%} labelled; "
          f"bot model {args.epochs} epochs, generators {args.gen_epochs} epochs; ROC-AUC / AP on every unlabelled user")
    print(f"{'seed':>4s} {'labelled':>12s} " + " ".join(f"{v + ' AUC':>10s} {v + ' AP':>9s} {'s':>5s}" for v in variants))
    results: dict[str, list[tuple[float, float]]] = {v: [] for v in variants}
    for seed in [int(s) for s in args.seeds.split(",")]:
        g = inject_bot_region(honest, n_bots=args.bots, attack_edges=args.attack_edges, seed=seed)
        labelled = sample_labels(g.is_bot, args.label_fraction, seed)
        y = g.is_bot[labelled]
        test = np.setdiff1d(np.arange(g.num_nodes), labelled)
        cfg = BotConfig(seed=seed, epochs=args.epochs, threads=args.threads)
        cells = []
        for v in variants:
            t = time.perf_counter()
            graph, lab, yy, n_real = g.graph, labelled, y, None
            if v != "none":
                aug = augment_training_graph(g.graph, labelled, y, kind=v, seed=seed, epochs=args.gen_epochs, threads=args.threads,
                                             generators=generators)
                graph, lab, yy, n_real = aug.graph, aug.labelled, aug.is_bot, aug.n_real
            model = train_bot_detector(graph, lab, yy, cfg, n_real=n_real)
            prob = model.predict_proba(g.graph, labelled[y], labelled[~y])[test]
            auc, ap_ = roc_auc_score(g.is_bot[test], prob), average_precision_score(g.is_bot[test], prob)
            results[v].append((auc, ap_))
            cells.append(f"{auc:10.4f} {ap_:9.4f} {time.perf_counter() - t:5.0f}")
        print(f"{seed:4d} {f'{int(y.sum())} bots/{int((~y).sum())}':>12s} " + " ".join(cells), flush=True)
    print("\nmean over seeds: " + ", ".join(f"{v}: AUC {np.mean([r[0] for r in rs]):.4f} AP {np.mean([r[1] for r in rs]):.4f}"
                                            for v, rs in results.items()))


if __name__ == "__main__":
    main()
