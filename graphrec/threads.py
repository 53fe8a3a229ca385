"""How many threads graphrec's torch work uses, and why those threads never busy-wait.

**How many.** One thread per core this process may actually run on (:func:`available_cores`):
the CPUs of its affinity mask (``os.sched_getaffinity``: ``taskset``, ``numactl``, a container's
cpuset), capped by its CPU bandwidth quota (cgroup v2 ``cpu.max``, cgroup v1
``cpu.cfs_quota_us / cpu.cfs_period_us``: ``docker --cpus``, Kubernetes CPU limits) rounded up.
``os.cpu_count()`` counts the host's CPUs instead, and a pool wider than the CPUs it may use only
adds barrier waits and throttling. The environment variable ``GRAPHREC_THREADS`` overrides the
default (:func:`default_threads`); every ``train`` command's ``--threads`` overrides both. Task
configs keep ``threads=None`` for "the default", resolved when training starts
(:func:`resolve_config_threads`) so that the recorded parameters hold the number actually used.

**No busy-waiting.** torch runs its intra-op parallel work on an OpenMP pool (GNU ``libgomp`` in
the Linux wheels, Intel's ``libiomp5`` in some builds). At the end of each parallel region a
thread that finished its share *spins* for a while (``libgomp``: up to ``GOMP_SPINCOUNT``
iterations; ``libiomp5``: ``KMP_BLOCKTIME`` = 200 ms) waiting for its siblings, and a new
region's work is handed to threads that spin for it. On an idle machine that saves the cost of a
futex wake-up per operation. On a busy one (a machine that runs other jobs, nightly retraining
beside serving) it collapses: with 2 threads on 2 cores and one other CPU-bound process, one
torch thread is regularly descheduled, and its sibling burns its whole time slice spinning at the
barrier instead of yielding the core to it. Each of the thousands of small operations of a
training step then costs a scheduler time slice instead of microseconds. Measured on a 2-core VM
(torch 2.13, 2 threads) while other processes were running: a loop of small operations (a
200k-element multiply-add, relu and sum and a 128x128 matmul) took 14-26 ms a step with
libgomp's default waiting and 0.21 ms with ``OMP_WAIT_POLICY=PASSIVE`` (0.13 ms on one thread);
``graphrec train bots`` (10 epochs, 2 folds) trained in 17-42 s with ``OMP_WAIT_POLICY=ACTIVE``
and 9-18 s with ``PASSIVE``.

``OMP_WAIT_POLICY=PASSIVE`` (and ``GOMP_SPINCOUNT=0``, ``KMP_BLOCKTIME=0`` for the two
runtimes' own knobs) makes waiting threads sleep at once, so a waiting thread yields its core to
the thread it waits for. The OpenMP runtime reads these variables once, when it is loaded, i.e.
when torch is first imported: :func:`use_passive_waiting` therefore runs in
``graphrec/__init__.py``, before any graphrec module can import torch, and sets each variable
only where the user has not (an explicit ``OMP_WAIT_POLICY=ACTIVE`` keeps spinning; a program
that imported torch *before* graphrec keeps the runtime's defaults, which
:func:`waiting_is_passive` reports). The price is a thread wake-up per parallel region,
which costs most on an otherwise idle virtual machine (a sleeping vCPU has to be woken): there the
same loop took 0.47 ms a step passive against 0.11 ms spinning. The training benchmark
(``benchmarks/bench_training.py``) measures both sides; ``OMP_WAIT_POLICY=ACTIVE`` restores
spinning on a dedicated machine.

This module is a foundation: it imports only the standard library and :mod:`graphrec.errors`,
and torch only inside :func:`configure_torch`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import sys
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any, TypeVar, cast

from graphrec.errors import InputError

#: Environment variable that overrides the default thread count.
THREADS_ENV = "GRAPHREC_THREADS"
#: Where the cgroup file systems are mounted (v2: ``cpu.max`` here; v1: ``cpu/``, ``cpu,cpuacct/``).
CGROUP_ROOT = Path("/sys/fs/cgroup")
#: The process's cgroup membership, one ``hierarchy:controllers:path`` line per hierarchy.
SELF_CGROUP = Path("/proc/self/cgroup")
#: The OpenMP settings that make waiting threads sleep instead of spin (see the module docs).
PASSIVE_WAIT_ENV = {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": "0", "KMP_BLOCKTIME": "0"}

ConfigT = TypeVar("ConfigT")

log = logging.getLogger(__name__)

_interop_configured = False
#: Whether torch was imported before graphrec (then its OpenMP runtime has read its settings
#: already), and the wait policy at that moment.
_TORCH_BEFORE_GRAPHREC = "torch" in sys.modules
_POLICY_AT_LOAD = os.environ.get("OMP_WAIT_POLICY", "")


def use_passive_waiting(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Set :data:`PASSIVE_WAIT_ENV` in ``environ`` (default ``os.environ``), unless the user chose
    a wait policy: nothing is set when ``OMP_WAIT_POLICY`` is already there, and the other two
    only where unset. Returns what it set. Effective only before torch's OpenMP runtime loads."""
    env = os.environ if environ is None else environ
    if "OMP_WAIT_POLICY" in env:
        return {}
    done = {}
    for key, value in PASSIVE_WAIT_ENV.items():
        if key not in env:
            env[key] = value
            done[key] = value
    return done


