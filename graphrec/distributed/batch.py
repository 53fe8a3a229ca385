"""Batch recommendations and the Siamese index sync on Ray (``--engine ray``, issue 17).

**Batch recommendations** (``graphrec recommend --users-file --engine ray``,
:func:`recommend_batch_ray`): the users file is cut into chunks of consecutive lines, and a pool
of ``workers`` Ray actors (:class:`BatchWorker`) maps them: each actor opens the store itself from
its URL and loads one :class:`~graphrec.serving.recommend.Recommender` once, in its constructor,
then turns every chunk into its JSON lines with the same function the local path uses
(:func:`~graphrec.serving.recommend.batch_line`). The driver writes the lines in users-file order
through the same atomic writer (:func:`~graphrec.serving.recommend.write_batch`), so the output
is byte-identical to the local engine's: same lines, same order, same error lines, same
all-or-nothing replacement of ``--output``.

Why Ray core actors (:class:`ray.util.ActorPool`) and not Ray Data ``map_batches``: the pool's
``map`` returns the chunks in submission order at no cost (only the finished-early chunks wait
in the object store), a model that cannot be loaded is one error raised by the first actor before
any chunk is sent (Ray Data wraps it in its own exceptions after starting the whole pipeline),
and the driver asks one actor for the bot filter's description and the models' freshness, so the
batch report is the local one. Measured on 2026-11-30 (2 cores shared with other jobs, load
average 2.7 to 7.9; ego-Facebook, 200 users, k = 10, 2 workers, a warm local Ray cluster, every
output byte-identical to the local one; three runs, the first local time not kept): local 2.1
and 4.1 s, actor pool 3.7 to 7.8 s (about 2 s of it the actors loading the models), Ray Data
``map_batches`` with an actor pool and ``preserve_order`` 9.7 to 12.6 s (its streaming
executor's start and scheduling).

What each worker holds: the served link model, which is the whole trained graph (CSR, node
embeddings, the FAISS index over them, for personalized PageRank and friends-of-friends), and the
served Siamese model with its index. The work is split by users, not by graph: ``workers`` actors
hold ``workers`` copies of the model. That is the price of exact answers without a partitioned
recommender; the store reads (live friends, filters) are each worker's own.

The versions are pinned in the driver (``LATEST`` of the link and Siamese models, read once), so
a model promoted while the actors start cannot give one batch two models. A worker killed in the
middle is restarted by Ray and its chunk retried (``max_restarts``/``max_task_retries``): a
chunk's lines depend only on the store and the models, so a retry writes the same lines.

**Index sync** (``graphrec index sync --engine ray``, :func:`build_index_ray`): the per-row work
of a sync is encoding the changed users' profiles. The driver reads the changed users once (the
same consistent read as the local sync), the rows are cut into partitions and each partition is
embedded by a Ray task holding the numpy encoder (put in the object store once); the vectors come
back in row order and are upserted into the FAISS index in the driver, which then saves it
exactly as the local sync does. The driver holds the changed users' profiles and the index.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from graphrec.config import Settings
from graphrec.distributed.engine import RayOptions, ray_session, require_ray
from graphrec.errors import GraphrecError, InputError

if TYPE_CHECKING:  # pragma: no cover
    from graphrec.serving.freshness import Freshness
    from graphrec.serving.recommend import BatchReport, Recommender
    from graphrec.store.store import GraphStore
    from graphrec.tasks.siamese.model import NumpyEncoder

log = logging.getLogger(__name__)

#: users per chunk of a batch (one actor call): large enough that a call's overhead (~1 ms) is
#: small beside its users (~10 ms each), small enough that a few chunks per worker balance the load
CHUNK_USERS = 128
#: profile rows per embedding task of an index sync (rows x width float32 per task)
EMBED_ROWS = 50_000
#: how often Ray restarts a killed actor and retries its call
RETRIES = 2


def portable_settings(settings: Settings) -> Settings:
    """``settings`` with absolute paths (a SQLite file, the home folder): a Ray worker does not
    necessarily run in the driver's working directory. An in-memory SQLite store cannot be
    opened by another process: :class:`InputError`."""
    from sqlalchemy.engine import make_url

    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        if url.database in (None, "", ":memory:") or url.query.get("mode") == "memory":
            raise InputError("the ray engine needs a store its workers can open: a SQLite file or PostgreSQL, not an in-memory database")
        if not url.query.get("uri") and not url.database.startswith("file:"):
            url = url.set(database=str(Path(url.database).expanduser().resolve()))
    return Settings(url.render_as_string(hide_password=False), settings.home.expanduser().resolve())


def _raise_cause(ray: Any, exc: BaseException) -> None:
    """Re-raise graphrec's own error behind a Ray task error (the message the local path gives),
    else nothing (the caller re-raises ``exc``)."""
    cause = getattr(exc, "cause", None) if isinstance(exc, ray.exceptions.RayTaskError) else None
    if isinstance(cause, GraphrecError):
        raise cause from None


class BatchWorker:
    """One Ray actor of a batch: opens the store from ``settings`` and loads the link model
    ``version`` (the Siamese model ``profile_version``, when one is served) once. A load error is
    kept and raised by every call, so the driver sees it as the local path would."""

    def __init__(self, settings: Settings, version: str | None, profile_version: str | None,
                 bot_threshold: float | str | None) -> None:
        from graphrec.serving.recommend import Recommender
        from graphrec.serving.similar import SimilarUsers
        from graphrec.store.store import GraphStore

        self.error: Exception | None = None
        self.rec: Recommender | None = None
        try:
            store = GraphStore(settings=settings)
            profile = SimilarUsers(store, version=profile_version) if profile_version is not None else None
            self.rec = Recommender(store, version=version, bot_threshold=bot_threshold, profile_model=profile, load_profile_model=False)
        except Exception as exc:  # raised again by the first call, in the driver
            self.error = exc

    def _loaded(self) -> "Recommender":
        if self.error is not None:
            raise self.error
        assert self.rec is not None
        return self.rec

    def describe(self) -> tuple[str, str]:
        """(link model version, description of the bot filter), read once for the whole batch."""
        rec = self._loaded()
        return rec.version, rec.bot_filter_description()

    def lines(self, chunk: list[tuple[int, str]], k: int, bot_filter: str) -> list[tuple[str, dict[str, int] | None]]:
        """The batch lines of ``chunk`` ((line number, user) pairs), in order."""
        from graphrec.serving.recommend import batch_line

        rec = self._loaded()
        return [batch_line(rec, lineno, user, k, bot_filter) for lineno, user in chunk]

    def freshness(self) -> list["Freshness"]:
        """The served models' revisions against the store's now (the batch report's)."""
        from graphrec.serving.recommend import recommender_freshness

        return recommender_freshness(self._loaded())


def _chunks(users: list[tuple[int, str]], workers: int) -> list[list[tuple[int, str]]]:
    """Consecutive chunks of at most :data:`CHUNK_USERS`, at least ``4 * workers`` of them when
    there are enough users (so a slow chunk does not leave the other workers idle)."""
    size = max(1, min(CHUNK_USERS, -(-len(users) // (4 * workers))))
    return [users[i : i + size] for i in range(0, len(users), size)]


def _actor_cpus(ray: Any, workers: int) -> float:
    """CPUs each actor asks for: one, or a share when there are more workers than CPUs (so
    ``--workers`` beyond the cluster's CPUs still start instead of waiting forever)."""
    cpus = float(ray.cluster_resources().get("CPU", 1.0))
    return min(1.0, cpus / workers)


def recommend_batch_ray(
    settings: Settings,
    users: list[tuple[int, str]],
    output: Path,
    *,
    k: int,
    bot_threshold: float | str | None,
    version: str | None,
    options: RayOptions | None = None,
) -> "BatchReport":
    """:func:`~graphrec.serving.recommend.recommend_batch` on Ray: ``users`` ((line number,
    external id) pairs of the users file, already read and checked) mapped over a pool of
    ``options.workers`` :class:`BatchWorker` actors; the same ``output`` (byte for byte, written
    atomically) and the same :class:`~graphrec.serving.recommend.BatchReport`."""
    from ray.util import ActorPool

    from graphrec import artifacts
    from graphrec.serving.recommend import BatchReport, write_batch
    from graphrec.tasks.linkpred.model import KIND as LINK_KIND
    from graphrec.tasks.siamese.model import KIND as SIAMESE_KIND

    options = options or RayOptions()
    settings = portable_settings(settings)
    version = version or artifacts.latest_version(settings.home, LINK_KIND)  # None: the worker says "train one first"
    profile_version = artifacts.latest_version(settings.home, SIAMESE_KIND)
    with ray_session(options) as ray:
        actor = ray.remote(num_cpus=_actor_cpus(ray, options.workers), max_restarts=RETRIES, max_task_retries=RETRIES)(BatchWorker)
        actors = [actor.remote(settings, version, profile_version, bot_threshold) for _ in range(options.workers)]
        try:
            served, bot_filter = ray.get(actors[0].describe.remote())
            pool = ActorPool(actors)
            chunks = pool.map(lambda a, chunk: a.lines.remote(chunk, k, bot_filter), _chunks(users, options.workers))

            def lines() -> Iterator[tuple[str, dict[str, int] | None]]:
                for chunk in chunks:
                    yield from chunk

            total, failed = write_batch(output, lines(), len(users))
            freshness = ray.get(actors[0].freshness.remote())
        except Exception as exc:
            _raise_cause(ray, exc)
            raise
        finally:
            for a in actors:
                ray.kill(a)
    log.info("batch of %d users on %d ray workers", len(users), options.workers)
    return BatchReport(len(users), failed, output, served, total, bot_filter, freshness)


def embed_rows(encoder: "NumpyEncoder", features: np.ndarray) -> np.ndarray:
    """One partition's embeddings (the Ray task of an index sync)."""
    from graphrec.serving.recommend import single_threaded_blas

    single_threaded_blas()
    return encoder(features)


def build_index_ray(store: "GraphStore", *, version: str | None = None, options: RayOptions | None = None) -> dict[str, Any]:
    """:func:`~graphrec.serving.similar.sync_index` on Ray: the changed users' profiles are
    embedded by Ray tasks, ``options.workers`` or more partitions of at most
    :data:`EMBED_ROWS` rows, and upserted into the index in the driver; the same index contents
    (keys, labels, vectors) and the same report as the local sync. Ray is started only when
    some user changed."""
    from graphrec.serving.similar import SimilarUsers

    require_ray()  # a missing Ray is an error even when nothing changed
    options = options or RayOptions()
    svc = SimilarUsers(store, version=version)

    def embed(features: np.ndarray) -> np.ndarray:
        # Ray starts only when some user changed: a sync with nothing to embed stays in-process
        with ray_session(options) as ray:
            task = ray.remote(num_cpus=_actor_cpus(ray, options.workers), max_retries=RETRIES)(embed_rows)
            encoder = ray.put(svc.encoder)
            parts = min(len(features), max(options.workers, -(-len(features) // EMBED_ROWS)))
            refs = [task.remote(encoder, part) for part in np.array_split(features, parts)]
            try:
                out: list[np.ndarray] = ray.get(refs)
            except Exception as exc:
                _raise_cause(ray, exc)
                raise
        return np.concatenate(out).astype(np.float32, copy=False)

    result = svc.sync(embed=embed)
    return {"model_version": svc.version, **result}
