"""Hyper-parameters of the bot detector (recorded with every model as ``params``)."""

from __future__ import annotations

from dataclasses import dataclass

from graphrec.tasks.base import TaskConfig

#: Profile generators bot augmentation can draw from, and the no-generator ablation.
AUGMENT_KINDS = ("vae", "gan", "copy")

#: Post-processing of the fold models' scores: Correct and Smooth with the random-walk or the
#: symmetric operator, or none (:func:`graphrec.tasks.bots.signals.correct_and_smooth`).
SMOOTHINGS = ("none", "walk", "symmetric")


@dataclass
class BotConfig(TaskConfig):
    """Training the bot detector (:func:`graphrec.tasks.bots.train.train_bot_detector`).

    Model: ``folds`` cross-fitted :class:`~graphrec.nn.bot_gnn.BotGNN` models of ``layers``
    GraphSAGE layers of width ``hidden`` (``dropout``), trained ``epochs`` full-batch Adam steps
    (``lr``, ``weight_decay``). Inputs: the profile (compressed to ``max_profile_dim`` columns by
    truncated SVD when wider), structural statistics (clustering from ``clustering_pairs``
    neighbour pairs per user) and ``hops`` steps of label propagation. ``smooth``: the
    post-processing, one of :data:`SMOOTHINGS`, or ``"auto"`` (the default): random-walk Correct and Smooth
    unless another is reliably better out of fold (:func:`graphrec.tasks.bots.train.choose_smoothing`); the
    booleans of older configs mean ``"symmetric"`` (True) and ``"none"`` (False). The flagging threshold is the lowest whose out-of-fold precision
    reaches ``target_precision``. ``threads``: torch threads (None: :func:`graphrec.threads.default_threads`,
    one per available core, resolved when training starts).

    Labels: a user whose label is ``positive_label`` is a bot, any other label a non-bot; labels
    of synthetic users are ignored unless ``include_synthetic``. ``augment`` (``vae``, ``gan`` or
    ``copy``) adds synthetic examples of the scarcer class for training only
    (:mod:`graphrec.tasks.bots.augment`)."""

    folds: int = 5
    epochs: int = 100
    hidden: int = 64
    layers: int = 2
    dropout: float = 0.3
    lr: float = 0.01
    weight_decay: float = 5e-4
    hops: int = 3
    clustering_pairs: int = 32
    max_profile_dim: int = 64
    smooth: str = "auto"
    target_precision: float = 0.9
    threads: int | None = None
    positive_label: str = "bot"
    augment: str | None = None
    include_synthetic: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.smooth, bool):  # configs recorded before the choice existed
            self.smooth = "symmetric" if self.smooth else "none"
        if self.smooth not in (*SMOOTHINGS, "auto"):
            raise ValueError(f"smooth must be auto or one of {', '.join(SMOOTHINGS)}, got {self.smooth!r}")
        if self.augment is not None and self.augment not in AUGMENT_KINDS:
            raise ValueError(f"augment must be one of {', '.join(AUGMENT_KINDS)} or None, got {self.augment!r}")
