"""The fitted Siamese model: encoder weights, input scaler and the FAISS index of every user's
embedding, evaluated in numpy (serving imports no torch).

Artifact layout under ``GRAPHREC_HOME/models/siamese/<version>/``: ``arrays.safetensors``
(``encoder.*``: the :class:`~graphrec.nn.siamese.ProfileEncoder` state; ``scaler.mean`` /
``scaler.std``: the input standardiser), ``manifest.json`` (``in_dim``, ``training``,
``index_synced_at`` besides the keys every model records) and ``index/`` (a keyed
:class:`~graphrec.core.index.EmbeddingIndex` built for this version).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from graphrec import artifacts
from graphrec.core.index import EmbeddingIndex
from graphrec.core.scaling import Standardiser
from graphrec.tasks.base import ArtifactContent, Model

KIND = "siamese"
INDEX_DIR = "index"
LAYER_NORM_EPS = 1e-5


class NumpyEncoder:
    """The trained :class:`~graphrec.nn.siamese.ProfileEncoder` evaluated in numpy (inference:
    dropout is the identity)::

        x' = (x - mean) / std
        h  = relu(LayerNorm(x' W1^T + b1))      (LayerNorm eps 1e-5, affine ln_w, ln_b)
        z  = normalise(h W2^T + b2)

    Args: state: the module's state dict as arrays (keys ``net.1.weight`` ...); scaler: the
    input standardiser the encoder was trained with.
    """

    def __init__(self, state: dict[str, np.ndarray], scaler: Standardiser) -> None:
        g = lambda k: np.asarray(state[k], dtype=np.float32)  # noqa: E731
        self.w1, self.b1 = g("net.1.weight"), g("net.1.bias")
        self.ln_w, self.ln_b = g("net.2.weight"), g("net.2.bias")
        self.w2, self.b2 = g("net.5.weight"), g("net.5.bias")
        self.scaler = scaler
        hidden, self.in_dim = self.w1.shape
        self.dim = int(self.w2.shape[0])
        shapes = {"net.1.bias": (self.b1.shape, (hidden,)), "net.2.weight": (self.ln_w.shape, (hidden,)),
                  "net.2.bias": (self.ln_b.shape, (hidden,)), "net.5.weight": (self.w2.shape, (self.dim, hidden)),
                  "net.5.bias": (self.b2.shape, (self.dim,))}
        bad = [f"{k} {have} (expected {want})" for k, (have, want) in shapes.items() if have != want]
        if scaler.width != self.in_dim:
            bad.append(f"scaler of {scaler.width} columns for {self.in_dim} inputs")
        if bad:
            raise ValueError("encoder weights do not fit together: " + "; ".join(bad))

    @property
    def state(self) -> dict[str, np.ndarray]:
        return {"net.1.weight": self.w1, "net.1.bias": self.b1, "net.2.weight": self.ln_w, "net.2.bias": self.ln_b,
                "net.5.weight": self.w2, "net.5.bias": self.b2}

    def __call__(self, features: np.ndarray) -> np.ndarray:
        """Unit-norm embeddings ``float32[n, dim]`` of profile rows exactly ``in_dim`` wide (a
        profile read at another width is a ``ValueError``: read it at the model's own width)."""
        x = self.scaler.transform(np.atleast_2d(np.asarray(features, dtype=np.float32)))
        h = x @ self.w1.T + self.b1
        mu = h.mean(axis=1, keepdims=True)
        var = h.var(axis=1, keepdims=True)
        h = np.maximum((h - mu) / np.sqrt(var + LAYER_NORM_EPS) * self.ln_w + self.ln_b, 0.0)
        z = h @ self.w2.T + self.b2
        return (z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)).astype(np.float32)


class SiameseModel(Model):
    """A trained Siamese profile encoder with its user index.

    Attributes: ``encoder`` (:class:`NumpyEncoder`), ``index`` (keyed
    :class:`~graphrec.core.index.EmbeddingIndex` of every user's embedding), ``feature_names``
    (the profile columns, ``in_dim`` of them), ``training`` (config, loss history, seconds),
    ``index_synced_at`` (ISO time up to which store changes are in the index), and once loaded
    ``path`` / ``manifest`` of the artifact (the index is updated in place by ``index sync``).
    """

    kind: ClassVar[str] = KIND

    def __init__(self, state: dict[str, np.ndarray], scaler: Standardiser, feature_names: list[str], *, index: EmbeddingIndex,
                 training: dict[str, Any] | None = None, index_synced_at: str = "", metrics: dict[str, Any] | None = None) -> None:
        self.encoder = NumpyEncoder(state, scaler)
        self.state = {k: np.asarray(v) for k, v in state.items()}
        self.feature_names = list(feature_names)
        if self.feature_names and len(self.feature_names) != self.encoder.in_dim:
            raise ValueError(f"{len(self.feature_names)} feature names for an encoder of {self.encoder.in_dim} inputs")
        if index.dim != self.encoder.dim:
            raise ValueError(f"index of dimension {index.dim} for embeddings of {self.encoder.dim}")
        self.index = index
        self.training = training or {}
        self.index_synced_at = index_synced_at
        self.metrics = metrics or {}
        self.path: Path | None = None
        self.manifest: dict[str, Any] = {}

    @property
    def in_dim(self) -> int:
        """Profile width the encoder reads."""
        return self.encoder.in_dim

    def to_artifact(self) -> ArtifactContent:
        arrays = {**{f"encoder.{k}": v for k, v in self.state.items()}, **self.encoder.scaler.to_arrays("scaler")}
        manifest = {"in_dim": self.in_dim, "training": self.training, "index_synced_at": self.index_synced_at}

        def write_files(folder: Path, version: str) -> None:
            self.index.model_version = version
            self.index.save(folder / INDEX_DIR)

        return ArtifactContent(arrays, manifest, write_files)

    @classmethod
    def from_artifact(cls, art: artifacts.Artifact) -> "SiameseModel":
        """Rebuild from a saved version, validating the encoder's shapes against the manifest's
        ``in_dim`` and feature columns, the scaler's width, and the index (dimension, vector
        count, built for this version)."""
        m = art.manifest
        state = {k.removeprefix("encoder."): v for k, v in art.arrays.items() if k.startswith("encoder.")}
        in_dim = int(m["in_dim"])
        scaler = Standardiser.from_arrays(art.arrays, "scaler", width=in_dim)
        encoder_in = int(np.asarray(state["net.1.weight"]).shape[1])
        if encoder_in != in_dim:
            raise ValueError(f"encoder reads {encoder_in} columns, the manifest says in_dim {in_dim}")
        names = list(m.get("feature_names") or [])
        dim = int(np.asarray(state["net.5.weight"]).shape[0])
        index = EmbeddingIndex.load(art.path / INDEX_DIR, model_version=art.version, dim=dim)
        model = cls(state, scaler, names, index=index, training=dict(m.get("training") or {}),
                    index_synced_at=str(m["index_synced_at"]), metrics=dict(m.get("metrics") or {}))
        model.path, model.manifest = art.path, m
        return model
