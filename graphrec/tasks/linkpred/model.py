"""Training a link-prediction model from the store and saving it as a versioned artifact."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from graphrec import artifacts
from graphrec.tasks.linkpred.features import FEATURE_NAMES
from graphrec.tasks.linkpred.profiles import ProfileMatrix
from graphrec.tasks.linkpred.train import TrainConfig, TrainResult, train_ranker

KIND = "linkpred"
IDS_FILE = "ids.json"
INDEX_FILE = "embeddings.faiss"


def fit_and_save(store: Any, config: TrainConfig, *, metrics: dict[str, Any] | None = None) -> artifacts.Artifact:
    """Train on the store's current real users (synthetic users excluded) and save the artifact.

    The artifact holds everything serving needs without the database: the training graph (CSR),
    the profile matrix, the ranker weights, the GNN embeddings and a FAISS index over them.
    """
    from graphrec.core.graph import csr_from_edges

    from graphrec.store.schema import utcnow

    started = utcnow()
    snap = store.snapshot(include_synthetic=False)
    edges = snap.edge_array()
    profiles = ProfileMatrix.from_dense(snap.features)
    try:
        result: TrainResult = train_ranker(edges, snap.num_nodes, profiles, config)
    except ValueError as exc:
        from graphrec.errors import StoreStateError

        raise StoreStateError(f"cannot train {KIND}: {exc}") from None
    indptr, indices = csr_from_edges(edges, snap.num_nodes)
    arrays = {
        "graph.indptr": indptr,
        "graph.indices": indices,
        "profiles.indptr": profiles.indptr,
        "profiles.indices": profiles.indices,
        "profiles.data": profiles.data,
        **{f"ranker.{k}": v for k, v in result.weights.to_arrays().items()},
    }
    manifest = {
        "data": {"revision": snap.revision, "fingerprint": snap.fingerprint(), "users": snap.num_nodes, "friendships": snap.num_edges},
        "params": asdict(config),
        "seed": config.seed,
        "profile_dim": profiles.dim,
        "pair_features": list(FEATURE_NAMES),
        "feature_names": snap.feature_names,
        "training": result.summary(),
        "metrics": metrics or {},
    }
    ids = [str(x) for x in snap.external_ids.tolist()]

    def extra(folder: Path) -> None:
        (folder / IDS_FILE).write_text(json.dumps(ids), encoding="utf-8")
        if result.weights.embeddings is not None:
            from graphrec.core.index import build_index

            build_index(result.weights.embeddings).save(folder / INDEX_FILE)

    art = artifacts.save(store.settings.home, KIND, arrays, manifest, extra=extra, make_latest=False)
    store.record_model_run(
        KIND,
        art.version,
        seed=config.seed,
        params=asdict(config),
        metrics=metrics or {},
        data_revision=snap.revision,
        data_fingerprint=manifest["data"]["fingerprint"],
        artifact_path=str(art.path),
        started_at=started,
    )
    artifacts.set_latest(store.settings.home, KIND, art.version)  # served only once recorded
    return art


