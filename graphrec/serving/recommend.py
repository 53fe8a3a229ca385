"""Friend recommendations: candidates -> rank -> filter -> explain.

Serving path (numpy, FAISS and small SQL reads; no torch, no torch_geometric):

1. **Candidates**: friends-of-friends of the user's *live* friends (read from the store, so the
   user's own friendships made after training count at once) over the trained graph, plus the nearest users
   in GNN-embedding space from the FAISS index (so users with few friends still get candidates).
2. **Rank** with the trained link ranker (:class:`~graphrec.tasks.linkpred.model.LinkModel`),
   whose pair features include the user's personalized PageRank (truncated power iteration over
   the trained graph, per request), then merge into the PPR ranking of everyone the user's walks
   reach (:meth:`~graphrec.tasks.linkpred.model.LinkModel.ppr_merge`): non-candidates keep
   their PPR positions, so a user with few friends-of-friends still gets ``k`` suggestions. This
   is the list the evaluation measures.
3. **Filter**: the user, current friends, users blocked either way, deleted and synthetic users,
   and accounts whose latest bot score is above ``bot_threshold``.
   Users the requester unfriended since training are never suggested back.
4. **Explain**: live mutual friends (count and a few ids, read from the store), embedding and
   profile similarity.

A user who is not in the trained model (signed up since training) is served from the live
friends if any (friends-of-friends over the trained graph). A user with no friends at all is
served by the Siamese profile model when one is trained (:mod:`graphrec.serving.similar`: learned
profile similarity from its FAISS index), else by raw profile similarity. When a Siamese model
exists, its nearest profiles also join the candidates of every user.

The two models may have been trained on different numbers of feature columns (``import users``
adds columns between trainings). Feature columns are only ever appended, so each model reads the
user's current profile at its *own* width: the first ``d`` columns, zero-padded when the model is
wider than the stored profile (:func:`graphrec.core.graph.profile_at_width`).

:func:`recommend_user` is ``graphrec recommend --user``, :func:`recommend_batch` its batch mode
(``--users-file``: one JSON line per user, written atomically).
"""

from __future__ import annotations

import copy
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from graphrec.core.graph import profile_at_width
from graphrec.errors import GraphrecError, InputError, NotFoundError
from graphrec.serving.freshness import Freshness, model_revision, of_model
from graphrec.store.store import id_sort_key
from graphrec.serving.similar import FILTERS, SimilarUsers, exclusion_reasons, optional_similar_users
from graphrec.tasks.linkpred.model import LinkModel

if TYPE_CHECKING:  # pragma: no cover
    from graphrec.core.index import EmbeddingIndex
    from graphrec.distributed.engine import RayOptions
    from graphrec.store.store import GraphStore
    from graphrec.tasks.linkpred.features import Candidates
    from graphrec.tasks.linkpred.scorer import RankerWeights

log = logging.getLogger(__name__)

#: Default bot filter: the users the latest complete bot-scoring run flagged (its model's threshold).
DEFAULT_BOT_THRESHOLD = "flagged"
#: How long the bot filter's description may reuse the latest bot run it read (seconds).
BOT_RUN_CACHE_SECONDS = 1.0
#: The scoring-run kind whose scores the bot filter reads (the bot task's model kind).
BOT_SCORE_KIND = "bot"


@dataclass
class Suggestion:
    """One recommended friend."""

    user: str
    score: float
    mutual_friends: int
    reasons: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"user": self.user, "score": self.score, "mutual_friends": self.mutual_friends, "reasons": list(self.reasons)}


