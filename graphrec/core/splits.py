"""Stratified splits of labelled examples, on scikit-learn.

Every task that holds labelled examples out (bot evaluation, the bot model's cross-fitting folds)
splits them here, so each class keeps its share in every part:

* :func:`stratified_split`: one train/test split (``StratifiedShuffleSplit``);
* :func:`stratified_folds`: the fold number of each example for ``k``-fold cross-fitting
  (``StratifiedKFold`` with shuffling).

Both are deterministic for a given seed and return positions into the label array, so the
caller maps them back to its own node indices.
"""

from __future__ import annotations

import math

import numpy as np


def stratified_split(y: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions into ``y`` for (train, test), each sorted, every class split in proportion.

    The test part holds ``ceil(test_fraction * n)`` examples, clamped so that both parts can hold
    one example of each class (``StratifiedShuffleSplit`` refuses smaller parts); scikit-learn
    then allocates them to the classes in proportion to the class sizes. A class with a single
    example cannot be split and raises ``ValueError``."""
    from sklearn.model_selection import StratifiedShuffleSplit

    y = np.asarray(y)
    n = int(y.size)
    classes = int(np.unique(y).size)
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    if n < 2 * classes:
        raise ValueError(f"cannot split {n} examples of {classes} classes into a train and a test part")
    n_test = min(max(math.ceil(test_fraction * n), classes), n - classes)
    splitter = StratifiedShuffleSplit(n_splits=1, test_size=n_test, random_state=seed)
    train, test = next(splitter.split(np.zeros((n, 1)), y))
    return np.sort(train), np.sort(test)


def stratified_folds(y: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """``int64[n]``: the fold (``0..folds-1``) of each position of ``y``, classes spread evenly
    over the folds (``StratifiedKFold(shuffle=True)``). ``folds`` must not exceed the number of
    examples; a class smaller than ``folds`` leaves some folds without it."""
    import warnings

    from sklearn.model_selection import StratifiedKFold

    y = np.asarray(y)
    out = np.empty(y.size, dtype=np.int64)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        for f, (_, held_out) in enumerate(splitter.split(np.zeros((y.size, 1)), y)):
            out[held_out] = f
    return out
