"""``graphrec synth``: create flagged synthetic users in the store, and purge them.

Profiles come from a VAE or GAN trained on the store's real users (:mod:`graphrec.tasks.synth.profiles`;
class-conditional when a label is asked for), friendships from profile-anchored triadic closure
(:mod:`graphrec.tasks.synth.wiring`). Users, friendships and labels are written in one transaction,
every user flagged ``is_synthetic``; the generator's training run (seed, params, final losses,
data version) is recorded in ``model_runs`` under kind ``synth``. Synthetic users are excluded
from training and evaluation snapshots unless asked for, never recommended, and flagged in every
export.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from graphrec.errors import InputError, StoreStateError

UNLABELLED = "(unlabelled)"


@dataclass
class SynthReport:
    """What ``synthesize`` wrote."""

    batch: str
    model: str
    seed: int
    users_created: int
    friendships_added: int
    label: str | None
    realism: dict[str, float] = field(default_factory=dict)
    revision: int = 0
    seconds: float = 0.0
    example_ids: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def synthesize(store: Any, *, model: str = "vae", n: int, seed: int = 0, label: str | None = None, epochs: int | None = None,
               closure: float = 0.8, threads: int | None = None) -> SynthReport:
    """Create ``n`` synthetic users (see the module docstring); returns a :class:`SynthReport`."""
    from graphrec.store.importers import EdgeBatch, LabelBatch, UserBatch
    from graphrec.store.schema import utcnow
    from graphrec.tasks.synth.profiles import MODELS, fit_profile_generator
    from graphrec.tasks.synth.wiring import realism, wire_synthetic

    if model not in MODELS:
        raise InputError(f"unknown synthetic-profile model {model!r}: choose vae or gan")
    if n < 1:
        raise InputError(f"--n must be at least 1, got {n}")
    started = utcnow()
    t0 = time.perf_counter()
    snap = store.snapshot(include_synthetic=False)
    if snap.num_nodes < 10 or snap.num_edges == 0:
        raise StoreStateError("synth needs at least 10 real users with friendships in the store (import a graph first)")
    if not snap.feature_names:
        raise StoreStateError("synth needs profile feature columns (import users with numeric columns first)")
    classes = names = None
    if label is not None:
        labels = [lab if lab is not None else UNLABELLED for lab in snap.labels.tolist()]
        if sum(lab == label for lab in labels) < 2:
            raise StoreStateError(f"synth --label {label}: the store has fewer than 2 real users labelled {label!r}")
        names = sorted(set(labels))
        classes = np.array([names.index(lab) for lab in labels], dtype=np.int64)
    try:
        gen = fit_profile_generator(snap.features, kind=model, classes=classes, class_names=names, epochs=epochs, seed=seed, threads=threads)
    except ValueError as exc:
        raise StoreStateError(f"cannot train the {model} profile model: {exc}") from None
    profiles = gen.sample(n, label=label, seed=seed)
    wiring = wire_synthetic(snap.indptr, snap.indices, snap.features, profiles, closure=closure, seed=seed)

    batch = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d%H%M%S") + uuid.uuid4().hex[:4]
    ids = [f"synthetic-{batch}-{i}" for i in range(n)]
    source = f"synth:{model}:seed{seed}"
    users = UserBatch(source, ids, list(snap.feature_names), profiles, [{} for _ in ids], [], np.ones(n, dtype=bool))
    edges = EdgeBatch(source, ids + [str(e) for e in snap.external_ids.tolist()], wiring[:, 0].copy(), wiring[:, 1] + n, int(wiring.shape[0]))
    label_batch = LabelBatch(source, ids, [label] * n, ["synthetic"] * n) if label is not None else None
    report = store.load_synthetic(users, edges, label_batch)

    # realism of the wired users, on the graph as it now is (real users + this batch)
    from graphrec.core.graph import csr_from_edges

    real_edges = snap.edge_array()
    all_edges = np.concatenate([real_edges, np.stack([wiring[:, 0] + snap.num_nodes, wiring[:, 1]], axis=1)])
    ip, ix = csr_from_edges(np.sort(all_edges, axis=1), snap.num_nodes + n)
    flag = np.zeros(snap.num_nodes + n, dtype=bool)
    flag[snap.num_nodes:] = True
    real = realism(ip, ix, flag).as_dict()
    final = {k: round(float(v[-1]), 5) for k, v in gen.history.items() if v and k != "seconds"}
    store.record_model_run("synth", batch, seed=seed, params={"model": model, "n": n, "label": label, "epochs": epochs, "closure": closure},
                           metrics={"final_losses": final, "realism": real}, data_revision=snap.revision,
                           data_fingerprint=snap.fingerprint(), artifact_path="", started_at=started)
    return SynthReport(batch, model, seed, report.users_created, report.friendships_added, label, real, report.revision,
                       round(time.perf_counter() - t0, 2), ids[:3])
