"""Distributed training of the bot network: Ray Train's ``TorchTrainer``, DDP on gloo, over
mini-batches of sampled neighbourhoods read from a partitioned snapshot.

Each of ``workers`` Ray Train workers (one CPU, one torch thread) holds a replica of the same
:class:`~graphrec.nn.bot_gnn.BotGNN` wrapped in ``DistributedDataParallel`` (Li et al., "PyTorch
Distributed", VLDB 2020): every step, each rank computes the loss of its own mini-batch and the
gradients are averaged over the ranks (gloo all-reduce) before the identical Adam step, so the
replicas stay equal. A rank's mini-batch is its shard of the epoch's loss nodes (a seeded
permutation shared by all ranks, cut into ``workers`` near-equal shards and each into the same
number of batches, so every rank takes the same number of steps) with their sampled k-hop
neighbourhoods (:mod:`graphrec.distributed.sampling`: memory-mapped adjacency and node inputs,
never the whole graph in a worker's heap). The layers run on the sampled blocks, the readout
concatenates every layer's state at the seeds (the jumping-knowledge readout of the local
model), and the loss is the class-balanced binary cross-entropy of
:func:`graphrec.tasks.bots.train._train_fold` (``pos_weight`` = negatives / positives of the
epoch's loss targets), with the config's ``epochs``, ``lr`` and ``weight_decay``.

The label trick (label-propagation inputs from a random half of the training labels, the loss on
the other half, so a node never sees its own label) is kept by precomputed splits: each
:class:`SplitLabels` names the node-input files of its half (``x-<name>-<p>.npy``,
:func:`graphrec.distributed.sampling.inputs_path`) and carries the other half's nodes and
targets; epoch ``e`` uses split ``e % len(splits)``.

The network is inductive: the state dict of :class:`TrainResult` loads with
:func:`graphrec.tasks.bots.model.model_from_state` and scores the whole graph layer by layer
(:func:`graphrec.nn.bot_gnn.layerwise_logits`, or the distributed scoring).
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from graphrec.errors import InputError
from graphrec.tasks.bots.config import BotConfig

if TYPE_CHECKING:  # pragma: no cover
    from graphrec.distributed.engine import RayOptions
    from graphrec.distributed.partitions import PartitionManifest
    from graphrec.store.store import GraphStore
    from graphrec.tasks.base import Registered
    from graphrec.distributed.sampling import SampledBatch
    from graphrec.nn.bot_gnn import BotGNN
    from graphrec.tasks.bots.model import GraphInputs

#: neighbours sampled per node for the last layer, then for each layer below it (GraphSAGE's 25/10
#: scaled to the bot model's small inputs; -1 takes every neighbour)
DEFAULT_FANOUTS = (15, 10)
_STATE_FILE = "state.npz"


@dataclass(frozen=True)
class SplitLabels:
    """One label-trick split: ``name`` (its node inputs are ``x-<name>-<p>.npy``, computed from
    the *other* half of the training labels) and the loss ``nodes`` (distinct global positions)
    with their classes ``is_bot``."""

    name: str
    nodes: np.ndarray
    is_bot: np.ndarray

    def __post_init__(self) -> None:
        nodes = np.asarray(self.nodes, dtype=np.int64).reshape(-1)
        is_bot = np.asarray(self.is_bot, dtype=bool).reshape(-1)
        if not self.name or "/" in self.name:
            raise InputError(f"split name must be a non-empty file-name part, got {self.name!r}")
        if nodes.size != is_bot.size:
            raise InputError(f"split {self.name!r}: {nodes.size} loss nodes but {is_bot.size} targets")
        if np.unique(nodes).size != nodes.size:
            raise InputError(f"split {self.name!r}: loss nodes must be distinct")
        object.__setattr__(self, "nodes", nodes)
        object.__setattr__(self, "is_bot", is_bot)


@dataclass
class TrainResult:
    """The trained network: rank 0's ``state`` (numpy arrays, :class:`BotGNN`'s state-dict keys)
    for inputs of width ``in_dim``; ``losses``, each epoch's training loss averaged over the
    ranks; ``rank_max_abs_diff``, the largest difference between any rank's final parameters and
    rank 0's (0: the replicas are identical); ``steps`` per epoch on each rank, ``workers``, wall
    ``seconds`` of the whole call and ``loop_seconds`` of rank 0's training loop (the rest is
    starting the workers and the process group, and collecting the result)."""

    state: dict[str, np.ndarray]
    in_dim: int
    losses: list[float]
    rank_max_abs_diff: float
    steps: int
    workers: int
    seconds: float
    loop_seconds: float = 0.0
    fanouts: list[int] = field(default_factory=list)


def default_fanouts(layers: int) -> list[int]:
    """:data:`DEFAULT_FANOUTS` for a network of ``layers`` layers (10 for each layer beyond two)."""
    return [*DEFAULT_FANOUTS[:layers], *[DEFAULT_FANOUTS[-1]] * max(0, layers - len(DEFAULT_FANOUTS))]


def steps_per_epoch(loss_nodes: int, workers: int, batch_size: int) -> int:
    """Mini-batches each rank takes in an epoch of ``loss_nodes``: enough for batches of at most
    ``batch_size`` on the largest shard, but never more than the smallest shard's nodes (no rank
    may get an empty batch: DDP needs every rank in every step)."""
    largest, smallest = math.ceil(loss_nodes / workers), loss_nodes // workers
    return max(1, min(math.ceil(largest / batch_size), smallest))


def fit_bot_network(snapshot_dir: str | Path, inputs_dir: str | Path, splits: Sequence[SplitLabels], config: BotConfig, *,
                    workers: int, seed: int, fanouts: Sequence[int] | None = None, batch_size: int = 512,
                    storage_path: str | Path | None = None, max_failures: int = 1) -> TrainResult:
    """Train one :class:`~graphrec.nn.bot_gnn.BotGNN` on ``workers`` Ray Train workers (DDP,
    gloo, CPU); see the module docs. Runs in the current Ray session, or a local one started for
    the call (:func:`graphrec.distributed.engine.ray_session`). ``fanouts``: neighbours per hop
    from the seeds, one per layer (default :func:`default_fanouts`). ``storage_path``: where Ray
    Train keeps the run (default: a temporary folder, removed afterwards); on a multi-node
    cluster it, ``snapshot_dir`` and ``inputs_dir`` must be on storage every node reads.
    ``max_failures``: how often Ray Train restarts the run when a worker dies (the rerun starts
    from the same seeds, so it gives the same network)."""
    from graphrec.distributed.engine import RayOptions, ray_session
    from graphrec.distributed.partitions import read_manifest
    from graphrec.distributed.sampling import NodeInputs, check_fanouts, prepare_adjacency

    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InputError(f"workers must be a positive integer, got {workers!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
    fan = check_fanouts(fanouts) if fanouts is not None else default_fanouts(config.layers)
    if len(fan) != config.layers:
        raise InputError(f"fanouts {fan} must give one fanout per layer ({config.layers} layers)")
    if not splits:
        raise InputError("fit_bot_network: no label splits")
    manifest = read_manifest(snapshot_dir)
    widths = set()
    for split in splits:
        if split.nodes.size < workers:
            raise InputError(f"split {split.name!r}: {split.nodes.size} loss nodes for {workers} workers (each needs one)")
        if split.nodes.size and (split.nodes.min() < 0 or split.nodes.max() >= manifest.num_users):
            raise InputError(f"split {split.name!r}: loss nodes must be positions in [0, {manifest.num_users})")
        if split.is_bot.all() or not split.is_bot.any():
            raise InputError(f"split {split.name!r}: the loss targets need both bots and non-bots")
        widths.add(NodeInputs(inputs_dir, split.name, manifest).width)
    if len(widths) != 1:
        raise InputError(f"{inputs_dir}: the splits' node inputs have different widths {sorted(widths)}")
    in_dim = widths.pop()
    prepare_adjacency(snapshot_dir)

    start = time.perf_counter()
    own_storage = storage_path is None
    storage = Path(tempfile.mkdtemp(prefix="graphrec-train-")) if storage_path is None else Path(storage_path)
    loop_config = {
        "snapshot_dir": str(Path(snapshot_dir).resolve()), "inputs_dir": str(Path(inputs_dir).resolve()),
        "splits": [(s.name, s.nodes, s.is_bot) for s in splits], "config": asdict(config), "in_dim": in_dim,
        "seed": int(seed), "fanouts": fan, "batch_size": batch_size,
    }
    try:
        with ray_session(RayOptions(workers=workers)) as ray:
            cpus = float(ray.cluster_resources().get("CPU", 0.0))
            if cpus < workers:  # Ray Train would wait for the missing CPUs for ever
                raise InputError(f"{workers} training workers need a CPU each, the Ray cluster has {cpus:g}")
            from ray.train import FailureConfig, RunConfig, ScalingConfig
            from ray.train.torch import TorchConfig, TorchTrainer

            trainer = TorchTrainer(
                _train_loop,
                train_loop_config=loop_config,
                torch_config=TorchConfig(backend="gloo"),
                scaling_config=ScalingConfig(num_workers=workers, use_gpu=False, resources_per_worker={"CPU": 1}),
                run_config=RunConfig(name=f"graphrec-bots-{int(time.time() * 1000)}", storage_path=str(storage.resolve()),
                                     failure_config=FailureConfig(max_failures=max_failures)),
            )
            result = trainer.fit()
            if result.checkpoint is None:
                raise RuntimeError("distributed training ended without rank 0's parameters")
            with result.checkpoint.as_directory() as folder:
                with np.load(Path(folder) / _STATE_FILE) as saved:
                    state = {k: np.array(saved[k]) for k in saved.files}
            metrics = dict(result.metrics or {})
    finally:
        if own_storage:
            shutil.rmtree(storage, ignore_errors=True)
    return TrainResult(state, in_dim, [float(v) for v in metrics["losses"]], float(metrics["rank_max_abs_diff"]),
                       int(metrics["steps"]), workers, time.perf_counter() - start, float(metrics["loop_seconds"]), fan)


def write_label_trick_splits(inputs_dir: str | Path, manifest: "PartitionManifest", inputs: "GraphInputs", nodes: np.ndarray,
                             is_bot: np.ndarray, *, count: int, seed: int) -> list[SplitLabels]:
    """``count`` label-trick splits of the training labels ``nodes`` (positions) / ``is_bot``, for
    node inputs that fit one process (``inputs`` of :func:`graphrec.tasks.bots.model.graph_inputs`):
    each split's label-propagation inputs come from a random half of each class and its loss
    targets are the other half (:func:`graphrec.tasks.bots.train.half_split`, the local trainer's
    per-epoch split); the inputs are written per partition (``x-s<i>-<p>.npy``). The distributed
    scoring writes the same files partition by partition for graphs that do not fit."""
    from graphrec.distributed.sampling import write_inputs
    from graphrec.tasks.bots.train import half_split

    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise InputError(f"count must be a positive integer, got {count!r}")
    nodes = np.asarray(nodes, dtype=np.int64)
    y = np.asarray(is_bot, dtype=bool)
    rng = np.random.default_rng(seed)
    splits = []
    for s in range(count):
        inp, tgt = half_split(y, rng)
        write_inputs(inputs_dir, f"s{s}", manifest, inputs.with_labels(nodes[inp][y[inp]], nodes[inp][~y[inp]]))
        splits.append(SplitLabels(f"s{s}", nodes[tgt], y[tgt]))
    return splits


class RayFoldTrainer:
    """A drop-in for the local fold trainer of :func:`graphrec.tasks.bots.train.train_bot_detector`
    (``_train_fold(config, inputs, adj, nodes, y, seed) -> BotGNN``) that trains the fold's network
    with :func:`fit_bot_network` on ``workers`` Ray Train workers over the partitioned snapshot at
    ``snapshot_dir`` (the same users, in the same positions, as the graph being trained on).

    The fold's label-trick inputs are computed in this process from ``inputs`` (``splits`` random
    halves, :func:`write_label_trick_splits`, under ``work_dir``); ``adj`` is not used (the
    workers sample from the snapshot). The network then scores, calibrates and smooths exactly as
    a locally trained one. ``results`` keeps each fold's :class:`TrainResult`. ``revision``: the
    store revision the training graph was read at, checked against the snapshot's (positions are
    only the same users at the same revision)."""

    def __init__(self, snapshot_dir: str | Path, work_dir: str | Path, *, workers: int, splits: int = 8,
                 fanouts: Sequence[int] | None = None, batch_size: int = 512, revision: int | None = None) -> None:
        self.snapshot_dir, self.work_dir, self.revision = Path(snapshot_dir), Path(work_dir), revision
        self.workers, self.splits, self.fanouts, self.batch_size = workers, splits, fanouts, batch_size
        self.results: list[TrainResult] = []

    def __call__(self, config: BotConfig, inputs: "GraphInputs", adj: object, nodes: np.ndarray, y: np.ndarray,
                 seed: int) -> "BotGNN":
        from graphrec.distributed.partitions import read_manifest
        from graphrec.tasks.bots.model import model_from_state

        manifest = read_manifest(self.snapshot_dir)
        if self.revision is not None and manifest.revision != self.revision:
            raise InputError(f"{self.snapshot_dir}: snapshot of store revision {manifest.revision}, the training graph is of "
                             f"revision {self.revision} (write the partitions again)")
        if inputs.base.shape[0] != manifest.num_users:
            raise InputError(f"{self.snapshot_dir}: the snapshot holds {manifest.num_users} users, the training graph "
                             f"{inputs.base.shape[0]} (write the partitions from the same store revision, without augmentation)")
        folder = self.work_dir / f"fold-{len(self.results)}"
        shutil.rmtree(folder, ignore_errors=True)
        try:
            splits = write_label_trick_splits(folder, manifest, inputs, nodes, y, count=self.splits, seed=seed)
            result = fit_bot_network(self.snapshot_dir, folder, splits, config, workers=self.workers, seed=seed,
                                     fanouts=self.fanouts, batch_size=self.batch_size)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        self.results.append(result)
        return model_from_state(config, result.in_dim, result.state)


def block_logits(net: "BotGNN", x: torch.Tensor, batch: "SampledBatch") -> torch.Tensor:
    """The seeds' logits of ``net`` on a sampled mini-batch: inputs ``x`` of ``batch.nodes``, each
    layer on its block (``h_dst`` = the first ``n_dst`` rows of ``h_src``), and the readout over
    every layer's state at the seeds (the first ``num_seeds`` rows)."""
    return _BlockNetwork(net)(x, [b.adj for b in batch.blocks], [b.inv_deg for b in batch.blocks], batch.num_seeds)


