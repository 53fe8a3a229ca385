"""Report section: the generative models.

(a) The synthetic-user profile generator: per-epoch training curves of the served version and of
the latest run of each other generator kind (``model_runs`` of kind ``synth``; ``metrics.history``
as :mod:`graphrec.tasks.synth.train` records it). Losses share an axis labelled "loss"; a GAN's
mean discriminator outputs on real and generated profiles (``d_real``, ``d_fake``) are
probabilities and get their own axis, "D(x) probability", fixed to [0, 1].

(b) Image models (DCGAN, convolutional VAE on the 8x8 digits): a grid of generated digits beside
real held-out ones and the model's loss curves, for each model whose checkpoint is kept under
``GRAPHREC_HOME/generative/<name>/`` (:data:`IMAGE_MODELS`): ``checkpoint.pt`` as
:func:`generative.fit` writes it with ``checkpoint_dir`` (state dicts and the loss history) and
``model.json`` = ``{"class": "DCGAN" | "ConvVAE", "args": {constructor arguments}}`` (a checkpoint
holds no architecture). Without them the section says what is missing; nothing is trained here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graphrec.reports.html import Block, Plot, Section, Table, Text

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from graphrec.reports.context import ReportContext

TITLE = "Generative models"
#: ``GRAPHREC_HOME/generative/<folder>``, the class that folder's ``model.json`` must name, its title
IMAGE_MODELS: tuple[tuple[str, str, str], ...] = (("dcgan", "DCGAN", "DCGAN"), ("conv_vae", "ConvVAE", "Convolutional VAE"))
MODEL_FILE = "model.json"
#: digits per grid (8 x 8)
GRID = 64


def synth_curves(ctx: "ReportContext") -> tuple[list[Block], str | None]:
    """Blocks for part (a) and what is missing (None when nothing)."""
    from graphrec.reports.sections.training import curves_plot, history_curves

    blocks: list[Block] = []
    manifest = ctx.manifest("synth")
    runs = ctx.store.model_runs("synth", limit=50)
    shown: list[tuple[str, str, dict[str, list[float]]]] = []  # (generator kind, version, curves)
    if manifest is not None:
        kind = str((manifest.get("generator") or {}).get("kind") or (manifest.get("params") or {}).get("model") or "?")
        shown.append((kind, f"{manifest['version']} (served)", history_curves((manifest.get("metrics") or {}).get("history") or {})))
    for run in reversed(runs):  # the latest run of each other generator kind
        kind = str((run.get("params") or {}).get("model") or "?")
        if run["version"] == (manifest or {}).get("version") or any(k == kind for k, _, _ in shown):
            continue
        shown.append((kind, str(run["version"]), history_curves((run.get("metrics") or {}).get("history") or {})))
    if not shown:
        return blocks, "no synthetic-user generator has been trained: run `graphrec synth --n 100` (VAE) or `graphrec synth --model gan --n 100`"
    without = []
    for kind, version, curves in shown:
        if not curves:
            without.append(f"{kind} {version}")
            continue
        is_gan = any(k in curves for k in ("d_real", "d_fake"))
        caption = ("Generator and discriminator losses above; below, the discriminator's mean probability that real (d_real) and generated (d_fake) "
                   "profiles are real: the closer both stay to 0.5, the less it can tell them apart." if is_gan else
                   "The VAE's loss is reconstruction error plus the KL term; the KL term rising while the loss falls is the warm-up at work.")
        blocks.append(Plot(curves_plot(curves, f"Profile {kind.upper()} {version}: training curves"),
                           alt=f"Per-epoch training curves of the {kind} profile generator, version {version}: {', '.join(curves)}.",
                           caption=caption))
    if without:
        blocks.append(Text("Recorded without per-epoch history (only the last epoch's losses): " + ", ".join(without)
                           + ". Run `graphrec synth --n 100` again to record the curves."))
    return blocks, None


def digit_grid(images: "np.ndarray") -> "np.ndarray":
    """Tile ``(n, h, w)`` images in [0, 1] into one square mosaic, ink dark on white (1-pixel gaps)."""
    import numpy as np

    n = images.shape[0]
    side = int(np.ceil(np.sqrt(n)))
    h, w = images.shape[1], images.shape[2]
    out = np.ones((side * (h + 1) + 1, side * (w + 1) + 1), dtype=np.float32)
    for i in range(n):
        r, c = divmod(i, side)
        out[1 + r * (h + 1): 1 + r * (h + 1) + h, 1 + c * (w + 1): 1 + c * (w + 1) + w] = 1.0 - np.clip(images[i], 0.0, 1.0)
    return out


def grids_plot(real: "np.ndarray", generated: "np.ndarray", name: str) -> str:
    """Real held-out digits and generated ones side by side (same grey scale, ink dark)."""
    from graphrec.reports.style import figure, png_data_uri

    with figure(6.4, 3.5, ncols=2) as (fig, axes):
        for ax, (images, label) in zip(axes, ((real, "real held-out digits"), (generated, f"{name} samples"))):
            ax.imshow(digit_grid(images), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
            ax.set_title(f"{label} ({images.shape[0]})")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            for spine in ax.spines.values():
                spine.set_visible(False)
        return png_data_uri(fig)


def load_image_model(folder: Path, expected_class: str) -> tuple[Any, dict[str, list[float]], dict[str, Any]]:
    """The model kept in ``folder`` (eval mode), its loss history and its sampling options
    (``model.json``'s optional ``"sample"``, e.g. ``{"truncation": 2.0}`` for the served DCGAN
    rows or ``{"prior": "standard"}``); ``ValueError`` when the files disagree with each other
    (another class, weights that do not fit the constructor arguments)."""
    import generative
    from graphrec.reports.sections.training import history_curves

    spec = json.loads((folder / MODEL_FILE).read_text(encoding="utf-8"))
    if spec.get("class") != expected_class:
        raise ValueError(f"{folder / MODEL_FILE} names class {spec.get('class')!r}, expected {expected_class}")
    cls = getattr(generative, expected_class)
    model = cls(**dict(spec.get("args") or {}))
    state = generative.load_checkpoint(folder / generative.training.CHECKPOINT_NAME)
    # a VAE's ex-post latent mixture is fitted after training, so a fit checkpoint may lack it
    result = model.load_state_dict(state["model"], strict=False)
    bad = [k for k in [*result.missing_keys, *result.unexpected_keys] if not k.startswith("latent_prior_")]
    if bad:
        raise ValueError(f"the checkpoint's weights do not fit {expected_class}({spec.get('args')}): {', '.join(bad[:3])}")
    model.eval()
    return model, history_curves(state.get("history") or {}), dict(spec.get("sample") or {})


def sample_digits(model: Any, n: int = GRID, seed: int = 0, options: dict[str, Any] | None = None) -> "np.ndarray":
    """``(n, h, w)`` samples in [0, 1] of a DCGAN (tanh range mapped) or a VAE (decoder means
    clipped), drawn with ``options`` (keyword arguments of the model's ``sample``)."""
    import numpy as np
    import torch

    import generative

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        if isinstance(model, generative.AdversarialModel):
            x = generative.to_unit_interval(model.sample(n, generator=gen, **(options or {})))
        else:
            opts = dict(options or {})
            if "prior" not in opts and not getattr(model, "has_latent_prior", False):
                opts["prior"] = "standard"
            x = model.sample(n, generator=gen, **opts)
    arr = x.detach().cpu().numpy().astype(np.float32)
    return np.clip(arr.reshape(n, arr.shape[-2], arr.shape[-1]), 0.0, 1.0)


def image_models(home: Path) -> tuple[list[Block], str | None]:
    """Blocks for part (b) and what is missing (None when every image model is there)."""
    from graphrec.reports.sections.training import curves_plot

    import generative

    blocks: list[Block] = []
    absent: list[str] = []
    rows: list[list[Any]] = []
    real: "np.ndarray | None" = None
    for folder_name, cls, title in IMAGE_MODELS:
        folder = Path(home) / "generative" / folder_name
        if not (folder / MODEL_FILE).is_file() or not (folder / generative.training.CHECKPOINT_NAME).is_file():
            absent.append(title)
            continue
        try:
            model, curves, options = load_image_model(folder, cls)
            samples = sample_digits(model, options=options)
        except (ValueError, KeyError, RuntimeError, OSError, TypeError) as exc:  # a stale or foreign checkpoint: say so, draw the rest
            blocks.append(Text(f"The {title} kept in {folder} could not be loaded: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"))
            absent.append(title)
            continue
        if real is None:
            split = generative.digits_split(seed=0)
            real = split.x_test[:GRID].reshape(-1, 8, 8)
        blocks.append(Plot(grids_plot(real, samples, title),
                           alt=f"Two 8 by 8 grids of 8x8-pixel digits: real held-out digits on the left, {title} samples on the right.",
                           caption="Samples should be legible digits of every class, as varied as the real ones; near-identical samples mean mode collapse."))
        if curves:
            gan = any(k in curves for k in ("d_real", "d_fake"))
            blocks.append(Plot(curves_plot(curves, f"{title} (digits): training curves"),
                               alt=f"Per-epoch training curves of the {title} on the digits: {', '.join(curves)}.",
                               caption="Losses above; below, the discriminator's mean probability that real (d_real) and generated (d_fake) digits "
                                       "are real: both near 0.5 means it cannot tell them apart." if gan else
                                       "The VAE's loss is reconstruction error plus the KL term; both should flatten by the last epoch."))
        rows.append([title, str(folder), max((len(v) for v in curves.values()), default=0)])
    if rows:
        blocks.insert(0, Table(["model", "checkpoint folder", "epochs"], rows, caption="Image models kept under GRAPHREC_HOME/generative"))
    if not absent:
        return blocks, None
    return blocks, (f"no usable checkpoint of the {' or '.join(absent)} digits model under {Path(home) / 'generative'}/<dcgan|conv_vae>/ "
                    f"(checkpoint.pt from generative.fit(..., checkpoint_dir=...) and {MODEL_FILE} with the class and its constructor arguments); "
                    "train and keep them with `python benchmarks/bench_generative_digits.py --seeds 0 --keep-models $GRAPHREC_HOME` (about 5 minutes)")


def build(ctx: "ReportContext") -> Section:
    """Both parts (see the module docs); missing parts are named, never raised."""
    blocks, missing_synth = synth_curves(ctx)
    image_blocks, missing_images = image_models(ctx.home)
    missing = "; ".join(m for m in (missing_synth, missing_images) if m) or None
    return Section("generative", TITLE, blocks + image_blocks, missing=missing)
