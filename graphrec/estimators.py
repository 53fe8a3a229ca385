"""The detectors as scikit-learn / PyGOD-style estimators: fit on a graph, score a graph, clone.

:class:`BotEstimator` (the bot detector, :mod:`graphrec.tasks.bots`) and
:class:`AnomalyEstimator` (the anomaly detectors, :mod:`graphrec.tasks.anomaly`) take their
hyper-parameters as keyword arguments, the fields of the task's config
(:class:`~graphrec.tasks.bots.config.BotConfig`,
:class:`~graphrec.tasks.anomaly.config.AnomalyConfig`), so ``get_params`` / ``set_params`` and
:func:`sklearn.base.clone` work as for any scikit-learn estimator (grid searches, pipelines of
experiments). ``fit``, ``decision_function`` and ``predict`` accept what you have:

* the PyTorch Geometric ``Data`` that :meth:`Snapshot.to_pyg
  <graphrec.store.snapshot.Snapshot.to_pyg>` returns (``x``, ``edge_index``, ``y`` with -1 for
  unlabelled users and ``label_classes`` naming the codes; ``is_synthetic`` and
  ``external_ids`` when present), or any ``Data`` with ``x`` and ``edge_index``, as PyGOD's
  detectors do;
* a :class:`~graphrec.core.graph.Graph`, or a :class:`~graphrec.store.snapshot.Snapshot`.

::

    from sklearn.base import clone
    from graphrec import GraphStore
    from graphrec.estimators import AnomalyEstimator, BotEstimator

    data = GraphStore().snapshot().to_pyg()
    det = AnomalyEstimator(detector="vanilla", contamination=0.05).fit(data)
    det.decision_function(data)          # float[n], higher = more anomalous
    bots = clone(BotEstimator(folds=3)).set_params(epochs=50).fit(data)
    bots.predict_proba(data)             # calibrated bot probability of every user

To put a fitted detector into service, train through the task protocol instead
(``graphrec train bots|anomaly`` or :func:`graphrec.tasks.base.train_and_register`): that records
the run and versions the artifact.
"""

from __future__ import annotations

from dataclasses import fields
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.base import BaseEstimator

from graphrec.core.graph import Graph

if TYPE_CHECKING:  # pragma: no cover
    from graphrec.tasks.anomaly.config import AnomalyConfig
    from graphrec.tasks.anomaly.detector import AnomalyDetector
    from graphrec.tasks.bots.config import BotConfig
    from graphrec.tasks.bots.model import BotModel

#: The label a ``y`` of 0 means when a ``Data`` has no ``label_classes`` (1 means the positive label).
NEGATIVE_LABEL = "human"


def as_graph(data: Any, y: Any = None, *, positive_label: str = "bot") -> Graph:
    """``data`` as a :class:`Graph`: a ``Graph`` as it is, a store ``Snapshot`` through
    :meth:`Graph.from_snapshot`, a PyG ``Data`` (``x``, ``edge_index``; ``y``, ``label_classes``,
    ``is_synthetic``, ``external_ids`` when present) by conversion. ``y`` (one entry per node:
    label names, or codes with -1 / None for unlabelled, 1 for ``positive_label`` and 0 for
    :data:`NEGATIVE_LABEL`) replaces the labels ``data`` carries. ``TypeError`` for anything else."""
    if isinstance(data, Graph):
        graph = data
    elif hasattr(data, "indptr") and hasattr(data, "external_ids") and hasattr(data, "data_version"):
        graph = Graph.from_snapshot(data, data_version=False)
    elif hasattr(data, "edge_index"):
        graph = _graph_from_pyg(data, positive_label)
    else:
        raise TypeError(f"expected a torch_geometric Data, a graphrec Graph or a Snapshot, got {type(data).__name__}")
    if y is not None:
        graph = Graph(graph.indptr, graph.indices, graph.features, graph.feature_names, external_ids=graph.external_ids,
                      labels=_labels(y, None, graph.num_nodes, positive_label), is_synthetic=graph.is_synthetic,
                      circles=graph.circles, data=graph.data)
    return graph