class _BlockNetwork(torch.nn.Module):
    """A :class:`BotGNN` run on sampled blocks, as one module (what DDP wraps: its ``forward`` is
    the step whose gradients DDP all-reduces). ``state_dict`` keys are ``net.<BotGNN key>``."""

    def __init__(self, net: "BotGNN") -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor, adjs: list[torch.Tensor], inv_degs: list[torch.Tensor], num_seeds: int) -> torch.Tensor:
        h = self.net.encode_input(x)
        states = [h[:num_seeds]]
        for i, (adj, inv_deg) in enumerate(zip(adjs, inv_degs)):
            h = self.net.layer(i, h, h[: adj.shape[0]], adj, inv_deg)
            states.append(h[:num_seeds])
        out: torch.Tensor = self.net.lin_out(torch.cat(states, dim=1)).squeeze(-1)
        return out


def _train_loop(cfg: dict[str, Any]) -> None:
    """One Ray Train worker: see the module docs."""
    import ray.train
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from graphrec.distributed.partitions import read_manifest
    from graphrec.distributed.sampling import NodeInputs, PartitionedAdjacency, sample_blocks
    from graphrec.tasks.bots.model import new_network
    from graphrec.tasks.bots.train import positive_weight
    from graphrec.threads import configure_torch

    configure_torch(1)
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    seed, fanouts, batch_size = int(cfg["seed"]), list(cfg["fanouts"]), int(cfg["batch_size"])
    config = BotConfig(**cfg["config"])
    manifest = read_manifest(cfg["snapshot_dir"])
    adjacency = PartitionedAdjacency(cfg["snapshot_dir"])
    splits = [(name, np.asarray(nodes, dtype=np.int64), np.asarray(y, dtype=bool)) for name, nodes, y in cfg["splits"]]
    inputs = {name: NodeInputs(cfg["inputs_dir"], name, manifest) for name, _, _ in splits}

    torch.manual_seed(seed)  # the same initial network on every rank (DDP also broadcasts rank 0's)
    net = new_network(config, int(cfg["in_dim"]))
    torch.manual_seed(seed * 1_000 + rank)  # dropout differs per rank
    model = DistributedDataParallel(_BlockNetwork(net))
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sampler = np.random.default_rng([seed, rank])
    started = time.perf_counter()
    losses: list[float] = []
    steps = 0
    model.train()
    for epoch in range(config.epochs):
        name, nodes, y = splits[epoch % len(splits)]
        order = np.random.default_rng([seed, epoch, 1]).permutation(nodes.size)  # the same on every rank
        shard = np.array_split(order, world)[rank]
        steps = steps_per_epoch(nodes.size, world, batch_size)
        pos_weight = positive_weight(y)
        total = torch.zeros(1, dtype=torch.float64)
        for part in np.array_split(shard, steps):
            batch = sample_blocks(adjacency, nodes[part], fanouts, sampler)
            x = torch.from_numpy(inputs[name].gather(batch.nodes))
            logits = model(x, [b.adj for b in batch.blocks], [b.inv_deg for b in batch.blocks], batch.num_seeds)
            target = torch.from_numpy(y[part].astype(np.float32))
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, pos_weight=pos_weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) / steps
        dist.all_reduce(total)
        losses.append(float(total) / world)

    flat = torch.cat([p.detach().reshape(-1) for p in net.state_dict().values()])
    gathered = [torch.empty_like(flat) for _ in range(world)]
    dist.all_gather(gathered, flat)
    diff = max(float((g - gathered[0]).abs().max()) for g in gathered)
    metrics = {"losses": losses, "rank_max_abs_diff": diff, "steps": steps, "loop_seconds": time.perf_counter() - started}
    if rank == 0:
        with tempfile.TemporaryDirectory() as folder:
            np.savez(Path(folder) / _STATE_FILE, **{k: v.detach().numpy().copy() for k, v in net.state_dict().items()})
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder))
    else:
        ray.train.report(metrics, checkpoint=None)


