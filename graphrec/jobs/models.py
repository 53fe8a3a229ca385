"""The served-model registry behind ``graphrec models list|show|promote|rollback``.

Every training run saves a version under ``GRAPHREC_HOME/models/<kind>/<version>/`` and records a
``model_runs`` row; ``LATEST`` names the version that serves (:mod:`graphrec.artifacts`). These
functions read the versions and their manifests, say which one serves, and move ``LATEST``
(atomically, remembering the versions served in ``HISTORY``) so that a bad retrain is undone in
one command: :func:`rollback` serves the version that served before; :func:`promote` serves any
recorded version. A version whose training run was never recorded (a run killed between saving
and recording) is listed but never served.

Kinds are the artifact kinds (``linkpred``, ``bot``, ``siamese``, ``anomaly``, ``synth``); the
task names (``bots``) are accepted too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from graphrec.errors import InputError, StoreStateError

if TYPE_CHECKING:  # pragma: no cover
    from graphrec.store.store import GraphStore

#: kind -> the figure ``models list`` shows for it: (label, path into the manifest); the first
#: path present wins, else the first number among the manifest's ``metrics``
KEY_METRICS: dict[str, list[tuple[str, tuple[str, ...]]]] = {
    "bot": [("oof_roc_auc", ("metrics", "out_of_fold", "roc_auc"))],
    "linkpred": [("recall@20", ("metrics", "recall@20")), ("train_loss", ("training", "train_loss"))],
    "siamese": [("recall@10", ("metrics", "recall@10")), ("train_loss", ("training", "train_loss"))],
    "anomaly": [("final_loss", ("metrics", "final_loss")), ("flagged", ("metrics", "flagged"))],
    "synth": [("degree_ks", ("metrics", "realism", "degree_ks"))],
}


def _kind(kind: str) -> str:
    from graphrec.tasks.registry import task_class, task_of_kind

    return task_class(task_of_kind(kind)).kind


def _number(value: Any) -> float | None:
    if isinstance(value, list) and value:
        value = value[-1]  # a per-epoch series: the last epoch
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def key_metric(kind: str, manifest: dict[str, Any]) -> tuple[str, float] | None:
    """The one figure that sums up a version in ``models list`` (:data:`KEY_METRICS`), or None."""
    for label, path in KEY_METRICS.get(kind, []):
        node: Any = manifest
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        number = _number(node)
        if number is not None:
            return label, number
    for name, value in (manifest.get("metrics") or {}).items():
        number = _number(value)
        if number is not None:
            return str(name), number
    return None


@dataclass(frozen=True)
class ModelVersion:
    """One saved version: ``kind``, ``version``, the store ``data_revision`` it was trained on,
    its key metric, when it was created, whether it serves (``LATEST``) and whether its training
    run is recorded in ``model_runs``."""

    kind: str
    version: str
    data_revision: int | None
    metric: tuple[str, float] | None
    created_at: str | None
    serving: bool
    recorded: bool

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "version": self.version, "data_revision": self.data_revision,
                "metric": self.metric[0] if self.metric else None, "value": round(self.metric[1], 6) if self.metric else None,
                "created_at": self.created_at, "serving": self.serving, "recorded": self.recorded}


@dataclass(frozen=True)
class ModelList:
    """The saved versions (oldest first per kind) and the store's current revision."""

    versions: list[ModelVersion]
    store_revision: int | None

    def as_dict(self) -> dict[str, Any]:
        return {"store_revision": self.store_revision, "models": [v.as_dict() for v in self.versions]}


@dataclass(frozen=True)
class ServingChange:
    """What :func:`promote` or :func:`rollback` did: ``kind`` served ``previous``, now ``serving``."""

    action: str
    kind: str
    previous: str | None
    serving: str

    def as_dict(self) -> dict[str, Any]:
        return {"action": self.action, "kind": self.kind, "previous": self.previous, "serving": self.serving}


def _store_revision(store: "GraphStore") -> int | None:
    try:
        return store.revision()
    except StoreStateError:
        return None


