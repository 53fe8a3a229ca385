"""Small helpers shared by the models: label handling and eval-mode sampling.

Conditional models (Mirza & Osindero 2014, "Conditional GANs"; Sohn et al. 2015, "CVAE")
receive the class label as a one-hot vector concatenated to their inputs, so every model
needs the same conversion ``y -> one-hot`` and the same rule for the ``y`` argument of
``sample``: ``None`` (unconditional model), one ``int`` (all ``n`` samples of that class) or
a length-``n`` sequence / tensor of labels.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch
from torch import Tensor, nn

LabelsLike = int | Sequence[int] | np.ndarray | Tensor | None


def one_hot(y: Tensor, n_classes: int) -> Tensor:
    """Float one-hot encoding of integer labels ``y`` (shape ``(n,)``) -> ``(n, n_classes)``."""
    return nn.functional.one_hot(y.long(), n_classes).float()


def sample_labels(n: int, y: LabelsLike, n_classes: int, device: torch.device) -> Tensor | None:
    """Resolve the ``y`` argument of ``sample`` into a ``(n,)`` long tensor (or None).

    ``None`` for an unconditional model; an ``int`` repeats one class; a sequence gives one
    label per sample. A conditional model called with ``y=None`` raises, because which
    classes to draw is a decision the caller must make (e.g. in the training proportions).
    """
    if n_classes <= 0:
        if y is not None:
            raise ValueError("y given to an unconditional model (n_classes=0)")
        return None
    if y is None:
        raise ValueError("conditional model (n_classes>0): pass y (an int or n labels)")
    if isinstance(y, (int, np.integer)):
        labels = torch.full((n,), int(y), dtype=torch.long, device=device)
    else:
        labels = torch.as_tensor(np.asarray(y), dtype=torch.long, device=device).reshape(-1)
        if labels.numel() != n:
            raise ValueError(f"y has {labels.numel()} labels for n={n} samples")
    if labels.min() < 0 or labels.max() >= n_classes:
        raise ValueError(f"labels must lie in [0, {n_classes})")
    return labels


def check_labels(y: Tensor | None, n_classes: int) -> None:
    """Raise when a conditional model gets no labels or an unconditional one gets labels."""
    if n_classes > 0 and y is None:
        raise ValueError("conditional model (n_classes>0) needs labels y")
    if n_classes <= 0 and y is not None:
        raise ValueError("labels y given to an unconditional model (n_classes=0)")


@contextmanager
def eval_mode(module: nn.Module) -> Iterator[None]:
    """Temporarily switch ``module`` to eval mode (batch norm uses running statistics) and
    disable autograd; restores the previous mode afterwards."""
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        module.train(was_training)


def model_device(module: nn.Module) -> torch.device:
    """Device of the first parameter (CPU for a parameter-less module)."""
    for p in module.parameters():
        return p.device
    return torch.device("cpu")
