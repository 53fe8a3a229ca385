"""``graphrec synth purge``: remove every synthetic user from the store (:func:`purge_synthetic`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from graphrec.store.store import GraphStore


@dataclass
class PurgeReport:
    """How many rows :func:`purge_synthetic` deleted, by table (``friendships``, ``labels``,
    ``scores``, ``users``: :meth:`GraphStore.purge_synthetic`'s counts)."""

    counts: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        """``{"removed": "synthetic users", <table>: <rows>, ...}`` (what ``graphrec synth purge`` prints)."""
        return {"removed": "synthetic users", **self.counts}


def purge_synthetic(store: "GraphStore") -> PurgeReport:
    """Delete every synthetic user with their friendships, blocks, labels, circle memberships and
    scores, in one transaction (:meth:`~graphrec.store.store.GraphStore.purge_synthetic`); the
    real graph is left as it was."""
    return PurgeReport(store.purge_synthetic())
