"""Hyper-parameters of a ``graphrec synth`` run (recorded with the generator as ``params``)."""

from __future__ import annotations

from dataclasses import dataclass

from graphrec.errors import InputError
from graphrec.tasks.base import TaskConfig
from graphrec.tasks.synth.profiles import MODELS


@dataclass
class SynthConfig(TaskConfig):
    """Creating ``n`` synthetic users (:func:`graphrec.tasks.synth.synthesize.synthesize`).

    ``model``: the profile generator, ``vae`` or ``gan`` (:mod:`graphrec.tasks.synth.profiles`),
    trained ``epochs`` epochs (None: the model's default, 100); with ``label`` it is
    class-conditional and every synthetic user gets that label. ``closure``: the probability that
    each friend of a synthetic user is a friend of its template (the most similar real user of
    about its degree) rather than the next most similar profile (:mod:`graphrec.tasks.synth.wiring`). ``threads``: torch threads (None:
    :func:`graphrec.threads.default_threads`, one per available core, resolved when training
    starts). ``seed`` seeds training, sampling and wiring alike. ``holdout``: the share of real
    users the generator does not train on, the baseline of the privacy gate
    (:mod:`graphrec.tasks.synth.privacy`; 0 turns the gate off); ``force`` writes a batch the gate
    refuses (its figures are recorded with ``forced``).

    An unknown model or ``n < 1`` is an :class:`~graphrec.errors.InputError`."""

    model: str = "vae"
    n: int = 100
    label: str | None = None
    epochs: int | None = None
    closure: float = 0.9
    threads: int | None = None
    holdout: float = 0.2
    force: bool = False

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise InputError(f"unknown synthetic-profile model {self.model!r}: choose vae or gan")
        if self.n < 1:
            raise InputError(f"--n must be at least 1, got {self.n}")
        if not 0.0 <= self.holdout <= 0.5:
            raise InputError(f"--holdout must be between 0 and 0.5, got {self.holdout}")