def list_models(store: "GraphStore", kind: str | None = None) -> ModelList:
    """Every saved version of ``kind`` (default: every kind), oldest first, with the figures of
    :class:`ModelVersion`. An unknown kind is an :class:`~graphrec.errors.InputError`."""
    from graphrec import artifacts

    home = store.settings.home
    kinds = [_kind(kind)] if kind is not None else artifacts.list_kinds(home)
    rows = []
    for k in kinds:
        served = artifacts.latest_version(home, k)
        for version in artifacts.list_versions(home, k):
            m = artifacts.read_manifest(home, k, version)
            revision = (m.get("data") or {}).get("revision")
            rows.append(ModelVersion(k, version, int(revision) if revision is not None else None, key_metric(k, m), m.get("created_at"),
                                     version == served, _recorded(store, k, version)))
    return ModelList(rows, _store_revision(store))


def _recorded(store: "GraphStore", kind: str, version: str) -> bool:
    try:
        return store.model_run_id(kind, version) is not None
    except StoreStateError:
        return False


def _check_version(store: "GraphStore", kind: str, version: str) -> None:
    from graphrec import artifacts

    saved = artifacts.list_versions(store.settings.home, kind)
    if version not in saved:
        shown = ", ".join(saved[-5:]) if saved else "none saved"
        raise InputError(f"no {kind} model version {version!r} under {store.settings.home}: versions: {shown} (`graphrec models list {kind}`)")


def show_model(store: "GraphStore", kind: str, version: str | None = None) -> dict[str, Any]:
    """A summary of one version's manifest (default: the serving one): when it was made, on
    which data (store revision and fingerprint, users) against the store's revision now, its
    parameters and seed, feature columns (count and first names), metrics, and whether it serves."""
    from graphrec import artifacts

    k = _kind(kind)
    home = store.settings.home
    served = artifacts.latest_version(home, k)
    version = version or served
    if version is None:
        raise StoreStateError(f"no {k} model serves under {home}: `graphrec models list` shows the saved versions")
    _check_version(store, k, version)
    m = artifacts.read_manifest(home, k, version)
    names = list(m.get("feature_names") or [])
    metric = key_metric(k, m)
    return {
        "kind": k,
        "version": version,
        "serving": version == served,
        "recorded": _recorded(store, k, version),
        "created_at": m.get("created_at"),
        "path": str(home / "models" / k / version),
        "data": m.get("data") or {},
        "store_revision": _store_revision(store),
        "seed": m.get("seed"),
        "params": m.get("params") or {},
        "feature_columns": len(names),
        "first_features": names[:5],
        "key_metric": {"name": metric[0], "value": metric[1]} if metric else None,
        "metrics": m.get("metrics") or {},
    }


def promote(store: "GraphStore", kind: str, version: str) -> ServingChange:
    """Serve ``version`` of ``kind`` (atomic ``LATEST`` update, recorded in ``HISTORY``). Only a
    version whose training run is recorded in ``model_runs`` may serve."""
    from graphrec import artifacts

    k = _kind(kind)
    _check_version(store, k, version)
    if not _recorded(store, k, version):
        raise StoreStateError(f"{k} model {version} has no recorded training run in this database (model_runs): it cannot serve")
    previous = artifacts.latest_version(store.settings.home, k)
    artifacts.set_latest(store.settings.home, k, version)
    return ServingChange("promote", k, previous, version)


def rollback(store: "GraphStore", kind: str) -> ServingChange:
    """Serve the version of ``kind`` that served before the current one (``HISTORY``; for models
    served before it existed, the newest older version); a :class:`StoreStateError` when there
    is none."""
    from graphrec import artifacts

    k = _kind(kind)
    home = store.settings.home
    current = artifacts.latest_version(home, k)
    if current is None:
        raise StoreStateError(f"no {k} model serves under {home}: nothing to roll back")
    found = artifacts.previous_served(home, k)
    if found is None:
        raise StoreStateError(f"{k} model {current} is the only one saved: nothing to roll back to")
    version, history = found
    if not _recorded(store, k, version):
        raise StoreStateError(f"{k} model {version} has no recorded training run in this database (model_runs): it cannot serve")
    artifacts.set_latest(home, k, version, history=history)
    return ServingChange("rollback", k, current, version)
