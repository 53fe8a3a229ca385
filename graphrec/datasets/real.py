"""Loaders for the public real graphs graphrec is developed and benchmarked on, kept outside the
repository in a shared data folder (``../shared/data`` beside the repository by default).

Each loader returns a :class:`RealGraph`: users as indices ``0..n-1`` (their original ids in
``user_ids``), undirected friendships once each (``u < v``), a ``float32`` profile per user and,
where the dataset has them, node labels. :meth:`RealGraph.to_graph` gives the
:class:`~graphrec.core.graph.Graph` every task trains on (for benchmarks);
:meth:`RealGraph.write_import_files` writes ``users.csv``, ``edges.csv`` and ``labels.csv`` that
``graphrec import users|edges|labels`` read (for a store).

The graphs (see each folder's README.md):

* ``ego-facebook`` (McAuley & Leskovec, NIPS 2012): 4,039 users, 88,234 friendships, 1,406
  binary profile features (:func:`graphrec.datasets.ego_facebook.load_ego_facebook`); no labels.
* ``github-musae`` (Rozemberczki, Allen & Sarkar, "Multi-scale Attributed Node Embedding",
  J. Complex Networks 2021): 37,700 GitHub developers, 289,003 mutual-follow friendships. The
  label is the developer's field, ``ml`` (machine learning, 9,739) or ``web`` (27,961), from
  ``target.csv`` (column ``target``, or ``ml_target`` as in the original release): not a bot
  label, a second node-classification benchmark (``positive_label = "ml"``). Profile: the
  original release has per-user lists of feature ids (``musae_git_features.json``, repositories
  starred, location, employer, ...); when that file is in the folder, the ``max_features``
  (default 128) most frequent ids become binary columns ``feature_<id>`` (ties: smaller id
  first), which bounds the width and keeps the profile sparse and 0/1. The copy in the shared
  folder has no such file: then the profile has no columns (structure only).
* ``bitcoin-otc`` (Kumar et al., ICDM 2016; ground truth from Kumar et al., "REV2: Fraudulent
  User Prediction in Rating Platforms", WSDM 2018): 5,881 users rating each other's
  trustworthiness (35,592 signed, directed ratings in -10..+10). Friendships: the trust network
  made undirected, one friendship per pair of users with a rating in either direction
  (``friendships="all"``, the default) or with a positive one (``friendships="positive"``).
  Labels from ``otc_gt.csv``: ``-1`` is ``fraud`` (180 users, the positive class), ``+1`` is
  ``benign`` (136). Profile: statistics of each user's ratings (:data:`OTC_FEATURES`). REV2
  defined its ground truth from ratings in this very network (users rated -10, or highly, by the
  platform's founder and the users he trusts), so the ratings a user *received* spell out how the
  labels were made: with them (``features="ratings"``) a logistic regression on the profile alone
  reaches ROC-AUC 0.996 ± 0.003 (seeds 0-2, 30% held out) and the benchmark is saturated. The
  default ``features="given"`` keeps what does not restate the label: ``log1p`` of the number of
  ratings given and received, the mean rating given (divided by 10) and the share of negative
  ratings given (trees on it plus neighbour means: ROC-AUC 0.93 ± 0.04; label propagation on the
  structure alone 0.955 ± 0.016). ``features="none"`` leaves the profile empty.

The shared folder is ``root`` when given, else the environment variable ``GRAPHREC_SHARED_DATA``,
else ``../shared/data`` relative to the repository; a missing folder or file is an
:class:`~graphrec.errors.InputError` that says where it looked and how to point elsewhere.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from graphrec.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from graphrec.core.graph import Graph

#: Environment variable naming the shared data folder.
SHARED_DATA_ENV = "GRAPHREC_SHARED_DATA"
#: The shared data folder when neither an argument nor the environment names one.
DEFAULT_SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
#: The graphs :func:`load_real_graph` knows, by folder name.
REAL_GRAPHS = ("ego-facebook", "github-musae", "bitcoin-otc")
#: Binary profile columns kept from github-musae's feature lists (the most frequent ids).
GITHUB_MAX_FEATURES = 128
#: Columns of bitcoin-otc's rating profile with ``features="ratings"``; ``"given"`` (the default)
#: keeps :data:`OTC_GIVEN_FEATURES`, which leave out the received ratings the labels were made from.
OTC_FEATURES = ("log_ratings_given", "log_ratings_received", "mean_rating_given", "mean_rating_received",
                "negative_share_given", "negative_share_received")
OTC_GIVEN_FEATURES = ("log_ratings_given", "log_ratings_received", "mean_rating_given", "negative_share_given")


@dataclass
class RealGraph:
    """A real graph ready for the tasks: users ``0..n-1`` (original ids ``user_ids``), undirected
    ``edges`` (``int64[m, 2]`` index pairs, ``u < v``, each once), ``features`` (``float32[n, d]``)
    named ``feature_names``, and optionally ``labels`` (one text label or None per user) of which
    ``positive_label`` is the positive class."""

    name: str
    user_ids: np.ndarray
    edges: np.ndarray
    features: np.ndarray
    feature_names: list[str]
    labels: np.ndarray | None = None
    positive_label: str | None = None
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def num_nodes(self) -> int:
        return int(self.user_ids.size)

    def labelled(self) -> tuple[np.ndarray, np.ndarray]:
        """The labelled users (indices, ascending) and whether each has the positive label."""
        if self.labels is None:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=bool)
        nodes = np.flatnonzero(np.array([lab is not None for lab in self.labels.tolist()], dtype=bool))
        return nodes, np.array([self.labels[i] == self.positive_label for i in nodes.tolist()], dtype=bool)

    def to_graph(self) -> "Graph":
        """The :class:`~graphrec.core.graph.Graph` of this dataset (external ids and labels kept)."""
        from graphrec.core.graph import Graph

        g = Graph.from_edges(self.edges, self.features, list(self.feature_names), labels=self.labels)
        g.external_ids = np.array([str(u) for u in self.user_ids.tolist()], dtype=object)
        return g

    def write_import_files(self, folder: str | Path) -> dict[str, Path]:
        """Write ``users.csv`` (``id`` and the profile columns), ``edges.csv`` (``source,target``,
        original ids) and, with labels, ``labels.csv`` (``id,label``) into ``folder``; returns
        them by kind. Import users first, then edges, then labels::

            graphrec import users users.csv && graphrec import edges edges.csv && graphrec import labels labels.csv
        """
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"users": out / "users.csv", "edges": out / "edges.csv"}
        ids = self.user_ids.astype(np.int64)
        with paths["users"].open("w", encoding="utf-8", newline="\n") as fh:
            fh.write(",".join(["id", *self.feature_names]) + "\n")
            for i, uid in enumerate(ids.tolist()):
                fh.write(",".join([str(uid), *(f"{v:g}" for v in self.features[i].tolist())]) + "\n")
        pairs = ids[self.edges] if self.edges.size else np.empty((0, 2), dtype=np.int64)
        with paths["edges"].open("w", encoding="utf-8", newline="\n") as fh:
            fh.write("source,target\n")
            fh.writelines(f"{a},{b}\n" for a, b in pairs.tolist())
        if self.labels is not None:
            paths["labels"] = out / "labels.csv"
            nodes, _ = self.labelled()
            with paths["labels"].open("w", encoding="utf-8", newline="\n") as fh:
                fh.write("id,label\n")
                fh.writelines(f"{ids[i]},{self.labels[i]}\n" for i in nodes.tolist())
        return paths


def shared_data_dir(root: str | Path | None = None) -> Path:
    """The shared data folder: ``root``, else ``$GRAPHREC_SHARED_DATA``, else
    :data:`DEFAULT_SHARED_DATA`. Raises :class:`InputError` when it is not a folder."""
    if root is not None:
        path, how = Path(root), "the folder given"
    elif os.environ.get(SHARED_DATA_ENV):
        path, how = Path(os.environ[SHARED_DATA_ENV]), f"${SHARED_DATA_ENV}"
    else:
        path, how = DEFAULT_SHARED_DATA, "the default beside the repository"
    if not path.is_dir():
        raise InputError(f"no shared data folder ({how}); set {SHARED_DATA_ENV} or pass the folder that holds "
                         f"{', '.join(REAL_GRAPHS)}", source=path)
    return path


def _dataset_dir(name: str, root: str | Path | None) -> Path:
    path = shared_data_dir(root) / name
    if not path.is_dir():
        raise InputError(f"no {name} folder in the shared data folder; set {SHARED_DATA_ENV} or pass the folder that holds it", source=path)
    return path


def _file(folder: Path, name: str) -> Path:
    path = folder / name
    if not path.is_file():
        raise InputError(f"missing file {name}", source=folder)
    return path


def _int_table(path: Path, columns: int, *, header: bool) -> np.ndarray:
    """The first ``columns`` comma-separated columns of ``path`` as ``int64[rows, columns]``
    (further columns are ignored); a cell that is not an integer is an :class:`InputError` with
    its line."""
    import pandas as pd

    try:
        frame = pd.read_csv(path, header=0 if header else None, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (ValueError, pd.errors.ParserError) as exc:
        raise InputError(f"not a comma-separated table: {exc}", source=path) from None
    if frame.shape[1] < columns:
        raise InputError(f"expected at least {columns} columns, found {frame.shape[1]}", source=path, line=1)
    out = np.empty((frame.shape[0], columns), dtype=np.int64)
    for j in range(columns):
        raw = frame.iloc[:, j].str.strip()
        ok = raw.str.fullmatch(r"[+-]?\d+")
        if not ok.all():
            k = int(np.flatnonzero(~ok.to_numpy())[0])
            raise InputError(f"expected an integer in column {j + 1}, found {raw.iloc[k]!r}", source=path, line=k + 1 + int(header))
        out[:, j] = raw.astype(np.int64).to_numpy()
    return out


def _index_edges(pairs: np.ndarray, user_ids: np.ndarray, source: Path) -> np.ndarray:
    """Id pairs -> index pairs ``u < v``, duplicates (either direction) once; self-loops are errors."""
    loops = pairs[:, 0] == pairs[:, 1]
    if loops.any():
        k = int(np.flatnonzero(loops)[0])
        raise InputError(f"self-loop on user {pairs[k, 0]}", source=source)
    idx = np.searchsorted(user_ids, pairs)
    lo, hi = np.minimum(idx[:, 0], idx[:, 1]), np.maximum(idx[:, 0], idx[:, 1])
    return np.unique(np.stack([lo, hi], axis=1), axis=0).reshape(-1, 2)


def load_github_musae(root: str | Path | None = None, *, max_features: int = GITHUB_MAX_FEATURES) -> RealGraph:
    """github-musae from ``<shared>/github-musae`` (module docs): friendships from
    ``edges.csv``, labels ``ml``/``web`` from ``target.csv``, and the ``max_features`` most
    frequent feature ids of ``musae_git_features.json`` as binary columns when that file exists."""
    import pandas as pd

    folder = _dataset_dir("github-musae", root)
    pairs = _int_table(_file(folder, "edges.csv"), 2, header=True)
    target_path = _file(folder, "target.csv")
    frame = pd.read_csv(target_path, dtype=str, keep_default_na=False)
    label_col = next((c for c in ("ml_target", "target") if c in frame.columns), None)
    if "id" not in frame.columns or label_col is None:
        raise InputError("expected the columns id and target (or ml_target)", source=target_path, line=1)
    for col in ("id", label_col):
        ok = frame[col].str.strip().str.fullmatch(r"[+-]?\d+")
        if not ok.all():
            k = int(np.flatnonzero(~ok.to_numpy())[0])
            raise InputError(f"expected an integer {col}, found {frame[col].iloc[k]!r}", source=target_path, line=k + 2)
    target_ids = frame["id"].astype(np.int64).to_numpy()
    target = frame[label_col].astype(np.int64).to_numpy()
    if not np.isin(target, (0, 1)).all():
        raise InputError(f"{label_col} must be 0 or 1", source=target_path, line=int(np.flatnonzero(~np.isin(target, (0, 1)))[0]) + 2)
    if np.unique(target_ids).size != target_ids.size:
        raise InputError("duplicate id", source=target_path)

    user_ids = np.unique(np.concatenate([pairs.ravel(), target_ids]))
    edges = _index_edges(pairs, user_ids, folder / "edges.csv")
    labels = np.full(user_ids.size, None, dtype=object)
    labels[np.searchsorted(user_ids, target_ids)] = np.where(target == 1, "ml", "web")

    features = np.zeros((user_ids.size, 0), dtype=np.float32)
    names: list[str] = []
    feat_path = folder / "musae_git_features.json"
    if feat_path.is_file():
        features, names = _github_features(feat_path, user_ids, max_features)
    return RealGraph("github-musae", user_ids, edges, features, names, labels, "ml",
                     {"friendships": "mutual follows", "features": f"top {max_features} feature ids" if names else "none (no musae_git_features.json)",
                      "label": "ml = machine-learning developer (positive), web = web developer"})


def _github_features(path: Path, user_ids: np.ndarray, max_features: int) -> tuple[np.ndarray, list[str]]:
    """Binary columns for the ``max_features`` most frequent feature ids of ``{"<user id>": [ids]}``."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"not valid JSON: {exc}", source=path) from None
    if not isinstance(raw, dict):
        raise InputError("expected an object of user id -> list of feature ids", source=path)
    lists: dict[int, list[int]] = {}
    for key, values in raw.items():
        try:
            lists[int(key)] = [int(v) for v in values]
        except (TypeError, ValueError):
            raise InputError(f"user {key!r}: expected an integer id with a list of integer feature ids", source=path) from None
    counts = Counter(f for fs in lists.values() for f in set(fs))
    kept = sorted(counts, key=lambda f: (-counts[f], f))[: max(max_features, 0)]
    column = {f: j for j, f in enumerate(kept)}
    features = np.zeros((user_ids.size, len(kept)), dtype=np.float32)
    pos = np.searchsorted(user_ids, np.fromiter(lists, dtype=np.int64))
    for p, (uid, fs) in zip(pos.tolist(), lists.items()):
        if p < user_ids.size and user_ids[p] == uid:
            cols = [column[f] for f in fs if f in column]
            features[p, cols] = 1.0
    return features, [f"feature_{f}" for f in kept]


