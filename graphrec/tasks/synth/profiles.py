"""Profile generators for synthetic users, from the ``generative`` package.

:func:`fit_profile_generator` trains a VAE (``generative.MLPVAE``) or a GAN (``generative.GAN``)
on real users' feature rows. Binary profiles (every value 0 or 1, like ego-Facebook's) use the
Bernoulli likelihood / a sigmoid generator and are sampled as Bernoulli draws; other profiles are
standardised per column (:class:`~graphrec.core.scaling.Standardiser`, the synthetic-profile rule),
modelled with a Gaussian likelihood / linear generator and mapped back. With ``classes`` the model
is class-conditional (one-hot label into encoder, decoder and discriminator), so
``sample(n, label=c)`` draws profiles of class ``c``.

An unconditional VAE samples its latent codes from an ex-post Gaussian mixture fitted to
:data:`LATENT_DRAWS` draws from each training row's posterior (the aggregate posterior; Ghosh et
al., ICLR 2020, fit the means of a deterministic autoencoder, which over-produce common profiles
here; size chosen by BIC on those codes), not from N(0, I): the aggregate posterior of a trained VAE is far from its prior, and decoding prior
draws gives visibly less realistic profiles (``benchmarks/bench_synth_profiles.py`` reports both).
Conditional models sample from the prior (a per-class mixture over a handful of labelled rows
would only replay them).

:func:`fit_profile_generator` is the :class:`~graphrec.tasks.base.ProfileSamplerFactory` that the
task registry hands to bot augmentation. A :class:`ProfileGenerator` round-trips through plain
arrays (:meth:`ProfileGenerator.state_arrays`, :meth:`ProfileGenerator.from_state`): its network's
state dict as numpy arrays plus the constructor arguments, nothing pickled. torch and
``generative`` are imported inside the functions that need them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from graphrec.core.scaling import ScalingRule, Standardiser

if TYPE_CHECKING:  # pragma: no cover
    from generative import GAN, MLPVAE

log = logging.getLogger(__name__)

MODELS = ("vae", "gan")
#: The profile scaling of the generators (see :mod:`graphrec.core.scaling`): a 0/1 profile
#: matrix is modelled as it is (Bernoulli outputs), any other is standardised per column,
#: constant columns (std <= 1e-8) only centred.
SCALING = ScalingRule(binary="keep_if_all", min_std=1e-8, min_std_inclusive=True)
#: ``kind`` -> the ``generative`` class that models it
GENERATOR_CLASSES = {"vae": "MLPVAE", "gan": "GAN"}
#: default training epochs of both models
DEFAULT_EPOCHS = 100
#: posterior draws per training row the VAE's latent mixture is fitted on (``generative.VAE.fit_latent_prior``):
#: the aggregate posterior, not its means, which over-produce the most common profiles
LATENT_DRAWS = 3


def generator_args(kind: str, width: int, *, binary: bool, n_classes: int) -> dict[str, Any]:
    """Constructor arguments of the ``kind`` network for ``width`` feature columns (JSON-able: they
    are saved in the artifact's manifest and rebuild the same network)."""
    if kind == "vae":
        return {"input_dim": width, "latent_dim": 32, "hidden": [512, 256], "likelihood": "bernoulli" if binary else "gaussian",
                "n_classes": n_classes}
    if kind == "gan":
        return {"data_dim": width, "latent_dim": 64, "hidden": [256, 256], "n_classes": n_classes,
                "output": "sigmoid" if binary else "linear", "ema_decay": 0.999, "straight_through": binary,
                "pack": 4}
    raise ValueError(f"unknown profile model {kind!r}: choose vae or gan")


def build_generator(kind: str, args: dict[str, Any]) -> "MLPVAE | GAN":
    """A fresh (untrained) ``generative`` network from :func:`generator_args`."""
    import generative

    if kind == "vae":
        return generative.MLPVAE(args["input_dim"], latent_dim=args["latent_dim"], hidden=tuple(args["hidden"]),
                                 likelihood=args["likelihood"], n_classes=args["n_classes"])
    if kind == "gan":
        return generative.GAN(args["data_dim"], latent_dim=args["latent_dim"], hidden=tuple(args["hidden"]), n_classes=args["n_classes"],
                              output=args["output"], ema_decay=args["ema_decay"],
                              # absent in artifacts written before issue 18
                              straight_through=bool(args.get("straight_through", False)), pack=int(args.get("pack", 1)))
    raise ValueError(f"unknown profile model {kind!r}: choose vae or gan")


@dataclass
class ProfileGenerator:
    """A trained profile model and how to map its samples back to feature rows.

    ``scaler`` maps model space back to feature units (identity for binary profiles);
    ``class_names`` are the classes of a conditional model (empty: unconditional); ``history``
    holds the per-epoch training losses."""

    kind: str
    model: "MLPVAE | GAN"
    binary: bool
    scaler: Standardiser
    args: dict[str, Any] = field(default_factory=dict)
    class_names: list[str] = field(default_factory=list)
    history: dict[str, list[float]] = field(default_factory=dict)

    @property
    def width(self) -> int:
        """Number of feature columns a sample has."""
        return self.scaler.width

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
        extra: dict[str, Any] = {"prior": prior} if self.kind == "vae" else {}  # the VAE's prior; the GAN has none
        with torch.no_grad():
            if self.binary:
                out = self.model.sample_binary(n, y, generator=gen, **extra)
            else:
                out = self.model.sample(n, y, generator=gen, **extra)
        x = out.detach().cpu().numpy().astype(np.float32)
        return x if self.binary else self.scaler.inverse(x)

    def final_losses(self) -> dict[str, float]:
        """The last epoch's value of every recorded loss (rounded to 5 digits)."""
        return {k: round(float(v[-1]), 5) for k, v in self.history.items() if v and k != "seconds"}

    def state_arrays(self) -> dict[str, np.ndarray]:
        """The network's state dict (weights, buffers such as the VAE's latent mixture and the GAN's
        averaged generator) as numpy arrays keyed by parameter name."""
        return {name: t.detach().cpu().numpy().copy() for name, t in self.model.state_dict().items()}

    @classmethod
    def from_state(cls, kind: str, args: dict[str, Any], state: dict[str, np.ndarray], *, binary: bool, scaler: Standardiser,
                   class_names: list[str]) -> "ProfileGenerator":
        """Rebuild a trained generator from :meth:`state_arrays` and its constructor arguments.
        Raises ``ValueError``/``KeyError``/``RuntimeError`` when the arrays do not fit the network."""
        import torch

        model = build_generator(kind, args)
        expected = set(model.state_dict())
        optional = {k for k in state if k.startswith("latent_prior_")}  # the VAE mixture exists once fitted
        if set(state) - optional != expected - optional:
            missing, extra = sorted(expected - set(state) - optional), sorted(set(state) - expected - optional)
            raise ValueError(f"generator arrays do not match the {kind} network (missing {missing[:3]}, unexpected {extra[:3]})")
        model.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()}, strict=True)
        model.eval()
        return cls(kind, model, binary, scaler, dict(args), list(class_names))


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
    scaler = SCALING.fit(x)
    data = x if binary else scaler.transform(x)
    names = list(class_names or [])
    n_classes = len(names) if classes is not None else 0
    import torch

    torch.manual_seed(seed)
    args = generator_args(kind, x.shape[1], binary=binary, n_classes=n_classes)
    model = build_generator(kind, args)
    epochs = DEFAULT_EPOCHS if epochs is None else epochs
    log.info("training the %s profile model on %d rows x %d columns (%s, %d classes, %d epochs)", kind, x.shape[0], x.shape[1],
             "binary" if binary else "real-valued", n_classes, epochs)
    if isinstance(model, generative.MLPVAE):
        history = generative.fit(model, data, classes, epochs=epochs, batch_size=64, seed=seed, threads=threads,
                                 kl_warmup_epochs=min(20, epochs // 3), progress=None)
        if n_classes == 0:
            model.fit_latent_prior(data, components="bic", candidates=(5, 10, 20), seed=seed, draws=LATENT_DRAWS)
    else:
        history = generative.fit(model, data, classes, epochs=epochs, batch_size=128, seed=seed, threads=threads, progress=None)
    model.eval()
    return ProfileGenerator(kind, model, binary, scaler, args, names if n_classes else [], dict(history))
