"""DCGAN (Radford, Metz & Chintala, "Unsupervised Representation Learning with Deep
Convolutional GANs", ICLR 2016) sized for small square images (8x8 digits by default).

The paper's architecture guidelines, all followed here:

* no pooling: the discriminator downsamples with strided convolutions, the generator
  upsamples with (fractionally strided) transposed convolutions;
* batch norm in both networks, except at the generator output and the discriminator input;
* no fully connected hidden layers: ``z`` is reshaped to ``latent_dim x 1 x 1`` and projected
  by the first transposed convolution (the paper's "projection"); the discriminator ends in a
  convolution to a single 1x1 logit;
* ReLU in the generator with tanh at the output (images in [-1, 1]); LeakyReLU(0.2) in the
  discriminator;
* Adam with lr 2e-4 and beta1 0.5; weights initialised from N(0, 0.02) (BN scale N(1, 0.02)).

For ``image_size = 8`` with ``base = b`` channels:
G: ``z (1x1) -> 2b x 2x2 -> b x 4x4 -> 1 x 8x8``; D: ``1 x 8x8 -> b x 4x4 -> 2b x 2x2 -> 1x1``.
Conditional variant (``n_classes > 0``): the one-hot label is appended to ``z`` as extra input
channels of G and broadcast to ``n_classes`` constant HxW planes appended to D's input.
Training uses the alternating, non-saturating step of :mod:`generative.adversarial`;
``ema_decay`` (e.g. 0.999) keeps an exponential moving average of the generator weights that
``sample`` then uses (Yazici et al. 2019; see that module), and ``sample(..., truncation=psi)``
draws the latents from N(0, I) truncated to ``|z_i| <= psi`` (the truncation trick of BigGAN,
Brock et al. 2019; same module), trading some variety for more typical images at sampling time
only. On the 8x8 digits the benchmark serves EMA with ``psi = 2.0``
(``benchmarks/bench_generative_digits.py``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .adversarial import AdversarialModel


def to_unit_interval(x: Tensor) -> Tensor:
    """Map tanh-range images ``[-1, 1]`` to ``[0, 1]``: ``(x + 1) / 2``."""
    return (x + 1.0) * 0.5


def from_unit_interval(x: Tensor) -> Tensor:
    """Map ``[0, 1]`` images to the generator's ``[-1, 1]`` range: ``2x - 1``."""
    return x * 2.0 - 1.0


def dcgan_init(module: nn.Module) -> None:
    """The paper's initialisation: conv weights ~ N(0, 0.02); BN weight ~ N(1, 0.02), bias 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class DCGAN(AdversarialModel):
    """Convolutional GAN for ``1 x image_size x image_size`` images in [-1, 1].

    ``image_size`` must be a power of two >= 4; the generator starts from a 2x2 map and doubles
    it ``log2(image_size) - 1`` times. ``sample`` returns images in [-1, 1]; use
    :func:`to_unit_interval` for [0, 1].
    """

    def __init__(self, image_size: int = 8, latent_dim: int = 32, base: int = 64, n_classes: int = 0,
                 ema_decay: float | None = None):
        super().__init__()
        steps = int(round(math.log2(image_size))) - 1
        if image_size < 4 or 2 ** (steps + 1) != image_size:
            raise ValueError("image_size must be a power of two >= 4")
        self.image_size, self.latent_dim, self.n_classes = int(image_size), int(latent_dim), int(n_classes)
        k = self.n_classes
        chans = [base * 2 ** i for i in range(steps)]  # D widths: b, 2b, 4b, ...
        g_chans = list(reversed(chans))  # G widths: ..., 2b, b  (for steps transposed convs)

        # Generator: projection of z (1x1) to 2x2, then (steps - 1) upsampling blocks, output conv.
        g: list[nn.Module] = [
            nn.ConvTranspose2d(latent_dim + k, g_chans[0], 2, 1, 0, bias=False),
            nn.BatchNorm2d(g_chans[0]), nn.ReLU(True),
        ]
        for a, b in zip(g_chans[:-1], g_chans[1:]):
            g += [nn.ConvTranspose2d(a, b, 4, 2, 1, bias=False), nn.BatchNorm2d(b), nn.ReLU(True)]
        g += [nn.ConvTranspose2d(g_chans[-1], 1, 4, 2, 1, bias=False), nn.Tanh()]
        self.generator = nn.Sequential(*g)

        # Discriminator: strided convs; no BN on the input layer; final conv to one 1x1 logit.
        d: list[nn.Module] = [nn.Conv2d(1 + k, chans[0], 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)]
        for a, b in zip(chans[:-1], chans[1:]):
            d += [nn.Conv2d(a, b, 4, 2, 1, bias=False), nn.BatchNorm2d(b), nn.LeakyReLU(0.2, True)]
        d += [nn.Conv2d(chans[-1], 1, 2, 1, 0, bias=False)]
        self.discriminator = nn.Sequential(*d)
        self.apply(dcgan_init)
        self._init_ema(ema_decay)

    def generator_forward(self, z: Tensor, c: Tensor | None, ema: bool = False) -> Tensor:
        h = z if c is None else torch.cat([z, c], dim=1)
        return self._generator_net(ema)(h[:, :, None, None])

    def discriminator_forward(self, x: Tensor, c: Tensor | None) -> Tensor:
        if x.dim() == 2:
            x = x.view(-1, 1, self.image_size, self.image_size)
        if c is not None:
            planes = c[:, :, None, None].expand(-1, -1, self.image_size, self.image_size)
            x = torch.cat([x, planes], dim=1)
        return self.discriminator(x).flatten()
