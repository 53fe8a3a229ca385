"""Anomaly models from the store: training, versioned artifacts, scoring and explanations.

Artifacts live under ``GRAPHREC_HOME/models/anomaly/<version>/``: the detector's network as
safetensors arrays (plus the input scaler) and a JSON manifest with the kind, hyper-parameters,
seed, threshold, feature columns and the data version trained on; nothing is unpickled on load.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from graphrec import artifacts
from graphrec.tasks.anomaly.detector import (
    AnomalyDetector,
    AttributedGraph,
    ContextDetector,
    DominantDetector,
    Standardiser,
    make_detector,
)
from graphrec.errors import StoreStateError

KIND = "anomaly"


def train_from_store(store: Any, *, kind: str = "context", seed: int = 0, contamination: float = 0.05, threads: int | None = None,
                     snap: Any = None, **overrides: Any) -> artifacts.Artifact:
    """Fit a detector of ``kind`` on the store's current graph of real users (synthetic users
    excluded) and save (and serve) it."""
    from graphrec.store.schema import utcnow

    started = utcnow()
    snap = snap if snap is not None else store.snapshot(include_synthetic=False)
    if snap.num_nodes < 10:
        raise StoreStateError(f"cannot train {KIND}: the store has {snap.num_nodes} users (need at least 10)")
    if not snap.feature_names:
        raise StoreStateError(f"cannot train {KIND}: users have no feature columns (import profiles with `graphrec import users`)")
    graph = AttributedGraph.from_snapshot(snap)
    det = make_detector(kind, contamination=contamination, seed=seed, threads=threads, **overrides).fit(graph)
    assert det.decision_score_ is not None
    metrics = {"flagged": int((det.decision_score_ > (det.threshold_ or 0.0)).sum()), "threshold": det.threshold_,
               "fit_seconds": round(det.fit_seconds_, 2), "final_loss": _final_loss(det)}
    data = {"revision": snap.revision, "fingerprint": snap.fingerprint(), "users": snap.num_nodes, "friendships": snap.num_edges}
    art = save_model(store.settings.home, det, data=data, feature_names=list(snap.feature_names), metrics=metrics)
    store.record_model_run(KIND, art.version, seed=seed, params=det.params(), metrics=metrics, data_revision=snap.revision,
                           data_fingerprint=data["fingerprint"], artifact_path=str(art.path), started_at=started)
    artifacts.set_latest(store.settings.home, KIND, art.version)
    return art


def _final_loss(det: AnomalyDetector) -> float | None:
    history = getattr(det, "history_", None)
    return round(float(history[-1]), 6) if history else None


def _network_args(det: AnomalyDetector) -> dict[str, Any]:
    m = det.model_  # type: ignore[attr-defined]
    if isinstance(det, DominantDetector):
        return {"in_dim": m.in_dim, "hidden": m.hidden, "layers": m.layers}
    return {"in_dim": m.in_dim, "hidden": m.hidden, "code": m.code, "tied": m.tied}


def save_model(home: Any, det: AnomalyDetector, *, data: dict[str, Any], feature_names: list[str], metrics: dict[str, Any]) -> artifacts.Artifact:
    arrays = {f"net.{k}": v.detach().cpu().numpy() for k, v in det.model_.state_dict().items()}  # type: ignore[attr-defined]
    scaler: Standardiser | None = getattr(det, "scaler_", None)
    if scaler is not None:
        arrays["scaler.mean"], arrays["scaler.std"] = scaler.mean, scaler.std
    manifest = {
        "data": data,
        "detector": det.kind,
        "params": det.params(),
        "seed": det.seed,
        "network": _network_args(det),
        "binary": bool(getattr(det, "binary_", False)),
        "threshold": det.threshold_,
        "feature_names": feature_names,
        "metrics": metrics,
    }
    return artifacts.save(home, KIND, arrays, manifest, make_latest=False)


def load_model(home: Any, version: str | None = None) -> tuple[AnomalyDetector, artifacts.Artifact]:
    """Load an anomaly model version (default: the served one) as a fitted detector."""
    import torch

    from graphrec.nn.autoencoders import DominantAutoencoder, FeatureAutoencoder

    art = artifacts.load(home, KIND, version)
    m = art.manifest
    try:
        params = dict(m["params"])
        kind = params.pop("kind")
        common = {"contamination": params.pop("contamination"), "seed": params.pop("seed")}
        if kind == "context":
            det: AnomalyDetector = make_detector(kind, **common, **params.pop("ae"), ranks=tuple(params.pop("ranks")))
        else:
            params.pop("variant", None)
            det = make_detector(kind, **common, **params)
        net = dict(m["network"])
        module = DominantAutoencoder(**net) if kind == "dominant" else FeatureAutoencoder(**net)
        state = {k[4:]: torch.from_numpy(np.array(v)) for k, v in art.arrays.items() if k.startswith("net.")}
        module.load_state_dict(state)
        module.eval()
        det.model_ = module  # type: ignore[attr-defined]
        if "scaler.mean" in art.arrays:
            det.scaler_ = Standardiser(art.arrays["scaler.mean"], art.arrays["scaler.std"])  # type: ignore[attr-defined]
        if isinstance(det, ContextDetector):
            det.binary_ = bool(m["binary"])
        det.threshold_ = float(m["threshold"])
        det.feature_names_ = list(m["feature_names"])  # type: ignore[attr-defined]
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise artifacts.ArtifactError(f"{KIND} model {art.version} is malformed: {exc}") from None
    return det, art


def check_compatible(det: AnomalyDetector, snap: Any, version: str) -> None:
    """The store's feature columns must be the ones the model was trained on."""
    want = getattr(det, "feature_names_", None)
    if want is not None and list(snap.feature_names) != list(want):
        raise StoreStateError(
            f"anomaly model {version} was trained on {len(want)} feature columns, the store now has {len(snap.feature_names)} "
            f"(or in another order): retrain with `graphrec train anomaly` or `graphrec score-bots --retrain`"
        )


