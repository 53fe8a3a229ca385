"""The models a long-running server answers with, and their rollout under traffic.

A server process (each ``graphrec serve`` worker) loads the served link-prediction model and the
Siamese profile model once, and answers every request from that loaded set. When a new version
becomes ``LATEST`` (a nightly retrain, ``graphrec train ...``, ``graphrec models promote``) or the
Siamese index is synced, a background thread loads the new version, checks it, and swaps it in:

* **atomically**: the set is one immutable :class:`ServedSet` behind one reference; a request takes
  the reference once, so a request in flight finishes on the models it started with, and the next
  request sees the new set (a Python reference assignment is atomic);
* **in the background**: loading never happens on the request path, so no request waits for it or
  fails during a swap;
* **checked**: a version that does not load (a truncated or garbage file, arrays that do not fit,
  a model the store's feature columns no longer match) or that fails a probe request is
  **refused**: the old model keeps serving, the refusal is logged and listed by
  :meth:`ServedModels.status` (``/v1/models``), and the same version is not retried until
  ``LATEST`` names another one or its manifest is rewritten. A store that does not answer while
  a version is checked is no refusal: the version is tried again on the next look.

The watcher polls the ``LATEST`` files and the Siamese manifest (a ``stat`` each, every
``interval`` seconds, sleeping on an :class:`threading.Event` in between: no busy waiting).

Numpy and FAISS only, like the rest of the serving path: no torch in a server process.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graphrec import artifacts
from graphrec.errors import NotFoundError, StoreStateError, is_store_error
from graphrec.serving.recommend import Recommendation, Recommender
from graphrec.serving.similar import SimilarUsers

if TYPE_CHECKING:  # pragma: no cover
    from graphrec.store.store import GraphStore

log = logging.getLogger(__name__)

LINK_KIND = "linkpred"
PROFILE_KIND = "siamese"
#: The model kinds a server loads and keeps in memory (the scoring models are read through their
#: nightly runs in the store, not loaded).
SERVED_KINDS = (LINK_KIND, PROFILE_KIND)


def _manifest_stamp(home: Path, kind: str, version: str | None) -> tuple[str | None, int]:
    """(version, mtime of its manifest in ns): changes when ``LATEST`` moves or the manifest is
    rewritten (``graphrec index sync`` rewrites the Siamese one)."""
    if version is None:
        return (None, 0)
    try:
        return (version, (artifacts.version_dir(home, kind, version) / artifacts.MANIFEST).stat().st_mtime_ns)
    except OSError:
        return (version, 0)


@dataclass(frozen=True)
class ServedSet:
    """One consistent set of loaded models: the recommender (None when no link model is trained
    or none could be loaded) and the Siamese service (None likewise), with the stamps they were
    loaded from."""

    recommender: Recommender | None
    similar: SimilarUsers | None
    stamps: dict[str, tuple[str | None, int]] = field(default_factory=dict)
    loaded_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    def version(self, kind: str) -> str | None:
        """The version of ``kind`` this set serves, or None."""
        if kind == LINK_KIND:
            return self.recommender.version if self.recommender is not None else None
        if kind == PROFILE_KIND:
            return self.similar.version if self.similar is not None else None
        return None


@dataclass(frozen=True)
class Refusal:
    """A version the server would not serve, and why (one line)."""

    kind: str
    version: str
    reason: str
    at: dt.datetime
    #: the (version, manifest mtime) refused: a rewritten manifest (``graphrec index sync``) is tried again
    stamp: tuple[str | None, int] = (None, 0)

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "version": self.version, "reason": self.reason, "at": self.at.isoformat()}


class ServedModels:
    """The loaded models of one server process, swapped in the background when ``LATEST`` moves.

    Args:
        store: the live store (recommendations read their filters and live friendships from it).
        interval: seconds between two looks at the ``LATEST`` files (:meth:`start`).
    """

    def __init__(self, store: "GraphStore", *, interval: float = 2.0,
                 on_change: Callable[[dict[str, str | None]], None] | None = None) -> None:
        self.store = store
        #: called with the served versions after every change (the server publishes them as metrics)
        self.on_change = on_change
        self.home = Path(store.settings.home)
        self.interval = float(interval)
        self._set = ServedSet(None, None)
        self._refused: dict[str, Refusal] = {}
        self._lock = threading.Lock()  # one refresh at a time (the watcher and an admin reload)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_check: dt.datetime | None = None
        self._warned: set[str] = set()

    # -- what requests use ------------------------------------------------------------------
    def current(self) -> ServedSet:
        """The set to answer one request with: take it once per request."""
        return self._set

    def recommender(self) -> Recommender:
        """The loaded recommender; :class:`~graphrec.errors.StoreStateError` (not ready) when no
        link-prediction model is trained or none could be loaded."""
        rec = self._set.recommender
        if rec is None:
            raise StoreStateError(self._missing(LINK_KIND, "graphrec train linkpred"))
        return rec

    def similar_users(self) -> SimilarUsers:
        """The loaded Siamese service; :class:`~graphrec.errors.StoreStateError` when none."""
        svc = self._set.similar
        if svc is None:
            raise StoreStateError(self._missing(PROFILE_KIND, "graphrec train siamese"))
        return svc

    def _missing(self, kind: str, command: str) -> str:
        refused = self._refused.get(kind)
        if refused is not None:
            return f"no {kind} model is served: version {refused.version} was refused ({refused.reason})"
        return f"no {kind} model is trained: run `{command}`"

    # -- loading and swapping ---------------------------------------------------------------
    def _targets(self) -> dict[str, tuple[str | None, int]]:
        return {kind: _manifest_stamp(self.home, kind, artifacts.latest_version(self.home, kind)) for kind in SERVED_KINDS}

    def refresh(self) -> list[str]:
        """Look at ``LATEST`` now; load, check and swap in what changed. Returns one line per
        change or refusal (empty when nothing changed). Never raises for a bad artifact: it is
        refused and the old model keeps serving. A store that cannot be read while a model is
        checked refuses nothing: the model is tried again on the next look."""
        with self._lock:
            self.last_check = dt.datetime.now(dt.UTC)
            targets = self._targets()
            old = self._set
            if targets == old.stamps:
                return []
            events: list[str] = []
            stamps = dict(old.stamps)
            similar = old.similar
            want = targets[PROFILE_KIND]
            if want != old.stamps.get(PROFILE_KIND) and want[0] is not None and not self._is_refused(PROFILE_KIND, want):
                try:
                    similar = self._load_similar(want[0])
                    stamps[PROFILE_KIND] = want
                    self._refused.pop(PROFILE_KIND, None)
                    events.append(f"serving siamese model {want[0]}")
                except Exception as exc:  # noqa: BLE001 - any failure refuses the artifact, never the server
                    events.append(self._refuse(PROFILE_KIND, want, exc))
                    similar = old.similar
            rec = old.recommender
            want = targets[LINK_KIND]
            if want != old.stamps.get(LINK_KIND) and want[0] is not None and not self._is_refused(LINK_KIND, want):
                try:
                    rec = self._load_recommender(want[0], similar)
                    stamps[LINK_KIND] = want
                    self._refused.pop(LINK_KIND, None)
                    events.append(f"serving linkpred model {want[0]}")
                except Exception as exc:  # noqa: BLE001
                    events.append(self._refuse(LINK_KIND, want, exc))
                    rec = old.recommender
            if rec is not None and rec is old.recommender and similar is not rec.profile_model:
                rec = self._with_profile_model(rec, similar)  # the same link model with the new Siamese one
            if rec is not old.recommender or similar is not old.similar:
                self._set = ServedSet(rec, similar, stamps)  # the swap: one reference assignment
            else:
                self._set = ServedSet(old.recommender, old.similar, stamps, old.loaded_at)
            for line in events:
                level = logging.ERROR if line.startswith("refused") else logging.WARNING if line.startswith("could not") else logging.INFO
                if level != logging.WARNING or line not in self._warned:  # a store outage is logged once per version
                    log.log(level, "%s", line)
                self._warned = {line} if level == logging.WARNING else set()
            if events and self.on_change is not None:
                self.on_change(self.status()["served"])
            return events

    def _is_refused(self, kind: str, stamp: tuple[str | None, int]) -> bool:
        refused = self._refused.get(kind)
        return refused is not None and refused.stamp == stamp

    def _refuse(self, kind: str, stamp: tuple[str | None, int], exc: BaseException) -> str:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        version = str(stamp[0])
        if is_store_error(exc):  # the store, not the artifact: try the same version again next time
            return f"could not check {kind} model {version} ({reason}): the store is not answering; trying again"
        self._refused[kind] = Refusal(kind, version, reason, dt.datetime.now(dt.UTC), stamp)
        return f"refused {kind} model {version}: {reason}; still serving {self._set.version(kind) or 'nothing'}"

    def _load_similar(self, version: str) -> SimilarUsers:
        svc = SimilarUsers(self.store, version=version)
        if svc.index.size == 0:
            raise StoreStateError("its index holds no users")
        return svc

    def _load_recommender(self, version: str, similar: SimilarUsers | None) -> Recommender:
        rec = Recommender(self.store, version=version, bot_threshold=None, profile_model=similar, load_profile_model=False)
        self._probe(rec)
        return rec

    @staticmethod
    def _probe(rec: Recommender) -> None:
        """One real request on the new model before it serves: a model whose arrays load but
        do not work together fails here, not on a user's request. A probe user deleted since
        training is no failure."""
        for ext in rec.ids[:3]:
            try:
                rec.recommend_filtered(ext, 5)
                return
            except NotFoundError:
                continue

    @staticmethod
    def _with_profile_model(rec: Recommender, similar: SimilarUsers | None) -> Recommender:
        """The loaded link model with another Siamese service (a copy; nothing reloaded)."""
        other = rec.with_bot_threshold(rec.bot_threshold)
        other.profile_model = similar
        other.read_width = max(other.model.profile_dim, 0 if similar is None else similar.width)
        return other

    # -- the watcher ------------------------------------------------------------------------
    def start(self) -> None:
        """Load what ``LATEST`` names now, then watch it from a daemon thread. A server's
        numerics run single-threaded per request (FAISS and BLAS): its requests are small and
        many run at once."""
        from graphrec.core.index import single_threaded_search
        from graphrec.serving.recommend import single_threaded_blas

        single_threaded_search()
        single_threaded_blas()
        self.refresh()
        if self._thread is None and self.interval > 0:
            self._thread = threading.Thread(target=self._watch, name="graphrec-model-watcher", daemon=True)
            self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.refresh()
            except Exception:  # noqa: BLE001 - the watcher must outlive a bad moment (a store hiccup)
                log.exception("model watcher: refresh failed; retrying in %.1f s", self.interval)

    def stop(self) -> None:
        """Stop the watcher (the loaded models stay)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def status(self) -> dict[str, Any]:
        """``{"served": {kind: version or None}, "latest": {kind: version or None}, "refused":
        [...], "loaded_at", "last_check"}``: what this process serves beside what ``LATEST``
        names, and any version it refused."""
        current = self._set
        return {
            "served": {kind: current.version(kind) for kind in SERVED_KINDS},
            "latest": {kind: artifacts.latest_version(self.home, kind) for kind in SERVED_KINDS},
            "refused": [r.as_dict() for r in list(self._refused.values())],
            "loaded_at": current.loaded_at.isoformat(),
            "last_check": self.last_check.isoformat() if self.last_check else None,
        }