def waiting_is_passive() -> bool:
    """Whether torch's OpenMP threads sleep rather than spin while they wait: the wait policy the
    runtime reads (read already if torch was imported before graphrec, else still to be read at
    torch's import) is ``PASSIVE``."""
    policy = _POLICY_AT_LOAD if _TORCH_BEFORE_GRAPHREC else os.environ.get("OMP_WAIT_POLICY", "")
    return policy.upper() == "PASSIVE"


def affinity_cores() -> int:
    """CPUs in this process's affinity mask (``os.cpu_count()`` where the platform has none)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def _quota_v2(folder: Path) -> float | None:
    """Cores allowed by ``folder/cpu.max`` (``"max 100000"``: no limit)."""
    try:
        fields = (folder / "cpu.max").read_text(encoding="ascii").split()
    except OSError:
        return None
    if len(fields) != 2 or fields[0] == "max":
        return None
    try:
        quota, period = int(fields[0]), int(fields[1])
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def _quota_v1(folder: Path) -> float | None:
    """Cores allowed by ``folder/cpu.cfs_quota_us`` over ``cpu.cfs_period_us`` (-1: no limit)."""
    try:
        quota = int((folder / "cpu.cfs_quota_us").read_text(encoding="ascii").strip())
        period = int((folder / "cpu.cfs_period_us").read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None


def _own_and_ancestors(mount: Path, path: str) -> list[Path]:
    """``mount/path`` and each of its parent folders up to ``mount`` itself. Walking up covers a
    cgroup namespace (the process sees its own cgroup as ``/``) as well as a host view of a nested
    cgroup, where a parent's quota also limits the child."""
    parts = [p for p in path.strip().split("/") if p and p != ".."]
    return [mount.joinpath(*parts[:i]) for i in range(len(parts), -1, -1)]


def cgroup_cpu_limit(root: Path = CGROUP_ROOT, self_cgroup: Path = SELF_CGROUP) -> float | None:
    """The CPU bandwidth limit of this process's cgroup in cores (``quota / period``, possibly
    fractional), or None when there is none or it cannot be read.

    The tightest limit of the process's cgroup and its ancestors, in cgroup v2 (``cpu.max`` under
    ``root``) and v1 (``cpu.cfs_quota_us`` under ``root/cpu``, ``root/cpu,cpuacct`` or
    ``root/cpuacct,cpu``). ``root`` and ``self_cgroup`` are parameters so tests can point them at
    fake files."""
    v2_path, v1_path = "/", "/"
    try:
        for line in self_cgroup.read_text(encoding="utf-8").splitlines():
            hierarchy, _, rest = line.partition(":")
            controllers, _, path = rest.partition(":")
            if hierarchy == "0" and controllers == "":
                v2_path = path
            elif "cpu" in controllers.split(","):
                v1_path = path
    except OSError:
        pass
    limits = [_quota_v2(folder) for folder in _own_and_ancestors(root, v2_path)]
    for mount in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):
        if (root / mount).is_dir():
            limits += [_quota_v1(folder) for folder in _own_and_ancestors(root / mount, v1_path)]
    found = [x for x in limits if x is not None]
    return min(found) if found else None


def available_cores(*, cgroup_root: Path = CGROUP_ROOT, self_cgroup: Path = SELF_CGROUP) -> int:
    """The cores this process may run on: its affinity mask capped by its cgroup CPU quota
    (rounded up: a 1.5-core quota runs two threads), at least 1."""
    cores = affinity_cores()
    limit = cgroup_cpu_limit(cgroup_root, self_cgroup)
    if limit is not None:
        cores = min(cores, math.ceil(limit - 1e-9))
    return max(1, cores)


def default_threads() -> int:
    """Threads for torch work: ``GRAPHREC_THREADS`` when set (a positive integer; anything else
    is an :class:`~graphrec.errors.InputError`), else :func:`available_cores`."""
    raw = os.environ.get(THREADS_ENV, "").strip()
    if raw:
        try:
            value = int(raw)
        except ValueError:
            value = 0
        if value < 1:
            raise InputError(f"{THREADS_ENV} must be a positive integer, got {raw!r}")
        return value
    return available_cores()


def resolve_threads(threads: int | None) -> int:
    """``threads`` itself, or :func:`default_threads` for None (``ValueError`` below 1)."""
    if threads is None:
        return default_threads()
    if int(threads) < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    return int(threads)


def resolve_config_threads(config: ConfigT) -> ConfigT:
    """``config`` (a dataclass) with its ``threads`` field resolved: a copy with
    :func:`default_threads` where it is None, else ``config`` itself (also when it has no such
    field). Training resolves its config this way when it starts, so the recorded parameters hold
    the thread count the run used."""
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        return config
    if "threads" not in {f.name for f in dataclasses.fields(config)} or getattr(config, "threads") is not None:
        return config
    return cast(ConfigT, dataclasses.replace(cast(Any, config), threads=default_threads()))


def configure_torch(threads: int | None = None) -> int:
    """Give torch ``threads`` intra-op threads (None: :func:`default_threads`) and return the
    number. The inter-op pool is sized the same way once per process, where torch still allows
    it (it refuses once inter-op work has started, or a second time)."""
    global _interop_configured
    n = resolve_threads(threads)
    import torch

    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    if not _interop_configured:
        _interop_configured = True
        try:
            torch.set_num_interop_threads(n)
        except RuntimeError:
            pass
        log.info("torch: %d threads (%d cores available), %s waiting", n, available_cores(),
                 "passive" if waiting_is_passive() else "busy (OMP_WAIT_POLICY is not PASSIVE at torch's import)")
    return n

