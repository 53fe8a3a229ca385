"""Profile generators for synthetic users, from the ``generative`` package.

:func:`fit_profile_generator` trains a VAE (``generative.MLPVAE``) or a GAN (``generative.GAN``)
on real users' feature rows. Binary profiles (every value 0 or 1, like ego-Facebook's) use the
Bernoulli likelihood / a sigmoid generator and are sampled as Bernoulli draws; other profiles are
standardised per column, modelled with a Gaussian likelihood / linear generator and mapped back.
With ``classes`` the model is class-conditional (one-hot label into encoder, decoder and
discriminator), so ``sample(n, label=c)`` draws profiles of class ``c``.

An unconditional VAE samples its latent codes from an ex-post Gaussian mixture fitted to the
training rows' posterior means (Ghosh et al., ICLR 2020; size chosen by BIC on those codes), not
from N(0, I): the aggregate posterior of a trained VAE is far from its prior, and decoding prior
draws gives visibly less realistic profiles (``benchmarks/bench_synth_profiles.py`` reports both).
Conditional models sample from the prior (a per-class mixture over a handful of labelled rows
would only replay them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

MODELS = ("vae", "gan")


@dataclass
class ProfileGenerator:
    """A trained profile model and how to map its samples back to feature rows."""

    kind: str
    model: Any
    binary: bool
    mean: np.ndarray
    std: np.ndarray
    class_names: list[str] = field(default_factory=list)
    history: dict[str, list[float]] = field(default_factory=dict)

    def sample(self, n: int, *, label: str | None = None, seed: int = 0, prior: str | None = None) -> np.ndarray:
        """``float32[n, d]`` synthetic feature rows (of class ``label`` for a conditional model).
        ``prior`` (VAE only): ``"standard"`` or ``"mixture"``; default: the mixture when fitted."""
        import torch

        y = None
        if label is not None:
            if label not in self.class_names:
                raise ValueError(f"the profile model knows classes {self.class_names}, not {label!r}")
            y = self.class_names.index(label)
        elif self.class_names:
            raise ValueError(f"this profile model is conditional: pass label= one of {self.class_names}")
        gen = torch.Generator().manual_seed(seed)
        extra = {"prior": prior} if self.kind == "vae" else {}
        with torch.no_grad():
            if self.binary:
                out = self.model.sample_binary(n, y, generator=gen, **extra)
            else:
                out = self.model.sample(n, y, generator=gen, **extra)
        x = out.detach().cpu().numpy().astype(np.float32)
        return x if self.binary else (x * self.std + self.mean).astype(np.float32)


def fit_profile_generator(
    features: np.ndarray,
    *,
    kind: str = "vae",
    classes: np.ndarray | None = None,
    class_names: list[str] | None = None,
    epochs: int | None = None,
    seed: int = 0,
    threads: int | None = None,
) -> ProfileGenerator:
    """Train a ``kind`` (``vae`` or ``gan``) model of the rows of ``features``; with ``classes``
    (int codes into ``class_names``), a class-conditional one."""
    import generative

    if kind not in MODELS:
        raise ValueError(f"unknown profile model {kind!r}: choose vae or gan")
    x = np.asarray(features, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] < 10 or x.shape[1] == 0:
        raise ValueError(f"need at least 10 users with feature columns to train a profile model, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("features contain NaN or infinity")
    binary = bool(np.all((x == 0) | (x == 1)))
    if binary:
        mean, std = np.zeros(x.shape[1], np.float32), np.ones(x.shape[1], np.float32)
        data = x
    else:
        mean = x.mean(axis=0).astype(np.float32)
        sd = x.std(axis=0)
        std = np.where(sd > 1e-8, sd, 1.0).astype(np.float32)
        data = (x - mean) / std
    names = list(class_names or [])
    n_classes = len(names) if classes is not None else 0
    import torch

    torch.manual_seed(seed)
    d = x.shape[1]
    if kind == "vae":
        model = generative.MLPVAE(d, latent_dim=32, hidden=(512, 256), likelihood="bernoulli" if binary else "gaussian", n_classes=n_classes)
        epochs = 100 if epochs is None else epochs
        history = generative.fit(model, data, classes, epochs=epochs, batch_size=64, seed=seed, threads=threads,
                                 kl_warmup_epochs=min(20, epochs // 3), progress=None)
        if n_classes == 0:
            model.fit_latent_prior(data, components="bic", candidates=(5, 10, 20, 50), seed=seed)
    else:
        model = generative.GAN(d, latent_dim=64, hidden=(256, 256), n_classes=n_classes, output="sigmoid" if binary else "linear",
                               ema_decay=0.999)
        epochs = 100 if epochs is None else epochs
        history = generative.fit(model, data, classes, epochs=epochs, batch_size=128, seed=seed, threads=threads, progress=None)
    model.eval()
    return ProfileGenerator(kind, model, binary, mean, std, names if n_classes else [], dict(history))
