"""The one column standardiser (:class:`Standardiser`) every task scales its inputs with.

For column ``j`` of the training rows ``x`` (cast to float32), with ``m_j`` the column mean and
``s_j`` the population standard deviation (``ddof=0``), both computed in float32 by numpy::

    z_ij = (x_ij - mean_j) / std_j

where ``(mean_j, std_j)`` is

* ``(0, 1)`` for a *binary* column (every value 0 or 1) when ``binary="keep"``, and for every
  column when ``binary="keep_if_all"`` and the whole matrix is 0/1. Standardising a rare binary
  feature would blow its rare 1s up to huge values that dominate any squared error;
* for a *constant* column, ``s_j < min_std`` (``s_j <= min_std`` with ``min_std_inclusive``):
  ``(m_j, 1)`` with ``centre_constant`` (the column becomes 0), else ``(0, 1)`` (left as it is);
* otherwise ``(m_j, s_j + eps)``.

A task states its rule once, as a :class:`ScalingRule` constant, and fits with
``RULE.fit(x)``. The rules in use (each reproduces bit for bit what the task computed before
this module existed):

======================================  ============================================  ==============================================================
user                                    rule                                          options
======================================  ============================================  ==============================================================
anomaly detectors                       ``tasks.anomaly.detector.SCALING``            ``binary="keep", min_std=1e-8, min_std_inclusive=True,
                                                                                      centre_constant=False``
Siamese profile encoder                 ``tasks.siamese.train.SCALING``               ``binary="keep", min_std=1e-6``
bot model inputs, bot feature baseline  ``tasks.bots.model.SCALING``                  ``min_std=1e-6``
link ranker pair features               ``tasks.linkpred.train.SCALING``              ``min_std=0.0, eps=1e-6``
synthetic profile models                ``tasks.synth.profiles.SCALING``              ``binary="keep_if_all", min_std=1e-8, min_std_inclusive=True``
======================================  ============================================  ==============================================================

A fitted standardiser is two float32 arrays, saved with a model as ``<prefix>.mean`` and
``<prefix>.std`` (:meth:`Standardiser.to_arrays` / :meth:`Standardiser.from_arrays`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np

BINARY_RULES = ("scale", "keep", "keep_if_all")


@dataclass
class Standardiser:
    """Per-column ``(x - mean) / std`` with the fitting rules of the module docstring."""

    mean: np.ndarray
    std: np.ndarray

    def __post_init__(self) -> None:
        self.mean = np.asarray(self.mean, dtype=np.float32).reshape(-1)
        self.std = np.asarray(self.std, dtype=np.float32).reshape(-1)
        if self.mean.shape != self.std.shape:
            raise ValueError(f"scaler mean has {self.mean.size} columns, std {self.std.size}")

    @property
    def width(self) -> int:
        """Number of columns."""
        return int(self.mean.size)

    @classmethod
    def fit(
        cls,
        x: np.ndarray,
        *,
        binary: str = "scale",
        min_std: float = 0.0,
        min_std_inclusive: bool = False,
        centre_constant: bool = True,
        eps: float = 0.0,
    ) -> "Standardiser":
        """Learn column means and standard deviations of ``x`` (``[n, d]``) under the rules of
        the module docstring."""
        if binary not in BINARY_RULES:
            raise ValueError(f"binary must be one of {', '.join(BINARY_RULES)}, got {binary!r}")
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2:
            raise ValueError(f"expected a 2-d array, got shape {x.shape}")
        mean = x.mean(axis=0)
        sd = x.std(axis=0)
        constant = (sd <= min_std) if min_std_inclusive else (sd < min_std)
        std = sd + eps if eps else sd
        is_binary = np.all((x == 0) | (x == 1), axis=0)
        if binary == "keep":
            keep = is_binary
        elif binary == "keep_if_all":
            keep = np.full(x.shape[1], bool(x.size) and bool(is_binary.all()))
        else:
            keep = np.zeros(x.shape[1], dtype=bool)
        zero_mean = keep | (constant & (not centre_constant))
        mean = np.where(zero_mean, 0.0, mean).astype(np.float32)
        std = np.where(keep | constant, 1.0, std).astype(np.float32)
        return cls(mean, std)

    def transform(self, x: np.ndarray) -> np.ndarray:
        """``float32[n, d]``: ``(x - mean) / std``; ``ValueError`` for a different width."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.mean.size:
            raise ValueError(f"expected {self.mean.size} columns, got array of shape {x.shape}")
        return ((x - self.mean) / self.std).astype(np.float32)

    __call__ = transform

    def inverse(self, z: np.ndarray) -> np.ndarray:
        """Back to the columns' own units: ``z * std + mean`` (float32)."""
        return (np.asarray(z, dtype=np.float32) * self.std + self.mean).astype(np.float32)

    def to_arrays(self, prefix: str = "scaler") -> dict[str, np.ndarray]:
        """``{prefix.mean, prefix.std}`` for a model's safetensors arrays."""
        return {f"{prefix}.mean": self.mean, f"{prefix}.std": self.std}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], prefix: str = "scaler", *, width: int | None = None) -> "Standardiser":
        """Read back :meth:`to_arrays`; ``ValueError`` when an array is missing, the two are of
        different lengths, not ``width`` long, non-finite or with a non-positive std."""
        missing = [key for key in (f"{prefix}.mean", f"{prefix}.std") if key not in arrays]
        if missing:
            raise ValueError(f"{prefix} is missing {' and '.join(missing)}")
        scaler = cls(np.asarray(arrays[f"{prefix}.mean"]), np.asarray(arrays[f"{prefix}.std"]))
        if width is not None and scaler.width != width:
            raise ValueError(f"{prefix} has {scaler.width} columns, expected {width}")
        if not (np.isfinite(scaler.mean).all() and np.isfinite(scaler.std).all()) or (scaler.std <= 0).any():
            raise ValueError(f"{prefix} has non-finite values or a non-positive std")
        return scaler


@dataclass(frozen=True)
class ScalingRule:
    """A task's standardiser rule: the options of :meth:`Standardiser.fit` (see the module
    docstring), stated once as a module constant and fitted with :meth:`fit`."""

    binary: str = "scale"
    min_std: float = 0.0
    min_std_inclusive: bool = False
    centre_constant: bool = True
    eps: float = 0.0

    def __post_init__(self) -> None:
        if self.binary not in BINARY_RULES:
            raise ValueError(f"binary must be one of {', '.join(BINARY_RULES)}, got {self.binary!r}")

    def fit(self, x: np.ndarray) -> Standardiser:
        """A :class:`Standardiser` fitted on ``x`` (``[n, d]``) under this rule."""
        return Standardiser.fit(x, **asdict(self))
