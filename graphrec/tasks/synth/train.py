"""The synthetic-users task (:class:`SynthTask`): train a profile generator on the real users and
draw the batch a ``graphrec synth`` run writes.

``fit`` trains the VAE or GAN of :mod:`graphrec.tasks.synth.profiles` on the graph's feature rows
(class-conditional on the users' labels when the config asks for a ``label``), then draws
``config.n`` users from it and wires them into the graph, so the run's metrics carry the realism
of exactly the users that are written (:mod:`graphrec.tasks.synth.evaluate`: degree KS,
clustering, the share of triangles closed through real users, and the profiles' classifier
two-sample AUC against the held-out real users) and the privacy gate's figures
(:mod:`graphrec.tasks.synth.privacy`). Writing them is
:func:`graphrec.tasks.synth.synthesize.synthesize`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from graphrec.core.graph import Graph
from graphrec.progress import stage
from graphrec.tasks.base import Task
from graphrec.tasks.synth.config import SynthConfig
from graphrec.tasks.synth.evaluate import profile_c2st, rounded
from graphrec.tasks.synth.model import SynthModel
from graphrec.tasks.synth.profiles import fit_profile_generator
from graphrec.threads import configure_torch

log = logging.getLogger(__name__)

#: the class of real users without a label, for a conditional generator
UNLABELLED = "(unlabelled)"


def requirements(num_nodes: int, num_edges: int, feature_names: Sequence[str], labels: np.ndarray | None, label: str | None) -> str | None:
    """Why a graph of this shape cannot train a synth run, or None when it can: at least 10 real
    users with friendships, profile feature columns, and with ``label`` at least 2 real users
    carrying it."""
    if num_nodes < 10 or num_edges == 0:
        return "synth needs at least 10 real users with friendships in the store (import a graph first)"
    if not list(feature_names):
        return "synth needs profile feature columns (import users with numeric columns first)"
    if label is not None and (labels is None or sum(lab == label for lab in _with_unlabelled(labels)) < 2):
        return f"synth --label {label}: the store has fewer than 2 real users labelled {label!r}"
    return None


def _with_unlabelled(labels: np.ndarray) -> list[str]:
    return [lab if lab is not None else UNLABELLED for lab in labels.tolist()]


def class_codes(labels: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """``int64[n]`` class codes into the sorted class names, unlabelled users as their own class
    (:data:`UNLABELLED`)."""
    values = _with_unlabelled(labels)
    names = sorted(set(values))
    return np.array([names.index(v) for v in values], dtype=np.int64), names


class SynthTask(Task[SynthConfig, SynthModel]):
    """Synthetic users: a profile generator trained on the real users (synthetic ones left out)."""

    name = "synth"
    kind = "synth"
    config_type = SynthConfig
    model_type = SynthModel

    def fit(self, graph: Graph, config: SynthConfig) -> SynthModel:
        """Train the generator and draw the run's batch (``model.batch``); ``ValueError`` when the
        graph cannot train it (see :func:`requirements`)."""
        problem = requirements(graph.num_nodes, graph.num_edges, graph.feature_names, graph.labels, config.label)
        if problem is not None:
            raise ValueError(problem)
        from graphrec.tasks.synth.privacy import holdout_split, privacy_figures

        classes = names = None
        if config.label is not None:
            assert graph.labels is not None  # checked by requirements
            classes, names = class_codes(graph.labels)
        # the privacy gate's baseline: real users the generator never sees
        train_rows, holdout_rows = holdout_split(graph.num_nodes, config.holdout, config.seed, classes)
        try:
            with stage(f"synth: training the {config.model} profile model"):
                gen = fit_profile_generator(graph.features[train_rows], kind=config.model,
                                            classes=None if classes is None else classes[train_rows], class_names=names,
                                            epochs=config.epochs, seed=config.seed, threads=configure_torch(config.threads))
        except ValueError as exc:
            raise ValueError(f"cannot train the {config.model} profile model: {exc}") from None
        # the per-epoch history too (not only the last epoch), so a report can draw the training curves
        model = SynthModel(gen, list(graph.feature_names), {"final_losses": gen.final_losses(), "history": {
            k: [round(float(x), 5) for x in v] for k, v in gen.history.items() if k != "seconds"}})
        with stage(f"synth: drawing {config.n} profiles and their friendships"):
            batch = model.draw(graph, n=config.n, label=config.label, seed=config.seed, closure=config.closure)
        with stage("synth: realism and privacy figures of the batch"):
            holdout = graph.features[holdout_rows]
            model.metrics["realism"] = {**batch.realism.as_dict(), "c2st_auc": rounded(profile_c2st(holdout, batch.profiles, seed=config.seed))}
            privacy = privacy_figures(graph.features[train_rows], holdout, batch.profiles, seed=config.seed)
        model.metrics["privacy"] = privacy.as_dict()
        model.batch = batch
        log.info("drew %d synthetic users with %d friendships: %s", batch.size, int(batch.pairs.shape[0]), model.metrics["realism"])
        return model
