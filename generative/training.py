"""One trainer for every model of the package (VAE, GAN, DCGAN), with resumable checkpoints.

A model is trainable when it provides ``default_lr``, ``default_betas``,
``configure_optimizers(lr, betas) -> {name: Adam}`` and
``train_step(x, y, optimizers, kl_weight) -> {metric: float}`` (see :class:`Trainable`).

Reproducibility and resume. ``fit`` seeds torch's global RNG (``torch.manual_seed(seed)``:
reparameterisation noise, GAN latents) and a numpy ``Generator(PCG64(seed))`` (minibatch
order). A checkpoint holds only state dicts and plain values -- model, optimisers, the number
of finished epochs, the loss history, torch's RNG state and the numpy generator state -- written
with ``torch.save`` (atomically: temp file + ``os.replace``) every ``checkpoint_every`` epochs and
after the last epoch. ``fit(..., checkpoint_dir=d, resume=True)`` restores all of it and
continues, so an interrupted run finishes with exactly the parameters of an uninterrupted run
with the same seed (same deterministic CPU kernels assumed).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

History = dict[str, list[float]]
CHECKPOINT_NAME = "checkpoint.pt"


class Trainable(Protocol):
    """What :func:`fit` needs from a model (VAE, GAN and DCGAN implement it)."""

    default_lr: float
    default_betas: tuple[float, float]

    def configure_optimizers(self, lr: float, betas: tuple[float, float]) -> dict[str, torch.optim.Optimizer]: ...

    def train_step(
        self, x: Tensor, y: Tensor | None, optimizers: dict[str, torch.optim.Optimizer], kl_weight: float = 1.0
    ) -> dict[str, float]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> Any: ...

    def train(self, mode: bool = True) -> Any: ...


def _show_progress(progress: bool | None) -> bool:
    return sys.stderr.isatty() if progress is None else bool(progress)


def kl_weight_at(epoch: int, kl_warmup_epochs: int) -> float:
    """Linear KL warm-up (beta annealing): ``beta = min(1, (epoch + 1) / kl_warmup_epochs)``
    for 0-based ``epoch``; 1 throughout when ``kl_warmup_epochs <= 0``."""
    if kl_warmup_epochs <= 0:
        return 1.0
    return min(1.0, (epoch + 1) / kl_warmup_epochs)


def save_checkpoint(path: Path, model: Trainable, optimizers: dict[str, torch.optim.Optimizer], epoch: int,
                    history: History, rng: np.random.Generator, config: dict[str, Any]) -> None:
    """Write the resumable state (state dicts and plain values only) atomically to ``path``."""
    state = {
        "model": model.state_dict(),
        "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
        "epoch": int(epoch),
        "history": {k: list(v) for k, v in history.items()},
        "torch_rng": torch.get_rng_state(),
        "numpy_rng": rng.bit_generator.state,
        "config": config,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (``weights_only=True``: no pickled code)."""
    return torch.load(path, map_location="cpu", weights_only=True)