class Recommender:
    """Loads the served link-prediction model once; answers many requests (thread-safe reads).

    Args:
        store: the live :class:`~graphrec.store.store.GraphStore` (filters and live friendships).
        version: model version to load (default: the one ``LATEST`` points at).
        bot_threshold: ``"flagged"`` drops the users the latest bot-scoring run flagged; a number
            drops those whose latest bot score is above it; None keeps all.
        embedding_candidates: how many FAISS neighbours join the friends-of-friends.
        profile_candidates: how many Siamese-profile neighbours join them (0: do not use the
            Siamese model even where one is trained).
        profile_model: an already loaded Siamese service to use, so a long-running server loads
            each model once; with ``load_profile_model=False`` exactly this one (None: none),
            else None loads the served one, if any.
    """

    def __init__(self, store: "GraphStore", *, version: str | None = None, bot_threshold: float | str | None = DEFAULT_BOT_THRESHOLD,
                 embedding_candidates: int = 50, profile_candidates: int = 20, profile_model: SimilarUsers | None = None,
                 load_profile_model: bool = True) -> None:
        self.store = store
        self.model = LinkModel.load(store.settings.home, version)
        self.version: str = self.model.version or ""
        self.bot_threshold = bot_threshold
        self.embedding_candidates = embedding_candidates
        if not profile_candidates:
            profile_model = None
        elif profile_model is None and load_profile_model:
            profile_model = optional_similar_users(store)
        self.profile_model: SimilarUsers | None = profile_model
        #: caches shared by the copies :meth:`with_bot_threshold` makes (computed once per loaded model)
        self._shared: dict[str, Any] = {}
        self.profile_candidates = profile_candidates
        #: the profile width read from the store: the wider of the two models' (each takes its own)
        self.read_width = max(self.model.profile_dim, self._profile_model_width())
        single_threaded_blas()
        log.info("recommender serving linkpred model %s%s", self.version,
                 f" with siamese model {self.profile_model.version}" if self.profile_model is not None else "")

    # -- what the model holds, under the names callers use ------------------------------------
    @property
    def ids(self) -> list[str]:
        """External ids of the trained graph's users, in node order."""
        return self.model.ids

    @property
    def weights(self) -> "RankerWeights":
        """The numpy ranker (:class:`~graphrec.tasks.linkpred.scorer.RankerWeights`)."""
        return self.model.weights

    @property
    def index(self) -> "EmbeddingIndex | None":
        """The FAISS index over the GNN embeddings (:class:`~graphrec.core.index.EmbeddingIndex`), or None."""
        return self.model.index

    def _profile_model_width(self) -> int:
        return 0 if self.profile_model is None else self.profile_model.width

    def _profile_embedding(self, features: np.ndarray) -> np.ndarray:
        """The Siamese embedding of a profile, read at the Siamese model's own width."""
        assert self.profile_model is not None
        return self.profile_model.encoder(profile_at_width(features, self._profile_model_width()))[0]

    def _bot_filter(self) -> dict[str, Any]:
        """The store's score filter for ``bot_threshold``: the latest bot-scoring run's flags or score."""
        if self.bot_threshold is None:
            return {}
        return {"score_kind": BOT_SCORE_KIND, "score_threshold": self.bot_threshold}

    def with_bot_threshold(self, bot_threshold: float | str | None) -> "Recommender":
        """The same loaded models with another bot filter (a shallow copy: no model is loaded
        again), for a server whose requests each choose their threshold."""
        other = copy.copy(self)
        other.bot_threshold = bot_threshold
        return other

    def recommend(self, user: str | int, k: int = 20) -> list[Suggestion]:
        """Top ``k`` friend suggestions for ``user`` (an external id), best first."""
        return self.recommend_filtered(user, k)[0]

    def bot_filter_description(self) -> str:
        """What the bot filter drops, for people: ``off``, ``score above 0.9`` or ``flagged by bot
        run 7 (threshold 0.7312)`` (``no complete bot run yet`` when there is nothing to read)."""
        if self.bot_threshold is None:
            return "off"
        if self.bot_threshold != DEFAULT_BOT_THRESHOLD:
            return f"bot score above {float(self.bot_threshold):.4g}"
        run = self._latest_bot_run()
        if run is None:
            return "flagged accounts (no complete bot run yet: nothing dropped)"
        threshold = "" if run.threshold is None else f" (threshold {run.threshold:.4g})"
        return f"flagged by bot run {run.id} of {run.run_date.isoformat()}{threshold}"

    def _latest_bot_run(self) -> Any:
        """The latest complete bot run, for the description only, read at most once a second
        (a server answers hundreds of requests a second; a run is published once a night). The
        filter itself never uses this: it reads the latest run in the same SQL as the candidates."""
        now = time.monotonic()
        cached = self._shared.get("bot_run")
        if cached is not None and now - cached[0] < BOT_RUN_CACHE_SECONDS:
            return cached[1]
        run = self.store.latest_run(BOT_SCORE_KIND)
        self._shared["bot_run"] = (now, run)
        return run

    @property
    def _node_rank(self) -> np.ndarray:
        """``rank[node]``: the node's position among the model's ids in :func:`sorted_ids` order
        (numeric ids numerically), so a mutual-friend list is sorted with one numpy sort."""
        if "node_rank" in self._shared:
            return self._shared["node_rank"]
        ids = self.model.ids
        try:
            values = np.array([int(x) for x in ids], dtype=np.int64) if all(x.isascii() and x.lstrip("+-").isdigit() for x in ids) else None
        except OverflowError:
            values = None
        order = np.argsort(values, kind="stable") if values is not None else np.array(
            sorted(range(len(ids)), key=lambda i: id_sort_key(ids[i])), dtype=np.int64)
        rank = np.empty(len(ids), dtype=np.int64)
        rank[order] = np.arange(len(ids))
        self._shared["node_rank"] = rank
        return rank

    def _sorted_names(self, nodes: np.ndarray) -> list[str]:
        """External ids of ``nodes`` in :func:`sorted_ids` order."""
        ids = self.model.ids
        return [ids[v] for v in nodes[np.argsort(self._node_rank[nodes], kind="stable")].tolist()]

    def recommend_filtered(self, user: str | int, k: int = 20) -> tuple[list[Suggestion], dict[str, int]]:
        """:meth:`recommend`, and how many candidates each filter removed (:data:`FILTERS`, in
        that order): ``self``, ``friends`` (current friends) and ``unfriended`` (friends in the
        trained graph no longer friends) count what was left out of the ranked pool; ``blocked``,
        ``deleted`` (deleted or unknown to the store), ``synthetic`` and ``bots`` (the bot filter,
        :meth:`bot_filter_description`) count the ranked candidates dropped on the way to the
        ``k`` kept. A wall of ``bots`` is the sign of a bad bot model or threshold."""
        suggestions, removed, _ = self.recommend_at_revision(user, k)
        return suggestions, removed

    def recommendation(self, user: str | int, k: int = 20) -> "Recommendation":
        """``user``'s suggestions with what each filter removed, the bot filter and the served
        models' freshness against the store revision the request itself read (no second read)."""
        suggestions, removed, revision = self.recommend_at_revision(user, k)
        return Recommendation(str(user), suggestions, self.version, removed, self.bot_filter_description(),
                              recommender_freshness(self, revision))

    def recommend_at_revision(self, user: str | int, k: int = 20) -> tuple[list[Suggestion], dict[str, int], int]:
        """:meth:`recommend_filtered`, and the store revision the request read (for freshness,
        without another read of the store)."""
        suggestions, removed, seen = self.recommend_traced(user, k)
        return suggestions, removed, seen["revision"]

    def recommend_traced(self, user: str | int, k: int = 20) -> tuple[list[Suggestion], dict[str, int], dict[str, int]]:
        """:meth:`recommend_filtered`, and what the request saw: ``revision`` (the store revision it
        read) and ``candidates`` (how many users the link model ranked for it, before any filter
        and PageRank back-fill; 0 for a cold-start answer from the profile model)."""
        if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
            raise InputError(f"k must be a positive integer, got {k!r}")
        removed = dict.fromkeys(FILTERS, 0)
        seen: dict[str, int] = {"candidates": 0}
        return self._recommend(user, k, removed, seen), removed, seen

    def _recommend(self, user: str | int, k: int, removed: dict[str, int], seen: dict[str, int] | None = None) -> list[Suggestion]:
        model = self.model
        ext = str(user).strip()
        ctx = self.store.serving_context(ext, feature_dim=self.read_width)  # NotFoundError if unknown or deleted
        if seen is not None:
            seen["revision"] = int(ctx["revision"])
        u = model.node(ext)
        pos = model.position
        friends = np.array(sorted(pos[f] for f in ctx["friends"] if f in pos), dtype=np.int64)
        if not ctx["friends"] and self.profile_model is not None:
            return self._cold_start(ext, ctx, k, removed)
        profile = profile_at_width(ctx["features"], model.profile_dim) if u < 0 and model.profile_dim else None
        extra = model.embedding_neighbours(u, friends, profile, self.embedding_candidates)
        if self.profile_model is not None:
            z = self._profile_embedding(ctx["features"])
            near = [pos[e] for e, _ in self.profile_model.index.nearest(z, self.profile_candidates, exclude={ext}) if e in pos]
            extra = np.unique(np.concatenate([extra if extra is not None else np.empty(0, np.int64), np.asarray(near, dtype=np.int64)]))
        ppr = model.ppr(u, friends)
        cands = model.candidates(u, friends=friends, extra=extra, profile=profile, ppr=ppr)
        if seen is not None:
            seen["candidates"] = int(cands.nodes.size)
        emb_u = model.user_embedding(u, friends)
        scores = model.score(cands, emb_u) if cands.nodes.size else np.empty(0)
        # Friends in the trained graph who are no longer friends were unfriended since
        # training: never suggest them back.
        gone = np.setdiff1d(model.neighbors(u), friends) if u >= 0 else np.empty(0, dtype=np.int64)
        order = np.argsort(-scores, kind="stable")
        # The model's candidates in its order, in the positions personalized PageRank gives them
        # among everyone the user's walks reach: the rest fill up the list in PPR order.
        sequence = model.ppr_merge(cands.nodes[order], ppr, np.concatenate([[u] if u >= 0 else [], friends, gone]).astype(np.int64))
        blocked = set(ctx["blocked"])
        friend_ids = set(ctx["friends"])
        # What ppr_merge left out of the ranked pool (everyone the user's walks reach, and the
        # model's candidates): the user, current friends, friends unfriended since training.
        in_pool = ppr > 0
        in_pool[cands.nodes] = True
        removed["self"] += int(u >= 0 and bool(in_pool[u]))
        removed["friends"] += int(in_pool[friends].sum())
        removed["unfriended"] += int(in_pool[gone].sum())
        chosen: list[int] = []
        start = 0
        while len(chosen) < k and start < sequence.size:
            window = sequence[start : start + max(3 * k, 50)]
            start += window.size
            names = [model.ids[v] for v in window.tolist()]
            open_names = [n for n in names if n not in blocked and n not in friend_ids and n != ext]
            excluded = exclusion_reasons(self.store, open_names, **self._bot_filter())
            for v, name in zip(window.tolist(), names):
                why = ("self" if name == ext else "blocked" if name in blocked else "friends" if name in friend_ids
                       else excluded.get(name))
                if why is not None:
                    removed[why] += 1
                    continue
                chosen.append(v)
                if len(chosen) == k:
                    break
        backfill = np.setdiff1d(np.asarray(chosen, dtype=np.int64), cands.nodes)
        if backfill.size:  # PPR-ranked picks: featurised and scored for their explanation and score
            more = backfill if extra is None else np.concatenate([extra, backfill])
            cands = model.candidates(u, friends=friends, extra=more, profile=profile, ppr=ppr)
            scores = model.score(cands, emb_u)
        where = {int(v): i for i, v in enumerate(cands.nodes.tolist())}
        picked = [where[v] for v in chosen]
        names = [model.ids[cands.nodes[i]] for i in picked]
        if ctx["revision"] == model.data.get("revision"):
            # The store has not changed since training: the trained graph is the live graph.
            mutual = {n: self._sorted_names(np.intersect1d(friends, model.neighbors(int(cands.nodes[i])), assume_unique=True))
                      for i, n in zip(picked, names)}
        else:
            mutual = self.store.mutual_friends_with(ext, names)  # live, not as of training
        return [self._explain(cands, i, name, float(scores[i]), emb_u, mutual[name]) for i, name in zip(picked, names)]

    def _cold_start(self, ext: str, ctx: dict[str, Any], k: int, removed: dict[str, int]) -> list[Suggestion]:
        """A user with no friends: the users with the most similar learned profile embedding."""
        assert self.profile_model is not None
        z = self._profile_embedding(ctx["features"])
        out = self.profile_model.nearest(z, k, exclude={ext} | set(ctx["blocked"]), removed=removed, **self._bot_filter())
        return [Suggestion(user=e, score=round(s, 4), mutual_friends=0, reasons=[f"similar profile (learned similarity {s:.2f})"]) for e, s in out]

    def _explain(self, cands: "Candidates", i: int, name: str, score: float, emb_u: np.ndarray | None, mutual: list[str]) -> Suggestion:
        reasons = []
        if mutual:
            sample = ", ".join(mutual[:3])
            reasons.append(f"{len(mutual)} mutual friend{'s' if len(mutual) != 1 else ''} ({sample}{', ...' if len(mutual) > 3 else ''})")
        reasons += self.model.reasons(cands, i, emb_u)
        if not reasons:
            reasons.append("suggested by the link model")
        return Suggestion(user=name, score=round(score, 4), mutual_friends=len(mutual), reasons=reasons)


