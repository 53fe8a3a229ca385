"""Hyper-parameters of the anomaly task (recorded in the manifest and ``model_runs`` as the
detector's own parameters, :meth:`AnomalyConfig.params`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from graphrec.tasks.anomaly.detector import DEFAULT_KIND, AnomalyDetector, make_detector
from graphrec.tasks.base import TaskConfig


@dataclass
class AnomalyConfig(TaskConfig):
    """Which detector to fit and how.

    ``detector``: one of :data:`~graphrec.tasks.anomaly.detector.KINDS` (``context``, the
    default by measurement; ``dominant``; ``vanilla`` / ``denoising`` / ``sparse`` feature
    autoencoders). ``contamination``: the expected share of anomalous users; the flagging
    threshold is this upper quantile of the training scores. ``tied``: decoder weights tied to
    the encoder's (autoencoder kinds; ignored by DOMINANT). ``epochs``, ``hidden``, ``code``,
    ``lr``: override the detector's defaults when set (``code`` is ignored by DOMINANT).
    ``threads``: torch threads (None: :func:`graphrec.threads.default_threads`, one per available
    core, resolved when training starts).
    """

    detector: str = DEFAULT_KIND
    contamination: float = 0.05
    tied: bool = False
    epochs: int | None = None
    hidden: int | None = None
    code: int | None = None
    lr: float | None = None
    threads: int | None = None

    def overrides(self) -> dict[str, Any]:
        """The detector config fields this config sets (the rest keep the detector's defaults)."""
        out: dict[str, Any] = {k: v for k, v in (("epochs", self.epochs), ("hidden", self.hidden), ("lr", self.lr)) if v is not None}
        if self.detector != "dominant":
            if self.code is not None:
                out["code"] = self.code
            if self.tied:
                out["tied"] = True
        return out

    def make(self) -> AnomalyDetector:
        """An unfitted detector with these hyper-parameters (``ValueError`` for bad values)."""
        return make_detector(self.detector, contamination=self.contamination, seed=self.seed, threads=self.threads, **self.overrides())

    def params(self) -> dict[str, Any]:
        """The detector's parameters (kind, contamination, seed and its config), the form every
        anomaly manifest has recorded and :meth:`AnomalyModel.from_artifact
        <graphrec.tasks.anomaly.model.AnomalyModel.from_artifact>` rebuilds the detector from."""
        return self.make().params()
