"""Unsupervised anomaly detectors with a scikit-learn / PyGOD-style API.

Every detector is built from hyper-parameters only; :meth:`AnomalyDetector.fit` trains on a
:class:`~graphrec.core.graph.Graph` and sets ``decision_score_`` (higher = more anomalous), ``threshold_``
(the ``1 - contamination`` quantile of the training scores) and ``labels_``;
:meth:`~AnomalyDetector.decision_function` scores a graph; :meth:`~AnomalyDetector.predict`
returns 0/1; :meth:`~AnomalyDetector.explain` says why a user scored high.

Detectors (``KINDS``):

* ``context`` (the default, chosen by measurement in ``benchmarks/bench_anomaly.py``):
  two views, each an autoencoder's reconstruction error.

  - *Attributes*: a :class:`~graphrec.nn.autoencoders.FeatureAutoencoder` reconstructs a user's
    profile from the mean profile of their friends only (the user's own profile is masked out,
    as in GraphMAE, Hou et al. KDD 2022). Friends are alike (homophily), so a profile its
    friends cannot explain -- one that does not fit its circle -- reconstructs badly. This is
    the neighbour-contrast idea of CoLA (Liu et al., TNNLS 2021) with a learned decoder instead
    of a discriminator. Binary profiles use a Bernoulli likelihood (cross-entropy), others the
    squared error of standardised columns.
  - *Structure*: the linear graph autoencoder of :mod:`graphrec.tasks.anomaly.structure` (how badly
    the low-rank community code explains a user's friendships, plus degree).

  The two views are put on one scale by tail rank (the fraction of users scoring lower) and the
  score is the larger: a user is as anomalous as their most anomalous view, and the explanation
  names that view.
* ``dominant``: the DOMINANT graph autoencoder (GCN encoder, attribute and structure decoders).
* ``vanilla`` / ``denoising`` / ``sparse``: a feature autoencoder over each user's profile and
  structural statistics (degree, clustering, mean friend degree), score = reconstruction error.
"""

from __future__ import annotations

import contextlib
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from graphrec.core.graph import Graph
from graphrec.core.ops import neighbour_mean, structural_features
from graphrec.core.scaling import ScalingRule, Standardiser
from graphrec.tasks.anomaly.structure import DEFAULT_RANKS, structure_view, tail_rank
from graphrec.threads import configure_torch

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from graphrec.nn.autoencoders import DominantAutoencoder, FeatureAutoencoder

log = logging.getLogger(__name__)

KINDS = ("context", "dominant", "vanilla", "denoising", "sparse")
DEFAULT_KIND = "context"
STRUCTURAL_COLUMNS = ("log_degree", "clustering", "log_mean_friend_degree")


#: The standardiser rule of the detectors' inputs (see :mod:`graphrec.core.scaling`): binary
#: (0/1) columns and constant columns (std <= 1e-8) are left as they are (mean 0, std 1), since
#: standardising a rare binary feature would blow its rare 1s up to huge values that dominate
#: any squared error; the other columns are standardised.
SCALING = ScalingRule(binary="keep", min_std=1e-8, min_std_inclusive=True, centre_constant=False)


