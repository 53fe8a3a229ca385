"""The fitted anomaly model: a detector wrapped as a :class:`~graphrec.tasks.base.ScoringModel`
that saves, loads, scores every user and explains the flagged ones.

Artifacts live under ``GRAPHREC_HOME/models/anomaly/<version>/``: the detector's network as
safetensors arrays (``net.*``, plus the input scaler ``scaler.mean`` / ``scaler.std`` when the
detector standardises) and a JSON manifest with the ``detector`` kind, its ``params``, ``seed``,
``network`` shape, ``binary`` (context detector: Bernoulli reconstruction), ``threshold``,
feature columns and the data version trained on; nothing is unpickled on load.
"""

from __future__ import annotations

import logging
import math
from typing import Any, ClassVar

import numpy as np

from graphrec import artifacts
from graphrec.core.graph import Graph
from graphrec.core.scaling import Standardiser
from graphrec.tasks.anomaly.detector import (
    KINDS,
    STRUCTURAL_COLUMNS,
    AnomalyDetector,
    ContextDetector,
    DominantDetector,
    make_detector,
)
from graphrec.tasks.base import ArtifactContent, ScoreRun, ScoringModel, check_network_args

log = logging.getLogger(__name__)

KIND = "anomaly"
#: Users explained per scoring run at least (more when more are flagged, up to ``max_details``).
EXPLAIN_TOP = 100


def _network_args(det: AnomalyDetector) -> dict[str, Any]:
    m = det.model_  # type: ignore[attr-defined]
    if isinstance(det, DominantDetector):
        return {"in_dim": m.in_dim, "hidden": m.hidden, "layers": m.layers}
    return {"in_dim": m.in_dim, "hidden": m.hidden, "code": m.code, "tied": m.tied}


def _final_loss(det: AnomalyDetector) -> float | None:
    history = getattr(det, "history_", None)
    return round(float(history[-1]), 6) if history else None


