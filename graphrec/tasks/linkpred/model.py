"""The fitted link-prediction model (:class:`LinkModel`): what the friend recommender serves from.

A link model holds everything a recommendation needs without the database or torch: the external
ids of the training graph's nodes, the training graph (symmetric CSR), the users' profile matrix,
the numpy ranker (:class:`~graphrec.tasks.linkpred.scorer.RankerWeights`: standardisation, shared
profile weighting, MLP, GNN embeddings) and a FAISS index over the GNN embeddings.

Artifact layout under ``GRAPHREC_HOME/models/linkpred/<version>/``:

* ``arrays.safetensors``: ``graph.indptr``, ``graph.indices``, ``profiles.indptr``,
  ``profiles.indices``, ``profiles.data`` and ``ranker.*`` (:meth:`RankerWeights.to_arrays`);
* ``ids.json``: the external id of every node, in node order;
* ``embeddings.faiss``: the embedding index (:func:`graphrec.core.index.build_index`), when the
  model has a GNN term;
* ``manifest.json``: besides what every task records, ``profile_dim`` (feature columns of the
  profile matrix), ``pair_features`` (the pair-feature names the ranker was trained on) and
  ``training`` (config, loss per epoch, seconds, training groups).

Loading validates the artifact against this graphrec (pair features) and against itself (id list,
graph, profile matrix, ranker and index sizes), so a broken or foreign artifact is an
:class:`~graphrec.artifacts.ArtifactError`, never a wrong answer. This module imports no torch.
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from graphrec import artifacts
from graphrec.tasks.base import ArtifactContent, Model
from graphrec.tasks.linkpred.features import FEATURE_NAMES, Candidates, PairFeaturizer, ppr_columns
from graphrec.tasks.linkpred.profiles import ProfileMatrix
from graphrec.tasks.linkpred.scorer import RankerWeights

if TYPE_CHECKING:  # pragma: no cover
    import scipy.sparse as sp

    from graphrec.core.index import EmbeddingIndex

KIND = "linkpred"
IDS_FILE = "ids.json"
INDEX_FILE = "embeddings.faiss"
_COSINE = FEATURE_NAMES.index("cosine")


class LinkModel(Model):
    """A trained link ranker with its training graph, profiles, embeddings and FAISS index.

    Nodes are the training graph's users in snapshot order; ``ids[i]`` is node ``i``'s external
    id. ``data`` is the data version the model was trained at (store revision, fingerprint,
    users, friendships) and ``training`` what training recorded (config, loss per epoch)."""

    kind: ClassVar[str] = KIND

    def __init__(
        self,
        ids: list[str],
        indptr: np.ndarray,
        indices: np.ndarray,
        profiles: ProfileMatrix,
        weights: RankerWeights,
        *,
        feature_names: list[str],
        index: "EmbeddingIndex | None" = None,
        training: dict[str, Any] | None = None,
        data: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
    ) -> None:
        self.ids = ids
        self.indptr = np.asarray(indptr, dtype=np.int64)
        self.indices = np.asarray(indices, dtype=np.int64)
        self.profiles = profiles
        self.weights = weights
        self.index = index
        self.feature_names = list(feature_names)
        self.training = training or {}
        self.data = data or {}
        self.metrics = metrics or {}
        self.featurizer = PairFeaturizer(self.indptr, self.indices, profiles if profiles.dim else None)

    @classmethod
    def build(
        cls,
        ids: list[str],
        indptr: np.ndarray,
        indices: np.ndarray,
        profiles: ProfileMatrix,
        weights: RankerWeights,
        *,
        feature_names: list[str],
        training: dict[str, Any],
        data: dict[str, Any],
    ) -> "LinkModel":
        """A freshly trained model: builds the FAISS index over the GNN embeddings (if any)."""
        index = None
        if weights.embeddings is not None:
            from graphrec.core.index import build_index

            index = build_index(weights.embeddings)
        return cls(ids, indptr, indices, profiles, weights, feature_names=feature_names, index=index, training=training, data=data)

    # -- artifact ----------------------------------------------------------------------------
    def to_artifact(self) -> ArtifactContent:
        arrays: dict[str, np.ndarray] = {
            "graph.indptr": self.indptr,
            "graph.indices": self.indices,
            "profiles.indptr": self.profiles.indptr,
            "profiles.indices": self.profiles.indices,
            "profiles.data": self.profiles.data,
            **{f"ranker.{k}": v for k, v in self.weights.to_arrays().items()},
        }
        manifest = {"profile_dim": self.profiles.dim, "pair_features": list(FEATURE_NAMES), "training": self.training}
        ids, index = self.ids, self.index

        def write_files(folder: Path, version: str) -> None:
            (folder / IDS_FILE).write_text(json.dumps(ids), encoding="utf-8")
            if index is not None:
                index.save(folder / INDEX_FILE)

        return ArtifactContent(arrays, manifest, write_files)

    @classmethod
    def from_artifact(cls, art: artifacts.Artifact) -> "LinkModel":
        """Rebuild a saved model, refusing one this graphrec cannot serve correctly: other pair
        features, a missing or corrupt part, or parts whose sizes disagree."""
        m, a, name = art.manifest, art.arrays, f"{KIND} model {art.version}"
        if m.get("pair_features") != list(FEATURE_NAMES):
            raise artifacts.ArtifactError(
                f"{name} was trained with other pair features than this graphrec computes: run `graphrec train linkpred` again"
            )
        try:
            ids = json.loads((art.path / IDS_FILE).read_text(encoding="utf-8"))
            indptr, indices = a["graph.indptr"], a["graph.indices"]
            p_indptr, p_indices, p_data = a["profiles.indptr"], a["profiles.indices"], a["profiles.data"]
            profile_dim = m["profile_dim"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise artifacts.ArtifactError(f"{name} is incomplete or corrupt ({type(exc).__name__}: {artifacts._one_line(exc)})") from None
        # every manifest field and array checked against the others before anything is built
        if not isinstance(ids, list) or not all(isinstance(e, str) for e in ids):
            raise artifacts.ArtifactError(f"{name}: {IDS_FILE} is not a list of user ids")
        n = len(ids)
        feature_names = m.get("feature_names", [])
        if isinstance(profile_dim, bool) or not isinstance(profile_dim, int) or profile_dim < 0:
            raise artifacts.ArtifactError(f"{name}: profile_dim {profile_dim!r} is not a column count")
        if not isinstance(feature_names, list) or len(feature_names) != profile_dim:
            raise artifacts.ArtifactError(f"{name}: {len(feature_names) if isinstance(feature_names, list) else 'no'} feature names "
                                          f"for profile_dim {profile_dim}")
        feature_names = [str(f) for f in feature_names]
        for what, value in (("training", m.get("training", {})), ("data", m.get("data", {})), ("metrics", m.get("metrics", {}))):
            if not isinstance(value, dict):
                raise artifacts.ArtifactError(f"{name}: manifest field {what} is not an object")
        if indptr.size != n + 1:
            raise artifacts.ArtifactError(f"{name}: id list and graph disagree")
        problem = _csr_problem(indptr, indices, n, n, "the graph") or _csr_problem(p_indptr, p_indices, n, profile_dim, "the profile matrix")
        if problem is None and p_data.shape != p_indices.shape:
            problem = f"the profile matrix has {p_data.size} values for {p_indices.size} entries"
        if problem is not None:
            raise artifacts.ArtifactError(f"{name}: {problem} (users {n}, profile_dim {profile_dim})")
        try:
            profiles = ProfileMatrix(p_indptr, p_indices, p_data, profile_dim)
            weights = RankerWeights.from_arrays({k.removeprefix("ranker."): v for k, v in a.items() if k.startswith("ranker.")})
        except (ValueError, KeyError, TypeError) as exc:
            raise artifacts.ArtifactError(f"{name} is incomplete or corrupt ({type(exc).__name__}: {artifacts._one_line(exc)})") from None
        _check_ranker(weights, profile_dim, n, name)
        index = None
        if (art.path / INDEX_FILE).exists():
            from graphrec.core.index import EmbeddingIndex

            dim = None if weights.embeddings is None else int(weights.embeddings.shape[1])
            try:
                index = EmbeddingIndex.load(art.path / INDEX_FILE, dim=dim)
            except RuntimeError as exc:
                raise artifacts.ArtifactError(f"{name}: unreadable FAISS index ({artifacts._one_line(exc)})") from None
            except ValueError as exc:
                raise artifacts.ArtifactError(f"{name}: {exc}") from None
            if index.size != n:
                raise artifacts.ArtifactError(f"{name}: index has {index.size} vectors for {n} users")
        return cls(ids, indptr, indices, profiles, weights, feature_names=feature_names, index=index,
                   training=m.get("training", {}), data=m.get("data", {}), metrics=m.get("metrics", {}))

    # -- serving -----------------------------------------------------------------------------
    @property
    def num_nodes(self) -> int:
        return len(self.ids)

    @property
    def profile_dim(self) -> int:
        """Feature columns the model was trained on (the first ``profile_dim`` of the store's)."""
        return self.profiles.dim

    @cached_property
    def position(self) -> dict[str, int]:
        """External id -> node index (built on first use)."""
        return {ext: i for i, ext in enumerate(self.ids)}

    def node(self, external_id: str) -> int:
        """Node index of a user, -1 for one not in the training graph (joined since)."""
        return self.position.get(external_id, -1)

    def neighbors(self, node: int) -> np.ndarray:
        """Friends of ``node`` in the training graph."""
        return self.featurizer.neighbors(node)

    def user_embedding(self, node: int, friends: np.ndarray) -> np.ndarray | None:
        """The GNN embedding of ``node``; for a user not in the training graph the normalised mean
        of its friends' embeddings; None without a GNN term or for a new user without friends."""
        emb = self.weights.embeddings
        if emb is None:
            return None
        if node >= 0:
            return emb[node]
        if friends.size:
            v = emb[friends].mean(axis=0)
            return v / max(float(np.linalg.norm(v)), 1e-12)
        return None

    def embedding_neighbours(self, node: int, friends: np.ndarray, profile: np.ndarray | None, count: int) -> np.ndarray | None:
        """Extra candidates: the ``count`` (+1, the user itself) nearest users in embedding space;
        for a user with no embedding, the users with the most similar raw profile."""
        if self.index is None or count <= 0:
            if node < 0 and friends.size == 0 and profile is not None:
                return self.profile_neighbours(profile)
            return None
        q = self.user_embedding(node, friends)
        if q is None:
            return self.profile_neighbours(profile) if profile is not None else None
        _, ids = self.index.search(q, count + 1)
        found = ids[0]
        return found[found >= 0].astype(np.int64)

    def profile_neighbours(self, profile: np.ndarray, count: int = 200) -> np.ndarray:
        """The (up to) ``count`` users whose profile has the highest positive cosine with ``profile``."""
        nodes = np.arange(self.profiles.num_rows)
        dots, _, _ = self.profiles.pair_terms(profile, nodes)
        sims = dots / np.maximum(self.profiles.norms * max(float(np.linalg.norm(profile)), 1e-12), 1e-12)
        top = np.argsort(-sims, kind="stable")[:count]
        return top[sims[top] > 0].astype(np.int64)

    @cached_property
    def walk_t(self) -> "sp.csr_matrix":
        """The training graph's random-walk operator for personalized PageRank (built on first use)."""
        from graphrec.core.ops import walk_transpose

        return walk_transpose(self.indptr, self.indices).astype(np.float32)  # ppr_columns works in float32

    def ppr(self, node: int, friends: np.ndarray) -> np.ndarray:
        """``float32[num_nodes]``: the truncated personalized PageRank of ``node`` over the training
        graph (:func:`~graphrec.tasks.linkpred.features.ppr_columns`, what training computed the
        PPR features with); for a user not in the graph (``node=-1``) restarting on its
        ``friends`` (all zero without friends)."""
        source = np.array([node]) if node >= 0 else np.asarray(friends, dtype=np.int64)
        return ppr_columns(self.walk_t, [source])[:, 0]

    def candidates(self, node: int, *, friends: np.ndarray, extra: np.ndarray | None = None, profile: np.ndarray | None = None,
                   ppr: np.ndarray | None = None) -> Candidates:
        """Friends-of-friends of ``friends`` over the training graph plus ``extra``, with their pair
        features (see :meth:`PairFeaturizer.candidates`); ``ppr`` is the user's :meth:`ppr`
        (computed when not given)."""
        if ppr is None:
            ppr = self.ppr(node, friends)
        return self.featurizer.candidates(node, friends=friends, extra=extra, profile=profile, shared_weights=self.weights.shared, ppr=ppr)

    @staticmethod
    def ppr_merge(ranked: np.ndarray, ppr: np.ndarray, exclude: np.ndarray) -> np.ndarray:
        """The served order: every node reachable by ``ppr`` (score > 0) and every node of
        ``ranked`` (the model's candidates, best first), none of ``exclude``, sorted by PPR (ties
        by node index); then the positions held by members of ``ranked`` are refilled with
        ``ranked`` in the model's order. Nodes the model did not score keep the position PPR
        gives them, so users whose friends-of-friends run out (sparse graphs) get PPR-ranked
        suggestions, not none; this is the ranking the evaluation measures
        (:func:`graphrec.tasks.linkpred.evaluate.ppr_slots`)."""
        # Boolean masks over the nodes instead of sorted-set operations: O(n) vector passes, no
        # sort but the one by PPR (a server does this on every request).
        ranked = np.asarray(ranked, dtype=np.int64)
        excluded = np.zeros(ppr.size, dtype=bool)
        excluded[np.asarray(exclude, dtype=np.int64)] = True
        ranked = ranked[~excluded[ranked]]
        in_pool = ppr > 0
        in_pool[ranked] = True
        in_pool &= ~excluded
        pool = np.flatnonzero(in_pool)  # by node index, so the stable sort breaks PPR ties by node index
        order = pool[np.argsort(-ppr[pool], kind="stable")]
        is_ranked = np.zeros(ppr.size, dtype=bool)
        is_ranked[ranked] = True
        order[is_ranked[order]] = ranked
        return order

    def score(self, cands: Candidates, user_embedding: np.ndarray | None) -> np.ndarray:
        """The ranker's score of every candidate (higher is better)."""
        return self.weights.score(cands, user_embedding)

    def reasons(self, cands: Candidates, i: int, user_embedding: np.ndarray | None) -> list[str]:
        """What the model saw in candidate ``i`` besides mutual friends: closeness in the
        friendship graph (embedding similarity above 0.5) and profile cosine."""
        out = []
        v = int(cands.nodes[i])
        if user_embedding is not None and self.weights.embeddings is not None:
            sim = float(self.weights.embeddings[v] @ user_embedding)
            if sim > 0.5:
                out.append(f"close in the friendship graph (embedding similarity {sim:.2f})")
        cos = float(cands.features[i, _COSINE])
        if cos > 0:
            out.append(f"similar profile (cosine {cos:.2f})")
        return out


def _csr_problem(indptr: np.ndarray, indices: np.ndarray, rows: int, cols: int, what: str) -> str | None:
    """Why ``indptr`` / ``indices`` are not a CSR structure of ``rows`` x ``cols`` (None when they
    are): checked before anything sized by them is allocated."""
    if indptr.ndim != 1 or indices.ndim != 1 or indptr.dtype.kind not in "iu" or indices.dtype.kind not in "iu":
        return f"{what} is not a 1-d integer CSR structure"
    if indptr.size != rows + 1 or int(indptr[0]) != 0 or int(indptr[-1]) != indices.size or bool((np.diff(indptr) < 0).any()):
        return f"{what} has a malformed row index (indptr)"
    if indices.size and (int(indices.min()) < 0 or int(indices.max()) >= cols):
        return f"{what} refers to columns outside 0..{cols - 1}"
    return None


def _check_ranker(weights: RankerWeights, profile_dim: int, n: int, name: str) -> None:
    """The ranker's parts agree with the pair features, the profile width and the node count."""
    f = len(FEATURE_NAMES)
    if weights.mean.shape != (f,) or weights.std.shape != (f,) or not weights.layers:
        raise artifacts.ArtifactError(f"{name}: ranker standardisation or MLP does not match the {f} pair features")
    if weights.shared is not None and weights.shared.shape[0] != profile_dim:
        raise artifacts.ArtifactError(f"{name}: shared-profile weights have {weights.shared.shape[0]} rows for profile_dim {profile_dim}")
    if weights.embeddings is not None and weights.embeddings.shape[0] != n:
        raise artifacts.ArtifactError(f"{name}: {weights.embeddings.shape[0]} embeddings for {n} users")
    width = f + (0 if weights.shared is None else weights.shared.shape[1]) + (0 if weights.embeddings is None else weights.embeddings.shape[1])
    if weights.layers[0][0].shape[1] != width:
        raise artifacts.ArtifactError(f"{name}: the ranker's first layer takes {weights.layers[0][0].shape[1]} inputs, the parts give {width}")
