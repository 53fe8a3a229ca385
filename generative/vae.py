"""Variational autoencoders (Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014).

An encoder maps ``x`` to the mean ``mu`` and log-variance ``log sigma^2`` of a diagonal Gaussian
posterior ``q(z|x)``; a latent is drawn with the reparameterisation trick

    z = mu + sigma * eps,   eps ~ N(0, I),

which keeps the draw differentiable in ``mu`` and ``sigma``. The decoder maps ``z`` to the
parameters of ``p(x|z)``. Training minimises the negative evidence lower bound (ELBO)

    loss = recon + beta * KL,
    recon = -log p(x|z)  (summed over features),
    KL    = KL(q(z|x) || N(0, I)) = -1/2 * sum_j (1 + log sigma_j^2 - mu_j^2 - sigma_j^2),

averaged over the batch. ``beta`` is 1 for the true ELBO; the trainer can anneal it from 0 to
1 over the first epochs ("KL warm-up", Bowman et al. 2016; Sønderby et al. 2016) so the
decoder learns to use ``z`` before the KL term pulls the posterior to the prior.

Likelihoods:
* ``"bernoulli"``: ``p(x|z) = prod_i Bernoulli(x_i; sigmoid(logit_i))``, recon = BCE-with-logits
  summed over features. Right for binary data and usable for data scaled to [0, 1]
  (then it is the continuous cross-entropy, not a normalised density).
* ``"gaussian"``: ``p(x|z) = N(x; mu_dec, gaussian_sigma^2 I)`` with a fixed sigma, recon =
  ``sum_i (x_i - mu_i)^2 / (2 sigma^2)`` (constant dropped).

Conditional VAE (Sohn et al., NeurIPS 2015): with ``n_classes > 0`` the one-hot label is
concatenated to the encoder input and to ``z`` before decoding, so ``sample(n, y=c)`` draws
from ``p(x | z, c)``.

Ex-post density estimation (Ghosh et al., "From Variational to Deterministic Autoencoders",
ICLR 2020, Sec. 4). The aggregate posterior ``q(z) = E_x q(z|x)`` of a trained VAE does not
match the prior ``N(0, I)``: decoding prior draws lands partly in latent regions no training
code occupies (blurry or in-between images) and under-samples others, costing precision and
recall. ``fit_latent_prior(x)`` fits a Gaussian mixture (sklearn ``GaussianMixture``, full
covariances) to the posterior MEANS ``mu(x)`` of the training data after training; ``sample``
then draws ``z`` from that mixture. Conditional models get one mixture per class (fitted on
that class's codes; ``sample(n, y=c)`` draws from class ``c``'s mixture). The mixture
(``latent_prior_weights`` (C, K), ``latent_prior_means`` (C, K, d),
``latent_prior_scale_tril`` (C, K, d, d), C = 1 for unconditional models) is kept as buffers,
so it is saved and restored with the state dict. ``sample(..., prior=None)`` (default) uses the
mixture once one is fitted and ``N(0, I)`` before; ``prior="standard"`` / ``"mixture"`` choose
explicitly.
"""

from __future__ import annotations

from abc import ABCMeta, abstractmethod

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from ._common import LabelsLike, check_labels, eval_mode, model_device, one_hot, sample_labels

Likelihood = Literal["bernoulli", "gaussian"]
Prior = Literal["standard", "mixture"]
_MIXTURE_KEYS = ("latent_prior_weights", "latent_prior_means", "latent_prior_scale_tril")


def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """Per-sample ``KL(N(mu, diag(exp(logvar))) || N(0, I))`` in closed form:
    ``-1/2 * sum_j (1 + logvar_j - mu_j^2 - exp(logvar_j))`` (Kingma & Welling 2014, App. B).
    Returns shape ``(batch,)``."""
    return -0.5 * torch.sum(1.0 + logvar - mu.pow(2) - logvar.exp(), dim=1)


def reparameterise(mu: Tensor, logvar: Tensor) -> Tensor:
    """``z = mu + sigma * eps`` with ``sigma = exp(logvar / 2)``, ``eps ~ N(0, I)``."""
    return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)


