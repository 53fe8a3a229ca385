"""Bot models from the store: labels, training, versioned artifacts, scoring and explanations.

Labels: a user whose current label is ``positive_label`` (default ``bot``) is a bot; a user with
any other label is a labelled non-bot; unlabelled users are what the model scores. Artifacts are
saved under ``GRAPHREC_HOME/models/bot/<version>/`` as safetensors arrays plus a JSON manifest
(nothing is unpickled on load).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from graphrec import artifacts
from graphrec.tasks.bots.train import BotModel, BotTrainConfig, GraphInputs, graph_inputs, train_bot_detector
from graphrec.errors import StoreStateError

KIND = "bot"


@dataclass
class LabelSet:
    """Labelled node indices of a snapshot and whether each is a bot."""

    nodes: np.ndarray
    is_bot: np.ndarray

    @property
    def bots(self) -> np.ndarray:
        return self.nodes[self.is_bot]

    @property
    def humans(self) -> np.ndarray:
        return self.nodes[~self.is_bot]


def snapshot_labels(snap: Any, positive_label: str = "bot") -> LabelSet:
    """The snapshot's labelled users as a :class:`LabelSet`."""
    labels = snap.labels
    nodes = np.flatnonzero(np.array([lab is not None for lab in labels.tolist()], dtype=bool))
    return LabelSet(nodes, np.array([labels[i] == positive_label for i in nodes.tolist()], dtype=bool))


def train_from_store(store: Any, config: BotTrainConfig, *, positive_label: str = "bot", snap: Any = None, augment: str | None = None,
                     include_synthetic: bool = False) -> artifacts.Artifact:
    """Train on every labelled real user of the store and save (and serve) a new bot model.

    Labels of synthetic users are ignored unless ``include_synthetic``. ``augment`` (``vae`` or
    ``gan``) adds synthetic examples of the scarce class for training only
    (:mod:`graphrec.tasks.bots.augment`)."""
    from graphrec.store.schema import utcnow

    started = utcnow()
    snap = snap if snap is not None else store.snapshot()
    labels = snapshot_labels(snap, positive_label)
    if not include_synthetic:
        real = ~snap.is_synthetic[labels.nodes]
        labels = LabelSet(labels.nodes[real], labels.is_bot[real])
    graph = (snap.indptr, snap.indices, snap.features)
    n_real = None
    added = 0
    try:
        if augment is not None:
            from graphrec.tasks.bots.augment import augment_training_graph

            aug = augment_training_graph(*graph, labels.nodes, labels.is_bot, kind=augment, seed=config.seed, threads=config.threads)
            graph, labels, n_real, added = (aug.indptr, aug.indices, aug.features), LabelSet(aug.labelled, aug.is_bot), aug.n_real, aug.added
        model = train_bot_detector(*graph, snap.feature_names, labels.nodes, labels.is_bot, config, n_real=n_real)
    except ValueError as exc:
        raise StoreStateError(f"cannot train {KIND}: {exc} (import labels with `graphrec import labels`)") from None
    model.metrics["augment"] = {"model": augment, "synthetic_examples": added}
    data = {"revision": snap.revision, "fingerprint": snap.fingerprint(), "users": snap.num_nodes, "friendships": snap.num_edges}
    art = save_model(store.settings.home, model, data=data, positive_label=positive_label)
    store.record_model_run(KIND, art.version, seed=config.seed, params={**asdict(config), "augment": augment}, metrics=model.metrics,
                           data_revision=snap.revision, data_fingerprint=data["fingerprint"], artifact_path=str(art.path), started_at=started)
    artifacts.set_latest(store.settings.home, KIND, art.version)
    return art


