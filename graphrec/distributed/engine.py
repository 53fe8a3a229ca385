"""Which engine runs a batch job, and the Ray session the ``ray`` engine runs in.

``local`` (the default) is the single-process path every command always had; ``ray`` runs the
same job as Ray stages, on a local Ray cluster started for the job (``ray.init()``, as many CPUs
as the machine has or ``num_cpus``) or on an existing cluster (``address``, e.g.
``ray://head:10001`` or ``auto``)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from graphrec.errors import InputError

#: the engines a batch command can run on
ENGINES = ("local", "ray")


@dataclass(frozen=True)
class RayOptions:
    """How to reach Ray: ``address`` of an existing cluster (None: start a local one with
    ``num_cpus`` CPUs, None = all), and how many ``workers`` (partitions held at once) a job uses."""

    address: str | None = None
    num_cpus: int | None = None
    workers: int = 2

    def __post_init__(self) -> None:
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 1:
            raise InputError(f"workers must be a positive integer, got {self.workers!r}")
        if self.num_cpus is not None and (isinstance(self.num_cpus, bool) or not isinstance(self.num_cpus, int) or self.num_cpus < 1):
            raise InputError(f"num_cpus must be a positive integer, got {self.num_cpus!r}")


def process_memory_mib() -> dict[str, float]:
    """This process's memory now, in MiB, from ``/proc/self/status``: ``private`` (``RssAnon``:
    what it allocated itself), ``shared`` (``RssShmem``: pages of shared memory it has touched,
    such as Ray's object store, which every worker maps whole) and ``peak`` (``VmHWM``, both
    together at their highest). Empty off Linux."""
    wanted = {"RssAnon:": "private", "RssShmem:": "shared", "VmHWM:": "peak"}
    out: dict[str, float] = {}
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                key = line.split(maxsplit=1)[0] if line.strip() else ""
                if key in wanted:
                    out[wanted[key]] = round(int(line.split()[1]) / 1024, 1)
    except OSError:  # pragma: no cover - not Linux
        pass
    return out


def peak_rss_mib() -> float:
    """This process's peak resident memory so far, in MiB: ``VmHWM`` (reset by ``exec``, unlike
    ``ru_maxrss``, which a process started by a big parent inherits), else ``ru_maxrss``."""
    peak = process_memory_mib().get("peak")
    if peak is not None:
        return peak
    import resource  # pragma: no cover - not Linux

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # pragma: no cover


def check_engine(engine: str) -> str:
    """``engine`` if it is one of :data:`ENGINES`, else an :class:`InputError`."""
    if engine not in ENGINES:
        raise InputError(f"unknown engine {engine!r}: choose from {', '.join(ENGINES)}")
    return engine


def require_ray() -> Any:
    """The ``ray`` module, or an :class:`InputError` saying how to install it."""
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise InputError("the ray engine needs the distributed extra: pip install 'graphrec[distributed]'") from exc
    return ray


def check_address(address: str, *, timeout: float = 5.0) -> None:
    """An :class:`InputError` unless ``address`` (``host:port`` or ``ray://host:port``; ``auto``
    and ``local`` are left to Ray) accepts a TCP connection within ``timeout`` seconds: Ray itself
    retries an unreachable address for minutes."""
    import socket

    if address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        raise InputError(f"--ray-address {address!r}: expected host:port, ray://host:port or auto")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise InputError(f"--ray-address {address!r}: cannot reach the Ray cluster ({exc.strerror or exc})") from None


@contextlib.contextmanager
def ray_session(options: RayOptions | None = None) -> Iterator[Any]:
    """Ray, initialised for the ``with`` block: joins ``options.address`` or starts a local
    cluster, unless Ray is already initialised (a caller's session is reused and left running).
    A session this function started is shut down at the end."""
    ray = require_ray()
    options = options or RayOptions()
    started = False
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
        if options.address is not None:
            check_address(options.address)
            kwargs["address"] = options.address
        else:
            kwargs["num_cpus"] = options.num_cpus or os.cpu_count() or 1
        # workers import graphrec from the driver's environment (an editable install works as is)
        ray.init(**kwargs)
        started = True
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()