def load_bitcoin_otc(root: str | Path | None = None, *, friendships: Literal["all", "positive"] = "all",
                     features: Literal["given", "ratings", "none"] = "given") -> RealGraph:
    """bitcoin-otc from ``<shared>/bitcoin-otc`` (module docs): the rating network made
    undirected (``friendships``: every rated pair, or pairs with a positive rating), labels
    ``fraud``/``benign`` from ``otc_gt.csv`` and a profile of rating statistics
    (``features``: :data:`OTC_GIVEN_FEATURES` by default, all of :data:`OTC_FEATURES` with
    ``"ratings"``, none with ``"none"``)."""
    if friendships not in ("all", "positive"):
        raise ValueError(f"friendships must be 'all' or 'positive', got {friendships!r}")
    if features not in ("given", "ratings", "none"):
        raise ValueError(f"features must be 'given', 'ratings' or 'none', got {features!r}")
    folder = _dataset_dir("bitcoin-otc", root)
    net_path, gt_path = _file(folder, "otc_network.csv"), _file(folder, "otc_gt.csv")
    ratings = _int_table(net_path, 3, header=False)
    if ratings.size and (np.abs(ratings[:, 2]) > 10).any():
        k = int(np.flatnonzero(np.abs(ratings[:, 2]) > 10)[0])
        raise InputError(f"rating {ratings[k, 2]} outside -10..10", source=net_path, line=k + 1)
    gt = _int_table(gt_path, 2, header=False)
    if not np.isin(gt[:, 1], (-1, 1)).all():
        k = int(np.flatnonzero(~np.isin(gt[:, 1], (-1, 1)))[0])
        raise InputError(f"label must be -1 (fraudulent) or +1 (benign), found {gt[k, 1]}", source=gt_path, line=k + 1)
    if np.unique(gt[:, 0]).size != gt.shape[0]:
        raise InputError("a user is labelled twice", source=gt_path)
    rater, ratee, value = ratings[:, 0], ratings[:, 1], ratings[:, 2]
    if (rater == ratee).any():
        k = int(np.flatnonzero(rater == ratee)[0])
        raise InputError(f"user {rater[k]} rates itself", source=net_path, line=k + 1)

    user_ids = np.unique(np.concatenate([rater, ratee, gt[:, 0]]))
    keep = value > 0 if friendships == "positive" else np.ones(value.size, dtype=bool)
    edges = _index_edges(ratings[keep][:, :2], user_ids, net_path)
    labels = np.full(user_ids.size, None, dtype=object)
    labels[np.searchsorted(user_ids, gt[:, 0])] = np.where(gt[:, 1] == -1, "fraud", "benign")

    n = user_ids.size
    if features != "none":
        r_from, r_to = np.searchsorted(user_ids, rater), np.searchsorted(user_ids, ratee)
        given = np.bincount(r_from, minlength=n).astype(np.float64)
        received = np.bincount(r_to, minlength=n).astype(np.float64)

        def share(idx: np.ndarray, weights: np.ndarray, count: np.ndarray) -> np.ndarray:
            return np.divide(np.bincount(idx, weights=weights, minlength=n), count, out=np.zeros(n), where=count > 0)

        x = np.stack([np.log1p(given), np.log1p(received), share(r_from, value / 10.0, given), share(r_to, value / 10.0, received),
                      share(r_from, (value < 0).astype(np.float64), given), share(r_to, (value < 0).astype(np.float64), received)], axis=1)
        names = list(OTC_FEATURES) if features == "ratings" else list(OTC_GIVEN_FEATURES)
        feats = x[:, [OTC_FEATURES.index(c) for c in names]].astype(np.float32)
    else:
        feats, names = np.zeros((n, 0), dtype=np.float32), []
    return RealGraph("bitcoin-otc", user_ids, edges, feats, names, labels, "fraud",
                     {"friendships": f"undirected, {'every rated pair' if friendships == 'all' else 'pairs with a positive rating'}",
                      "features": {"given": "ratings given, counts", "ratings": "ratings given and received (restate the label)", "none": "none"}[features],
                      "label": "fraud (otc_gt -1, positive) vs benign (+1)"})


def load_ego_facebook_real(root: str | Path | None = None) -> RealGraph:
    """ego-Facebook from ``<shared>/ego-facebook`` as a :class:`RealGraph` (no labels)."""
    from graphrec.datasets.ego_facebook import load_ego_facebook

    data = load_ego_facebook(_dataset_dir("ego-facebook", root))
    edges = np.searchsorted(data.user_ids, data.edges) if data.edges.size else np.empty((0, 2), dtype=np.int64)
    return RealGraph("ego-facebook", data.user_ids, edges, data.features, list(data.feature_names),
                     notes={"friendships": "Facebook friendships", "features": f"{len(data.feature_names)} binary profile features"})


def load_real_graph(name: str, root: str | Path | None = None, **options: Any) -> RealGraph:
    """The graph ``name`` (one of :data:`REAL_GRAPHS`) from the shared folder; ``options`` go to its loader."""
    loaders = {"ego-facebook": load_ego_facebook_real, "github-musae": load_github_musae, "bitcoin-otc": load_bitcoin_otc}
    if name not in loaders:
        raise ValueError(f"unknown graph {name!r}; known: {', '.join(REAL_GRAPHS)}")
    loader: Any = loaders[name]
    graph: RealGraph = loader(root, **options)
    return graph