def fit(
    model: Trainable,
    x: np.ndarray | Tensor,
    y: np.ndarray | Tensor | None = None,
    *,
    epochs: int = 100,
    batch_size: int = 64,
    lr: float | None = None,
    betas: tuple[float, float] | None = None,
    seed: int = 0,
    kl_warmup_epochs: int = 0,
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int = 10,
    resume: bool = True,
    progress: bool | None = None,
    threads: int | None = None,
    drop_last: bool = True,
    on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
) -> History:
    """Train ``model`` on ``x`` (and labels ``y`` for conditional models) with Adam.

    * ``lr`` / ``betas`` default to the model's (VAE: 1e-3, (0.9, 0.999); GAN/DCGAN: 2e-4,
      (0.5, 0.999) as in Radford et al. 2016).
    * Each epoch shuffles with the seeded numpy generator and runs ``train_step`` on minibatches
      of ``batch_size`` (the last partial batch is dropped when ``drop_last``, which keeps batch
      norm statistics sane; it is kept when it is the only batch).
    * ``kl_warmup_epochs``: KL weight ``beta`` ramps linearly to 1 (VAE only; GANs ignore it).
    * Returns the history ``{metric: [per-epoch mean]}`` (``seconds`` = wall time of each epoch).
    * ``checkpoint_dir``: save every ``checkpoint_every`` epochs and at the end; with ``resume``
      an existing checkpoint there is loaded and training continues from its epoch (a
      checkpoint that already reached ``epochs`` just returns its history).
    * ``progress``: tqdm bar over epochs; ``None`` = only when stderr is a TTY.
    * ``threads``: ``torch.set_num_threads(threads)`` when given (None leaves it unchanged).
    """
    if threads is not None:
        torch.set_num_threads(int(threads))
    xt = torch.as_tensor(np.asarray(x) if not isinstance(x, Tensor) else x, dtype=torch.float32)
    yt = None if y is None else torch.as_tensor(np.asarray(y) if not isinstance(y, Tensor) else y, dtype=torch.long)
    if yt is not None and len(yt) != len(xt):
        raise ValueError("x and y have different lengths")
    n = len(xt)
    lr = float(model.default_lr if lr is None else lr)
    betas = model.default_betas if betas is None else (float(betas[0]), float(betas[1]))
    config = {"seed": int(seed), "batch_size": int(batch_size), "lr": lr, "betas": list(betas),
              "kl_warmup_epochs": int(kl_warmup_epochs), "n": int(n)}

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    optimizers = model.configure_optimizers(lr, betas)
    history: History = {}
    start = 0
    ckpt = None if checkpoint_dir is None else Path(checkpoint_dir) / CHECKPOINT_NAME
    if ckpt is not None and resume and ckpt.exists():
        state = load_checkpoint(ckpt)
        if state["config"] != config:
            raise ValueError(f"checkpoint {ckpt} was written with another configuration: {state['config']}")
        model.load_state_dict(state["model"])
        for k, o in optimizers.items():
            o.load_state_dict(state["optimizers"][k])
        history = {k: list(v) for k, v in state["history"].items()}
        torch.set_rng_state(state["torch_rng"])
        rng.bit_generator.state = state["numpy_rng"]
        start = int(state["epoch"])

    bar = None
    if _show_progress(progress):
        from tqdm.auto import tqdm

        bar = tqdm(total=epochs, initial=min(start, epochs), desc=type(model).__name__, unit="epoch")
    model.train(True)
    for epoch in range(start, epochs):
        t0 = time.perf_counter()
        beta = kl_weight_at(epoch, kl_warmup_epochs)
        perm = torch.from_numpy(rng.permutation(n))
        stop = n - n % batch_size if (drop_last and n >= batch_size) else n
        sums: dict[str, float] = {}
        count = 0
        for i in range(0, stop, batch_size):
            idx = perm[i : i + batch_size]
            out = model.train_step(xt[idx], None if yt is None else yt[idx], optimizers, kl_weight=beta)
            for k, v in out.items():
                sums[k] = sums.get(k, 0.0) + v
            count += 1
        means = {k: v / max(count, 1) for k, v in sums.items()}
        means["seconds"] = time.perf_counter() - t0
        if kl_warmup_epochs > 0:
            means["kl_weight"] = beta
        for k, v in means.items():
            history.setdefault(k, []).append(v)
        if bar is not None:
            bar.update(1)
            bar.set_postfix({k: f"{v:.3g}" for k, v in means.items() if k != "seconds"})
        if on_epoch_end is not None:
            on_epoch_end(epoch, means)
        done = epoch + 1
        if ckpt is not None and (done % max(checkpoint_every, 1) == 0 or done == epochs):
            save_checkpoint(ckpt, model, optimizers, done, history, rng, config)
    if bar is not None:
        bar.close()
    model.train(False)
    return history


#: metrics of a history that are discriminator probabilities (mean ``D(x)`` on real and on
#: generated inputs), not losses: drawn on their own axis in [0, 1]
PROBABILITY_KEYS = ("d_real", "d_fake")


def save_loss_plot(history: History, path: str | Path, title: str | None = None,
                   keys: list[str] | None = None) -> Path:
    """Plot the per-epoch curves of ``history`` to a PNG at ``path`` (matplotlib Agg canvas).

    Losses share one axis labelled "loss"; the discriminator probabilities of a GAN
    (:data:`PROBABILITY_KEYS`) are on a second axis below it, labelled "D(x) probability" and
    fixed to [0, 1], because a probability and a loss have different units and scales (on one
    axis the probabilities read as a loss near zero). ``keys`` defaults to every metric except
    ``seconds`` and ``kl_weight``; returns the path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    keys = keys or [k for k in history if k not in ("seconds", "kl_weight")]
    losses = [k for k in keys if k not in PROBABILITY_KEYS]
    probs = [k for k in keys if k in PROBABILITY_KEYS]
    panels = [(losses, "loss"), (probs, "D(x) probability")] if losses and probs else [(losses or probs, "loss" if losses else "D(x) probability")]
    fig = Figure(figsize=(6, 4 if len(panels) == 1 else 5.5), dpi=100)
    FigureCanvasAgg(fig)  # Agg canvas without pyplot: no global backend switch, no GUI
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (names, ylabel) in zip(axes, panels):
        for k in names:
            ax.plot(range(1, len(history[k]) + 1), history[k], label=k)
        ax.set_ylabel(ylabel)
        if ylabel != "loss":
            ax.set_ylim(0.0, 1.0)
            ax.axhline(0.5, color="grey", linewidth=0.8, linestyle=":", label="0.5 (D cannot tell)")
        ax.legend()
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("epoch")
    if title:
        axes[0].set_title(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path