@dataclass
class Recommendation:
    """One user's suggestions (best first), the link model version that ranked them, how many
    candidates each filter removed (``filtered``, see :meth:`Recommender.recommend_filtered`),
    what the bot filter was (``bot_filter``), and whether the model is older than the store
    (``freshness``; None in batch lines, where the batch report carries it)."""

    user: str
    suggestions: list[Suggestion]
    model: str
    filtered: dict[str, int] = field(default_factory=dict)
    bot_filter: str = ""
    freshness: list[Freshness] | None = None

    def as_dict(self) -> dict[str, Any]:
        """``{"user", "recommendations": [{"user", "score", "mutual_friends", "reasons"}, ...],
        "model", "filtered": {filter: count}, "bot_filter"}``: each line of a batch."""
        return {"user": self.user, "recommendations": [s.as_dict() for s in self.suggestions], "model": self.model,
                "filtered": dict(self.filtered), "bot_filter": self.bot_filter}

    def summary(self) -> dict[str, Any]:
        """What ``graphrec recommend USER --format json`` prints: :meth:`as_dict` and
        ``"freshness"``, the served models' store revisions against the store's."""
        return {**self.as_dict(), "freshness": [f.as_dict() for f in self.freshness or []]}

    def filter_summary(self) -> str:
        """One line for people: ``filtered out: 1 self, 12 friends, 3 bots; bot filter: flagged by
        bot run 2 of 2026-11-30 (threshold 0.7312)``; filters that removed nothing are left out."""
        parts = [f"{n} {name}" for name, n in self.filtered.items() if n]
        return f"filtered out: {', '.join(parts) or 'nothing'}; bot filter: {self.bot_filter or 'off'}"