def node_table(graph: Graph, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """Profile columns plus the :data:`STRUCTURAL_COLUMNS` (log degree, clustering estimated with
    ``seed``, log mean friend degree): the per-user table the feature autoencoders, DOMINANT and
    the IsolationForest baseline see."""
    stats = structural_features(graph.indptr, graph.indices, seed=seed)
    return np.concatenate([graph.features, stats], axis=1), [*graph.feature_names, *STRUCTURAL_COLUMNS]


@dataclass
class AEConfig:
    """Hyper-parameters shared by the autoencoder detectors.

    ``variant`` picks vanilla / denoising (masking noise ``noise``) / sparse (L1 weight
    ``sparsity`` on the code). Training stops after ``epochs`` passes or ``max_steps`` optimiser
    steps, whichever comes first (so a million-user graph trains in bounded time)."""

    variant: str = "vanilla"
    tied: bool = False
    hidden: int = 64
    code: int = 16
    epochs: int = 60
    max_steps: int = 3000
    batch_size: int = 512
    lr: float = 1e-2
    weight_decay: float = 1e-5
    noise: float = 0.2
    sparsity: float = 1e-3

    def __post_init__(self) -> None:
        if self.variant not in ("vanilla", "denoising", "sparse"):
            raise ValueError(f"unknown autoencoder variant {self.variant!r} (vanilla, denoising or sparse)")
        if not 0.0 <= self.noise < 1.0:
            raise ValueError("noise must be in [0, 1)")


class AnomalyDetector(ABC):
    """Base class: contamination-based threshold and the fit / score / predict protocol."""

    kind: ClassVar[str]

    def __init__(self, *, contamination: float = 0.05, seed: int = 0, threads: int | None = None) -> None:
        if not 0.0 < contamination < 0.5:
            raise ValueError(f"contamination must be in (0, 0.5), got {contamination}")
        self.contamination = contamination
        self.seed = seed
        self.threads = threads
        self.decision_score_: np.ndarray | None = None
        self.threshold_: float | None = None
        self.labels_: np.ndarray | None = None
        self.fit_seconds_: float = 0.0
        self._last: tuple[Graph, dict[str, np.ndarray]] | None = None

    # -- protocol ----------------------------------------------------------------------------
    def fit(self, graph: Graph) -> "AnomalyDetector":
        """Train on ``graph`` and set ``decision_score_``, ``threshold_`` and ``labels_``."""
        t = time.perf_counter()
        with self._torch_threads():
            self._fit(graph)
        self.fit_seconds_ = time.perf_counter() - t
        score = self.decision_function(graph)
        self.decision_score_ = score
        self.threshold_ = float(np.quantile(score, 1.0 - self.contamination)) if score.size else 0.0
        self.labels_ = (score > self.threshold_).astype(np.int8)
        log.info("%s detector fitted on %d users in %.1f s: threshold %.4g, %d above it", self.kind, graph.num_nodes, self.fit_seconds_,
                 self.threshold_, int(self.labels_.sum()))
        return self

    def decision_function(self, graph: Graph) -> np.ndarray:
        """Anomaly score of every node of ``graph`` (higher = more anomalous)."""
        self._check_fitted()
        with self._torch_threads():
            parts = self._score(graph)
        self._last = (graph, parts)
        return parts["score"]

    def predict(self, graph: Graph) -> np.ndarray:
        """``int8[n]``: 1 where the score exceeds ``threshold_``."""
        score = self.decision_function(graph)
        assert self.threshold_ is not None
        return (score > self.threshold_).astype(np.int8)

    def explain(self, nodes: np.ndarray | list[int], *, top_features: int = 5, graph: Graph | None = None) -> list[dict[str, Any]]:
        """Why each of ``nodes`` scored as it did: the view that drives the score, and the
        features that reconstruct worst (observed vs expected). Explains the graph last scored,
        or ``graph`` (scored first unless it is the one last scored)."""
        if graph is not None and (self._last is None or self._last[0] is not graph):
            self.decision_function(graph)
        if self._last is None:
            raise RuntimeError("call decision_function (or fit) before explain")
        graph, parts = self._last
        nodes = np.asarray(nodes, dtype=np.int64)
        errs, expected, observed, names = self._feature_errors(graph, nodes)
        out = []
        for row, i in enumerate(nodes.tolist()):
            info: dict[str, Any] = {"score": round(float(parts["score"][i]), 4), "friends": int(graph.degrees[i])}
            info.update(self._explain_views(graph, parts, i))
            top = np.argsort(-errs[row], kind="stable")[:top_features]
            info["features"] = [
                {"feature": names[j], "value": round(float(observed[row, j]), 4), "expected": round(float(expected[row, j]), 4),
                 "error": round(float(errs[row, j]), 4)}
                for j in top.tolist() if errs[row, j] > 0
            ]
            out.append(info)
        return out

    # -- to implement ------------------------------------------------------------------------
    @abstractmethod
    def _fit(self, graph: Graph) -> None: ...

    @abstractmethod
    def _score(self, graph: Graph) -> dict[str, np.ndarray]:
        """Must return at least ``{"score": float64[n]}``."""

    @abstractmethod
    def _feature_errors(self, graph: Graph, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
        """``(error, expected, observed, column names)``, the arrays ``[len(nodes), d']``;
        ``expected`` and ``observed`` in the columns' own units."""

    def _explain_views(self, graph: Graph, parts: dict[str, np.ndarray], node: int) -> dict[str, Any]:
        return {}

    # -- helpers -----------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not self._is_fitted():
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit first")

    @abstractmethod
    def _is_fitted(self) -> bool: ...

    @contextlib.contextmanager
    def _torch_threads(self) -> Iterator[None]:
        """Run the block with ``threads`` torch threads (None: one per available core,
        :func:`graphrec.threads.default_threads`), restoring the count after."""
        import torch

        before = torch.get_num_threads()
        configure_torch(self.threads)
        try:
            yield
        finally:
            torch.set_num_threads(before)

    def params(self) -> dict[str, Any]:
        """Hyper-parameters (recorded with every trained model)."""
        return {"kind": self.kind, "contamination": self.contamination, "seed": self.seed, "threads": self.threads}


# --------------------------------------------------------------------------------------------
# Autoencoder training shared by the detectors
# --------------------------------------------------------------------------------------------
def train_autoencoder(model: "FeatureAutoencoder", inputs: np.ndarray, targets: np.ndarray, config: AEConfig, *, binary: bool, seed: int) -> list[float]:
    """Minibatch Adam on the reconstruction loss of ``targets`` from ``inputs`` (plus the sparse
    penalty; inputs masked for the denoising variant). Returns the mean loss of each epoch."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    x = torch.from_numpy(np.ascontiguousarray(inputs, dtype=np.float32))
    y = torch.from_numpy(np.ascontiguousarray(targets, dtype=np.float32))
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    history: list[float] = []
    steps = 0
    model.train()
    for _ in range(config.epochs):
        total, batches = 0.0, 0
        for idx in torch.randperm(x.shape[0], generator=gen).split(config.batch_size):
            xb, yb = x[idx], y[idx]
            if config.variant == "denoising" and config.noise > 0:
                xb = xb * (torch.rand(xb.shape, generator=gen) >= config.noise).to(xb.dtype) / (1.0 - config.noise)
            out, code = model(xb)
            loss = F.binary_cross_entropy_with_logits(out, yb) if binary else F.mse_loss(out, yb)
            if config.variant == "sparse":
                loss = loss + config.sparsity * code.abs().mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach())
            batches += 1
            steps += 1
            if steps >= config.max_steps:
                break
        history.append(total / max(batches, 1))
        if steps >= config.max_steps:
            break
    model.eval()
    return history


def reconstruction_errors(model: "FeatureAutoencoder", inputs: np.ndarray, targets: np.ndarray, *, binary: bool, chunk: int = 65_536) -> tuple[np.ndarray, np.ndarray]:
    """Per-entry error and expected value: for binary targets the Bernoulli negative
    log-likelihood and the predicted probability; otherwise the squared error and the prediction."""
    import torch
    import torch.nn.functional as F

    errs, preds = [], []
    with torch.no_grad():
        for s in range(0, inputs.shape[0], chunk):
            xb = torch.from_numpy(np.ascontiguousarray(inputs[s : s + chunk], dtype=np.float32))
            yb = torch.from_numpy(np.ascontiguousarray(targets[s : s + chunk], dtype=np.float32))
            out, _ = model(xb)
            if binary:
                errs.append(F.binary_cross_entropy_with_logits(out, yb, reduction="none").numpy())
                preds.append(torch.sigmoid(out).numpy())
            else:
                errs.append(((out - yb) ** 2).numpy())
                preds.append(out.numpy())
    d = targets.shape[1]
    if not errs:
        return np.zeros((0, d), np.float32), np.zeros((0, d), np.float32)
    return np.concatenate(errs), np.concatenate(preds)


# --------------------------------------------------------------------------------------------
# Feature autoencoders over the node table (vanilla / denoising / sparse)
# --------------------------------------------------------------------------------------------
class FeatureAEDetector(AnomalyDetector):
    """Autoencoder over each user's profile and structural statistics (standardised); score =
    squared reconstruction error summed over columns."""

    kind = "vanilla"

    def __init__(self, config: AEConfig | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.config = config or AEConfig()
        self.kind = self.config.variant  # type: ignore[misc]
        self.model_: FeatureAutoencoder | None = None
        self.scaler_: Standardiser | None = None
        self.history_: list[float] = []

    def _is_fitted(self) -> bool:
        return self.model_ is not None

    def _table(self, graph: Graph) -> tuple[np.ndarray, list[str]]:
        table, names = node_table(graph, self.seed)
        assert self.scaler_ is not None
        return self.scaler_(table), names

    def _fit(self, graph: Graph) -> None:
        from graphrec.nn.autoencoders import FeatureAutoencoder

        table, _ = node_table(graph, self.seed)
        self.scaler_ = SCALING.fit(table)
        x = self.scaler_(table)
        import torch

        torch.manual_seed(self.seed)
        c = self.config
        self.model_ = FeatureAutoencoder(x.shape[1], c.hidden, min(c.code, max(1, x.shape[1] - 1)), tied=c.tied)
        self.history_ = train_autoencoder(self.model_, x, x, c, binary=False, seed=self.seed)

    def _score(self, graph: Graph) -> dict[str, np.ndarray]:
        x, _ = self._table(graph)
        assert self.model_ is not None
        err, _ = reconstruction_errors(self.model_, x, x, binary=False)
        return {"score": err.sum(axis=1).astype(np.float64)}

    def _feature_errors(self, graph: Graph, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
        table, names = node_table(graph, self.seed)
        assert self.scaler_ is not None
        x = self.scaler_(table[nodes])
        assert self.model_ is not None
        err, pred = reconstruction_errors(self.model_, x, x, binary=False)
        return err, self.scaler_.inverse(pred), table[nodes], names

    def params(self) -> dict[str, Any]:
        return {**super().params(), **asdict(self.config)}


# --------------------------------------------------------------------------------------------
# DOMINANT
# --------------------------------------------------------------------------------------------
@dataclass
class DominantConfig:
    """DOMINANT hyper-parameters; ``alpha`` weighs attribute against structure error (PyGOD's
    default balance is 0.5)."""

    hidden: int = 64
    layers: int = 2
    epochs: int = 100
    lr: float = 5e-3
    alpha: float = 0.5
    negatives: int = 1


class DominantDetector(AnomalyDetector):
    """DOMINANT (Ding et al., SDM 2019): score = ``alpha * ||x_i - x_hat_i||^2 + (1 - alpha) *``
    mean structure cross-entropy over the user's edges and as many random non-edges, on the
    standardised node table (profile + structural statistics). Full-batch; for graphs that fit
    in memory as a dense feature matrix."""

    kind = "dominant"

    def __init__(self, config: DominantConfig | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.config = config or DominantConfig()
        self.model_: DominantAutoencoder | None = None
        self.scaler_: Standardiser | None = None
        self.history_: list[float] = []

    def _is_fitted(self) -> bool:
        return self.model_ is not None

    def _tensors(self, graph: Graph) -> tuple["torch.Tensor", "torch.Tensor", list[str]]:
        import torch

        table, names = node_table(graph, self.seed)
        if self.scaler_ is None:
            self.scaler_ = SCALING.fit(table)
        x = torch.from_numpy(self.scaler_(table))
        rows = np.repeat(np.arange(graph.num_nodes), graph.degrees)
        edge_index = torch.from_numpy(np.stack([rows, graph.indices]).astype(np.int64))
        return x, edge_index, names

    def _errors(self, graph: Graph, x: "torch.Tensor", edge_index: "torch.Tensor",
                gen: "torch.Generator") -> tuple["torch.Tensor", "torch.Tensor", "torch.Tensor"]:
        import torch
        import torch.nn.functional as F

        assert self.model_ is not None
        x_hat, z = self.model_(x, edge_index)
        attr = ((x_hat - x) ** 2).sum(dim=1)
        n = x.shape[0]
        neg = torch.randint(0, n, (2, edge_index.shape[1] * self.config.negatives), generator=gen)
        pos_loss = F.binary_cross_entropy_with_logits(self.model_.edge_logits(z, edge_index), torch.ones(edge_index.shape[1]), reduction="none")
        neg_loss = F.binary_cross_entropy_with_logits(self.model_.edge_logits(z, neg), torch.zeros(neg.shape[1]), reduction="none")
        per_node = torch.zeros(n).index_add_(0, edge_index[0], pos_loss).index_add_(0, neg[0], neg_loss)
        count = torch.zeros(n).index_add_(0, edge_index[0], torch.ones_like(pos_loss)).index_add_(0, neg[0], torch.ones_like(neg_loss))
        struct = per_node / count.clamp(min=1)
        return attr, struct, x_hat

    def _fit(self, graph: Graph) -> None:
        import torch

        from graphrec.nn.autoencoders import DominantAutoencoder

        torch.manual_seed(self.seed)
        gen = torch.Generator().manual_seed(self.seed)
        self.scaler_ = None
        x, edge_index, _ = self._tensors(graph)
        c = self.config
        self.model_ = DominantAutoencoder(x.shape[1], c.hidden, c.layers)
        opt = torch.optim.Adam(self.model_.parameters(), lr=c.lr)
        self.history_ = []
        self.model_.train()
        for _ in range(c.epochs):
            attr, struct, _ = self._errors(graph, x, edge_index, gen)
            loss = c.alpha * attr.mean() + (1 - c.alpha) * struct.mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            self.history_.append(float(loss.detach()))
        self.model_.eval()

    def _score(self, graph: Graph) -> dict[str, np.ndarray]:
        import torch

        c = self.config
        x, edge_index, _ = self._tensors(graph)
        with torch.no_grad():
            attr, struct, _ = self._errors(graph, x, edge_index, torch.Generator().manual_seed(self.seed))
        a, s = attr.numpy().astype(np.float64), struct.numpy().astype(np.float64)
        return {"score": c.alpha * a + (1 - c.alpha) * s, "attribute": a, "structure": s}

    def _feature_errors(self, graph: Graph, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
        import torch

        x, edge_index, names = self._tensors(graph)
        assert self.model_ is not None
        with torch.no_grad():
            x_hat, _ = self.model_(x, edge_index)
        err = ((x_hat - x) ** 2).numpy()[nodes]
        assert self.scaler_ is not None
        return err, self.scaler_.inverse(x_hat.numpy()[nodes]), self.scaler_.inverse(x.numpy()[nodes]), names

    def _explain_views(self, graph: Graph, parts: dict[str, np.ndarray], node: int) -> dict[str, Any]:
        a, s = self.config.alpha * parts["attribute"][node], (1 - self.config.alpha) * parts["structure"][node]
        return {"driver": "attributes" if a >= s else "structure", "attribute_error": round(float(parts["attribute"][node]), 4),
                "structure_error": round(float(parts["structure"][node]), 4)}

    def params(self) -> dict[str, Any]:
        return {**super().params(), **asdict(self.config)}


# --------------------------------------------------------------------------------------------
# The default: attribute context autoencoder + linear structure autoencoder
# --------------------------------------------------------------------------------------------
@dataclass
class ContextConfig:
    """Hyper-parameters of :class:`ContextDetector`: the attribute autoencoder's ``ae`` and the
    spectral ``ranks`` of the structure view."""

    ae: AEConfig = field(default_factory=AEConfig)
    ranks: tuple[int, ...] = DEFAULT_RANKS

    def __post_init__(self) -> None:
        if isinstance(self.ae, dict):
            self.ae = AEConfig(**self.ae)
        self.ranks = tuple(int(r) for r in self.ranks)
        if not self.ranks or min(self.ranks) < 1:
            raise ValueError("ranks must be positive integers")


class ContextDetector(AnomalyDetector):
    """Attribute view (profile reconstructed from the friends' mean profile) and structure view
    (linear graph autoencoder); score = the larger tail rank. See the module docstring."""

    kind = "context"

    def __init__(self, config: ContextConfig | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.config = config or ContextConfig()
        self.model_: FeatureAutoencoder | None = None
        self.binary_: bool = True
        self.scaler_: Standardiser | None = None
        self.history_: list[float] = []

    def _is_fitted(self) -> bool:
        return self.model_ is not None

    def _io(self, graph: Graph) -> tuple[np.ndarray, np.ndarray]:
        """(context = friends' mean profile, target = own profile), both in model units."""
        x = graph.features if self.binary_ else self._scale(graph.features)
        return neighbour_mean(graph.indptr, graph.indices, x), x

    def _scale(self, x: np.ndarray) -> np.ndarray:
        assert self.scaler_ is not None
        return self.scaler_(x)

    def _fit(self, graph: Graph) -> None:
        import torch

        from graphrec.nn.autoencoders import FeatureAutoencoder

        if graph.features.shape[1] == 0:
            raise ValueError("the context detector needs at least one feature column")
        self.binary_ = graph.binary
        self.scaler_ = None if self.binary_ else SCALING.fit(graph.features)
        context, target = self._io(graph)
        has_friends = graph.degrees > 0
        torch.manual_seed(self.seed)
        c = self.config.ae
        d = target.shape[1]
        self.model_ = FeatureAutoencoder(d, c.hidden, c.code, tied=c.tied)
        self.history_ = train_autoencoder(self.model_, context[has_friends], target[has_friends], c, binary=self.binary_, seed=self.seed)

    def _score(self, graph: Graph) -> dict[str, np.ndarray]:
        assert self.model_ is not None
        if graph.features.shape[1] != self.model_.in_dim:
            raise ValueError(f"the model was trained on {self.model_.in_dim} feature columns, the graph has {graph.features.shape[1]}")
        context, target = self._io(graph)
        err, _ = reconstruction_errors(self.model_, context, target, binary=self.binary_)
        attr_raw = err.sum(axis=1).astype(np.float64)
        has_friends = graph.degrees > 0
        attribute = tail_rank(attr_raw)
        attribute[~has_friends] = 0.0  # no friends: no context to contradict
        structure, parts = structure_view(graph.indptr, graph.indices, ranks=self.config.ranks, seed=self.seed)
        out = {"score": np.maximum(attribute, structure), "attribute": attribute, "structure": structure, "attribute_error": attr_raw}
        out.update({f"structure.{k}": v for k, v in parts.items()})
        return out

    def _feature_errors(self, graph: Graph, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
        context, target = self._io(graph)
        assert self.model_ is not None
        err, pred = reconstruction_errors(self.model_, context[nodes], target[nodes], binary=self.binary_)
        if not self.binary_:
            assert self.scaler_ is not None
            pred = self.scaler_.inverse(pred)
        return err, pred, graph.features[nodes], list(graph.feature_names)

    def _explain_views(self, graph: Graph, parts: dict[str, np.ndarray], node: int) -> dict[str, Any]:
        a, s = float(parts["attribute"][node]), float(parts["structure"][node])
        info: dict[str, Any] = {
            "driver": "attributes" if a >= s else "structure",
            "attribute_rank": round(a, 4),
            "structure_rank": round(s, 4),
        }
        dis = {k.split("@", 1)[1]: round(float(v[node]), 3) for k, v in parts.items() if k.startswith("structure.edge_disagreement@")}
        if dis:
            info["friends_outside_own_communities"] = dis
        return info

    def params(self) -> dict[str, Any]:
        return {**super().params(), "ae": asdict(self.config.ae), "ranks": list(self.config.ranks)}


def make_detector(kind: str = DEFAULT_KIND, *, contamination: float = 0.05, seed: int = 0, threads: int | None = None, **overrides: Any) -> AnomalyDetector:
    """A detector of ``kind`` (one of :data:`KINDS`) with default hyper-parameters, updated by
    ``overrides`` (fields of the kind's config)."""
    common = {"contamination": contamination, "seed": seed, "threads": threads}
    if kind == "context":
        ae = {k: v for k, v in overrides.items() if k in AEConfig.__dataclass_fields__}
        rest = {k: v for k, v in overrides.items() if k not in ae}
        return ContextDetector(ContextConfig(ae=AEConfig(**ae), **rest), **common)
    if kind == "dominant":
        return DominantDetector(DominantConfig(**overrides), **common)
    if kind in ("vanilla", "denoising", "sparse"):
        return FeatureAEDetector(AEConfig(variant=kind, **overrides), **common)
    raise ValueError(f"unknown anomaly detector {kind!r}: choose one of {', '.join(KINDS)}")
