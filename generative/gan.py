"""Fully connected GAN for flat vectors (Goodfellow et al., NeurIPS 2014), optionally
conditional (Mirza & Osindero 2014): the one-hot label is concatenated to ``z`` and to D's input.

Training alternates D and G updates with the non-saturating generator loss; see
:mod:`generative.adversarial` for the step and why ``-log D(G(z))`` replaces
``log(1 - D(G(z)))``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn

from ._common import LabelsLike
from .adversarial import AdversarialModel

Output = Literal["sigmoid", "tanh", "linear"]


class GAN(AdversarialModel):
    """MLP generator and discriminator.

    G: ``[z, onehot(y)] -> hidden (Linear, BatchNorm, ReLU)... -> data_dim`` then the ``output``
    activation: ``"sigmoid"`` for data in [0, 1] (binary rows: the output is read as a
    Bernoulli probability), ``"tanh"`` for [-1, 1], ``"linear"`` for unbounded data.
    D: ``[x, onehot(y)] -> hidden (Linear, LeakyReLU(0.2))... -> 1 logit``.
    ``ema_decay``: optional generator weight averaging (see :mod:`generative.adversarial`).
    """

    def __init__(
        self,
        data_dim: int,
        latent_dim: int = 32,
        hidden: Sequence[int] = (256, 256),
        n_classes: int = 0,
        output: Output = "sigmoid",
        ema_decay: float | None = None,
    ):
        super().__init__()
        if output not in ("sigmoid", "tanh", "linear"):
            raise ValueError(f"output must be sigmoid, tanh or linear, not {output!r}")
        self.data_dim, self.latent_dim, self.n_classes = int(data_dim), int(latent_dim), int(n_classes)
        self.output = output
        k = self.n_classes
        g: list[nn.Module] = []
        prev = latent_dim + k
        for h in hidden:
            g += [nn.Linear(prev, h), nn.BatchNorm1d(h), nn.ReLU()]
            prev = h
        g.append(nn.Linear(prev, data_dim))
        if output == "sigmoid":
            g.append(nn.Sigmoid())
        elif output == "tanh":
            g.append(nn.Tanh())
        self.generator = nn.Sequential(*g)
        d: list[nn.Module] = []
        prev = data_dim + k
        for h in hidden:
            d += [nn.Linear(prev, h), nn.LeakyReLU(0.2)]
            prev = h
        d.append(nn.Linear(prev, 1))
        self.discriminator = nn.Sequential(*d)
        self._init_ema(ema_decay)

    def generator_forward(self, z: Tensor, c: Tensor | None, ema: bool = False) -> Tensor:
        return self._generator_net(ema)(z if c is None else torch.cat([z, c], dim=1))

    def discriminator_forward(self, x: Tensor, c: Tensor | None) -> Tensor:
        return self.discriminator(x if c is None else torch.cat([x, c], dim=1)).squeeze(1)

    def sample_binary(self, n: int, y: LabelsLike = None, generator: torch.Generator | None = None,
                      ema: bool | None = None) -> Tensor:
        """Binary rows: ``x_i ~ Bernoulli(G(z)_i)`` (``output="sigmoid"`` only; the generator's
        output is read as per-feature probabilities, like the VAE's decoder mean)."""
        if self.output != "sigmoid":
            raise ValueError("sample_binary needs output='sigmoid'")
        return torch.bernoulli(self.sample(n, y, generator=generator, ema=ema), generator=generator)
