"""The partitions of a snapshot as long-lived workers, and the driver's handle on them.

Each partition is one worker (a Ray actor on the ``ray`` engine) that loads its users and edge
blocks once and keeps them for the whole job. A *stage* runs one method on every partition at
once; what a stage reads from the other partitions is passed as a list of references, one per
source partition, which the worker resolves one at a time (``fetch(q)``), so no worker holds more
than its own rows and one source partition's values. A stage's outputs stay where they are (the
Ray object store) until a later stage reads them: the driver only passes references, and pulls
back nothing larger than per-partition counts and the few rows it must see (the top scores).

Why actors and not one Ray Data ``map_batches`` per stage: the bot model's scoring is about a
hundred stages (3 walk steps, 30 label-propagation steps, one per GNN layer and fold, 60 Correct
and Smooth steps), each a sparse product over every partition. A Ray Data stage re-reads its
inputs and re-plans its tasks; a message to an actor that already holds its blocks costs about
5 ms (measured on this machine), so the stages cost what their products cost. Ray still gives what
the job needs from an engine: placement of the partitions on the cluster's nodes, the object
store between stages, and fault tolerance: an actor whose process dies is restarted
(``max_restarts``) and the call it was running is retried (``max_task_retries``); a restarted
worker reloads its partition from the Parquet files, and every stage method recomputes its result
from its inputs and the worker's state, which each stage rebuilds (see
:class:`~graphrec.distributed.bots.BotScoringPartition`).

:class:`InProcessCluster` runs the same stages in the calling process (tests, debugging).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

class Sources:
    """Marks a stage argument as one reference per source partition (resolved lazily)."""

    def __init__(self, refs: Sequence[Any]) -> None:
        self.refs = list(refs)


class Cluster(Protocol):
    """What a distributed job needs from its workers."""

    partitions: int

    def stage(self, method: str, *args: Any, returns: int | None = None, **kwargs: Any) -> list[Any]:
        """Run ``method`` on every partition; one result reference per partition (with
        ``returns``: the method returns a list of that many values, and each partition's result
        is a list of that many references). :class:`Sources` arguments are
        resolved lazily; ``per_partition`` kwargs (``{"name": [v_0, ..., v_P-1]}``) give each
        partition its own value, and ``own`` kwargs (same shape) each partition its own
        reference(s) to an earlier stage's output, resolved before the call."""
        ...

    def get(self, refs: Sequence[Any]) -> list[Any]:
        """The values of ``refs``."""
        ...

    def close(self) -> None:
        ...