def recommender_freshness(rec: Recommender, current: int | None = None) -> list[Freshness]:
    """The served models' training revisions (the link model's, and the Siamese model's when it
    joins the candidates) against the store's current one (``current``: already read)."""
    if current is None:
        current = rec.store.revision()
    out = [of_model(rec.model.kind, rec.version, _revision(rec.model.data), current)]
    if rec.profile_model is not None:
        out.append(of_model(rec.profile_model.model.kind, rec.profile_model.version, model_revision(rec.profile_model.manifest), current))
    return out


def _revision(data: dict[str, Any]) -> int | None:
    return model_revision({"data": data})


def recommend_user(
    store: "GraphStore",
    user: str,
    *,
    k: int = 20,
    bot_threshold: float | str | None = DEFAULT_BOT_THRESHOLD,
    version: str | None = None,
) -> Recommendation:
    """``graphrec recommend --user``: the top ``k`` friend suggestions for ``user`` (an external
    id) from a :class:`Recommender` over the served (or given) link model, filtered by
    ``bot_threshold`` (see :class:`Recommender`), with what each filter removed and the model's
    freshness. :class:`~graphrec.errors.NotFoundError` for an unknown or deleted user."""
    return Recommender(store, version=version, bot_threshold=bot_threshold).recommendation(user, k)