def served_recommendations(served: ServedModels, user: str, *, k: int = 20, bot_threshold: float | str | None = "flagged") -> Recommendation:
    """``GET /v1/users/{id}/recommendations``: :func:`~graphrec.serving.recommend.recommend_user`
    from the loaded models (the same suggestions, filters, reasons and freshness), with the bot
    filter of this request."""
    return served.recommender().with_bot_threshold(bot_threshold).recommendation(str(user).strip(), k)


def served_batch(served: ServedModels, users: list[str], *, k: int = 20, bot_threshold: float | str | None = "flagged") -> dict[str, Any]:
    """``POST /v1/recommendations``: one result per user, in order, from one loaded set (the
    whole batch is served by the same model versions): ``{"model", "bot_filter", "results":
    [{"user", "recommendations", "filtered", "error"}]}``, ``error`` None for a served user, and
    ``recommendations`` and ``filtered`` None for a user who could not be served (unknown or
    deleted: the others are still served)."""
    from graphrec.errors import GraphrecError

    rec = served.recommender().with_bot_threshold(bot_threshold)
    results: list[dict[str, Any]] = []
    for user in users:
        try:
            suggestions, removed = rec.recommend_filtered(user, k)
            results.append({"user": user, "recommendations": [s.as_dict() for s in suggestions], "filtered": removed, "error": None})
        except GraphrecError as exc:
            results.append({"user": user, "recommendations": None, "filtered": None, "error": str(exc)})
    return {"model": rec.version, "bot_filter": rec.bot_filter_description(), "results": results}


def served_similar(served: ServedModels, user: str, *, k: int = 10) -> dict[str, Any]:
    """``GET /v1/users/{id}/similar``: :func:`~graphrec.serving.similar.find_similar` from the
    loaded Siamese model."""
    return served.similar_users().answer(user, k)