def _resolver(getter: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def resolve(value: Any) -> Any:
        if isinstance(value, Sources):
            refs = value.refs
            return lambda q: getter(refs[q])
        return value
    return resolve


def _call(worker: Any, method: str, getter: Callable[[Any], Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Call ``worker.method``: :class:`Sources` become lazy ``fetch(q)`` functions, the
    references in ``own`` (this partition's values: one reference, or a list of them) are
    resolved now, everything else is passed as it is."""
    resolve = _resolver(getter)
    own = kwargs.pop("own", None) or {}
    resolved = {k: [getter(r) for r in v] if isinstance(v, list) else getter(v) for k, v in own.items()}
    return getattr(worker, method)(*[resolve(a) for a in args], **{k: resolve(v) for k, v in kwargs.items()}, **resolved)


def _split(p: int, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Partition ``p``'s keyword arguments: ``per_partition`` values picked for ``p`` (constants
    and :class:`Sources`), ``own`` references picked for ``p`` (resolved in the worker)."""
    per = kwargs.pop("per_partition", None) or {}
    own = kwargs.pop("own", None) or {}
    out = {**kwargs, **{k: v[p] for k, v in per.items()}}
    if own:
        out["own"] = {k: v[p] for k, v in own.items()}
    return out


class InProcessCluster:
    """Every partition's worker in this process (no Ray): for tests and small graphs."""

    def __init__(self, worker_type: type, directory: str | Path, partitions: int, **init: Any) -> None:
        self.partitions = partitions
        self.workers = [worker_type(directory, p, **init) for p in range(partitions)]

    def stage(self, method: str, *args: Any, returns: int | None = None, **kwargs: Any) -> list[Any]:
        return [_call(w, method, lambda v: v, args, _split(p, dict(kwargs))) for p, w in enumerate(self.workers)]

    def get(self, refs: Sequence[Any]) -> list[Any]:
        return list(refs)

    def close(self) -> None:
        self.workers = []


class _ActorBody:
    """The body of a partition actor: a worker of ``worker_type`` for partition ``p``, built on
    the first call from the cluster's shared ``init`` arguments (a reference every call carries,
    so an actor Ray restarted rebuilds its worker from the same arguments), and a generic stage
    call."""

    def __init__(self, worker_type: type, directory: str, p: int) -> None:
        import torch

        torch.set_num_threads(1)  # one core's worth per partition: the cluster's CPUs are shared by count
        self.worker_type, self.directory, self.p = worker_type, directory, p
        self.worker: Any = None

    def call(self, init: list[Any], method: str, args: tuple[Any, ...], kwargs: dict[str, Any], unwrap: bool = False) -> Any:
        import ray

        if self.worker is None:
            self.worker = self.worker_type(self.directory, self.p, **ray.get(init[0]))
        out = _call(self.worker, method, ray.get, args, kwargs)
        sample = getattr(self.worker, "sample_memory", None)
        if sample is not None:
            sample()
        return out[0] if unwrap else out

    def pid(self) -> int:
        import os

        return os.getpid()


class RayCluster:
    """One Ray actor per partition (see the module docs). ``cpus_per_partition`` is the share of
    a CPU each actor reserves (default: the cluster's CPUs spread over the partitions), so every
    partition is placed at once; ``max_restarts`` / ``max_task_retries`` bound Ray's recovery of
    a worker whose process died."""

    def __init__(self, worker_type: type, directory: str | Path, partitions: int, *, cpus_per_partition: float | None = None,
                 max_restarts: int = 3, max_task_retries: int = 3, **init: Any) -> None:
        import ray

        self.partitions = partitions
        if cpus_per_partition is None:
            total = float(ray.cluster_resources().get("CPU", 1.0))
            cpus_per_partition = max(0.01, min(1.0, total / partitions))
        actor = ray.remote(num_cpus=cpus_per_partition, max_restarts=max_restarts, max_task_retries=max_task_retries)(_ActorBody)
        # held for the cluster's lifetime and passed (inside a list, so not resolved by Ray) with every call
        self._init = [ray.put(init)]
        self.actors: list[Any] = [actor.remote(worker_type, str(directory), p) for p in range(partitions)]

    def stage(self, method: str, *args: Any, returns: int | None = None, **kwargs: Any) -> list[Any]:
        """Run the stage and wait until every partition has finished it (its outputs stay in the
        object store): one call in flight per actor, so a restarted actor has exactly one call to
        retry. (Queuing the next stages behind an unfinished one left the calls queued on an actor
        that died unexecuted after its restart, with Ray 2.60.)"""
        import ray

        out: list[Any] = []
        for p, actor in enumerate(self.actors):
            if returns is not None and returns > 1:
                out.append(actor.call.options(num_returns=returns).remote(self._init, method, args, _split(p, dict(kwargs))))
            elif returns == 1:  # a one-element list: returned as one object, handed back as [ref]
                out.append([actor.call.remote(self._init, method, args, _split(p, dict(kwargs)), unwrap=True)])
            else:
                out.append(actor.call.remote(self._init, method, args, _split(p, dict(kwargs))))
        flat = [r for o in out for r in (o if isinstance(o, list) else [o])]
        ray.wait(flat, num_returns=len(flat), fetch_local=False)
        return out

    def get(self, refs: Sequence[Any]) -> list[Any]:
        import ray

        return list(ray.get(list(refs)))

    def pids(self) -> list[int]:
        import ray

        return list(ray.get([a.pid.remote() for a in self.actors]))

    def close(self) -> None:
        import ray

        for actor in self.actors:
            ray.kill(actor, no_restart=True)
        self.actors = []