def save_model(home: Any, model: BotModel, *, data: dict[str, Any], positive_label: str) -> artifacts.Artifact:
    arrays: dict[str, np.ndarray] = {"input.mean": model.mean, "input.std": model.std}
    if model.projection is not None:
        arrays["input.projection"] = model.projection
    for i, state in enumerate(model.fold_states):
        arrays.update({f"fold{i}.{k}": v for k, v in state.items()})
    manifest = {
        "data": data,
        "params": asdict(model.config),
        "seed": model.config.seed,
        "positive_label": positive_label,
        "feature_names": model.feature_names,
        "input_names": model.input_names,
        "folds": len(model.fold_states),
        "platt": list(model.platt),
        "threshold": model.threshold,
        "threshold_rule": model.threshold_rule,
        "metrics": model.metrics,
        "training_seconds": round(model.seconds, 2),
    }
    return artifacts.save(home, KIND, arrays, manifest, make_latest=False)


def load_model(home: Any, version: str | None = None) -> tuple[BotModel, artifacts.Artifact]:
    """Load a bot model version (default: the served one)."""
    art = artifacts.load(home, KIND, version)
    m = art.manifest
    try:
        config = BotTrainConfig(**m["params"])
        states = [
            {k.split(".", 1)[1]: v for k, v in art.arrays.items() if k.startswith(f"fold{i}.")} for i in range(int(m["folds"]))
        ]
        model = BotModel(config, list(m["feature_names"]), art.arrays["input.mean"], art.arrays["input.std"],
                         art.arrays.get("input.projection"), states, (float(m["platt"][0]), float(m["platt"][1])),
                         float(m["threshold"]), str(m["threshold_rule"]), dict(m.get("metrics") or {}))
    except (KeyError, TypeError, ValueError) as exc:
        raise artifacts.ArtifactError(f"{KIND} model {art.version} is malformed: {exc}") from None
    return model, art


def check_compatible(model: BotModel, snap: Any, version: str) -> None:
    """The store's feature columns must be the ones the model was trained on."""
    if list(snap.feature_names) != list(model.feature_names):
        have, want = len(snap.feature_names), len(model.feature_names)
        raise StoreStateError(
            f"bot model {version} was trained on {want} feature columns, the store now has {have} "
            f"(or in another order): retrain with `graphrec train bots` or `graphrec score-bots --retrain`"
        )


def score_snapshot(model: BotModel, snap: Any, labels: LabelSet, *, chunk: int = 200_000, threads: int | None = None) -> tuple[np.ndarray, GraphInputs]:
    """Calibrated bot probability of every user of ``snap`` (labels used as propagation inputs)."""
    inputs = graph_inputs(snap.indptr, snap.indices, snap.features, hops=model.config.hops, clustering_pairs=model.config.clustering_pairs,
                          seed=model.config.seed, mean=model.mean, std=model.std, projection=model.projection, fitted=True)
    scores = model.raw_scores(snap.indptr, snap.indices, snap.features, labels.bots, labels.humans, chunk=chunk, inputs=inputs, threads=threads)
    return model.calibrate(scores), inputs


class Explainer:
    """The signals behind users' scores: friend count, clustering, how many friends are labelled
    bots / humans, and the user's known label."""

    def __init__(self, inputs: GraphInputs, model: BotModel, labels: LabelSet, snap: Any) -> None:
        from graphrec.core.ops import STRUCTURAL_NAMES

        self.snap, self.inputs, self.model = snap, inputs, model
        self.is_bot = np.zeros(snap.num_nodes, dtype=bool)
        self.is_bot[labels.bots] = True
        self.is_human = np.zeros(snap.num_nodes, dtype=bool)
        self.is_human[labels.humans] = True
        self.offset = inputs.base.shape[1] - len(STRUCTURAL_NAMES)

    def __call__(self, node: int) -> dict[str, Any]:
        snap, o = self.snap, self.offset
        start, stop = int(snap.indptr[node]), int(snap.indptr[node + 1])
        nbrs = snap.indices[start:stop]
        clustering = float(self.inputs.base[node, o + 1] * self.model.std[o + 1] + self.model.mean[o + 1])
        return {
            "friends": stop - start,
            "clustering": round(clustering, 3),
            "friends_labelled_bot": int(self.is_bot[nbrs].sum()),
            "friends_labelled_human": int(self.is_human[nbrs].sum()),
            "label": snap.labels[node],
        }