class VAE(nn.Module, metaclass=ABCMeta):
    """Base class: the ELBO, sampling and the training step; subclasses define the networks.

    Subclasses implement ``encode(x, c) -> (mu, logvar)`` and ``decode(z, c) -> raw output``
    (logits for Bernoulli, means for Gaussian), where ``c`` is the one-hot label or None.
    """

    default_lr: float = 1e-3
    default_betas: tuple[float, float] = (0.9, 0.999)
    #: the fitted latent mixture (buffers; None until :meth:`fit_latent_prior`)
    latent_prior_weights: Tensor | None
    latent_prior_means: Tensor | None
    latent_prior_scale_tril: Tensor | None

    def __init__(self, latent_dim: int, likelihood: Likelihood, n_classes: int, gaussian_sigma: float = 1.0):
        super().__init__()
        if likelihood not in ("bernoulli", "gaussian"):
            raise ValueError(f"likelihood must be 'bernoulli' or 'gaussian', not {likelihood!r}")
        self.latent_dim = int(latent_dim)
        self.likelihood: Likelihood = likelihood
        self.n_classes = int(n_classes)
        self.gaussian_sigma = float(gaussian_sigma)
        for key in _MIXTURE_KEYS:
            self.register_buffer(key, None)

    # -- to be provided by subclasses -------------------------------------------------------
    @abstractmethod
    def encode(self, x: Tensor, c: Tensor | None) -> tuple[Tensor, Tensor]:
        """``(mu, logvar)`` of ``q(z | x, c)``."""

    @abstractmethod
    def decode(self, z: Tensor, c: Tensor | None) -> Tensor:
        """Raw decoder output: logits (Bernoulli) or means (Gaussian)."""

    # -- shared ------------------------------------------------------------------------------
    def _cond(self, y: Tensor | None) -> Tensor | None:
        check_labels(y, self.n_classes)
        return None if y is None else one_hot(y, self.n_classes)

    def reconstruction_nll(self, out: Tensor, x: Tensor) -> Tensor:
        """Per-sample ``-log p(x|z)`` summed over features (see module docstring)."""
        if self.likelihood == "bernoulli":
            nll = nn.functional.binary_cross_entropy_with_logits(out, x, reduction="none")
        else:
            nll = (x - out).pow(2) / (2.0 * self.gaussian_sigma**2)
        return nll.flatten(1).sum(dim=1)

    def mean_from_output(self, out: Tensor) -> Tensor:
        """Decoder mean in data space: ``sigmoid(logits)`` (Bernoulli) or the mean (Gaussian)."""
        return torch.sigmoid(out) if self.likelihood == "bernoulli" else out

    def loss(self, x: Tensor, y: Tensor | None = None, kl_weight: float = 1.0) -> dict[str, Tensor]:
        """Negative ELBO on a batch: ``{"loss", "recon", "kl"}``, each averaged over the batch;
        ``loss = recon + kl_weight * kl`` (``kl_weight`` = beta of the warm-up, 1 = true ELBO)."""
        c = self._cond(y)
        mu, logvar = self.encode(x, c)
        z = reparameterise(mu, logvar)
        recon = self.reconstruction_nll(self.decode(z, c), x).mean()
        kl = gaussian_kl(mu, logvar).mean()
        return {"loss": recon + kl_weight * kl, "recon": recon, "kl": kl}

    def reconstruct(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Decoder mean at the posterior mean ``z = mu(x)`` (no sampling noise)."""
        with eval_mode(self):
            c = self._cond(y)
            mu, _ = self.encode(x, c)
            return self.mean_from_output(self.decode(mu, c))

    # -- ex-post latent density (Ghosh et al. 2020) -----------------------------------------
    @property
    def has_latent_prior(self) -> bool:
        """Whether :meth:`fit_latent_prior` has fitted a mixture (or one was loaded)."""
        return self.latent_prior_means is not None

    @torch.no_grad()
    def encode_posterior(self, x: Tensor | np.ndarray, y: Tensor | np.ndarray | None = None,
                         batch_size: int = 1024) -> tuple[Tensor, Tensor]:
        """Posterior ``(mu(x), logvar(x))`` in eval mode, each of shape ``(n, latent_dim)``."""
        xt = torch.as_tensor(np.asarray(x) if not isinstance(x, Tensor) else x, dtype=torch.float32)
        yt = None if y is None else torch.as_tensor(np.asarray(y) if not isinstance(y, Tensor) else y).long()
        xt = xt.to(model_device(self))
        mus, logvars = [], []
        with eval_mode(self):
            for i in range(0, len(xt), batch_size):
                yb = None if yt is None else yt[i : i + batch_size].to(xt.device)
                mu, logvar = self.encode(xt[i : i + batch_size], self._cond(yb))
                mus.append(mu)
                logvars.append(logvar)
        return torch.cat(mus), torch.cat(logvars)

    def encode_mean(self, x: Tensor | np.ndarray, y: Tensor | np.ndarray | None = None,
                    batch_size: int = 1024) -> Tensor:
        """Posterior means ``mu(x)`` in eval mode, shape ``(n, latent_dim)``."""
        return self.encode_posterior(x, y, batch_size)[0]

    def fit_latent_prior(self, x: Tensor | np.ndarray, y: Tensor | np.ndarray | None = None, *,
                         components: int | str = 10, seed: int = 0,
                         candidates: Sequence[int] = (1, 2, 5, 10, 20, 30), draws: int = 0) -> dict[str, Any]:
        """Fit the ex-post Gaussian mixture on the posterior means of the TRAINING data ``x``
        (one mixture per class for conditional models; ``y`` required then).

        ``components``: the number of mixture components (capped at the number of codes), or
        ``"bic"`` to pick, per mixture, the size in ``candidates`` with the lowest BIC on the
        same training codes (no held-out data involved). Full covariances, k-means
        initialisation, ``random_state=seed``, sklearn's default ``reg_covar`` (1e-6).

        ``draws``: 0 fits the posterior MEANS (Ghosh et al.'s deterministic codes); ``k > 0`` fits
        ``k`` draws ``z ~ q(z|x)`` per training row (seeded), a Monte Carlo sample of the aggregate
        posterior ``q(z) = E_x q(z|x)`` itself. Means leave out each posterior's spread, so a
        mixture on them concentrates near the codes of the most common inputs and its samples
        over-produce those inputs; on sparse binary profiles, where many real rows coincide, that
        shows as synthetic rows equal to training rows beyond what unseen real rows do (ego-Facebook,
        seeds 0 and 2: 20.0-20.2% against 17.3-17.7% with means, 14.2-16.8% with 3 draws, at the
        same two-sample AUC; ``benchmarks/bench_synth_profiles.py``).
        Returns ``{"components": [K per mixture], "bic": [BIC per mixture]}``."""
        from sklearn.mixture import GaussianMixture

        if self.n_classes > 0 and y is None:
            raise ValueError("conditional model: pass the training labels y")
        if self.n_classes <= 0 and y is not None:
            raise ValueError("labels y given to an unconditional model (n_classes=0)")
        labels = np.zeros(len(x), dtype=int) if y is None else np.asarray(y).astype(int).reshape(-1)
        if draws < 0:
            raise ValueError("draws must be 0 (posterior means) or a positive number of draws per row")
        if draws == 0:
            codes = self.encode_mean(x, y).cpu().double().numpy()
        else:
            mu, logvar = self.encode_posterior(x, y)
            g = torch.Generator(device=mu.device).manual_seed(seed)
            codes = torch.cat([mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=g, device=mu.device)
                               for _ in range(draws)]).cpu().double().numpy()
            labels = np.tile(labels, draws)
        groups = [codes[labels == c] for c in range(max(self.n_classes, 1))]

        def gmm(data: np.ndarray, k: int) -> GaussianMixture:
            k = max(1, min(int(k), len(data)))
            return GaussianMixture(k, covariance_type="full", random_state=seed).fit(data)

        fitted: list[GaussianMixture] = []
        for c, data in enumerate(groups):
            if len(data) < 2:
                raise ValueError(f"class {c}: need at least 2 training rows to fit a mixture")
            if components == "bic":
                fits = [gmm(data, k) for k in sorted({max(1, min(int(k), len(data))) for k in candidates})]
                fitted.append(min(fits, key=lambda g: g.bic(data)))
            elif isinstance(components, str):
                raise ValueError("components must be an int or 'bic'")
            else:
                fitted.append(gmm(data, components))
        kmax = max(g.n_components for g in fitted)
        d = self.latent_dim
        weights = np.zeros((len(fitted), kmax))
        means = np.zeros((len(fitted), kmax, d))
        tril = np.tile(np.eye(d), (len(fitted), kmax, 1, 1))
        for c, g in enumerate(fitted):  # unused slots (fewer components) keep weight 0
            k = g.n_components
            weights[c, :k] = g.weights_
            means[c, :k] = g.means_
            tril[c, :k] = np.linalg.cholesky(g.covariances_)
        device = model_device(self)
        for key, arr in zip(_MIXTURE_KEYS, (weights, means, tril)):
            setattr(self, key, torch.as_tensor(arr, dtype=torch.float32, device=device))
        return {"components": [g.n_components for g in fitted],
                "bic": [float(g.bic(data)) for g, data in zip(fitted, groups)]}

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        # the mixture buffers are None until fitted and their shapes depend on the fit: size
        # them from the incoming state dict so load_state_dict restores them (or clears them)
        for key in _MIXTURE_KEYS:
            incoming = state_dict.get(prefix + key)
            setattr(self, key, None if incoming is None else torch.empty_like(incoming, device=model_device(self)))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def sample_latent(self, n: int, labels: Tensor | None = None, generator: torch.Generator | None = None,
                      prior: Prior | None = None) -> Tensor:
        """``n`` latents from ``N(0, I)`` (``prior="standard"``) or the fitted mixture
        (``"mixture"``; per-class mixture for conditional models); None = mixture if fitted."""
        device = model_device(self)
        if prior is None:
            prior = "mixture" if self.has_latent_prior else "standard"
        if prior == "standard":
            return torch.randn(n, self.latent_dim, generator=generator, device=device)
        if prior != "mixture":
            raise ValueError(f"prior must be 'standard' or 'mixture', not {prior!r}")
        if not self.has_latent_prior:
            raise ValueError("prior='mixture' needs fit_latent_prior(...) first")
        cls = torch.zeros(n, dtype=torch.long, device=device) if labels is None else labels
        u = torch.rand(n, generator=generator, device=device)
        assert self.latent_prior_weights is not None and self.latent_prior_means is not None and self.latent_prior_scale_tril is not None
        cdf = self.latent_prior_weights[cls].cumsum(dim=1)  # (n, K)
        comp = torch.searchsorted(cdf / cdf[:, -1:], u[:, None]).squeeze(1).clamp_max(cdf.shape[1] - 1)
        eps = torch.randn(n, self.latent_dim, 1, generator=generator, device=device)
        return self.latent_prior_means[cls, comp] + (self.latent_prior_scale_tril[cls, comp] @ eps).squeeze(2)

    def sample(self, n: int, y: LabelsLike = None, generator: torch.Generator | None = None,
               prior: Prior | None = None) -> Tensor:
        """Draw ``z`` from the latent prior and return the decoder MEAN in data space
        (probabilities for the Bernoulli likelihood). ``y``: None, one class, or ``n`` labels
        (conditional models). ``prior``: ``"standard"`` (``N(0, I)``), ``"mixture"`` (the
        ex-post mixture of :meth:`fit_latent_prior`) or None = the mixture once fitted."""
        device = model_device(self)
        labels = sample_labels(n, y, self.n_classes, device)
        with eval_mode(self):
            z = self.sample_latent(n, labels, generator=generator, prior=prior)
            c = None if labels is None else one_hot(labels, self.n_classes)
            return self.mean_from_output(self.decode(z, c))

    def sample_binary(self, n: int, y: LabelsLike = None, generator: torch.Generator | None = None,
                      prior: Prior | None = None) -> Tensor:
        """Binary samples: ``x_i ~ Bernoulli(p_i)`` with ``p`` = ``sample(...)`` (Bernoulli
        likelihood only). Both the latent and the Bernoulli draws use ``generator``."""
        if self.likelihood != "bernoulli":
            raise ValueError("sample_binary needs likelihood='bernoulli'")
        p = self.sample(n, y, generator=generator, prior=prior)
        return torch.bernoulli(p, generator=generator)

    # -- trainer protocol (see generative.training.fit) --------------------------------------
    def configure_optimizers(self, lr: float, betas: tuple[float, float]) -> dict[str, torch.optim.Optimizer]:
        return {"vae": torch.optim.Adam(self.parameters(), lr=lr, betas=betas)}

    def train_step(
        self, x: Tensor, y: Tensor | None, optimizers: dict[str, torch.optim.Optimizer], kl_weight: float = 1.0
    ) -> dict[str, float]:
        opt = optimizers["vae"]
        opt.zero_grad(set_to_none=True)
        out = self.loss(x, y, kl_weight=kl_weight)
        out["loss"].backward()
        opt.step()
        return {k: float(v.detach()) for k, v in out.items()}

    @torch.no_grad()
    def elbo(self, x: Tensor, y: Tensor | None = None) -> float:
        """Mean negative ELBO (``recon + KL``, beta = 1) over ``x`` in eval mode: one posterior
        draw per row, so a noisy but unbiased estimate. Lower is better."""
        with eval_mode(self):
            return float(self.loss(x, y)["loss"])


def _mlp(sizes: Sequence[int]) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return layers


class MLPVAE(VAE):
    """VAE with fully connected encoder/decoder for flat vectors (e.g. binary profiles).

    Encoder: ``[x, onehot(y)] -> hidden... -> (mu, logvar)``; decoder:
    ``[z, onehot(y)] -> reversed hidden... -> input_dim`` outputs (logits or means).
    """

    def __init__(
        self,
        input_dim: int,
        latent_dim: int = 16,
        hidden: Sequence[int] = (256, 128),
        likelihood: Likelihood = "bernoulli",
        n_classes: int = 0,
        gaussian_sigma: float = 1.0,
    ):
        super().__init__(latent_dim, likelihood, n_classes, gaussian_sigma)
        self.input_dim = int(input_dim)
        hidden = tuple(int(h) for h in hidden)
        k = self.n_classes
        self.encoder = nn.Sequential(*_mlp((input_dim + k, *hidden)))
        last = hidden[-1] if hidden else input_dim + k
        self.to_mu = nn.Linear(last, latent_dim)
        self.to_logvar = nn.Linear(last, latent_dim)
        dec_sizes = (latent_dim + k, *reversed(hidden))
        self.decoder = nn.Sequential(*_mlp(dec_sizes), nn.Linear(dec_sizes[-1], input_dim))

    def encode(self, x: Tensor, c: Tensor | None) -> tuple[Tensor, Tensor]:
        h = self.encoder(x if c is None else torch.cat([x, c], dim=1))
        return self.to_mu(h), self.to_logvar(h)

    def decode(self, z: Tensor, c: Tensor | None) -> Tensor:
        return self.decoder(z if c is None else torch.cat([z, c], dim=1))


class ConvVAE(VAE):
    """Convolutional VAE for ``1 x H x W`` images with H, W divisible by 4 (8x8 digits).

    Encoder: two stride-2 4x4 convolutions (``H -> H/2 -> H/4``, ReLU), flatten, concatenate the
    one-hot label, linear to ``(mu, logvar)``. Decoder: linear from ``[z, onehot(y)]`` to a
    ``channels[1] x H/4 x W/4`` map, then two stride-2 transposed convolutions back to
    ``1 x H x W`` (logits for Bernoulli, means for Gaussian).
    """

    def __init__(
        self,
        image_size: int = 8,
        latent_dim: int = 16,
        channels: Sequence[int] = (32, 64),
        likelihood: Likelihood = "bernoulli",
        n_classes: int = 0,
        gaussian_sigma: float = 1.0,
    ):
        super().__init__(latent_dim, likelihood, n_classes, gaussian_sigma)
        if image_size % 4:
            raise ValueError("image_size must be divisible by 4")
        c1, c2 = (int(c) for c in channels)
        self.image_size = int(image_size)
        s = image_size // 4
        self._map = (c2, s, s)
        flat = c2 * s * s
        k = self.n_classes
        self.encoder = nn.Sequential(
            nn.Conv2d(1, c1, 4, 2, 1), nn.ReLU(),
            nn.Conv2d(c1, c2, 4, 2, 1), nn.ReLU(),
            nn.Flatten(),
        )
        self.to_mu = nn.Linear(flat + k, latent_dim)
        self.to_logvar = nn.Linear(flat + k, latent_dim)
        self.from_z = nn.Sequential(nn.Linear(latent_dim + k, flat), nn.ReLU())
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(c2, c1, 4, 2, 1), nn.ReLU(),
            nn.ConvTranspose2d(c1, 1, 4, 2, 1),
        )

    def encode(self, x: Tensor, c: Tensor | None) -> tuple[Tensor, Tensor]:
        h = self.encoder(x)
        if c is not None:
            h = torch.cat([h, c], dim=1)
        return self.to_mu(h), self.to_logvar(h)

    def decode(self, z: Tensor, c: Tensor | None) -> Tensor:
        h = self.from_z(z if c is None else torch.cat([z, c], dim=1))
        return self.decoder(h.view(-1, *self._map))
