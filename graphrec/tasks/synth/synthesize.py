"""``graphrec synth``: create flagged synthetic users in the store (:func:`synthesize`).

Profiles come from a VAE or GAN trained on the store's real users (:mod:`graphrec.tasks.synth.profiles`;
class-conditional when a label is asked for), friendships copied from a similar real user's neighbourhood
(:mod:`graphrec.tasks.synth.wiring`). The generator is trained and saved like every model
(:func:`graphrec.tasks.base.train_and_register`: artifact under ``models/synth/``); its
``model_runs`` row (kind ``synth``, with seed, params, final losses, the realism figures of the
batch and its ``batch`` id, data version) is written in ONE transaction with the users,
friendships and labels it produced (:meth:`GraphStore.load_synthetic
<graphrec.store.store.GraphStore.load_synthetic>`), every user flagged ``is_synthetic``, so a
recorded synth run always describes a batch that exists; ``LATEST`` then moves to the generator. Synthetic users are excluded from training and
evaluation snapshots unless asked for, never recommended, and flagged in every export;
:meth:`graphrec.store.store.GraphStore.purge_synthetic` removes them.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from graphrec.errors import StoreStateError
from graphrec.tasks.base import train_and_register
from graphrec.tasks.synth.config import SynthConfig
from graphrec.tasks.synth.privacy import MIN_ROWS, PrivacyGateError
from graphrec.tasks.synth.train import SynthTask, requirements

if TYPE_CHECKING:  # pragma: no cover
    from graphrec.store.store import GraphStore

log = logging.getLogger(__name__)


@dataclass
class SynthReport:
    """What :func:`synthesize` wrote (``graphrec synth`` prints :meth:`as_dict`)."""

    batch: str
    model: str
    seed: int
    users_created: int
    friendships_added: int
    label: str | None
    realism: dict[str, float | None] = field(default_factory=dict)
    privacy: dict[str, Any] = field(default_factory=dict)
    revision: int = 0
    seconds: float = 0.0
    example_ids: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """``{batch, model, seed, users_created, friendships_added, label, realism, privacy,
        revision, seconds, example_ids}``."""
        return asdict(self)


def new_batch_id() -> str:
    """A batch id: UTC time to the second plus 4 random hex digits (users are ``synthetic-<batch>-<i>``)."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d%H%M%S") + uuid.uuid4().hex[:4]


def synthesize(store: "GraphStore", config: SynthConfig) -> SynthReport:
    """Create ``config.n`` synthetic users (see the module docstring) and return what was written.

    :class:`~graphrec.errors.StoreStateError` when the store's real users cannot train the
    generator (fewer than 10 users with friendships, no feature columns, or with ``label`` fewer
    than 2 real users carrying it). If the write fails nothing of the batch is in the store and no
    run is recorded (the generator's artifact stays on disk, not served).

    The privacy gate (:mod:`graphrec.tasks.synth.privacy`): a batch that copies the training rows
    beyond the held-out real rows' baseline is a :class:`~graphrec.tasks.synth.privacy.PrivacyGateError`
    and nothing is written, unless ``config.force``; the figures are recorded with the run either way."""
    from graphrec.store.importers import EdgeBatch, LabelBatch, UserBatch

    t0 = time.perf_counter()
    task = SynthTask()
    snap = task.snapshot(store, config)
    # SynthTask.fit checks the same; checking here first keeps `graphrec synth`'s documented error
    # text (train_and_register would prefix it with "cannot train synth:").
    problem = requirements(snap.num_nodes, snap.num_edges, snap.feature_names, snap.labels, config.label)
    if problem is not None:
        raise StoreStateError(problem)
    batch_id = new_batch_id()
    registered = train_and_register(store, task, config, snapshot=snap, metrics={"batch": batch_id}, record=False, serve=False)
    drawn = registered.model.batch
    assert drawn is not None  # SynthTask.fit always draws the run's batch
    privacy = registered.model.metrics["privacy"]
    if not privacy["decided"]:
        log.warning("privacy gate undecided: %d synthetic and %d held-out rows (at least %d each are needed); the batch is written",
                    privacy["synthetic_rows"], privacy["holdout_rows"], MIN_ROWS)
    elif not privacy["passed"]:
        if not config.force:
            raise PrivacyGateError(f"synthetic batch refused, nothing written: {'; '.join(privacy['reasons'])}. The generator copies "
                                   f"real users: train another (--model, --epochs), or write it anyway with --force")
        privacy["forced"] = True
        log.warning("privacy gate overridden (--force): %s", "; ".join(privacy["reasons"]))
    n = config.n
    ids = [f"synthetic-{batch_id}-{i}" for i in range(n)]
    source = f"synth:{config.model}:seed{config.seed}"
    users = UserBatch(source, ids, list(snap.feature_names), drawn.profiles, [{} for _ in ids], [], np.ones(n, dtype=bool))
    pairs = drawn.pairs
    edges = EdgeBatch(source, ids + [str(e) for e in snap.external_ids.tolist()], pairs[:, 0].copy(), pairs[:, 1] + n, int(pairs.shape[0]))
    labels = LabelBatch(source, ids, [config.label] * n, ["synthetic"] * n) if config.label is not None else None
    report = store.load_synthetic(users, edges, labels, model_run=registered.run)
    registered.serve(store.settings.home)  # served once its run is recorded, as train_and_register does
    log.info("synthetic batch %s: %d users, %d friendships (generator %s)", batch_id, report.users_created, report.friendships_added,
             registered.version)
    return SynthReport(batch_id, config.model, config.seed, report.users_created, report.friendships_added, config.label,
                       dict(registered.model.metrics["realism"]), dict(privacy), report.revision, round(time.perf_counter() - t0, 2), ids[:3])