def _numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _labels(y: Any, classes: Any, n: int, positive_label: str) -> np.ndarray:
    """Per-node label names (None: unlabelled) from names or codes (``classes[code]``, or 1/0)."""
    values = _numpy(y).reshape(-1) if not isinstance(y, (list, tuple)) else np.asarray(y, dtype=object)
    if values.size != n:
        raise ValueError(f"y has {values.size} entries for {n} nodes")
    out = np.full(n, None, dtype=object)
    for i, v in enumerate(values.tolist()):
        if v is None or (isinstance(v, float) and np.isnan(v)):
            continue
        if isinstance(v, str):
            out[i] = v
        elif int(v) >= 0:
            code = int(v)
            out[i] = str(classes[code]) if classes is not None else (positive_label if code == 1 else NEGATIVE_LABEL)
    return out


def _graph_from_pyg(data: Any, positive_label: str) -> Graph:
    n = int(data.num_nodes)
    x = getattr(data, "x", None)
    features = _numpy(x).astype(np.float32) if x is not None else np.zeros((n, 0), dtype=np.float32)
    edges = _numpy(data.edge_index).astype(np.int64).reshape(2, -1).T
    edges = edges[edges[:, 0] != edges[:, 1]]
    edges = np.unique(np.sort(edges, axis=1), axis=0)  # each undirected friendship once
    labels = None
    if getattr(data, "y", None) is not None:
        labels = _labels(data.y, getattr(data, "label_classes", None), n, positive_label)
    graph = Graph.from_edges(edges, features, num_nodes=n, labels=labels)
    ids = getattr(data, "external_ids", None)
    if ids is not None and len(ids) == n:
        graph.external_ids = np.asarray([str(e) for e in ids], dtype=object)
    synthetic = getattr(data, "is_synthetic", None)
    if synthetic is not None:
        graph.is_synthetic = _numpy(synthetic).astype(bool)
    revision = getattr(data, "revision", None)
    if revision is not None:
        graph.data = {"revision": int(revision)}
    return graph


class _ConfigEstimator(BaseEstimator):
    """get_params / set_params over a task config's fields (scikit-learn's own machinery reads
    them from ``__init__``'s signature, which each subclass spells out)."""

    #: the attribute :meth:`fit` sets to the fitted model
    _fitted_attribute = ""

    def _config_fields(self) -> dict[str, Any]:
        return self.get_params(deep=False)

    def _fitted_model(self) -> Any:
        from sklearn.exceptions import NotFittedError

        model = getattr(self, self._fitted_attribute, None)
        if model is None:
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet: call fit first")
        return model


class BotEstimator(_ConfigEstimator):
    """The bot detector as an estimator: the keyword arguments are
    :class:`~graphrec.tasks.bots.config.BotConfig`'s fields (see there). Labels come from the
    graph (``Data.y`` with ``label_classes``; a ``Graph``'s ``labels``) or from ``y``:
    ``positive_label`` marks a bot, any other label a non-bot, unlabelled users are scored.

    After :meth:`fit`: ``model_`` (the fitted :class:`~graphrec.tasks.bots.model.BotModel`),
    ``threshold_`` (flagging threshold on calibrated probabilities)."""

    def __init__(self, *, seed: int = 0, folds: int = 5, epochs: int = 100, hidden: int = 64, layers: int = 2, dropout: float = 0.3,
                 lr: float = 0.01, weight_decay: float = 5e-4, hops: int = 3, clustering_pairs: int = 32, max_profile_dim: int = 64,
                 smooth: str = "auto", target_precision: float = 0.9, threads: int | None = None, positive_label: str = "bot",
                 augment: str | None = None, include_synthetic: bool = False) -> None:
        self.seed = seed
        self.folds = folds
        self.epochs = epochs
        self.hidden = hidden
        self.layers = layers
        self.dropout = dropout
        self.lr = lr
        self.weight_decay = weight_decay
        self.hops = hops
        self.clustering_pairs = clustering_pairs
        self.max_profile_dim = max_profile_dim
        self.smooth = smooth
        self.target_precision = target_precision
        self.threads = threads
        self.positive_label = positive_label
        self.augment = augment
        self.include_synthetic = include_synthetic

    def config(self) -> "BotConfig":
        """The :class:`~graphrec.tasks.bots.config.BotConfig` these parameters make (``ValueError`` for bad values)."""
        from graphrec.tasks.bots.config import BotConfig

        return BotConfig(**self._config_fields())

    def fit(self, data: Any, y: Any = None) -> "BotEstimator":
        """Train on the labelled users of ``data`` (see :func:`as_graph`); ``ValueError`` with
        fewer than two labelled bots or non-bots."""
        from graphrec.tasks.registry import get_task

        graph = as_graph(data, y, positive_label=self.positive_label)
        self.model_: BotModel = get_task("bots").fit(graph, self.config())
        self.threshold_ = float(self.model_.threshold)
        self.n_features_in_ = graph.features.shape[1]
        return self

    _fitted_attribute = "model_"

    def _fitted(self) -> "BotModel":
        model: BotModel = self._fitted_model()
        return model

    def predict_proba(self, data: Any, y: Any = None) -> np.ndarray:
        """Calibrated bot probability of every node of ``data`` (``float32[n]``), with the labels
        of ``data`` (or ``y``) as the propagation's label inputs."""
        model = self._fitted()
        return model.score_graph(as_graph(data, y, positive_label=self.positive_label), max_details=0).scores

    def decision_function(self, data: Any, y: Any = None) -> np.ndarray:
        """The bot score of every node (PyGOD's name for it): :meth:`predict_proba`."""
        return self.predict_proba(data, y)

    def predict(self, data: Any, y: Any = None) -> np.ndarray:
        """``int8[n]``: 1 where the bot probability reaches the model's threshold."""
        return (self.predict_proba(data, y) >= self._fitted().threshold).astype(np.int8)