@dataclass
class AnomalyResult:
    """Scores of every user of a snapshot, who is flagged, and explanations of the top users."""

    scores: np.ndarray
    flagged: np.ndarray
    threshold: float
    details: dict[int, dict[str, Any]]  # node index -> explanation


def score_snapshot(det: AnomalyDetector, snap: Any, *, explain_top: int = 100, max_details: int = 10_000, threads: int | None = None) -> AnomalyResult:
    """Score every user of ``snap``; explain the flagged users (at least ``explain_top``, at most
    ``max_details``), highest first."""
    if threads:
        det.threads = threads
    graph = AttributedGraph.from_snapshot(snap)
    score = det.decision_function(graph)
    threshold = float(det.threshold_ or 0.0)
    flagged = score > threshold
    order = np.argsort(-score, kind="stable")
    top = order[: min(max_details, max(int(flagged.sum()), explain_top), order.size)]
    details = {int(i): d for i, d in zip(top.tolist(), det.explain(top))}
    return AnomalyResult(score, flagged, threshold, details)


def top_anomalies(store: Any, *, top: int = 20, version: str | None = None, threads: int | None = None) -> list[dict[str, Any]]:
    """Library entry point: the ``top`` most anomalous users of the store's current graph under
    the served (or given) model, each ``{"user", "score", "flagged", **explanation}``."""
    det, art = load_model(store.settings.home, version)
    snap = store.snapshot()
    check_compatible(det, snap, art.version)
    res = score_snapshot(det, snap, explain_top=top, max_details=top, threads=threads)
    order = np.argsort(-res.scores, kind="stable")[:top]
    return [{"user": str(snap.external_ids[i]), "score": round(float(res.scores[i]), 6), "flagged": bool(res.flagged[i]),
             **res.details[int(i)]} for i in order.tolist()]
