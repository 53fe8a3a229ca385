"""Unsupervised anomaly detection on users: autoencoders whose reconstruction error is the score,
with explanations. ``config`` (:class:`~graphrec.tasks.anomaly.config.AnomalyConfig`), ``train``
(:class:`~graphrec.tasks.anomaly.train.AnomalyTask`), ``model`` (the fitted
:class:`~graphrec.tasks.anomaly.model.AnomalyModel`: artifacts, scoring, explanations),
``evaluate`` (injected anomalies beside IsolationForest); the detectors themselves
(:mod:`~graphrec.tasks.anomaly.detector`, :mod:`~graphrec.tasks.anomaly.structure`) and the
benchmark's injection (:mod:`~graphrec.tasks.anomaly.inject`)."""

from graphrec.tasks.anomaly.detector import (
    DEFAULT_KIND,
    KINDS,
    AEConfig,
    AnomalyDetector,
    ContextConfig,
    ContextDetector,
    DominantConfig,
    DominantDetector,
    FeatureAEDetector,
    make_detector,
    node_table,
)

__all__ = [
    "DEFAULT_KIND", "KINDS", "AEConfig", "AnomalyDetector", "ContextConfig", "ContextDetector",
    "DominantConfig", "DominantDetector", "FeatureAEDetector", "make_detector", "node_table",
]
