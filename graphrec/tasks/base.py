"""The task protocol: every learning task has one shape and one way into service.

A **task** (:class:`Task`) names itself (``name``: the CLI word, ``kind``: the artifact and
``model_runs`` kind), declares its hyper-parameters as a flat, typed dataclass
(``config_type``, a :class:`TaskConfig`) and implements ``fit(graph, config) -> Model`` on the
one graph container, :class:`~graphrec.core.graph.Graph`.

A fitted **model** (:class:`Model`) knows how to become an artifact (:meth:`Model.to_artifact`:
numeric arrays, manifest fields, extra files such as a FAISS index) and how to come back from one
(:meth:`Model.from_artifact`, validating shapes, feature columns and versions); models that score
users for the nightly job also implement :class:`ScoringModel`.

One function puts any task into service, :func:`train_and_register`::

    snapshot -> Graph -> task.fit -> artifacts.save -> store.record_model_run -> LATEST

so a model is served (``LATEST`` moves) only once its run is recorded. A task whose run must be
recorded together with other rows (the synthetic users a generator run produced) trains with
``record=False, serve=False``, records :attr:`Registered.run` in its own transaction and then
calls :meth:`Registered.serve`. Loading goes through
:meth:`Model.load`. Adding a task is filling in these two classes (see ``ARCHITECTURE.md``).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar

import numpy as np

from graphrec import artifacts
from graphrec.errors import StoreStateError

if TYPE_CHECKING:  # pragma: no cover
    from graphrec.core.graph import Graph
    from graphrec.store.snapshot import Snapshot
    from graphrec.store.store import GraphStore, ModelRunRecord

log = logging.getLogger(__name__)

ModelT = TypeVar("ModelT", bound="Model")
ConfigT = TypeVar("ConfigT", bound="TaskConfig")


@dataclass
class TaskConfig:
    """Base of every task's hyper-parameters: flat, typed, JSON-serialisable fields.

    Every training run records :meth:`params` and ``seed`` with its model. Tasks that train with
    torch add a ``threads`` field (torch threads of training; None: one per available core,
    :func:`graphrec.threads.default_threads`, which :func:`train_and_register` resolves before
    training so the recorded parameters hold the number used)."""

    seed: int = 0

    def params(self) -> dict[str, Any]:
        """The hyper-parameters as recorded in the manifest and ``model_runs``."""
        return asdict(self)


@dataclass
class ArtifactContent:
    """What a fitted model saves: ``arrays`` (safetensors), task-specific ``manifest`` fields,
    and ``write_files(folder)`` for files that are not arrays (a FAISS index, an id list)."""

    arrays: dict[str, np.ndarray]
    manifest: dict[str, Any] = field(default_factory=dict)
    write_files: Callable[[Path, str], None] | None = None  # (folder, version) -> None


class Model(ABC):
    """A fitted model of one task: saved and loaded as a versioned artifact, never pickled.

    Subclasses set ``kind`` and keep ``feature_names`` (the feature columns it was trained on)
    and ``metrics`` (what training measured). ``version`` is set once the model is saved or
    loaded."""

    kind: ClassVar[str]
    #: the command that trains this model (``graphrec train NAME``), named in errors; set by the
    #: :class:`Task` whose ``model_type`` this is (the kind is not the command's word for every
    #: task: the ``bot`` kind is trained by ``graphrec train bots``)
    train_command: ClassVar[str | None] = None
    feature_names: list[str]
    metrics: dict[str, Any]
    version: str | None = None

    @abstractmethod
    def to_artifact(self) -> ArtifactContent:
        """Arrays, manifest fields and extra files that :meth:`from_artifact` reads back."""

    @classmethod
    @abstractmethod
    def from_artifact(cls: type[ModelT], art: artifacts.Artifact) -> ModelT:
        """Rebuild a fitted model from a loaded artifact (raise ``KeyError``/``ValueError`` on a
        malformed one: :meth:`load` turns them into :class:`~graphrec.artifacts.ArtifactError`).

        Check every manifest field against the arrays *before* building anything from it (a
        manifest that says ``folds=10**8`` or a layer of 10^9 units must fail fast, not allocate):
        :func:`check_network_args` does this for constructor arguments."""

    @classmethod
    def load(cls: type[ModelT], home: Path, version: str | None = None) -> ModelT:
        """Load a saved version (default: the served one, ``LATEST``)."""
        art = artifacts.load(home, cls.kind, version, train_command=cls.train_command)
        try:
            model = cls.from_artifact(art)
        except artifacts.ArtifactError:
            raise
        except (KeyError, TypeError, ValueError, IndexError, AttributeError, OSError, RuntimeError) as exc:
            # one line: torch's load_state_dict errors, for one, span several
            raise artifacts.ArtifactError(f"{cls.kind} model {art.version} is malformed or incomplete: {type(exc).__name__}: "
                                          f"{artifacts._one_line(exc)}") from None
        model.version = art.version
        return model

    def check_compatible(self, feature_names: Sequence[str], *, retrain_hint: str | None = None) -> None:
        """Refuse a graph whose feature columns are not the ones this model was trained on."""
        if list(feature_names) != list(self.feature_names):
            hint = retrain_hint or self.train_command or f"graphrec train {self.kind}"
            raise StoreStateError(
                f"{self.kind} model {self.version} was trained on {len(self.feature_names)} feature columns, the store now has "
                f"{len(feature_names)} (or in another order): retrain with `{hint}`"
            )


def check_network_args(args: Any, arrays: dict[str, np.ndarray], what: str) -> None:
    """Refuse network constructor arguments (a manifest's ``network`` / ``args``) that cannot
    describe ``arrays`` before the network is built from them: every integer (also inside lists)
    must be in ``[0, bound]``, where ``bound`` is the largest of the arrays' dimensions and their
    count (a width is some array's dimension, a layer count at most the number of arrays), and
    every list at most ``bound`` long. So a corrupt manifest cannot make the loader allocate a
    network far larger than the weights it is about to load (the strict ``load_state_dict``
    afterwards checks the exact shapes). ``ValueError`` names the argument."""
    bound = max([len(arrays), *(int(d) for v in arrays.values() for d in np.shape(v))], default=0)

    def visit(value: Any, name: str) -> None:
        if isinstance(value, bool) or value is None or isinstance(value, (float, str)):
            return
        if isinstance(value, int):
            if not 0 <= value <= bound:
                raise ValueError(f"{what} argument {name}={value} does not fit the saved weights (at most {bound})")
        elif isinstance(value, (list, tuple)):
            if len(value) > bound:
                raise ValueError(f"{what} argument {name} has {len(value)} entries, the saved weights allow at most {bound}")
            for i, v in enumerate(value):
                visit(v, f"{name}[{i}]")
        elif isinstance(value, dict):
            for k, v in value.items():
                visit(v, f"{name}.{k}" if name else str(k))
        else:
            raise ValueError(f"{what} argument {name} is a {type(value).__name__}")

    if not isinstance(args, dict):
        raise ValueError(f"{what} arguments are a {type(args).__name__}, not an object")
    visit(args, "")


@dataclass
class ScoreRun:
    """Every user's score from a :class:`ScoringModel`: what one nightly scoring run writes.

    ``details`` maps node index -> JSON-able explanation for the users worth explaining."""

    scores: np.ndarray
    flagged: np.ndarray
    threshold: float
    details: dict[int, dict[str, Any]] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)


class ScoringModel(Model):
    """A model that scores every user of a graph (the nightly job writes its runs)."""

    @abstractmethod
    def score_graph(self, graph: "Graph", *, threads: int | None = None, max_details: int = 10_000, chunk: int | None = None) -> ScoreRun:
        """Score every node of ``graph``; explain the flagged (at least the top) nodes, at most
        ``max_details``. ``threads``: torch threads; ``chunk``: rows per inference chunk, which
        bounds scoring memory (None: the model's default)."""


class ProfileSampler(Protocol):
    """A fitted generator of profile rows (what bot augmentation draws synthetic examples from)."""

    def sample(self, n: int, *, label: str | None = None, seed: int = 0) -> np.ndarray:
        """``float32[n, d]`` synthetic feature rows (of class ``label`` for a conditional model)."""
        ...


class ProfileSamplerFactory(Protocol):
    """Fits a :class:`ProfileSampler` of ``kind`` (``vae``, ``gan``) on feature rows, conditional on
    ``classes`` (int codes into ``class_names``). The synthetic-users task provides one; the registry
    hands it to the tasks that ask for it, so no task imports another."""

    def __call__(self, features: np.ndarray, *, kind: str, classes: np.ndarray | None, class_names: list[str] | None,
                 epochs: int | None, seed: int, threads: int | None) -> ProfileSampler:
        ...


class Task(ABC, Generic[ConfigT, ModelT]):
    """One learning task: its names, its config type, its model type and ``fit``."""

    #: the CLI word (``graphrec train NAME``)
    name: ClassVar[str]
    #: the artifact folder and ``model_runs`` kind
    kind: ClassVar[str]
    config_type: ClassVar[type[TaskConfig]]
    model_type: ClassVar[type[Model]]
    #: whether this task's models score every user in the nightly job
    scores_users: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Tell the task's model class which command trains it (for its error messages)."""
        super().__init_subclass__(**kwargs)
        model_type, name = cls.__dict__.get("model_type"), cls.__dict__.get("name")
        if isinstance(model_type, type) and issubclass(model_type, Model) and isinstance(name, str):
            model_type.train_command = f"graphrec train {name}"

    def snapshot(self, store: "GraphStore", config: ConfigT) -> "Snapshot":
        """The snapshot to train on (default: the store's real users; synthetic users left out)."""
        return store.snapshot(include_synthetic=False)

    @abstractmethod
    def fit(self, graph: "Graph", config: ConfigT) -> ModelT:
        """Train on ``graph``; raise ``ValueError`` when the graph cannot train this task."""

    def load(self, home: Path, version: str | None = None) -> ModelT:
        return self.model_type.load(home, version)  # type: ignore[return-value]


@dataclass
class Registered(Generic[ModelT]):
    """A trained and saved model version, with its ``model_runs`` row (``run``; recorded unless
    :func:`train_and_register` was told ``record=False``) and served unless told ``serve=False``."""

    model: ModelT
    artifact: artifacts.Artifact
    run: "ModelRunRecord"

    @property
    def version(self) -> str:
        return self.artifact.version

    @property
    def manifest(self) -> dict[str, Any]:
        return self.artifact.manifest

    def serve(self, home: Path) -> None:
        """Move the kind's ``LATEST`` to this version: call it only once :attr:`run` is recorded."""
        artifacts.set_latest(home, self.artifact.kind, self.version)


def train_and_register(
    store: "GraphStore",
    task: Task[ConfigT, ModelT],
    config: ConfigT,
    *,
    snapshot: "Snapshot | None" = None,
    metrics: dict[str, Any] | None = None,
    serve: bool = True,
    record: bool = True,
) -> Registered[ModelT]:
    """Train ``task`` on the store and put the model into service, the same way for every task:
    snapshot -> :class:`~graphrec.core.graph.Graph` -> ``task.fit`` -> artifact (manifest with
    data version, params, seed, feature columns, metrics) -> ``model_runs`` row -> ``LATEST``.

    ``snapshot`` reuses a snapshot the caller already read (the nightly job's); ``metrics`` are
    extra figures to record (e.g. an evaluation); ``serve=False`` saves and records without
    moving ``LATEST``; ``record=False`` (with ``serve=False``: nothing unrecorded is served) only
    saves the artifact and leaves :attr:`Registered.run` for the caller to record, e.g. in the
    transaction of the rows the run produced (:meth:`GraphStore.load_synthetic
    <graphrec.store.store.GraphStore.load_synthetic>`), then :meth:`Registered.serve`. A graph the
    task cannot train on is a :class:`StoreStateError`."""
    from graphrec.core.graph import Graph
    from graphrec.store.schema import utcnow
    from graphrec.store.store import ModelRunRecord
    from graphrec.threads import resolve_config_threads

    if serve and not record:
        raise ValueError("a model is served only once its run is recorded: record=False needs serve=False")

    config = resolve_config_threads(config)  # threads=None: one per available core, recorded as the number used
    started = utcnow()
    snap = snapshot if snapshot is not None else task.snapshot(store, config)
    try:
        graph = Graph.from_snapshot(snap)  # ValueError for non-finite features
        log.info("training %s on %d users, %d friendships (store revision %d)", task.name, graph.num_nodes, graph.num_edges, snap.revision)
        model = task.fit(graph, config)
    except ValueError as exc:
        raise StoreStateError(f"cannot train {task.name}: {exc}") from None
    content = model.to_artifact()
    all_metrics = {**model.metrics, **(metrics or {})}
    manifest = {
        "data": graph.data,
        "params": config.params(),
        "seed": config.seed,
        "feature_names": list(model.feature_names),
        **content.manifest,
        "metrics": all_metrics,
    }
    version = artifacts.new_version()
    extra = None
    if content.write_files is not None:
        write = content.write_files

        def extra(folder: Path) -> None:
            write(folder, version)

    art = artifacts.save(store.settings.home, task.kind, content.arrays, manifest, version=version, extra=extra, make_latest=False)
    model.version = art.version
    run = ModelRunRecord(task.kind, art.version, config.seed, config.params(), all_metrics, snap.revision, graph.data["fingerprint"],
                         str(art.path), started)
    registered = Registered(model, art, run)
    if record:
        store.record_model_run(run)
    if serve:
        registered.serve(store.settings.home)  # served only once recorded
    log.info("%s model %s saved under %s", task.name, art.version, art.path)
    return registered
