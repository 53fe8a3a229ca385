"""``graphrec synth purge``: remove every synthetic user from the store (:func:`purge_synthetic`),
after saying what would go (:func:`preview_purge`) and, unless told otherwise, asking."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from graphrec.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from graphrec.store.store import GraphStore


@dataclass(frozen=True)
class PurgePreview:
    """What a purge would remove, read from one consistent snapshot: ``users`` synthetic users,
    ``friendships`` with at least one synthetic end, ``labelled_users`` synthetic users with a
    label, out of ``total_users`` users."""

    users: int
    friendships: int
    labelled_users: int
    total_users: int

    def describe(self) -> str:
        """``N synthetic users (of M), F friendships, L labelled users``."""
        return (f"{self.users} synthetic users (of {self.total_users}), {self.friendships} friendships and the labels of "
                f"{self.labelled_users} of them, with their scores")

    def as_dict(self) -> dict[str, Any]:
        return {"users": self.users, "friendships": self.friendships, "labelled_users": self.labelled_users, "total_users": self.total_users}


@dataclass
class PurgeReport:
    """What :func:`purge_synthetic` did: ``preview`` (what it found first) and ``counts`` (the
    rows it deleted, by table: ``friendships``, ``labels``, ``scores``, ``users``; empty for a dry
    run or when there was nothing to remove)."""

    counts: dict[str, int]
    preview: PurgePreview | None = None
    dry_run: bool = False

    def as_dict(self) -> dict[str, Any]:
        """``{"removed": "synthetic users", <table>: <rows>, ...}`` (what ``graphrec synth purge``
        prints); a dry run: ``{"would_remove": "synthetic users", ...the preview}``."""
        if self.dry_run:
            assert self.preview is not None
            return {"would_remove": "synthetic users", **self.preview.as_dict()}
        return {"removed": "synthetic users", **self.counts}


def preview_purge(store: "GraphStore") -> PurgePreview:
    """Count what :func:`purge_synthetic` would remove, without changing anything."""
    snap = store.snapshot(include_synthetic=True)
    synthetic = np.asarray(snap.is_synthetic, dtype=bool)
    rows = np.repeat(np.arange(snap.num_nodes), np.diff(snap.indptr))
    cols = np.asarray(snap.indices)
    touching = (synthetic[rows] | synthetic[cols]) & (rows < cols)  # each friendship once (both directions stored)
    labelled = sum(1 for lab, syn in zip(snap.labels.tolist(), synthetic.tolist()) if syn and lab is not None)
    return PurgePreview(int(synthetic.sum()), int(touching.sum()), labelled, int(snap.num_nodes))


def purge_synthetic(store: "GraphStore", *, dry_run: bool = False, confirm: Callable[[PurgePreview], bool] | None = None) -> PurgeReport:
    """Delete every synthetic user with their friendships, blocks, labels, circle memberships and
    scores, in one transaction (:meth:`~graphrec.store.store.GraphStore.purge_synthetic`); the
    real graph is left as it was.

    It first counts what would go (:func:`preview_purge`). ``dry_run`` stops there. ``confirm``
    (the command line's prompt) is asked with those counts when there is something to remove; a
    no is an :class:`~graphrec.errors.InputError` and nothing is deleted. Without ``confirm`` the
    purge goes ahead (the caller has decided)."""
    preview = preview_purge(store)
    if dry_run:
        return PurgeReport({}, preview, dry_run=True)
    if preview.users == 0:
        return PurgeReport({"friendships": 0, "labels": 0, "scores": 0, "users": 0}, preview)
    if confirm is not None and not confirm(preview):
        raise InputError(f"synth purge cancelled: nothing removed ({preview.describe()} kept)")
    return PurgeReport(store.purge_synthetic(), preview)
