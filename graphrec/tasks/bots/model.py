"""The fitted bot detector (:class:`BotModel`): its inputs, artifact, scoring and explanations.

Labels: a user whose current label is ``positive_label`` (default ``bot``) is a bot; a user with
any other label is a labelled non-bot; unlabelled users are what the model scores. The labels
also feed the model's label-propagation inputs when it scores a graph
(:mod:`graphrec.tasks.bots.signals`).

A model is saved under ``GRAPHREC_HOME/models/bot/<version>/``: safetensors arrays ``input.mean``,
``input.std`` (the input standardiser), ``input.projection`` (when the profile was compressed) and
``fold{i}.<parameter>`` for each cross-fitted :class:`~graphrec.nn.bot_gnn.BotGNN`, plus manifest
fields ``folds``, ``platt``, ``threshold``, ``threshold_rule``, ``smoothing``, ``positive_label``,
``input_names`` and ``training_seconds``; nothing is unpickled on load, and :meth:`BotModel.from_artifact` checks
the arrays against the manifest. Torch is imported only when a model scores.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from graphrec.core.ops import STRUCTURAL_NAMES, structural_features
from graphrec.core.scaling import ScalingRule, Standardiser
from graphrec.tasks.base import ArtifactContent, ScoreRun, ScoringModel
from graphrec.tasks.bots.config import SMOOTHINGS, BotConfig
from graphrec.tasks.bots.signals import LabelPropagator, label_signal_names
from graphrec.threads import configure_torch

if TYPE_CHECKING:  # pragma: no cover
    from graphrec import artifacts
    from graphrec.core.graph import Graph
    from graphrec.nn.bot_gnn import BotGNN

KIND = "bot"

#: The bot model's input scaling, also the feature-only baseline's (see :mod:`graphrec.core.scaling`):
#: ``(x - mean) / std``, near-constant columns (std below 1e-6) only centred.
SCALING = ScalingRule(min_std=1e-6)


@dataclass
class LabelSet:
    """Labelled node indices of a graph and whether each is a bot."""

    nodes: np.ndarray
    is_bot: np.ndarray

    @property
    def bots(self) -> np.ndarray:
        return self.nodes[self.is_bot]

    @property
    def humans(self) -> np.ndarray:
        return self.nodes[~self.is_bot]


def graph_labels(graph: "Graph", positive_label: str = "bot", *, include_synthetic: bool = True) -> LabelSet:
    """The labelled users of ``graph`` (``graph.labels``; none when it has no labels) as a
    :class:`LabelSet`: ``positive_label`` marks a bot. Synthetic users' labels are left out
    unless ``include_synthetic``."""
    if graph.labels is None:
        empty = np.empty(0, dtype=np.int64)
        return LabelSet(empty, np.empty(0, dtype=bool))
    labels = graph.labels
    nodes = np.flatnonzero(np.array([lab is not None for lab in labels.tolist()], dtype=bool))
    if not include_synthetic and graph.is_synthetic is not None:
        nodes = nodes[~np.asarray(graph.is_synthetic, dtype=bool)[nodes]]
    return LabelSet(nodes, np.array([labels[i] == positive_label for i in nodes.tolist()], dtype=bool))


@dataclass
class GraphInputs:
    """The label-independent part of the node inputs, and the propagator for the rest."""

    base: np.ndarray  # float32[n, d' + 3], standardised
    scaler: Standardiser
    projection: np.ndarray | None  # float32[d, d'] when the profile was compressed
    propagator: LabelPropagator

    def with_labels(self, bots: np.ndarray, humans: np.ndarray) -> np.ndarray:
        return np.concatenate([self.base, self.propagator(bots, humans)], axis=1)


def graph_inputs(graph: "Graph", *, hops: int, clustering_pairs: int, seed: int, max_profile_dim: int = 64,
                 scaler: Standardiser | None = None, projection: np.ndarray | None = None, fitted: bool = False) -> GraphInputs:
    """Standardised profile + structural inputs of every node of ``graph``. With ``fitted`` the
    given ``scaler`` and ``projection`` (a trained model's) are reused; otherwise they are fitted
    here.

    Profiles wider than ``max_profile_dim`` columns (e.g. thousands of sparse binary attributes)
    are compressed to that many components by truncated SVD (Halko et al. 2011), which keeps
    training linear in ``n * max_profile_dim`` whatever the profile width."""
    profile = graph.features
    if not fitted and profile.shape[1] > max_profile_dim:
        from sklearn.utils.extmath import randomized_svd

        _, _, vt = randomized_svd(profile, max_profile_dim, random_state=seed)
        projection = vt.T.astype(np.float32)
    if projection is not None:
        profile = profile @ projection
    raw = np.concatenate([profile, structural_features(graph.indptr, graph.indices, pairs=clustering_pairs, seed=seed)], axis=1)
    if scaler is None:
        scaler = SCALING.fit(raw)
    return GraphInputs(scaler.transform(raw), scaler, projection, LabelPropagator(graph.indptr, graph.indices, hops))


@dataclass(eq=False)
class BotModel(ScoringModel):
    """A trained detector: the fold models' weights plus input scaling, calibration and threshold.

    ``threshold`` applies to calibrated probabilities; ``threshold_rule`` says how it was chosen
    (:func:`graphrec.tasks.bots.train.choose_threshold`); ``smoothing`` is the post-processing
    chosen out of fold (:data:`~graphrec.tasks.bots.config.SMOOTHINGS`)."""

    kind: ClassVar[str] = KIND

    config: BotConfig
    feature_names: list[str]
    scaler: Standardiser
    projection: np.ndarray | None
    fold_states: list[dict[str, np.ndarray]]
    platt: tuple[float, float]
    threshold: float
    threshold_rule: str
    metrics: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    smoothing: str = "none"

    @property
    def positive_label(self) -> str:
        return self.config.positive_label

    @property
    def input_names(self) -> list[str]:
        profile = self.feature_names if self.projection is None else [f"profile_svd{i}" for i in range(self.projection.shape[1])]
        return [*profile, *STRUCTURAL_NAMES, *label_signal_names(self.config.hops)]

    # -- inference ---------------------------------------------------------------------------
    def calibrate(self, logits: np.ndarray) -> np.ndarray:
        """Platt scaling: ``sigmoid(a * logit + b)``."""
        a, b = self.platt
        return (1.0 / (1.0 + np.exp(-(a * logits.astype(np.float64) + b)))).astype(np.float32)

    def inputs(self, graph: "Graph") -> GraphInputs:
        """The label-independent inputs of ``graph`` under this model's scaling and projection."""
        return graph_inputs(graph, hops=self.config.hops, clustering_pairs=self.config.clustering_pairs, seed=self.config.seed,
                            scaler=self.scaler, projection=self.projection, fitted=True)

    def logits(self, graph: "Graph", bots: np.ndarray, humans: np.ndarray, *, chunk: int = 200_000,
               inputs: GraphInputs | None = None, threads: int | None = None) -> np.ndarray:
        """Mean fold-model logit of every node, with the given labelled nodes as label inputs
        (``threads``: torch threads, default the training config's, else one per available core)."""
        import torch

        from graphrec.nn.bot_gnn import layerwise_logits

        configure_torch(threads or self.config.threads)
        if inputs is None:
            inputs = self.inputs(graph)
        x = inputs.with_labels(bots, humans)
        total = np.zeros(x.shape[0], dtype=np.float64)
        for state in self.fold_states:
            total += layerwise_logits(model_from_state(self.config, x.shape[1], state), x, graph.indptr, graph.indices, chunk=chunk)
        return (total / len(self.fold_states)).astype(np.float32)

    def raw_scores(self, graph: "Graph", bots: np.ndarray, humans: np.ndarray, **kwargs: Any) -> np.ndarray:
        """Uncalibrated score of every node: the mean fold logit, after the model's post-processing
        (:attr:`smoothing`; Correct and Smooth gives a logit again)."""
        return post_process(self.smoothing, self.logits(graph, bots, humans, **kwargs), graph.indptr, graph.indices, bots, humans)

    def predict_proba(self, graph: "Graph", bots: np.ndarray, humans: np.ndarray, **kwargs: Any) -> np.ndarray:
        """Calibrated bot probability of every node of ``graph`` given the labelled ``bots`` and
        ``humans`` (node indices) as label inputs."""
        return self.calibrate(self.raw_scores(graph, bots, humans, **kwargs))

    def score_graph(self, graph: "Graph", *, threads: int | None = None, max_details: int = 10_000, chunk: int | None = None) -> ScoreRun:
        """Calibrated bot probability of every user of ``graph``, with ``graph.labels`` (this
        model's ``positive_label`` marks a bot) as label inputs; flagged at the model's
        threshold. The flagged users (at least the top 100, at most ``max_details``) are
        explained (:meth:`explain`). ``chunk``: rows per layer-wise inference chunk (default 200,000)."""
        self.check_compatible(graph.feature_names, retrain_hint="graphrec train bots")
        labels = graph_labels(graph, self.positive_label)
        inputs = self.inputs(graph)
        prob = self.calibrate(self.raw_scores(graph, labels.bots, labels.humans, chunk=chunk or 200_000, inputs=inputs, threads=threads))
        flagged = prob >= self.threshold
        order = np.argsort(-prob, kind="stable")
        detail_nodes = order[: min(max_details, max(int(flagged.sum()), 100))]
        explained = self.explain(graph, detail_nodes, labels=labels, inputs=inputs)
        details = {int(i): {"score": round(float(prob[i]), 4), **d} for i, d in zip(detail_nodes.tolist(), explained)}
        return ScoreRun(prob, flagged, self.threshold, details, summary={"labelled": int(labels.nodes.size)})

    def explain(self, graph: "Graph", nodes: np.ndarray, *, labels: LabelSet | None = None,
                inputs: GraphInputs | None = None) -> list[dict[str, Any]]:
        """The signals behind each of ``nodes``' scores: friend count, clustering, how many
        friends are labelled bots / humans, and the user's known label."""
        labels = labels if labels is not None else graph_labels(graph, self.positive_label)
        inputs = inputs if inputs is not None else self.inputs(graph)
        is_bot = np.zeros(graph.num_nodes, dtype=bool)
        is_bot[labels.bots] = True
        is_human = np.zeros(graph.num_nodes, dtype=bool)
        is_human[labels.humans] = True
        c = inputs.base.shape[1] - len(STRUCTURAL_NAMES) + 1  # the clustering column
        out = []
        for node in np.asarray(nodes, dtype=np.int64).tolist():
            start, stop = int(graph.indptr[node]), int(graph.indptr[node + 1])
            nbrs = graph.indices[start:stop]
            clustering = float(inputs.base[node, c] * self.scaler.std[c] + self.scaler.mean[c])
            out.append({
                "friends": stop - start,
                "clustering": round(clustering, 3),
                "friends_labelled_bot": int(is_bot[nbrs].sum()),
                "friends_labelled_human": int(is_human[nbrs].sum()),
                "label": None if graph.labels is None else graph.labels[node],
            })
        return out

    # -- artifact ----------------------------------------------------------------------------
    def to_artifact(self) -> ArtifactContent:
        arrays: dict[str, np.ndarray] = {"input.mean": self.scaler.mean, "input.std": self.scaler.std}
        if self.projection is not None:
            arrays["input.projection"] = self.projection
        for i, state in enumerate(self.fold_states):
            arrays.update({f"fold{i}.{k}": v for k, v in state.items()})
        manifest = {
            "positive_label": self.positive_label,
            "input_names": self.input_names,
            "folds": len(self.fold_states),
            "platt": list(self.platt),
            "threshold": self.threshold,
            "threshold_rule": self.threshold_rule,
            "smoothing": self.smoothing,
            "training_seconds": round(self.seconds, 2),
        }
        return ArtifactContent(arrays, manifest)

    @classmethod
    def from_artifact(cls, art: "artifacts.Artifact") -> "BotModel":
        """Rebuild a saved model, checking that the arrays are the ones the manifest describes:
        ``folds`` fold models with the same parameters, shaped for the config's layers and the
        input width, a finite scaler of that width, and a finite threshold in [0, 1]."""
        m = art.manifest
        known = {f.name for f in fields(BotConfig)}
        params = dict(m["params"])
        unknown = sorted(set(params) - known)
        if unknown:
            raise ValueError(f"unknown bot config fields {unknown}")
        config = BotConfig(**params)
        config.positive_label = str(m.get("positive_label", config.positive_label))
        feature_names = [str(f) for f in m["feature_names"]]
        projection = art.arrays.get("input.projection")
        if projection is not None and (projection.ndim != 2 or projection.shape[0] != len(feature_names)):
            raise ValueError(f"input.projection has shape {projection.shape}, expected ({len(feature_names)}, k)")
        profile_width = len(feature_names) if projection is None else int(projection.shape[1])
        scaler = Standardiser.from_arrays(art.arrays, "input", width=profile_width + len(STRUCTURAL_NAMES))

        folds = int(m["folds"])
        saved = {k.split(".", 1)[0] for k in art.arrays if k.startswith("fold")}
        # checked against the arrays before anything is built (folds=10**8 must not loop 10**8 times)
        if folds < 1 or folds != len(saved) or saved != {f"fold{i}" for i in range(folds)}:
            held = ", ".join(sorted(saved, key=lambda f: (len(f), f))) or "no fold"
            raise ValueError(f"the manifest says {folds} folds, the arrays hold {held}")
        states = [{k.split(".", 1)[1]: v for k, v in art.arrays.items() if k.startswith(f"fold{i}.")} for i in range(folds)]
        shapes = {k: v.shape for k, v in states[0].items()}
        for i, state in enumerate(states):
            if {k: v.shape for k, v in state.items()} != shapes:
                raise ValueError(f"fold{i} parameters differ from fold0's (missing, extra or reshaped arrays)")
        in_width = scaler.width + 2 * config.hops + 2
        expect = {"lin_in.weight": (config.hidden, in_width), "lin_out.weight": (1, config.hidden * (config.layers + 1))}
        for key, shape in expect.items():
            if shapes.get(key) != shape:
                raise ValueError(f"fold parameter {key} has shape {shapes.get(key)}, expected {shape}")

        platt = (float(m["platt"][0]), float(m["platt"][1]))
        threshold = float(m["threshold"])
        if not (np.isfinite(platt).all() and np.isfinite(threshold) and 0.0 <= threshold <= 1.0):
            raise ValueError(f"calibration {platt} or threshold {threshold} is not finite or not in [0, 1]")
        # Models saved before the out-of-fold choice post-processed as their config said.
        smoothing = str(m.get("smoothing") or (config.smooth if config.smooth != "auto" else "none"))
        if smoothing not in SMOOTHINGS:
            raise ValueError(f"smoothing {smoothing!r} is not one of {', '.join(SMOOTHINGS)}")
        return cls(config, feature_names, scaler, projection, states, platt, threshold, str(m["threshold_rule"]),
                   dict(m.get("metrics") or {}), float(m.get("training_seconds") or 0.0), smoothing)


def post_process(smoothing: str, logits: np.ndarray, indptr: np.ndarray, indices: np.ndarray, bots: np.ndarray,
                 humans: np.ndarray) -> np.ndarray:
    """The logits after ``smoothing`` (:data:`~graphrec.tasks.bots.config.SMOOTHINGS`): unchanged
    for ``none``, else Correct and Smooth with that operator from the labelled ``bots`` and
    ``humans``, returned as logits again."""
    if smoothing == "none":
        return logits
    from graphrec.tasks.bots.signals import correct_and_smooth

    prob = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
    g = np.clip(correct_and_smooth(indptr, indices, prob.astype(np.float32), bots, humans, operator=smoothing), 1e-6, 1 - 1e-6)
    g = g.astype(np.float64)
    return np.log(g / (1 - g)).astype(np.float32)


def new_network(config: BotConfig, in_dim: int) -> "BotGNN":
    """A freshly initialised :class:`~graphrec.nn.bot_gnn.BotGNN` of the config's shape."""
    from graphrec.nn.bot_gnn import BotGNN

    return BotGNN(in_dim, hidden=config.hidden, layers=config.layers, dropout=config.dropout)


def model_from_state(config: BotConfig, in_dim: int, state: dict[str, np.ndarray]) -> "BotGNN":
    """A fold's network with its saved parameters, in evaluation mode."""
    import torch

    model = new_network(config, in_dim)
    model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state.items()})
    model.eval()
    return model