class AnomalyEstimator(_ConfigEstimator):
    """An anomaly detector as an estimator: the keyword arguments are
    :class:`~graphrec.tasks.anomaly.config.AnomalyConfig`'s fields (``detector``:
    ``context``, ``dominant``, ``vanilla``, ``denoising`` or ``sparse``; ``contamination``, ...).

    After :meth:`fit`: ``detector_`` (the fitted
    :class:`~graphrec.tasks.anomaly.detector.AnomalyDetector`), ``decision_score_`` (training
    scores), ``threshold_`` and ``labels_`` (1 above the threshold), as in PyGOD."""

    def __init__(self, *, seed: int = 0, detector: str = "context", contamination: float = 0.05, tied: bool = False,
                 epochs: int | None = None, hidden: int | None = None, code: int | None = None, lr: float | None = None,
                 threads: int | None = None) -> None:
        self.seed = seed
        self.detector = detector
        self.contamination = contamination
        self.tied = tied
        self.epochs = epochs
        self.hidden = hidden
        self.code = code
        self.lr = lr
        self.threads = threads

    def config(self) -> "AnomalyConfig":
        """The :class:`~graphrec.tasks.anomaly.config.AnomalyConfig` these parameters make."""
        from graphrec.tasks.anomaly.config import AnomalyConfig

        return AnomalyConfig(**self._config_fields())

    def fit(self, data: Any, y: Any = None) -> "AnomalyEstimator":
        """Fit the detector on ``data`` (see :func:`as_graph`; ``y`` is ignored: unsupervised)."""
        graph = as_graph(data)
        self.detector_: AnomalyDetector = self.config().make().fit(graph)
        self.decision_score_ = self.detector_.decision_score_
        self.threshold_ = self.detector_.threshold_
        self.labels_ = self.detector_.labels_
        self.n_features_in_ = graph.features.shape[1]
        return self

    _fitted_attribute = "detector_"

    def _fitted(self) -> "AnomalyDetector":
        det: AnomalyDetector = self._fitted_model()
        return det

    def decision_function(self, data: Any) -> np.ndarray:
        """Anomaly score of every node of ``data`` (higher = more anomalous)."""
        return self._fitted().decision_function(as_graph(data))

    def predict(self, data: Any) -> np.ndarray:
        """``int8[n]``: 1 where the score exceeds ``threshold_``."""
        return self._fitted().predict(as_graph(data))

    def explain(self, nodes: Any, *, top_features: int = 5, data: Any = None) -> list[dict[str, Any]]:
        """Why ``nodes`` score as they do (the driving view, the worst-fitting features), for the
        graph last scored or ``data``."""
        return self._fitted().explain(list(nodes), top_features=top_features, graph=None if data is None else as_graph(data))


def config_field_names(config_type: type) -> list[str]:
    """The field names of a task config dataclass (what an estimator's parameters mirror)."""
    return [f.name for f in fields(config_type)]
