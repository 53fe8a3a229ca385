"""The adversarial training step shared by :class:`~generative.gan.GAN` and
:class:`~generative.dcgan.DCGAN` (Goodfellow et al., "Generative Adversarial Nets", NeurIPS 2014).

Each step alternates, as in Algorithm 1 of the paper (with k = 1 discriminator step):

1. update D against a fixed G: minimise ``BCE(D(x), 1) + BCE(D(G(z)), 0)`` with ``G(z)``
   detached, i.e. maximise ``log D(x) + log(1 - D(G(z)))``;
2. update G against a fixed D (only G's optimiser steps) on a fresh ``z``: minimise
   ``BCE(D(G(z)), 1) = -log D(G(z))``.

Step 2 is the NON-SATURATING generator loss. The minimax form ``min_G log(1 - D(G(z)))`` has
gradient ``-D'/(1-D)``, which vanishes when D confidently rejects the fakes (``D(G(z)) -> 0``),
exactly the situation early in training; ``-log D(G(z))`` has the same fixed point but a strong
gradient there (Goodfellow et al. 2014, Sec. 3). D outputs logits and the losses use
``binary_cross_entropy_with_logits`` for numerical stability.

Generator weight averaging (optional, ``ema_decay``). GAN iterates oscillate around an
equilibrium instead of converging; an exponential moving average of the generator weights
taken after every generator step,

    theta_ema <- d * theta_ema + (1 - d) * theta,

is a cheap, documented fix that improves sample quality (Yazici et al., "The Unusual
Effectiveness of Averaging in GAN Training", ICLR 2019; Karras et al., ProGAN, ICLR 2018, use
d = 0.999). Early on the effective decay is ``min(d, (1 + t) / (10 + t))`` for update ``t``
(the ``num_updates`` warm-up of TensorFlow's ``ExponentialMovingAverage``) so the average is
not dominated by the random initial weights. The shadow generator ``generator_ema`` is a
submodule (its parameters, buffers and the update counter ``ema_updates`` are in the state
dict, so checkpoints resume exactly); it is never trained by the optimisers. Batch-norm
running statistics (buffers) are copied from the live generator at each update, not averaged.
When enabled, ``sample`` uses the shadow generator (``sample(..., ema=False)`` gives the live
one).

Truncated latents at sampling time (optional, ``truncation=psi`` of ``noise`` / ``sample``).
Training draws ``z ~ N(0, I)``; at sampling time every coordinate can instead be drawn from the
standard normal truncated to ``[-psi, psi]``,

    p(z_i) = phi(z_i) / (Phi(psi) - Phi(-psi))   for |z_i| <= psi, else 0,

by resampling each out-of-range entry from N(0, 1) until it lands inside (rejection sampling:
the accepted entries follow exactly that density). This is the "truncation trick" (Brock,
Donahue & Simonyan, "Large Scale GAN Training for High Fidelity Natural Image Synthesis"
(BigGAN), ICLR 2019, Sec. 3.1; earlier Marchesi 2016): latents in the tails of the prior are the
ones the generator saw least often in training and map to the least typical outputs, so keeping
``z`` near the mode trades some variety (recall) for fidelity (precision). ``psi`` -> infinity
recovers N(0, I); smaller ``psi`` means fewer, more typical samples. It changes nothing in
training (the training step always uses untruncated noise). ``truncation=None`` (the default)
is the untruncated prior; the digits benchmark picks its value by a scan over seeds 0-2
(``benchmarks/bench_generative_digits.py``).
"""

from __future__ import annotations

import copy
from abc import ABCMeta, abstractmethod

import torch
from torch import Tensor, nn

from ._common import LabelsLike, check_labels, eval_mode, model_device, one_hot, sample_labels