class AnomalyModel(ScoringModel):
    """A fitted anomaly detector (:attr:`detector`, scikit-learn/PyGOD style) trained on the
    feature columns :attr:`feature_names`; :attr:`metrics` holds what training measured
    (``flagged``, ``threshold``, ``fit_seconds``, ``final_loss``)."""

    kind: ClassVar[str] = KIND

    def __init__(self, detector: AnomalyDetector, feature_names: list[str], metrics: dict[str, Any] | None = None) -> None:
        if detector.threshold_ is None or getattr(detector, "model_", None) is None:
            raise ValueError("the detector is not fitted")
        self.detector = detector
        self.feature_names = list(feature_names)
        self.metrics = metrics if metrics is not None else self.training_metrics(detector)

    @staticmethod
    def training_metrics(det: AnomalyDetector) -> dict[str, Any]:
        """``flagged`` (training users above the threshold), ``threshold``, ``fit_seconds``, ``final_loss``."""
        assert det.decision_score_ is not None
        return {"flagged": int((det.decision_score_ > (det.threshold_ or 0.0)).sum()), "threshold": det.threshold_,
                "fit_seconds": round(det.fit_seconds_, 2), "final_loss": _final_loss(det)}

    @property
    def threshold(self) -> float:
        """Scores above this are flagged (the ``1 - contamination`` training quantile)."""
        return float(self.detector.threshold_ or 0.0)

    # -- artifacts ---------------------------------------------------------------------------
    def to_artifact(self) -> ArtifactContent:
        det = self.detector
        arrays = {f"net.{k}": v.detach().cpu().numpy() for k, v in det.model_.state_dict().items()}  # type: ignore[attr-defined]
        scaler: Standardiser | None = getattr(det, "scaler_", None)
        if scaler is not None:
            arrays.update(scaler.to_arrays("scaler"))
        manifest = {"detector": det.kind, "params": det.params(), "network": _network_args(det),
                    "binary": bool(getattr(det, "binary_", False)), "threshold": det.threshold_}
        return ArtifactContent(arrays, manifest)

    @classmethod
    def from_artifact(cls, art: artifacts.Artifact) -> "AnomalyModel":
        """Rebuild the fitted detector from its manifest and arrays, validating the detector kind,
        the threshold (finite, >= 0: every detector's scores are), the network's input width
        against the feature columns and its other constructor arguments against the arrays
        (before the network is built), and the scaler's width; the weights themselves are loaded
        strictly."""
        import torch

        from graphrec.nn.autoencoders import DominantAutoencoder, FeatureAutoencoder

        m = art.manifest
        params = dict(m["params"])
        kind = params.pop("kind")
        if kind not in KINDS or m.get("detector", kind) != kind:
            raise ValueError(f"unknown or inconsistent detector kind {kind!r} (manifest detector {m.get('detector')!r})")
        common = {"contamination": params.pop("contamination"), "seed": params.pop("seed")}
        params.pop("threads", None)  # the training run's; scoring picks its own
        if kind == "context":
            det: AnomalyDetector = make_detector(kind, **common, **params.pop("ae"), ranks=tuple(params.pop("ranks")))
        else:
            params.pop("variant", None)
            det = make_detector(kind, **common, **params)
        names = [str(c) for c in m["feature_names"]]
        threshold = float(m["threshold"])
        if not (math.isfinite(threshold) and threshold >= 0.0):  # every detector's scores are >= 0
            raise ValueError(f"threshold {threshold} is not a finite score >= 0")
        net = dict(m["network"])
        want_in = len(names) if kind == "context" else len(names) + len(STRUCTURAL_COLUMNS)
        if int(net["in_dim"]) != want_in:
            raise ValueError(f"network reads {net['in_dim']} columns, {len(names)} feature columns need {want_in}")
        weights = {k[4:]: v for k, v in art.arrays.items() if k.startswith("net.")}
        check_network_args(net, weights, f"{kind} network")  # before building it
        module = DominantAutoencoder(**net) if kind == "dominant" else FeatureAutoencoder(**net)
        state = {k: torch.from_numpy(np.array(v)) for k, v in weights.items()}
        module.load_state_dict(state)
        module.eval()
        det.model_ = module  # type: ignore[attr-defined]
        binary = bool(m["binary"])
        if "scaler.mean" in art.arrays:
            det.scaler_ = Standardiser.from_arrays(art.arrays, "scaler", width=len(names) if kind == "context" else want_in)  # type: ignore[attr-defined]
        elif not (kind == "context" and binary):
            raise ValueError(f"a {kind} detector needs its input scaler (scaler.mean, scaler.std)")
        if isinstance(det, ContextDetector):
            det.binary_ = binary
        det.threshold_ = threshold
        return cls(det, names, dict(m.get("metrics") or {}))

    # -- scoring -----------------------------------------------------------------------------
    def score_graph(self, graph: Graph, *, threads: int | None = None, max_details: int = 10_000, chunk: int | None = None,
                    explain_top: int = EXPLAIN_TOP) -> ScoreRun:
        """Score every user of ``graph``; explain the flagged users (at least ``explain_top``, at
        most ``max_details``), highest first: what the nightly job writes. The detectors bound
        their memory with fixed internal chunks (65,536 rows per autoencoder pass, 10^6 adjacency
        entries per structure pass), so ``chunk`` does not change anything here."""
        det = self.detector
        if threads:
            det.threads = threads
        score = det.decision_function(graph)
        threshold = self.threshold
        flagged = score > threshold
        order = np.argsort(-score, kind="stable")
        top = order[: min(max_details, max(int(flagged.sum()), explain_top), order.size)]
        details = {int(i): d for i, d in zip(top.tolist(), det.explain(top))}
        log.info("anomaly model %s scored %d users: %d flagged, %d explained", self.version, score.size, int(flagged.sum()), len(details))
        return ScoreRun(score, flagged, threshold, details)

    def explain(self, graph: Graph, nodes: np.ndarray | list[int], *, top_features: int = 5) -> list[dict[str, Any]]:
        """Why each of ``nodes`` of ``graph`` scored as it did (see
        :meth:`AnomalyDetector.explain <graphrec.tasks.anomaly.detector.AnomalyDetector.explain>`)."""
        return self.detector.explain(nodes, top_features=top_features, graph=graph)