@dataclass
class BatchReport:
    """What :func:`recommend_batch` did: ``users`` requested, ``failed`` of them (unknown or
    deleted users: their lines in ``output`` carry ``error`` and ``line``), served by model
    ``model``, the candidates each filter removed over the whole batch (``filtered``), the bot
    filter, and the model's ``freshness``."""

    users: int
    failed: int
    output: Path
    model: str
    filtered: dict[str, int] = field(default_factory=dict)
    bot_filter: str = ""
    freshness: list[Freshness] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """``{"users", "failed", "output", "model"}``: what was served."""
        return {"users": self.users, "failed": self.failed, "output": str(self.output), "model": self.model}

    def summary(self) -> dict[str, Any]:
        """The summary ``graphrec recommend --users-file`` prints: :meth:`as_dict`, the candidates
        each filter removed over the batch, the bot filter and the model's freshness messages."""
        return {**self.as_dict(), "filtered": dict(self.filtered), "bot_filter": self.bot_filter,
                "freshness": [f.message() for f in self.freshness]}

    def check(self) -> None:
        """Raise :class:`~graphrec.errors.NotFoundError` (exit code 3) when some users failed."""
        if self.failed:
            raise NotFoundError(f"{self.failed} of {self.users} users could not be served (their lines in {self.output} say why)")