def train_bots_on_ray(store: "GraphStore", config: BotConfig, *, options: "RayOptions | None" = None, work_dir: str | Path | None = None,
                      partitions: int | None = None) -> "Registered[Any]":
    """``graphrec train bots --engine ray``: the bot model trained as locally (folds, calibration,
    threshold, smoothing), each fold's network fitted with Ray Train (:class:`RayFoldTrainer`:
    DDP over sampled neighbourhoods read from a partitioned snapshot of the same store revision),
    then registered and served like any trained model.

    What is still in this process: the snapshot and the node inputs the folds train on (the
    label-trick splits are computed from the whole graph here and written per partition); the
    network fitting is what runs on the cluster. ``--augment`` is refused (synthetic training
    users have no place in the partitions)."""
    from graphrec.distributed.engine import RayOptions, ray_session
    from graphrec.distributed.nightly import default_partitions
    from graphrec.distributed.partitions import write_partitions
    from graphrec.tasks.base import train_and_register
    from graphrec.tasks.bots.train import BotTask

    if config.augment is not None:
        raise InputError("--augment is not available with --engine ray: train with --engine local to augment")
    options = options or RayOptions()
    root = Path(work_dir) if work_dir is not None else Path(store.settings.home) / "distributed" / "training"
    with ray_session(options):
        snap = store.snapshot()
        manifest = write_partitions(store, root / "snapshot", partitions or default_partitions(snap.num_nodes, options.workers))
        if manifest.revision != snap.revision:
            raise InputError(f"the store changed while training started (revision {snap.revision}, then {manifest.revision}): run it again")
        trainer = RayFoldTrainer(root / "snapshot", root / "folds", workers=options.workers, revision=snap.revision)
        return train_and_register(store, BotTask(fold_trainer=trainer), config, snapshot=snap)