class AdversarialModel(nn.Module, metaclass=ABCMeta):
    """Base for GANs: subclasses define ``generator_forward(z, c)`` (data space) and
    ``discriminator_forward(x, c)`` (one logit per row), and attributes ``generator``,
    ``discriminator`` (the two parameter sets) and ``latent_dim``, ``n_classes``."""

    default_lr: float = 2e-4
    default_betas: tuple[float, float] = (0.5, 0.999)
    latent_dim: int
    n_classes: int
    generator: nn.Module
    discriminator: nn.Module
    ema_decay: float = 0.0  # set by _init_ema, with the instance attribute ``generator_ema``
    generator_ema: nn.Module | None
    ema_updates: Tensor

    @abstractmethod
    def generator_forward(self, z: Tensor, c: Tensor | None, ema: bool = False) -> Tensor:
        """``G(z, c)``; with ``ema=True`` the shadow (weight-averaged) generator."""

    def _generator_net(self, ema: bool) -> nn.Module:
        if ema:
            if not self.uses_ema:
                raise ValueError("ema=True but the model has no EMA generator (ema_decay=None)")
            assert self.generator_ema is not None
            return self.generator_ema
        return self.generator

    def _init_ema(self, ema_decay: float | None) -> None:
        """Create the shadow generator (call at the end of a subclass ``__init__``, after the
        weight initialisation). ``ema_decay`` None or 0 disables it."""
        if not ema_decay:
            self.ema_decay, self.generator_ema = 0.0, None
            return
        if not 0.0 < ema_decay < 1.0:
            raise ValueError("ema_decay must lie in (0, 1)")
        self.ema_decay = float(ema_decay)
        self.generator_ema = copy.deepcopy(self.generator)
        for p in self.generator_ema.parameters():
            p.requires_grad_(False)
        self.register_buffer("ema_updates", torch.zeros((), dtype=torch.long))

    @property
    def uses_ema(self) -> bool:
        return getattr(self, "generator_ema", None) is not None

    @torch.no_grad()
    def update_ema(self) -> None:
        """One EMA step of the shadow generator towards the live one (see module docstring)."""
        if self.generator_ema is None:
            return
        t = int(self.ema_updates)
        d = min(self.ema_decay, (1.0 + t) / (10.0 + t))
        for pe, p in zip(self.generator_ema.parameters(), self.generator.parameters()):
            pe.lerp_(p, 1.0 - d)
        for be, b in zip(self.generator_ema.buffers(), self.generator.buffers()):
            be.copy_(b)
        self.ema_updates += 1

    @abstractmethod
    def discriminator_forward(self, x: Tensor, c: Tensor | None) -> Tensor:
        """One logit per row of ``x``."""

    def noise(self, n: int, generator: torch.Generator | None = None, truncation: float | None = None) -> Tensor:
        """Latent prior ``z ~ N(0, I)``, shape ``(n, latent_dim)``. With ``truncation=psi`` each
        coordinate is drawn from N(0, 1) truncated to ``[-psi, psi]`` (out-of-range entries are
        redrawn until inside; see the module docstring). The result depends only on ``generator``'s
        state, so a seeded generator reproduces it. ``psi`` must be > 0; below ~0.1 the redraws
        become slow (acceptance ``2 Phi(psi) - 1`` per draw)."""
        device = model_device(self)
        z = torch.randn(n, self.latent_dim, generator=generator, device=device)
        if truncation is None:
            return z
        psi = float(truncation)
        if not psi > 0.0:
            raise ValueError("truncation must be > 0 (or None for the untruncated prior)")
        outside = z.abs() > psi
        while bool(outside.any()):
            fresh = torch.randn(int(outside.sum()), generator=generator, device=device)
            z[outside] = fresh
            outside = z.abs() > psi
        return z

    def sample(self, n: int, y: LabelsLike = None, generator: torch.Generator | None = None,
               ema: bool | None = None, truncation: float | None = None) -> Tensor:
        """``G(z)`` for ``z ~ N(0, I)`` in eval mode (batch norm on running statistics), in the
        generator's output range. ``y``: None, one class, or ``n`` labels (conditional models).
        ``ema``: use the weight-averaged generator; None = whenever the model has one.
        ``truncation``: None = the full prior; ``psi`` > 0 = latents truncated to ``|z_i| <= psi``
        (the truncation trick, Brock et al. 2019; see the module docstring), more typical but
        less varied samples."""
        labels = sample_labels(n, y, self.n_classes, model_device(self))
        use_ema = self.uses_ema if ema is None else bool(ema)
        with eval_mode(self):
            c = None if labels is None else one_hot(labels, self.n_classes)
            return self.generator_forward(self.noise(n, generator, truncation=truncation), c, ema=use_ema)

    def configure_optimizers(self, lr: float, betas: tuple[float, float]) -> dict[str, torch.optim.Optimizer]:
        return {
            "d": torch.optim.Adam(self.discriminator.parameters(), lr=lr, betas=betas),
            "g": torch.optim.Adam(self.generator.parameters(), lr=lr, betas=betas),
        }

    def train_step(
        self, x: Tensor, y: Tensor | None, optimizers: dict[str, torch.optim.Optimizer], kl_weight: float = 1.0
    ) -> dict[str, float]:
        """One alternating D-then-G update (see module docstring); ``kl_weight`` is ignored."""
        del kl_weight
        check_labels(y, self.n_classes)
        c = None if y is None else one_hot(y, self.n_classes)
        n = x.shape[0]
        bce = nn.functional.binary_cross_entropy_with_logits
        ones = torch.ones(n, device=x.device)
        zeros = torch.zeros(n, device=x.device)

        # 1. discriminator against a fixed generator
        opt_d, opt_g = optimizers["d"], optimizers["g"]
        with torch.no_grad():
            fake = self.generator_forward(self.noise(n), c)
        opt_d.zero_grad(set_to_none=True)
        d_real = self.discriminator_forward(x, c)
        d_fake = self.discriminator_forward(fake, c)
        d_loss = bce(d_real, ones) + bce(d_fake, zeros)
        d_loss.backward()
        opt_d.step()

        # 2. generator against a fixed discriminator: non-saturating loss -log D(G(z))
        opt_g.zero_grad(set_to_none=True)
        d_gen = self.discriminator_forward(self.generator_forward(self.noise(n), c), c)
        g_loss = bce(d_gen, ones)
        g_loss.backward()
        opt_g.step()  # D's gradients from this pass are discarded by the next zero_grad
        self.update_ema()
        return {
            "d_loss": float(d_loss.detach()),
            "g_loss": float(g_loss.detach()),
            "d_real": float(torch.sigmoid(d_real.detach()).mean()),
            "d_fake": float(torch.sigmoid(d_fake.detach()).mean()),
        }
