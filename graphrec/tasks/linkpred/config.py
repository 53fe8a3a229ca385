"""Hyper-parameters of the link ranker (all recorded in the model manifest and ``model_runs``)."""

from __future__ import annotations

from dataclasses import dataclass

from graphrec.tasks.base import TaskConfig


@dataclass
class LinkPredConfig(TaskConfig):
    """Hyper-parameters of :func:`~graphrec.tasks.linkpred.train.train_ranker`.

    Each of ``rounds`` rounds hides ``supervision_fraction`` of the training graph's friendships
    and trains on up to ``users_per_round`` users whose hidden friends are friends-of-friends;
    ``epochs`` passes over all groups in batches of ``batch_users`` users of one round, Adam with
    ``lr`` and ``weight_decay`` (``shared_weight_decay`` on the shared-profile weighting of rank
    ``shared_rank``); an MLP of width ``hidden`` and a GCN of width ``gnn_dim`` (0: no GNN term);
    ``threads`` torch threads (None: one per available core, :func:`graphrec.threads.default_threads`, resolved when training starts).

    Negative subsampling: each epoch keeps every positive, the ``hard_negatives`` best negatives
    of each list by resource allocation, and a seeded random sample of the other negatives, about
    ``negatives`` negatives per list in all, importance-weighted in the loss
    (:func:`~graphrec.tasks.linkpred.train.sample_rows`); ``negatives=0`` trains on every row.

    Measured on ego-Facebook (seeds 0-2, one thread): ``negatives=64`` matched every row
    (``negatives=0``) within seed noise in under half the training time, ``negatives=32`` fell to
    resource allocation's MRR on seed 0; ``batch_users=64`` matched 32 with half the GCN passes.
    """

    supervision_fraction: float = 0.1
    rounds: int = 3
    users_per_round: int = 1500
    epochs: int = 6
    batch_users: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-5
    shared_weight_decay: float = 1e-3
    hidden: int = 64
    shared_rank: int = 8
    gnn_dim: int = 16
    threads: int | None = None
    negatives: int = 64
    hard_negatives: int = 16
    #: Serve the uniform average of the weights after every optimiser step from this fraction of
    #: training on (Polyak averaging / SWA, Izmailov et al. 2018); 0 serves the last iterate.
    average_from: float = 0.5
