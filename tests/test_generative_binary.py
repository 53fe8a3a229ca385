"""The GAN on sparse binary rows (the synthetic-profile use): straight-through Bernoulli outputs
and PacGAN packing keep it from replaying training rows, and it still learns the data.

The data: sparse binary rows from a few prototypes with random bit flips, so real rows coincide
often (like ego-Facebook profiles) and exact copies must be judged against held-out rows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from generative import GAN, MLPVAE, classifier_two_sample_auc, fit

torch.set_num_threads(1)


def prototype_rows(n: int, d: int, seed: int, prototypes: int = 12, active: int = 4, flip: float = 0.02) -> np.ndarray:
    """Each row: one of ``prototypes`` sparse patterns (``active`` ones) with each bit flipped
    with probability ``flip``. ``(1 - flip) ** d`` of the rows equal their prototype exactly."""
    rng = np.random.default_rng(1000)  # the same prototypes for every sample of the data
    patterns = np.zeros((prototypes, d), dtype=np.float32)
    for p in range(prototypes):
        patterns[p, rng.choice(d, active, replace=False)] = 1.0
    rng = np.random.default_rng(seed)
    rows = patterns[rng.integers(0, prototypes, n)]
    return np.abs(rows - (rng.random((n, d)) < flip)).astype(np.float32)


def _copy_rate(train: np.ndarray, rows: np.ndarray) -> float:
    seen = {r.tobytes() for r in train.astype(np.uint8)}
    return float(np.mean([r.tobytes() in seen for r in rows.astype(np.uint8)]))


def test_pack_repeats_each_packed_logit_for_its_members() -> None:
    gan = GAN(6, latent_dim=4, hidden=(8,), pack=3)
    x = torch.rand(7, 6)  # not a multiple of 3: topped up with its own first rows
    logits = gan.discriminator_forward(x, None)
    assert logits.shape == (7,)
    assert torch.equal(logits[:3], logits[0].repeat(3)) and torch.equal(logits[3:6], logits[3].repeat(3))
    top_up = torch.cat([x, x[:2]])
    assert torch.allclose(logits[6], gan.discriminator(top_up.reshape(3, 18))[2, 0])


def test_straight_through_trains_on_bernoulli_draws_and_samples_probabilities() -> None:
    gan = GAN(30, latent_dim=4, hidden=(16,), straight_through=True)
    z = torch.randn(50, 4)
    gan.train()
    drawn = gan.generator_forward(z, None)
    assert set(drawn.detach().unique().tolist()) <= {0.0, 1.0}
    drawn.sum().backward()  # the straight-through gradient reaches the generator
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in gan.generator.parameters() if p.requires_grad)
    probs = gan.sample(50)
    assert ((probs > 0) & (probs < 1)).float().mean() > 0.5  # eval: probabilities, not draws


def test_straight_through_packed_gan_learns_sparse_rows_without_copying_them() -> None:
    """With straight-through outputs, a GAN on sparse binary rows copies training rows no more
    often than held-out real rows coincide with them; packing is what makes it learn the data
    (two-sample AUC far below independent per-column draws, and below the unpacked GAN's)."""
    d = 60
    train, held = prototype_rows(400, d, seed=0), prototype_rows(400, d, seed=1)
    baseline = _copy_rate(train, held)
    assert 0.1 < baseline < 0.6  # real rows coincide: the baseline is not zero
    rng = np.random.default_rng(2)
    independent = (rng.random(held.shape) < train.mean(axis=0)).astype(np.float32)
    results = {}
    for pack in (1, 4):
        torch.manual_seed(0)
        gan = GAN(d, latent_dim=16, hidden=(128, 128), straight_through=True, pack=pack)
        fit(gan, train, epochs=300, batch_size=64, lr=1e-3, seed=0, progress=False)
        rows = gan.sample_binary(400, generator=torch.Generator().manual_seed(0)).numpy()
        results[pack] = (_copy_rate(train, rows), classifier_two_sample_auc(held, rows, seed=0, folds=3))
    c2st_independent = classifier_two_sample_auc(held, independent, seed=0, folds=3)
    copies, c2st = results[4]
    assert copies <= baseline + 0.05, (results, baseline)
    assert c2st < c2st_independent - 0.2, (results, c2st_independent)
    assert c2st < results[1][1] - 0.1, results  # packing helps


def _mixture_trace(vae: MLPVAE) -> float:
    assert vae.latent_prior_weights is not None and vae.latent_prior_means is not None and vae.latent_prior_scale_tril is not None
    w, mu, tril = (t[0].double() for t in (vae.latent_prior_weights, vae.latent_prior_means, vae.latent_prior_scale_tril))
    cov = tril @ tril.transpose(1, 2)
    mean = (w[:, None] * mu).sum(0)
    total = (w[:, None, None] * (cov + mu[:, :, None] * mu[:, None, :])).sum(0) - torch.outer(mean, mean)
    return float(torch.trace(total))


def test_latent_mixture_on_posterior_draws_has_the_aggregate_posteriors_spread() -> None:
    """Fitted on posterior means, the mixture has the means' spread; fitted on draws z ~ q(z|x),
    the aggregate posterior's: by the law of total variance, tr Cov(mu) + E[sum sigma^2]."""
    x = prototype_rows(600, 40, seed=0)
    torch.manual_seed(0)
    vae = MLPVAE(40, latent_dim=4, hidden=(64,))
    fit(vae, x, epochs=30, seed=0, kl_warmup_epochs=5, progress=False)
    mu, logvar = vae.encode_posterior(x)
    means_trace = float(torch.trace(torch.cov(mu.double().T)))
    aggregate_trace = means_trace + float(logvar.double().exp().sum(1).mean())
    vae.fit_latent_prior(x, components=3, seed=0)
    assert abs(_mixture_trace(vae) - means_trace) < 0.02 * means_trace
    vae.fit_latent_prior(x, components=3, seed=0, draws=20)
    assert abs(_mixture_trace(vae) - aggregate_trace) < 0.05 * aggregate_trace
    assert aggregate_trace > 1.2 * means_trace  # the posteriors' own spread is not negligible here
    with pytest.raises(ValueError, match="draws"):
        vae.fit_latent_prior(x, components=3, draws=-1)
