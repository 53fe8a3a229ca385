"""Hyper-parameters of the Siamese profile encoder (all recorded in the manifest and ``model_runs``)."""

from __future__ import annotations

from dataclasses import dataclass

from graphrec.tasks.base import TaskConfig

LOSSES = ("in_batch", "contrastive")


@dataclass
class SiameseConfig(TaskConfig):
    """Hyper-parameters of :func:`~graphrec.tasks.siamese.train.train_encoder`.

    ``loss``: ``in_batch`` (InfoNCE over the batch's positives) or ``contrastive`` (margin
    ``margin`` against random users); an MLP ``hidden`` wide with a ``dim``-wide unit-norm output
    and ``dropout``; ``epochs`` passes over the positive pairs in batches of ``batch_size``, AdamW
    with ``lr`` and ``weight_decay``; softmax ``temperature``; same-circle positives as a
    ``circle_pairs`` fraction of the friendship positives; a hard-negative mining round every
    ``hard_every`` epochs (0: none) among each anchor's ``hard_rank`` nearest users; ``threads``
    torch threads (None: :func:`graphrec.threads.default_threads`, one per available core,
    resolved when training starts).
    """

    loss: str = "in_batch"
    hidden: int = 256
    dim: int = 64
    dropout: float = 0.2
    epochs: int = 12
    batch_size: int = 1024
    lr: float = 2e-3
    weight_decay: float = 1e-5
    temperature: float = 0.07
    margin: float = 1.0
    circle_pairs: float = 0.5
    hard_every: int = 3
    hard_rank: int = 20
    threads: int | None = None
