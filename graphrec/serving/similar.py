"""Similar users from the served Siamese model (numpy + FAISS; no torch): ``graphrec similar``,
the cold-start candidates of the recommender, and the incremental ``graphrec index sync``.

Every request encodes the user's *current* profile read from the store at the Siamese model's
own feature width (its ``in_dim``), so it works for users created after training, for users
with no friends, and whatever width the link model or the store has now. Results are filtered
against the live store (deleted and synthetic users never come back; optionally users a scoring
run flagged).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from graphrec import artifacts
from graphrec.errors import InputError
from graphrec.tasks.siamese.model import INDEX_DIR, KIND, NumpyEncoder, SiameseModel

if TYPE_CHECKING:  # pragma: no cover
    from graphrec.core.index import EmbeddingIndex
    from graphrec.distributed.engine import RayOptions
    from graphrec.store.store import GraphStore

log = logging.getLogger(__name__)


#: The serving filters, in the order outputs list them: the requesting user, current friends,
#: friends unfriended since training, users blocked either way, deleted (or unknown) users,
#: synthetic users, and accounts the bot filter drops.
FILTERS = ("self", "friends", "unfriended", "blocked", "deleted", "synthetic", "bots")


def exclusion_reasons(store: "GraphStore", external_ids: list[str], *, score_kind: str | None = None,
                      score_threshold: float | str = "flagged") -> dict[str, str]:
    """Which of ``external_ids`` the store never lets be suggested, each with the filter that
    drops it: ``deleted`` (deleted or unknown), ``synthetic``, or ``bots`` (with ``score_kind``,
    the score filter of :meth:`GraphStore.excluded_candidates`). One query when nothing is
    excluded (the usual case); the reasons cost one more query and a look-up per excluded user."""
    bad = store.excluded_candidates(external_ids, score_kind=score_kind, score_threshold=score_threshold)
    if not bad:
        return {}
    plain = store.excluded_candidates(sorted(bad)) if score_kind is not None else bad
    out = dict.fromkeys(bad - plain, "bots")
    for name in plain:
        out[name] = "synthetic" if store.has_user(name) else "deleted"
    return out


class SimilarUsers:
    """Loads the served (or given) Siamese model and its index once; answers many requests.

    Attributes: ``model`` (:class:`~graphrec.tasks.siamese.model.SiameseModel`), ``encoder``
    (its numpy encoder, ``encoder.in_dim`` wide), ``index`` (its keyed FAISS index), ``version``,
    ``path`` and ``manifest`` of the artifact.
    """

    def __init__(self, store: "GraphStore", *, version: str | None = None) -> None:
        self.store = store
        self.model = SiameseModel.load(store.settings.home, version)
        assert self.model.version is not None and self.model.path is not None
        self.version: str = self.model.version
        self.path: Path = self.model.path
        self.manifest = self.model.manifest

    @property
    def encoder(self) -> NumpyEncoder:
        return self.model.encoder

    @property
    def index(self) -> "EmbeddingIndex":
        return self.model.index

    @property
    def width(self) -> int:
        """The profile width the model reads."""
        return self.model.in_dim

    def embed_user(self, user: str | int) -> tuple[str, np.ndarray]:
        """(external id, embedding of the user's current profile read at the model's own width);
        ``NotFoundError`` for an unknown or deleted user."""
        ext, z, _ = self._embed(user)
        return ext, z

    def _embed(self, user: str | int) -> tuple[str, np.ndarray, int]:
        """:meth:`embed_user` and the store revision the profile was read at (one read)."""
        ext = str(user).strip()
        features, revision = self.store.profile_vector(ext, feature_dim=self.width)
        return ext, self.encoder(features)[0], revision

    def similar(self, user: str | int, k: int = 10, *, exclude: set[str] | None = None) -> list[tuple[str, float]]:
        """The ``k`` users with the most similar learned profile embedding (external id, cosine)."""
        return self._similar(user, k, exclude)[0]

    def _similar(self, user: str | int, k: int, exclude: set[str] | None = None) -> tuple[list[tuple[str, float]], int]:
        if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
            raise InputError(f"k must be a positive integer, got {k!r}")
        ext, z, revision = self._embed(user)
        return self.nearest(z, k, exclude={ext} | (exclude or set())), revision

    def answer(self, user: str | int, k: int = 10) -> dict[str, Any]:
        """``graphrec similar``: ``{"user", "model", "similar": [{"user", "similarity"}, ...],
        "freshness": [...]}``, the ``k`` users whose learned profile embedding is closest to
        ``user``'s current profile, and whether this model is older than the store."""
        from graphrec.serving.freshness import model_revision, of_model

        found, revision = self._similar(user, k)
        fresh = of_model(self.model.kind, self.version, model_revision(self.manifest), revision)
        return {"user": str(user).strip(), "model": self.version,
                "similar": [{"user": e, "similarity": round(s, 4)} for e, s in found], "freshness": [fresh.as_dict()]}

    def nearest(self, z: np.ndarray, k: int, *, exclude: set[str], score_kind: str | None = None,
                score_threshold: float | str = "flagged", removed: dict[str, int] | None = None) -> list[tuple[str, float]]:
        """The ``k`` indexed users closest to embedding ``z`` that the live store still allows
        (not deleted or synthetic; with ``score_kind``, the score filter of
        :meth:`GraphStore.excluded_candidates`), over-fetching until ``k`` are found or the index
        is exhausted. ``removed`` (filter name -> count, see :data:`FILTERS`) is incremented by
        the users each store filter dropped ahead of the last one kept."""
        fetch = max(2 * k, 20)
        while True:
            found = self.index.nearest(z, fetch, exclude=exclude)
            bad = exclusion_reasons(self.store, [e for e, _ in found], score_kind=score_kind, score_threshold=score_threshold)
            out: list[tuple[str, float]] = []
            dropped: list[str] = []
            for e, s in found:
                if len(out) == k:
                    break
                if e in bad:
                    dropped.append(bad[e])
                else:
                    out.append((e, s))
            if len(out) == k or len(found) < fetch:
                if removed is not None:
                    for why in dropped:
                        removed[why] = removed.get(why, 0) + 1
                return out
            fetch *= 2

    def sync(self, embed: Callable[[np.ndarray], np.ndarray] | None = None) -> dict[str, int]:
        """Incremental index update from the store: encode (at the model's width) and upsert the
        users created or updated since the last sync, remove deleted or synthetic ones; the index
        folder is replaced atomically and the manifest's ``index_synced_at`` moves on.

        ``embed`` maps the changed users' profile rows to their embeddings, row for row (default:
        :attr:`encoder` in this process; the ``ray`` engine maps it over Ray workers,
        :func:`graphrec.distributed.batch.build_index_ray`)."""
        from graphrec.store.schema import utcnow

        since = dt.datetime.fromisoformat(self.manifest["index_synced_at"])
        now = utcnow()
        ids, feats, gone = self.store.users_changed_since(since, feature_dim=self.width)
        if ids:
            self.index.upsert(ids, (embed or self.encoder)(feats))
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
        self.model.index_synced_at = self.manifest["index_synced_at"]
        artifacts.write_manifest(self.path, self.manifest)
        log.info("siamese index %s synced: %d upserted, %d removed, %d indexed", self.version, len(ids), removed, self.index.size)
        return {"upserted": len(ids), "removed": removed, "indexed": self.index.size, "tombstones": len(self.index.tombstones)}


