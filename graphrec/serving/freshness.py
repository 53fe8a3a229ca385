"""Is the served model stale? Its data revision against the store's current one.

Every model records the store revision it was trained at (``data.revision`` in its manifest, and
``data_revision`` in ``model_runs``); every write that changes the store bumps the store's
revision. A model trained at revision 2 that serves a store at revision 4 does not know the
friendships, users or labels written since, and nothing else would say so: every serving command
(``recommend``, ``similar``, ``bots``, ``anomalies``) reports it, and ``stats`` can list every
served model's freshness with :func:`model_freshness`.

Reads manifests only (JSON, no arrays, no torch), so it is cheap enough for every request.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graphrec import artifacts

if TYPE_CHECKING:  # pragma: no cover
    from graphrec.store.store import GraphStore

#: model kind -> the ``graphrec train`` word that retrains it (kinds that serve users). Spelled
#: here rather than read from the task registry, which would import the tasks (and torch).
RETRAIN_COMMANDS: dict[str, str] = {
    "linkpred": "graphrec train linkpred",
    "siamese": "graphrec train siamese",
    "bot": "graphrec train bots",
    "anomaly": "graphrec train anomaly",
}
#: The command that writes a new scoring run (``graphrec bots`` and ``graphrec anomalies`` read runs).
SCORE_COMMAND = "graphrec score"


@dataclass(frozen=True)
class Freshness:
    """What something served was computed from (``what``: ``"linkpred model 2026...-ab12cd"``,
    ``"bot run 7"``), the store revision it was computed at (None when unknown: an artifact older
    than data versions), the store's revision now, the command that refreshes it, and ``verb``
    (``trained`` for a model, ``scored`` for a run)."""

    what: str
    revision: int | None
    store_revision: int
    refresh: str
    verb: str = "trained"

    @property
    def stale(self) -> bool:
        """True when the store changed after the model (or run) was computed, or it is unknown when."""
        return self.revision is None or self.revision != self.store_revision

    def message(self) -> str:
        """One line for people: ``linkpred model V trained at store revision 2; store is at 4:
        run `graphrec train linkpred` to refresh`` (or ``... is up to date``)."""
        if self.revision is None:
            return f"{self.what}: store revision unknown; store is at {self.store_revision}: run `{self.refresh}` to refresh"
        if not self.stale:
            return f"{self.what} {self.verb} at store revision {self.revision}: up to date"
        return f"{self.what} {self.verb} at store revision {self.revision}; store is at {self.store_revision}: run `{self.refresh}` to refresh"

    def as_dict(self) -> dict[str, Any]:
        """``{"what", "revision", "store_revision", "stale", "message"}`` (the JSON outputs' field)."""
        return {"what": self.what, "revision": self.revision, "store_revision": self.store_revision, "stale": self.stale,
                "message": self.message()}


def model_revision(manifest: dict[str, Any]) -> int | None:
    """The store revision a model manifest says it was trained at (None if it does not say)."""
    data = manifest.get("data")
    rev = data.get("revision") if isinstance(data, dict) else None
    return int(rev) if isinstance(rev, (int, float)) and not isinstance(rev, bool) else None


def of_model(kind: str, version: str | None, revision: int | None, store_revision: int) -> Freshness:
    """The freshness of a loaded model of ``kind`` trained at ``revision``."""
    return Freshness(f"{kind} model {version}", revision, store_revision, RETRAIN_COMMANDS.get(kind, f"graphrec train {kind}"))


def of_run(kind: str, run_id: int, summary: dict[str, Any] | None, store_revision: int) -> Freshness:
    """The freshness of scoring run ``run_id`` of ``kind`` (its summary records ``data_revision``)."""
    rev = (summary or {}).get("data_revision")
    rev = int(rev) if isinstance(rev, (int, float)) and not isinstance(rev, bool) else None
    return Freshness(f"{kind} run {run_id}", rev, store_revision, SCORE_COMMAND, "scored")


def artifact_freshness(store: "GraphStore", kind: str, version: str | None = None, *, home: str | Path | None = None,
                       store_revision: int | None = None) -> Freshness | None:
    """The freshness of model ``version`` of ``kind`` (default: the served one, ``LATEST``) under
    ``home`` (default: the store's ``GRAPHREC_HOME``), read from its manifest; None when there is
    no such model. ``store_revision`` saves the store read when the caller has it."""
    root = Path(home) if home is not None else Path(store.settings.home)
    version = version or artifacts.latest_version(root, kind)
    if version is None:
        return None
    try:
        manifest = json.loads((root / "models" / kind / version / artifacts.MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        manifest = {}
    current = store.revision() if store_revision is None else store_revision
    return of_model(kind, version, model_revision(manifest), current)


def model_freshness(store: "GraphStore", home: str | Path | None = None, *, kinds: list[str] | None = None) -> list[Freshness]:
    """The freshness of every served model (``LATEST``) under ``home`` (default: the store's
    ``GRAPHREC_HOME``) of ``kinds`` (default: every kind that serves users, :data:`RETRAIN_COMMANDS`),
    against the store's current revision; kinds without a trained model are left out. For
    ``graphrec stats``: ``[f.as_dict() for f in model_freshness(store)]`` (or ``f.message()``)."""
    current = store.revision()
    found = (artifact_freshness(store, kind, home=home, store_revision=current) for kind in kinds or list(RETRAIN_COMMANDS))
    return [f for f in found if f is not None]


def store_overview(store: "GraphStore", home: str | Path | None = None) -> dict[str, Any]:
    """What ``graphrec stats`` prints: the store's statistics (:meth:`GraphStore.stats`) and, under
    ``models``, each served model's freshness against the store's revision (:func:`model_freshness`),
    so a model trained before the latest writes is visible where the store is described."""
    return {**store.stats().as_dict(), "models": [f.as_dict() for f in model_freshness(store, home)]}
