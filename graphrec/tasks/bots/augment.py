"""Synthetic-example augmentation for bot training (``graphrec train bots --augment vae|gan``).

Labelled bots are scarce. Augmentation adds synthetic examples of the scarce labelled class until
both classes have as many labelled examples, for training only:

* **profiles** from a class-conditional generator trained on every real user, with three classes
  -- labelled bot, labelled non-bot, unlabelled -- so the many unlabelled users teach it what
  profiles look like and the few labelled ones what each class looks like. The generator comes
  through the task protocol (a :class:`~graphrec.tasks.base.ProfileSamplerFactory`; the registry
  hands the bot task the synthetic-users task's), so this package imports no other task;
* **friendships** by the copying model (Kleinberg et al., COCOON 1999): each synthetic example
  copies a random real example of its class -- its degree and a random set of that many of its
  friends -- so it sits where real examples of its class sit in the graph.

``kind="copy"`` is the ablation without a generator: each synthetic example also takes the profile
of the real example it copies (plain graph oversampling), which separates what the generator adds
from what the copied neighbourhoods add.

The synthetic nodes train every cross-fitting fold but are never held out
(:func:`graphrec.tasks.bots.train.train_bot_detector` with ``n_real``), so calibration, the threshold and
the reported out-of-fold metrics are those of real users. Nothing is written to the store. Whether
it helps is measured (``benchmarks/bench_bots_augment.py``), not assumed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from graphrec.core.graph import Graph
from graphrec.tasks.base import ProfileSamplerFactory


@dataclass
class Augmentation:
    """The real graph plus synthetic labelled examples: nodes ``>= n_real`` of ``graph`` are the
    ``added`` synthetic examples of ``scarce_class``; ``labelled`` / ``is_bot`` are the real
    labels followed by theirs."""

    graph: Graph
    labelled: np.ndarray
    is_bot: np.ndarray
    n_real: int
    added: int
    scarce_class: str


def augment_training_graph(graph: Graph, labelled: np.ndarray, is_bot: np.ndarray, *, kind: str, seed: int = 0,
                           epochs: int | None = None, threads: int | None = None,
                           generators: ProfileSamplerFactory | None = None) -> Augmentation:
    """Balance the labelled classes with synthetic examples of the scarcer one (see module docs);
    ``kind``: ``vae``, ``gan`` (profiles from ``generators``) or ``copy`` (the no-generator
    ablation)."""
    from graphrec.core.graph import csr_from_edges

    rng = np.random.default_rng(seed)
    n = graph.num_nodes
    indptr, indices, features = graph.indptr, graph.indices, graph.features
    labelled = np.asarray(labelled, dtype=np.int64)
    is_bot = np.asarray(is_bot, dtype=bool)
    n_bot, n_human = int(is_bot.sum()), int((~is_bot).sum())
    scarce_is_bot = n_bot <= n_human
    add = abs(n_human - n_bot)
    scarce = labelled[is_bot == scarce_is_bot]
    if add == 0 or scarce.size == 0:
        return Augmentation(graph, labelled, is_bot, n, 0, "bot" if scarce_is_bot else "human")
    name = "bot" if scarce_is_bot else "human"
    models = rng.choice(scarce, size=add)
    if kind == "copy":
        profiles = np.asarray(features, dtype=np.float32)[models]
    else:
        if generators is None:
            raise ValueError(f"augmentation with {kind!r} profiles needs a profile generator (get the bot task from the registry)")
        classes = np.full(n, 2, dtype=np.int64)  # 0 bot, 1 human, 2 unlabelled
        classes[labelled[is_bot]] = 0
        classes[labelled[~is_bot]] = 1
        gen = generators(features, kind=kind, classes=classes, class_names=["bot", "human", "unlabelled"], epochs=epochs,
                         seed=seed, threads=threads)
        profiles = gen.sample(add, label=name, seed=seed)

    deg = np.diff(indptr)
    new_edges = []
    for s in range(add):
        model = int(models[s])
        friends = indices[indptr[model] : indptr[model + 1]]
        if friends.size == 0:
            friends = np.array([model])
        chosen = rng.choice(friends, size=max(1, int(deg[model])), replace=False) if friends.size >= max(1, int(deg[model])) else friends
        new_edges.append(np.stack([np.full(chosen.size, n + s), chosen], axis=1))
    all_edges = np.concatenate([graph.edge_array(), np.sort(np.concatenate(new_edges), axis=1)])
    ip, ix = csr_from_edges(all_edges, n + add)
    new_nodes = np.arange(n, n + add)
    augmented = Graph(ip, ix, np.concatenate([features, profiles]).astype(np.float32), list(graph.feature_names), data=graph.data)
    return Augmentation(augmented, np.concatenate([labelled, new_nodes]), np.concatenate([is_bot, np.full(add, scarce_is_bot)]), n, add, name)
