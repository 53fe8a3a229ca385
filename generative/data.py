"""scikit-learn's bundled 8x8 digits (1,797 images, pixels 0..16), scaled and split.

Used by the digits benchmark and the tests; no download needed (the data ships with sklearn).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split


@dataclass(frozen=True)
class DigitsSplit:
    """Flat 64-d rows in [0, 1] (``pixel / 16``) and labels 0..9 for train and held-out."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @staticmethod
    def images(x: np.ndarray) -> np.ndarray:
        """``(n, 64)`` -> ``(n, 1, 8, 8)`` float32."""
        return np.asarray(x, dtype=np.float32).reshape(-1, 1, 8, 8)


def digits_split(test_size: float = 0.3, seed: int = 0) -> DigitsSplit:
    """Stratified train/held-out split of the digits with pixel values scaled to [0, 1]."""
    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)
    xtr, xte, ytr, yte = train_test_split(x, d.target, test_size=test_size, stratify=d.target, random_state=seed)
    return DigitsSplit(xtr, ytr.astype(np.int64), xte, yte.astype(np.int64))
