"""Friend recommendations: candidates -> rank -> filter -> explain.

Serving path (numpy, FAISS and small SQL reads; no torch, no torch_geometric):

1. **Candidates**: friends-of-friends of the user's *live* friends (read from the store, so the
   user's own friendships made after training count at once) over the trained graph, plus the nearest users
   in GNN-embedding space from the FAISS index (so users with few friends still get candidates).
2. **Rank** with the trained link ranker (:mod:`graphrec.tasks.linkpred.scorer`).
3. **Filter**: the user, current friends, users blocked either way, deleted and synthetic users,
   and accounts whose latest bot score is above ``bot_threshold``.
   Users the requester unfriended since training are never suggested back.
4. **Explain**: live mutual friends (count and a few ids, read from the store), embedding and
   profile similarity.

A user who is not in the trained model (signed up since training) is served from the live
friends if any (friends-of-friends over the trained graph). A user with no friends at all is
served by the Siamese profile model when one is trained (:mod:`graphrec.tasks.siamese`: learned
profile similarity from its FAISS index), else by raw profile similarity. When a Siamese model
exists, its nearest profiles also join the candidates of every user.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from graphrec import artifacts
from graphrec.errors import InputError
from graphrec.tasks.linkpred.features import FEATURE_NAMES, PairFeaturizer
from graphrec.tasks.linkpred.model import IDS_FILE, INDEX_FILE, KIND
from graphrec.tasks.linkpred.profiles import ProfileMatrix
from graphrec.tasks.linkpred.scorer import RankerWeights

#: Default bot filter: the users the latest complete bot-scoring run flagged (its model's threshold).
DEFAULT_BOT_THRESHOLD = "flagged"
#: The scoring-run kind whose scores the bot filter reads (the bot task's model kind).
BOT_SCORE_KIND = "bot"
_COSINE = FEATURE_NAMES.index("cosine")


@dataclass
class Suggestion:
    """One recommended friend."""

    user: str
    score: float
    mutual_friends: int
    reasons: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


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
    """

    def __init__(self, store: Any, *, version: str | None = None, bot_threshold: float | str | None = DEFAULT_BOT_THRESHOLD, embedding_candidates: int = 50,
                 profile_candidates: int = 20) -> None:
        self.store = store
        art = artifacts.load(store.settings.home, KIND, version)
        self.version = art.version
        self.manifest = art.manifest
        a = art.arrays
        if self.manifest.get("pair_features") != list(FEATURE_NAMES):
            raise artifacts.ArtifactError(
                f"{KIND} model {art.version} was trained with other pair features than this graphrec computes: "
                "run `graphrec train linkpred` again"
            )
        try:
            self.ids: list[str] = json.loads((art.path / IDS_FILE).read_text(encoding="utf-8"))
            indptr, indices = a["graph.indptr"], a["graph.indices"]
            self.profiles = ProfileMatrix(a["profiles.indptr"], a["profiles.indices"], a["profiles.data"], int(self.manifest["profile_dim"]))
            self.weights = RankerWeights.from_arrays({k.removeprefix("ranker."): v for k, v in a.items() if k.startswith("ranker.")})
        except (OSError, ValueError, KeyError) as exc:
            raise artifacts.ArtifactError(f"{KIND} model {art.version} is incomplete or corrupt ({type(exc).__name__}: {exc})") from None
        self._pos = {ext: i for i, ext in enumerate(self.ids)}
        if indptr.size != len(self.ids) + 1:
            raise artifacts.ArtifactError(f"{KIND} model {art.version}: id list and graph disagree")
        self.featurizer = PairFeaturizer(indptr, indices, self.profiles if self.profiles.dim else None)
        self.index = None
        if (art.path / INDEX_FILE).exists():
            from graphrec.core.index import EmbeddingIndex

            try:
                self.index = EmbeddingIndex.load(art.path / INDEX_FILE)
            except RuntimeError as exc:
                raise artifacts.ArtifactError(f"{KIND} model {art.version}: unreadable FAISS index ({exc})") from None
            if self.index.size != len(self.ids):
                raise artifacts.ArtifactError(f"{KIND} model {art.version}: index has {self.index.size} vectors for {len(self.ids)} users")
        self.bot_threshold = bot_threshold
        self.embedding_candidates = embedding_candidates
        self.profile_model = _optional_similar_users(store) if profile_candidates else None
        self.profile_candidates = profile_candidates
        _single_threaded_blas()

    def _bot_filter(self) -> dict[str, Any]:
        """The store's score filter for ``bot_threshold``: the latest bot-scoring run's flags or score."""
        if self.bot_threshold is None:
            return {}
        return {"score_kind": BOT_SCORE_KIND, "score_threshold": self.bot_threshold}

    def recommend(self, user: str | int, k: int = 20) -> list[Suggestion]:
        """Top ``k`` friend suggestions for ``user`` (an external id), best first."""
        if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
            raise InputError(f"k must be a positive integer, got {k!r}")
        ext = str(user).strip()
        ctx = self.store.serving_context(ext, feature_dim=self.profiles.dim)  # NotFoundError if unknown or deleted
        u = self._pos.get(ext, -1)
        friends = np.array(sorted(self._pos[f] for f in ctx["friends"] if f in self._pos), dtype=np.int64)
        if not ctx["friends"] and self.profile_model is not None:
            return self._cold_start(ext, ctx, k)
        profile = self._profile_vector(ctx["features"]) if u < 0 else None
        extra = self._embedding_neighbours(u, friends, profile)
        if self.profile_model is not None:
            z = self.profile_model.encoder(ctx["features"])[0]
            near = [self._pos[e] for e, _ in self.profile_model.index.search(z, self.profile_candidates, exclude={ext}) if e in self._pos]
            extra = np.unique(np.concatenate([extra if extra is not None else np.empty(0, np.int64), np.asarray(near, dtype=np.int64)]))
        cands = self.featurizer.candidates(u, friends=friends, extra=extra, profile=profile, shared_weights=self.weights.shared)
        if cands.nodes.size == 0:
            return []
        emb_u = self._user_embedding(u, friends)
        scores = self.weights.score(cands, emb_u)
        if u >= 0:
            # Friends in the trained graph who are no longer friends were unfriended since
            # training: never suggest them back.
            gone = np.setdiff1d(self.featurizer.neighbors(u), friends)
            scores[np.isin(cands.nodes, gone)] = -np.inf
        order = np.argsort(-scores, kind="stable")
        order = order[np.isfinite(scores[order])]
        blocked = set(ctx["blocked"])
        friend_ids = set(ctx["friends"])
        picked: list[int] = []
        start = 0
        while len(picked) < k and start < order.size:
            window = order[start : start + max(3 * k, 50)]
            start += window.size
            names = [self.ids[cands.nodes[i]] for i in window]
            open_names = [n for n in names if n not in blocked and n not in friend_ids and n != ext]
            excluded = self.store.excluded_candidates(open_names, **self._bot_filter())
            for i, name in zip(window.tolist(), names):
                if name == ext or name in blocked or name in friend_ids or name in excluded:
                    continue
                picked.append(i)
                if len(picked) == k:
                    break
        names = [self.ids[cands.nodes[i]] for i in picked]
        if ctx["revision"] == self.manifest["data"]["revision"]:
            # The store has not changed since training: the trained graph is the live graph.
            mutual = {
                n: sorted(self.ids[m] for m in np.intersect1d(friends, self.featurizer.neighbors(int(cands.nodes[i])), assume_unique=True))
                for i, n in zip(picked, names)
            }
        else:
            mutual = self.store.mutual_friends_with(ext, names)  # live, not as of training
        return [self._explain(cands, i, name, float(scores[i]), emb_u, mutual[name]) for i, name in zip(picked, names)]

    def _cold_start(self, ext: str, ctx: dict[str, Any], k: int) -> list[Suggestion]:
        """A user with no friends: the users with the most similar learned profile embedding."""
        assert self.profile_model is not None
        z = self.profile_model.encoder(ctx["features"])[0]
        out = self.profile_model.nearest(z, k, exclude={ext} | set(ctx["blocked"]), **self._bot_filter())
        return [Suggestion(user=e, score=round(s, 4), mutual_friends=0, reasons=[f"similar profile (learned similarity {s:.2f})"]) for e, s in out]

    # -- helpers -------------------------------------------------------------------------------
    def _profile_vector(self, features: np.ndarray) -> np.ndarray | None:
        if self.profiles.dim == 0:
            return None
        out = np.zeros(self.profiles.dim, dtype=np.float32)
        m = min(self.profiles.dim, features.size)
        out[:m] = features[:m]
        return out

    def _user_embedding(self, u: int, friends: np.ndarray) -> np.ndarray | None:
        emb = self.weights.embeddings
        if emb is None:
            return None
        if u >= 0:
            return emb[u]
        if friends.size:  # a new user: the mean of its friends' embeddings, normalised
            v = emb[friends].mean(axis=0)
            return v / max(float(np.linalg.norm(v)), 1e-12)
        return None

    def _embedding_neighbours(self, u: int, friends: np.ndarray, profile: np.ndarray | None) -> np.ndarray | None:
        if self.index is None or self.embedding_candidates <= 0:
            if u < 0 and friends.size == 0 and profile is not None:
                return self._profile_neighbours(profile)
            return None
        q = self._user_embedding(u, friends)
        if q is None:
            return self._profile_neighbours(profile) if profile is not None else None
        _, ids = self.index.search(q, self.embedding_candidates + 1)
        ids = ids[0]
        return ids[ids >= 0].astype(np.int64)

    def _profile_neighbours(self, profile: np.ndarray, count: int = 200) -> np.ndarray:
        """Cold start without friends: the users with the most similar profiles."""
        nodes = np.arange(self.profiles.num_rows)
        dots, _, _ = self.profiles.pair_terms(profile, nodes)
        sims = dots / np.maximum(self.profiles.norms * max(float(np.linalg.norm(profile)), 1e-12), 1e-12)
        top = np.argsort(-sims, kind="stable")[:count]
        return top[sims[top] > 0].astype(np.int64)

    def _explain(self, cands: Any, i: int, name: str, score: float, emb_u: np.ndarray | None, mutual: list[str]) -> Suggestion:
        v = int(cands.nodes[i])
        reasons = []
        if mutual:
            sample = ", ".join(mutual[:3])
            reasons.append(f"{len(mutual)} mutual friend{'s' if len(mutual) != 1 else ''} ({sample}{', ...' if len(mutual) > 3 else ''})")
        if emb_u is not None and self.weights.embeddings is not None:
            sim = float(self.weights.embeddings[v] @ emb_u)
            if sim > 0.5:
                reasons.append(f"close in the friendship graph (embedding similarity {sim:.2f})")
        cos = float(cands.features[i, _COSINE])
        if cos > 0:
            reasons.append(f"similar profile (cosine {cos:.2f})")
        if not reasons:
            reasons.append("suggested by the link model")
        return Suggestion(user=name, score=round(score, 4), mutual_friends=len(mutual), reasons=reasons)


def _optional_similar_users(store: Any) -> Any:
    """The served Siamese model, or None when none was trained."""
    from graphrec.tasks.siamese.model import KIND as SIAMESE, SimilarUsers

    if artifacts.latest_version(store.settings.home, SIAMESE) is None:
        return None
    return SimilarUsers(store)


def _single_threaded_blas() -> None:
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
