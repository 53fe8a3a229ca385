"""Unsupervised anomaly detection on users (issue 6): autoencoders whose reconstruction error
is the score, with explanations. See :mod:`graphrec.tasks.anomaly.detector` for the detectors,
:mod:`graphrec.tasks.anomaly.structure` for the structure view, :mod:`graphrec.tasks.anomaly.inject` for
the benchmark's injected anomalies and :mod:`graphrec.tasks.anomaly.model` for the store side."""

from graphrec.tasks.anomaly.detector import (
    DEFAULT_KIND,
    KINDS,
    AEConfig,
    AnomalyDetector,
    AttributedGraph,
    ContextConfig,
    ContextDetector,
    DominantConfig,
    DominantDetector,
    FeatureAEDetector,
    make_detector,
)

__all__ = [
    "DEFAULT_KIND", "KINDS", "AEConfig", "AnomalyDetector", "AttributedGraph", "ContextConfig", "ContextDetector",
    "DominantConfig", "DominantDetector", "FeatureAEDetector", "make_detector",
]
