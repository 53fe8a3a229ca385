"""graphrec: graph-centric friend recommendation and analysis over a SQL-backed social graph.

Library entry points (imported lazily so ``import graphrec`` stays cheap)::

    from graphrec import GraphStore, Settings
    from graphrec import BotEstimator, AnomalyEstimator   # scikit-learn / PyGOD-style detectors
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from graphrec.threads import use_passive_waiting

# Before anything can import torch: its OpenMP threads sleep instead of spinning while they wait
# (OMP_WAIT_POLICY=PASSIVE, unless the user set a policy). Spinning threads make torch many times
# slower on a machine where other processes compete for the cores; see graphrec.threads.
use_passive_waiting()

__version__ = "0.1.0"

__all__ = [
    "AnomalyEstimator",
    "BotEstimator",
    "GraphStore",
    "GraphrecError",
    "ImportReport",
    "InputError",
    "NotFoundError",
    "Settings",
    "Snapshot",
    "StoreStateError",
    "StoreStats",
    "UserRecord",
    "__version__",
]

_LAZY = {
    "AnomalyEstimator": "graphrec.estimators",
    "BotEstimator": "graphrec.estimators",
    "GraphStore": "graphrec.store.store",
    "StoreStats": "graphrec.store.store",
    "UserRecord": "graphrec.store.store",
    "Snapshot": "graphrec.store.snapshot",
    "ImportReport": "graphrec.store.report",
    "Settings": "graphrec.config",
    "GraphrecError": "graphrec.errors",
    "InputError": "graphrec.errors",
    "NotFoundError": "graphrec.errors",
    "StoreStateError": "graphrec.errors",
}

if TYPE_CHECKING:  # pragma: no cover
    from graphrec.config import Settings
    from graphrec.estimators import AnomalyEstimator, BotEstimator
    from graphrec.errors import GraphrecError, InputError, NotFoundError, StoreStateError
    from graphrec.store.report import ImportReport
    from graphrec.store.snapshot import Snapshot
    from graphrec.store.store import GraphStore, StoreStats, UserRecord


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'graphrec' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
