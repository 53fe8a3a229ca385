"""Fully connected GAN for flat vectors (Goodfellow et al., NeurIPS 2014), optionally
conditional (Mirza & Osindero 2014): the one-hot label is concatenated to ``z`` and to D's input.

Training alternates D and G updates with the non-saturating generator loss; see
:mod:`generative.adversarial` for the step and why ``-log D(G(z))`` replaces
``log(1 - D(G(z)))``.

Binary data and the straight-through option. Real binary rows are exactly 0/1; a sigmoid
generator's outputs are probabilities strictly inside (0, 1), so a discriminator can separate real
from fake by that alone, and the generator's only way to fool it is to saturate every output to 0
or 1: a deterministic map from ``z`` onto a few binary rows, which on small sparse data are
training rows (on ego-Facebook profiles 67-99% of the samples were exact copies of training rows).
With ``straight_through=True`` the discriminator sees what ``sample_binary`` serves, Bernoulli
draws ``b ~ Bernoulli(p)`` with ``p = G(z)``, and the generator gets the straight-through gradient
(Bengio, Léonard & Courville 2013, "Estimating or Propagating Gradients Through Stochastic
Neurons"): the forward pass uses ``b``, the backward pass treats ``db/dp`` as the identity,
implemented as ``b + (p - stop_gradient(p))``. The generator then has no reason to saturate and
keeps genuine per-feature randomness; on ego-Facebook its exact-copy rate falls below that of
held-out real profiles (``benchmarks/bench_synth_profiles.py``). Only in training: ``sample``
(eval mode) returns the probabilities ``p`` as before.

Packing (``pack = m``, PacGAN: Lin, Khetan, Fanti & Oh, NeurIPS 2018). The discriminator judges
``m`` samples of the same kind (all real or all generated) concatenated into one input, so it can
see a lack of diversity that no single sample shows, which penalises a generator that
concentrates on a few rows. A batch of ``n`` rows becomes ``n / m`` packed inputs (a batch that is
not a multiple of ``m`` is topped up with its own first rows); each packed logit is repeated for
its ``m`` members, so the per-row losses of :mod:`generative.adversarial` are the packed loss
unchanged. The paper uses ``m`` = 2 to 4.
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
    ``straight_through`` (``output="sigmoid"`` only): in training the discriminator sees Bernoulli
    draws of the generator's probabilities, with the straight-through gradient (module docs).
    ``pack``: the discriminator judges ``pack`` rows at once (PacGAN; module docs); 1 = no packing.
    """

    def __init__(
        self,
        data_dim: int,
        latent_dim: int = 32,
        hidden: Sequence[int] = (256, 256),
        n_classes: int = 0,
        output: Output = "sigmoid",
        ema_decay: float | None = None,
        straight_through: bool = False,
        pack: int = 1,
    ):
        super().__init__()
        if output not in ("sigmoid", "tanh", "linear"):
            raise ValueError(f"output must be sigmoid, tanh or linear, not {output!r}")
        if straight_through and output != "sigmoid":
            raise ValueError("straight_through needs output='sigmoid' (Bernoulli draws of probabilities)")
        self.straight_through = bool(straight_through)
        if int(pack) < 1:
            raise ValueError(f"pack must be at least 1, got {pack}")
        self.pack = int(pack)
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
        prev = (data_dim + k) * self.pack
        for h in hidden:
            d += [nn.Linear(prev, h), nn.LeakyReLU(0.2)]
            prev = h
        d.append(nn.Linear(prev, 1))
        self.discriminator = nn.Sequential(*d)
        self._init_ema(ema_decay)

    def generator_forward(self, z: Tensor, c: Tensor | None, ema: bool = False) -> Tensor:
        p = self._generator_net(ema)(z if c is None else torch.cat([z, c], dim=1))
        if self.straight_through and self.training:  # b + (p - sg(p)): forward exactly b, gradient of p
            return torch.bernoulli(p.detach()) + (p - p.detach())
        return p

    def discriminator_forward(self, x: Tensor, c: Tensor | None) -> Tensor:
        h = x if c is None else torch.cat([x, c], dim=1)
        if self.pack == 1:
            return self.discriminator(h).squeeze(1)
        n, m = h.shape[0], self.pack
        short = -n % m
        if short:  # top the batch up with its own first rows (cycled when the batch is smaller than that)
            h = torch.cat([h, h[torch.arange(short, device=h.device) % n]])
        packed = self.discriminator(h.reshape(-1, m * h.shape[1])).squeeze(1)
        return packed.repeat_interleave(m)[:n]

    def sample_binary(self, n: int, y: LabelsLike = None, generator: torch.Generator | None = None,
                      ema: bool | None = None) -> Tensor:
        """Binary rows: ``x_i ~ Bernoulli(G(z)_i)`` (``output="sigmoid"`` only; the generator's
        output is read as per-feature probabilities, like the VAE's decoder mean)."""
        if self.output != "sigmoid":
            raise ValueError("sample_binary needs output='sigmoid'")
        return torch.bernoulli(self.sample(n, y, generator=generator, ema=ema), generator=generator)
