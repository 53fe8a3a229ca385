"""Siamese models from the store: training, versioned artifacts with their FAISS index, and the
:class:`SimilarUsers` service (similar users, cold-start candidates, incremental index updates).

Artifact layout under ``GRAPHREC_HOME/models/siamese/<version>/``: ``arrays.safetensors`` (encoder
weights, input scaling), ``manifest.json`` and ``index/`` (:class:`~graphrec.core.index.UserIndex`).
Serving encodes profiles in numpy (no torch import): the encoder is a two-layer MLP.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from graphrec import artifacts
from graphrec.errors import InputError, StoreStateError
from graphrec.tasks.siamese.train import SiameseConfig, train_encoder

KIND = "siamese"
INDEX_DIR = "index"


def fit_and_save(store: Any, config: SiameseConfig, *, metrics: dict[str, Any] | None = None) -> artifacts.Artifact:
    """Train on the store's real users (friendships and circles) and save + serve a new version."""
    from graphrec.core.index import UserIndex
    from graphrec.store.schema import utcnow

    started = utcnow()
    snap = store.snapshot(include_synthetic=False)
    if snap.num_nodes == 0 or snap.features.shape[1] == 0:
        raise StoreStateError("cannot train siamese: the store has no users with profile features")
    try:
        weights = train_encoder(snap.features, snap.edge_array(), config, circles=[c.members for c in snap.circles])
    except ValueError as exc:
        raise StoreStateError(f"cannot train {KIND}: {exc}") from None
    z = weights.embed(snap.features)
    arrays = {**{f"encoder.{k}": v for k, v in weights.state.items()}, "scaler.mean": weights.scaler.mean, "scaler.std": weights.scaler.std}
    manifest = {
        "data": {"revision": snap.revision, "fingerprint": snap.fingerprint(), "users": snap.num_nodes, "friendships": snap.num_edges},
        "params": asdict(config),
        "seed": config.seed,
        "feature_names": snap.feature_names,
        "in_dim": weights.in_dim,
        "training": weights.summary(),
        "metrics": metrics or {},
        "index_synced_at": started.isoformat(),
    }
    ids = [str(e) for e in snap.external_ids.tolist()]
    holder: dict[str, str] = {}

    def extra(folder: Path) -> None:
        UserIndex.build(ids, z, model_version=holder["version"]).save(folder / INDEX_DIR)

    version = artifacts.new_version()
    holder["version"] = version
    art = artifacts.save(store.settings.home, KIND, arrays, manifest, version=version, extra=extra, make_latest=False)
    store.record_model_run(KIND, art.version, seed=config.seed, params=asdict(config), metrics=metrics or {}, data_revision=snap.revision,
                           data_fingerprint=manifest["data"]["fingerprint"], artifact_path=str(art.path), started_at=started)
    artifacts.set_latest(store.settings.home, KIND, art.version)
    return art


class NumpyEncoder:
    """The trained :class:`~graphrec.nn.siamese.ProfileEncoder` evaluated in numpy (inference)."""

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        g = lambda k: np.asarray(arrays[f"encoder.{k}"], dtype=np.float32)  # noqa: E731
        self.w1, self.b1 = g("net.1.weight"), g("net.1.bias")
        self.ln_w, self.ln_b = g("net.2.weight"), g("net.2.bias")
        self.w2, self.b2 = g("net.5.weight"), g("net.5.bias")
        self.mean, self.std = arrays["scaler.mean"], arrays["scaler.std"]
        self.in_dim = self.w1.shape[1]

    def __call__(self, features: np.ndarray) -> np.ndarray:
        x = (np.atleast_2d(np.asarray(features, dtype=np.float32))[:, : self.in_dim] - self.mean) / self.std
        h = x @ self.w1.T + self.b1
        mu = h.mean(axis=1, keepdims=True)
        var = h.var(axis=1, keepdims=True)
        h = np.maximum((h - mu) / np.sqrt(var + 1e-5) * self.ln_w + self.ln_b, 0.0)
        z = h @ self.w2.T + self.b2
        return (z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)).astype(np.float32)


class SimilarUsers:
    """Loads the served Siamese model and its index once; answers many requests.

    ``similar(user, k)`` encodes the user's *current* profile from the store (so it works for
    users created after training, and for users with no friends) and searches the index; deleted
    and synthetic users are filtered out against the live store.
    """

    def __init__(self, store: Any, *, version: str | None = None) -> None:
        from graphrec.core.index import UserIndex

        self.store = store
        art = artifacts.load(store.settings.home, KIND, version)
        self.version, self.path, self.manifest = art.version, art.path, art.manifest
        try:
            self.encoder = NumpyEncoder(art.arrays)
            self.index = UserIndex.load(art.path / INDEX_DIR, model_version=art.version, dim=self.encoder.w2.shape[0])
        except (KeyError, OSError, ValueError, RuntimeError) as exc:
            raise artifacts.ArtifactError(f"{KIND} model {art.version} is incomplete or corrupt: {exc}") from None

    def embed_user(self, user: str | int) -> tuple[str, np.ndarray]:
        """(external id, embedding of the user's current profile); NotFoundError if unknown/deleted."""
        ext = str(user).strip()
        ctx = self.store.serving_context(ext, feature_dim=self.encoder.in_dim)
        return ext, self.encoder(ctx["features"])[0]

    def similar(self, user: str | int, k: int = 10, *, exclude: set[str] | None = None) -> list[tuple[str, float]]:
        """The ``k`` users with the most similar learned profile embedding (external id, cosine)."""
        if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
            raise InputError(f"k must be a positive integer, got {k!r}")
        ext, z = self.embed_user(user)
        return self.nearest(z, k, exclude={ext} | (exclude or set()))

    def nearest(self, z: np.ndarray, k: int, *, exclude: set[str], score_kind: str | None = None,
                score_threshold: float | str = "flagged") -> list[tuple[str, float]]:
        """The ``k`` indexed users closest to embedding ``z`` that the live store still allows
        (not deleted or synthetic; score filter as in :meth:`GraphStore.excluded_candidates`),
        over-fetching until ``k`` are found or the index is exhausted."""
        fetch, out = max(2 * k, 20), []
        while True:
            found = self.index.search(z, fetch, exclude=exclude)
            bad = self.store.excluded_candidates([e for e, _ in found], score_kind=score_kind, score_threshold=score_threshold)
            out = [(e, s) for e, s in found if e not in bad][:k]
            if len(out) == k or len(found) < fetch:
                return out
            fetch *= 2

    def sync(self) -> dict[str, int]:
        """Incremental index update from the store: encode and upsert users created or updated
        since the last sync, remove deleted or synthetic ones; saved atomically in place."""
        import os
        import shutil
        import tempfile

        from graphrec.store.schema import utcnow

        since = dt.datetime.fromisoformat(self.manifest["index_synced_at"])
        now = utcnow()
        ids, feats, gone = self.store.users_changed_since(since, feature_dim=self.encoder.in_dim)
        if ids:
            self.index.upsert(ids, self.encoder(feats))
        removed = self.index.remove(gone)
        tmp = Path(tempfile.mkdtemp(prefix=".index.", dir=self.path))
        try:
            self.index.save(tmp)
            old = self.path / f".index-old-{os.getpid()}"
            os.replace(self.path / INDEX_DIR, old)
            os.replace(tmp, self.path / INDEX_DIR)
            shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self.manifest["index_synced_at"] = now.isoformat()
        artifacts.write_manifest(self.path, self.manifest)
        return {"upserted": len(ids), "removed": removed, "indexed": self.index.size, "tombstones": len(self.index.tombstones)}
