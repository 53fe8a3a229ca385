"""Ranking metrics for recommendation evaluation (numpy only).

For one user with ranked list ``r`` (best first) and relevant set ``T`` (held-out friends):

* Recall@K = |top-K(r) ∩ T| / |T|
* reciprocal rank = 1 / (1-based position of the first relevant item), 0 if none is ranked.

Averages are over users (macro), as in the link-prediction literature.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np


def hit_positions(ranking: np.ndarray, relevant: Iterable[int]) -> np.ndarray:
    """0-based positions in ``ranking`` of the relevant items, ascending."""
    rel = np.fromiter(relevant, dtype=np.int64)
    return np.flatnonzero(np.isin(ranking, rel))


@dataclass
class RankingMetrics:
    """Accumulates Recall@K and MRR over users."""

    ks: Sequence[int] = (20, 50)
    users: int = 0
    _recall: dict[int, float] = field(default_factory=dict)
    _rr: float = 0.0

    def add(self, ranking: np.ndarray, relevant: set[int] | Sequence[int]) -> None:
        """Add one user's ranking (best first) against its relevant items (must be non-empty)."""
        n_rel = len(relevant)
        if n_rel == 0:
            raise ValueError("a user needs at least one relevant item")
        pos = hit_positions(np.asarray(ranking), relevant)
        for k in self.ks:
            self._recall[k] = self._recall.get(k, 0.0) + float(np.count_nonzero(pos < k)) / n_rel
        self._rr += 1.0 / (pos[0] + 1) if pos.size else 0.0
        self.users += 1

    def result(self) -> dict[str, float]:
        """``{"recall@20": ..., "recall@50": ..., "mrr": ..., "users": n}``."""
        m = max(self.users, 1)
        out = {f"recall@{k}": self._recall.get(k, 0.0) / m for k in self.ks}
        out["mrr"] = self._rr / m
        out["users"] = float(self.users)
        return out