def optional_similar_users(store: "GraphStore") -> SimilarUsers | None:
    """The served Siamese model's service, or None when no Siamese model was trained."""
    if artifacts.latest_version(store.settings.home, KIND) is None:
        return None
    return SimilarUsers(store)


def find_similar(store: "GraphStore", user: str, k: int = 10, *, version: str | None = None) -> dict[str, Any]:
    """``graphrec similar``: ``{"user", "model", "similar": [{"user", "similarity"}, ...],
    "freshness": [...]}``, the ``k`` users whose learned profile embedding is closest to
    ``user``'s current profile, and whether the Siamese model is older than the store
    (:mod:`graphrec.serving.freshness`)."""
    return SimilarUsers(store, version=version).answer(user, k)


def sync_index(store: "GraphStore", *, version: str | None = None, engine: str = "local",
               ray: "RayOptions | None" = None) -> dict[str, Any]:
    """``graphrec index sync``: update the served (or given) Siamese model's index from the store;
    ``{"model_version", "upserted", "removed", "indexed", "tombstones"}``. ``engine="ray"``
    embeds the changed users as a Ray map stage (:func:`graphrec.distributed.batch.build_index_ray`,
    with ``ray``'s :class:`~graphrec.distributed.engine.RayOptions`): the same index contents."""
    if engine != "local":
        from graphrec.distributed.engine import check_engine

        check_engine(engine)
        from graphrec.distributed.batch import build_index_ray

        return build_index_ray(store, version=version, options=ray)
    svc = SimilarUsers(store, version=version)
    return {"model_version": svc.version, **svc.sync()}