def recommend_batch(
    store: "GraphStore",
    users_file: Path,
    output: Path,
    *,
    k: int = 20,
    bot_threshold: float | str | None = DEFAULT_BOT_THRESHOLD,
    version: str | None = None,
    engine: str = "local",
    ray: "RayOptions | None" = None,
) -> BatchReport:
    """Recommend ``k`` friends to every user of ``users_file`` (one external id per line; UTF-8,
    optional BOM, blank lines skipped) with one loaded :class:`Recommender`, writing one JSON line
    per user to ``output`` atomically (nothing replaces ``output`` unless the whole batch ran):
    ``{"user", "recommendations"}``, or ``{"user", "error", "line"}`` for a user who cannot be
    served. A bad ``users_file`` is an :class:`~graphrec.errors.InputError` before any model is
    loaded. The caller decides what failures mean (:meth:`BatchReport.check`).

    ``engine="ray"`` computes the same lines, in the same order, as a Ray map stage over chunks
    of the users (:func:`graphrec.distributed.batch.recommend_batch_ray`, reached with ``ray``'s
    :class:`~graphrec.distributed.engine.RayOptions`; Ray is imported only then)."""
    from graphrec.fileio import output_target, read_id_lines

    if engine != "local":
        from graphrec.distributed.engine import check_engine

        check_engine(engine)
    users = read_id_lines(users_file)
    output_target(output)  # a bad --output (a FIFO, a device, no such folder) is refused before the model loads
    if engine == "ray":
        from graphrec.distributed.batch import recommend_batch_ray

        return recommend_batch_ray(store.settings, users, output, k=k, bot_threshold=bot_threshold, version=version, options=ray)
    rec = Recommender(store, version=version, bot_threshold=bot_threshold)
    bot_filter = rec.bot_filter_description()
    total, failed = write_batch(output, (batch_line(rec, lineno, uid, k, bot_filter) for lineno, uid in users), len(users))
    return BatchReport(len(users), failed, output, rec.version, total, bot_filter, recommender_freshness(rec))


def batch_line(rec: Recommender, lineno: int, user: str, k: int, bot_filter: str) -> tuple[str, dict[str, int] | None]:
    """One line of a batch output (JSON and its newline) for ``user``, read from line ``lineno``
    of the users file, and the candidates each filter removed; None instead of the counts when
    the user cannot be served (the line then carries ``error`` and ``line``). The one place both
    engines make a batch line, so their outputs are byte-identical."""
    try:
        suggestions, removed = rec.recommend_filtered(user, k)
    except GraphrecError as exc:
        return json.dumps({"user": user, "error": str(exc), "line": lineno}) + "\n", None
    return json.dumps(Recommendation(user, suggestions, rec.version, removed, bot_filter).as_dict()) + "\n", removed


def write_batch(output: Path, lines: Iterable[tuple[str, dict[str, int] | None]], users: int) -> tuple[dict[str, int], int]:
    """Write the :func:`batch_line` results ``lines`` (in users-file order) to ``output``
    atomically, with progress over ``users``; returns the candidates each filter removed over
    the batch and how many users failed."""
    from graphrec.fileio import atomic_output
    from graphrec.progress import track

    total = dict.fromkeys(FILTERS, 0)
    failed = 0
    with atomic_output(output) as fh:
        for line, removed in track(lines, "recommend", total=users, unit="user"):  # a bar, or a log line every 10%
            fh.write(line)
            if removed is None:
                failed += 1
                continue
            for name, n in removed.items():
                total[name] += n
    log.info("recommended to %d users (%d failed) into %s", users - failed, failed, output)
    return total, failed


def single_threaded_blas() -> None:
    """Per-request matrices are tiny: BLAS thread pools only add latency (measured 0.3 ms ->
    15 ms per request under CPU load), so the serving process runs BLAS single-threaded."""
    global _BLAS_LIMIT
    if _BLAS_LIMIT is None:
        try:
            from threadpoolctl import threadpool_limits

            _BLAS_LIMIT = threadpool_limits(limits=1, user_api="blas")
        except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
            _BLAS_LIMIT = False


_BLAS_LIMIT: Any = None
