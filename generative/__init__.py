"""Generative models (GAN, DCGAN, VAE), a resumable trainer and sample-quality metrics, usable
on their own; graphrec uses them for synthetic-user augmentation. This package never imports
``graphrec``.

Quick use on binary rows ``x`` (n x d, 0/1) with optional labels ``y``::

    from generative import MLPVAE, GAN, fit
    vae = MLPVAE(d, likelihood="bernoulli", n_classes=2)
    fit(vae, x, y, epochs=50, kl_warmup_epochs=10)
    rows = vae.sample_binary(100, y=1)        # 100 binary rows of class 1
    gan = GAN(d, output="sigmoid", n_classes=2)
    fit(gan, x, y, epochs=100)
    rows = gan.sample_binary(100, y=[0, 1] * 50)
"""

from .adversarial import AdversarialModel
from .data import DigitsSplit, digits_split
from .dcgan import DCGAN, from_unit_interval, to_unit_interval
from .gan import GAN
from .metrics import (
    DCRComparison,
    PrecisionRecall,
    classifier_two_sample_auc,
    dcr_comparison,
    distance_to_closest_record,
    knn_radii,
    precision_recall,
)
from .training import History, fit, kl_weight_at, load_checkpoint, save_checkpoint, save_loss_plot
from .vae import VAE, ConvVAE, MLPVAE, gaussian_kl, reparameterise

__all__ = [
    "AdversarialModel", "ConvVAE", "DCGAN", "DCRComparison", "DigitsSplit", "GAN", "History", "MLPVAE",
    "PrecisionRecall", "VAE", "classifier_two_sample_auc", "dcr_comparison", "digits_split",
    "distance_to_closest_record", "fit", "from_unit_interval", "gaussian_kl", "kl_weight_at",
    "knn_radii", "load_checkpoint", "precision_recall", "reparameterise", "save_checkpoint",
    "save_loss_plot", "to_unit_interval",
]
