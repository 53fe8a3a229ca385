"""The anomaly task: fit an unsupervised detector (:mod:`graphrec.tasks.anomaly.detector`) on the
store's users and graph, without labels; the nightly job scores every user with it."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from graphrec.progress import stage
from graphrec.tasks.anomaly.config import AnomalyConfig
from graphrec.tasks.anomaly.model import AnomalyModel
from graphrec.tasks.base import Task

if TYPE_CHECKING:  # pragma: no cover
    from graphrec.core.graph import Graph

log = logging.getLogger(__name__)

#: Fewer users than this cannot set a contamination threshold worth the name.
MIN_USERS = 10


class AnomalyTask(Task[AnomalyConfig, AnomalyModel]):
    """Unsupervised anomaly detection on users: ``fit`` trains the configured detector on the
    graph (profiles and friendships) and wraps it as an :class:`AnomalyModel`."""

    name = "anomaly"
    kind = "anomaly"
    config_type = AnomalyConfig
    model_type = AnomalyModel
    scores_users = True

    def fit(self, graph: "Graph", config: AnomalyConfig) -> AnomalyModel:
        """Fit ``config.make()`` on ``graph``; ``ValueError`` for fewer than :data:`MIN_USERS`
        users or no feature columns."""
        if graph.num_nodes < MIN_USERS:
            raise ValueError(f"the store has {graph.num_nodes} users (need at least {MIN_USERS})")
        if not graph.feature_names or graph.features.shape[1] == 0:
            raise ValueError("users have no feature columns (import profiles with `graphrec import users`)")
        log.info("anomaly: fitting a %s detector on %d users (contamination %g)", config.detector, graph.num_nodes, config.contamination)
        with stage(f"train anomaly: fitting the {config.detector} detector"):
            detector = config.make().fit(graph)
        model = AnomalyModel(detector, list(graph.feature_names))
        # the training loss of every epoch, for the report's training curves
        model.metrics["train_loss"] = [round(float(v), 6) for v in getattr(detector, "history_", None) or []]
        return model
