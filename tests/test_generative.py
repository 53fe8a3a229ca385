"""Behavioural tests of the standalone ``generative`` package (VAE, GAN, DCGAN, trainer, metrics).

Everything runs on one torch thread in well under a minute."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from torch import nn

from generative import (
    DCGAN,
    GAN,
    MLPVAE,
    ConvVAE,
    classifier_two_sample_auc,
    dcr_comparison,
    digits_split,
    distance_to_closest_record,
    fit,
    gaussian_kl,
    precision_recall,
    save_loss_plot,
)

torch.set_num_threads(1)


def ring_of_gaussians(n: int, seed: int, modes: int = 8, radius: float = 2.0, std: float = 0.05) -> np.ndarray:
    rng = np.random.default_rng(seed)
    k = rng.integers(0, modes, n)
    angle = 2 * np.pi * k / modes
    centres = np.c_[np.cos(angle), np.sin(angle)] * radius
    return (centres + rng.normal(0, std, (n, 2))).astype(np.float32)


def two_class_binary(n: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Binary rows whose per-feature probabilities depend on the class (0.8 vs 0.1 on disjoint halves)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p = np.full((n, d), 0.1)
    half = d // 2
    p[y == 0, :half] = 0.8
    p[y == 1, half:] = 0.8
    return (rng.random((n, d)) < p).astype(np.float32), y


# --------------------------------------------------------------------------------------- VAE
def test_kl_matches_closed_form_of_torch_distributions() -> None:
    g = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(7, 5, generator=g), torch.randn(7, 5, generator=g)
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    expected = torch.distributions.kl_divergence(q, p).sum(1)
    torch.testing.assert_close(gaussian_kl(mu, logvar), expected)
    assert torch.allclose(gaussian_kl(torch.zeros(3, 4), torch.zeros(3, 4)), torch.zeros(3))


def test_vae_loss_keys_and_formula() -> None:
    torch.manual_seed(0)
    vae = MLPVAE(10, latent_dim=3, hidden=(8,))
    x = torch.rand(6, 10).round()
    out = vae.loss(x)
    assert set(out) == {"loss", "recon", "kl"} and all(v.dim() == 0 for v in out.values())
    torch.testing.assert_close(out["loss"], out["recon"] + out["kl"])


def test_vae_learns_digits_heldout_elbo_improves() -> None:
    split = digits_split(seed=0)
    torch.manual_seed(0)
    vae = MLPVAE(64, latent_dim=8, hidden=(128,))
    x_test = torch.from_numpy(split.x_test)
    before = vae.elbo(x_test)
    fit(vae, split.x_train, epochs=15, batch_size=64, seed=0, progress=False)
    after = vae.elbo(x_test)
    # untrained: ~44 nats (64 * log 2); trained clearly below
    assert after < 0.75 * before, (before, after)
    s = vae.sample(10, generator=torch.Generator().manual_seed(0))
    assert s.shape == (10, 64) and float(s.min()) >= 0 and float(s.max()) <= 1


def test_conv_vae_shapes_and_binary_samples() -> None:
    vae = ConvVAE(image_size=8, latent_dim=4, n_classes=3)
    x = torch.rand(5, 1, 8, 8)
    out = vae.loss(x, torch.tensor([0, 1, 2, 0, 1]))
    assert torch.isfinite(out["loss"])
    s = vae.sample_binary(4, y=2, generator=torch.Generator().manual_seed(1))
    assert s.shape == (4, 1, 8, 8) and set(s.unique().tolist()) <= {0.0, 1.0}
    with pytest.raises(ValueError):
        vae.sample(4)  # conditional model needs y


# --------------------------------------------------------------------------------------- GAN
@pytest.mark.slow
def test_gan_learns_ring_of_gaussians() -> None:
    real = ring_of_gaussians(2000, seed=0)
    held = ring_of_gaussians(1000, seed=1)
    torch.manual_seed(0)
    gan = GAN(2, latent_dim=8, hidden=(64, 64), output="linear")
    g = torch.Generator().manual_seed(0)
    untrained = precision_recall(held, gan.sample(1000, generator=g).numpy())
    fit(gan, real, epochs=60, batch_size=100, lr=1e-3, seed=0, progress=False)
    trained = precision_recall(held, gan.sample(1000, generator=g).numpy())
    assert untrained.precision < 0.2 and untrained.recall < 0.2, untrained
    assert trained.precision > 0.5 and trained.recall > 0.5, trained


def test_conditional_models_respect_the_label_on_binary_rows() -> None:
    x, y = two_class_binary(1000, 40, seed=0)
    clf = LogisticRegression(max_iter=1000).fit(x, y)
    vae = MLPVAE(40, latent_dim=4, hidden=(64,), n_classes=2)
    fit(vae, x, y, epochs=20, seed=0, kl_warmup_epochs=5, progress=False)
    gan = GAN(40, latent_dim=8, hidden=(64, 64), n_classes=2, output="sigmoid")
    fit(gan, x, y, epochs=30, lr=1e-3, seed=0, progress=False)
    g = torch.Generator().manual_seed(0)
    for model in (vae, gan):
        for c in (0, 1):
            rows = model.sample_binary(200, y=c, generator=g).numpy()
            assert set(np.unique(rows)) <= {0.0, 1.0}
            assert (clf.predict(rows) == c).mean() >= 0.9, (type(model).__name__, c)


def test_wide_binary_profiles_smoke() -> None:
    """The graphrec use: ~1,400 binary columns, unconditional or 2 classes."""
    x, y = two_class_binary(64, 1400, seed=0)
    for n_classes in (0, 2):
        labels = y if n_classes else None
        for model in (MLPVAE(1400, n_classes=n_classes), GAN(1400, n_classes=n_classes)):
            hist = fit(model, x, labels, epochs=1, batch_size=32, seed=0, progress=False)
            assert all(len(v) == 1 for v in hist.values())
            rows = model.sample_binary(8, y=1 if n_classes else None)
            assert rows.shape == (8, 1400) and set(rows.unique().tolist()) <= {0.0, 1.0}


# ------------------------------------------------------------------------------------- DCGAN
def test_dcgan_follows_the_architecture_guidelines() -> None:
    m = DCGAN(image_size=8, latent_dim=16, base=8)
    for net in (m.generator, m.discriminator):
        kinds = {type(mod) for mod in net.modules()}
        assert nn.Linear not in kinds
        assert not any(issubclass(k, (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d)) for k in kinds)
    g = list(m.generator)
    convs_g = [i for i, mod in enumerate(g) if isinstance(mod, nn.ConvTranspose2d)]
    assert isinstance(g[-1], nn.Tanh) and convs_g[-1] == len(g) - 2  # output conv -> tanh, no BN
    for i in convs_g[:-1]:  # every other generator conv: BN then ReLU
        assert isinstance(g[i + 1], nn.BatchNorm2d) and isinstance(g[i + 2], nn.ReLU)
    d = list(m.discriminator)
    convs_d = [i for i, mod in enumerate(d) if isinstance(mod, nn.Conv2d)]
    assert convs_d[0] == 0 and isinstance(d[1], nn.LeakyReLU)  # input layer: no BN
    for i in convs_d[1:-1]:
        assert isinstance(d[i + 1], nn.BatchNorm2d) and isinstance(d[i + 2], nn.LeakyReLU)
    assert convs_d[-1] == len(d) - 1 and d[-1].out_channels == 1  # ends in a conv to one logit
    assert all(mod.negative_slope == 0.2 for mod in d if isinstance(mod, nn.LeakyReLU))
    # z (1x1) -> 2x2 -> 4x4 -> 8x8
    sizes = []
    h = torch.randn(3, 16, 1, 1)
    for mod in g:
        h = mod(h)
        if isinstance(mod, nn.ConvTranspose2d):
            sizes.append(h.shape[-1])
    assert sizes == [2, 4, 8]
    s = m.sample(5, generator=torch.Generator().manual_seed(0))
    assert s.shape == (5, 1, 8, 8) and float(s.abs().max()) <= 1.0
    assert m.discriminator_forward(s, None).shape == (5,)
    assert m.default_lr == 2e-4 and m.default_betas == (0.5, 0.999)


def test_conditional_dcgan_shapes() -> None:
    m = DCGAN(image_size=8, latent_dim=8, base=8, n_classes=10)
    s = m.sample(6, y=[0, 1, 2, 3, 4, 5])
    assert s.shape == (6, 1, 8, 8)
    assert m.discriminator_forward(s, nn.functional.one_hot(torch.arange(6), 10).float()).shape == (6,)
    hist = fit(m, np.random.default_rng(0).random((64, 1, 8, 8)) * 2 - 1, np.arange(64) % 10,
               epochs=1, batch_size=32, progress=False)
    assert {"d_loss", "g_loss"} <= set(hist)


def test_generator_ema_is_an_average_and_is_what_sample_uses() -> None:
    real = ring_of_gaussians(400, seed=0)
    torch.manual_seed(0)
    gan = DCGAN(image_size=4, latent_dim=4, base=8, ema_decay=0.99)
    x = np.tile(real[:, :1], (1, 16)).reshape(-1, 1, 4, 4) / 3.0
    live0 = [p.clone() for p in gan.generator.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(live0, gan.generator_ema.parameters()))
    assert not any(p.requires_grad for p in gan.generator_ema.parameters())
    fit(gan, x, epochs=3, batch_size=50, seed=0, progress=False)
    assert int(gan.ema_updates) == 3 * 8
    assert all(not p.requires_grad for p in gan.generator_ema.parameters())
    diffs = [float((a - b).detach().abs().max()) for a, b in zip(gan.generator.parameters(), gan.generator_ema.parameters())]
    assert max(diffs) > 1e-4  # the shadow lags behind the live weights ...
    for be, b in zip(gan.generator_ema.buffers(), gan.generator.buffers()):
        assert torch.equal(be, b)  # ... while BN running statistics are copied
    # sample() uses the shadow generator by default; ema=False the live one
    s_default = gan.sample(16, generator=torch.Generator().manual_seed(1))
    s_ema = gan.sample(16, generator=torch.Generator().manual_seed(1), ema=True)
    s_live = gan.sample(16, generator=torch.Generator().manual_seed(1), ema=False)
    z = torch.randn(16, 4, generator=torch.Generator().manual_seed(1))
    gan.eval()
    with torch.no_grad():
        direct = gan.generator_ema(z[:, :, None, None])
    assert torch.equal(s_default, s_ema) and torch.allclose(s_ema, direct)
    assert not torch.allclose(s_ema, s_live)
    plain = DCGAN(image_size=4, latent_dim=4, base=8)
    assert plain.generator_ema is None and "ema_updates" not in plain.state_dict()
    with pytest.raises(ValueError):
        plain.sample(2, ema=True)


def test_truncated_latents_stay_inside_psi_reproduce_and_change_samples() -> None:
    torch.manual_seed(0)
    gan = DCGAN(image_size=4, latent_dim=8, base=8)
    psi = 0.75
    z = gan.noise(4000, generator=torch.Generator().manual_seed(3), truncation=psi)
    assert z.shape == (4000, 8) and float(z.abs().max()) <= psi
    # the same seed reproduces the draw; no truncation is the plain N(0, I) stream
    assert torch.equal(z, gan.noise(4000, generator=torch.Generator().manual_seed(3), truncation=psi))
    assert torch.equal(gan.noise(50, generator=torch.Generator().manual_seed(3)),
                       torch.randn(50, 8, generator=torch.Generator().manual_seed(3)))
    # the accepted entries follow N(0, 1) truncated to [-psi, psi]: mean 0 and variance
    # 1 - 2 psi phi(psi) / (2 Phi(psi) - 1) (about 0.17 for psi = 0.75), not psi^2 / 3 (uniform)
    phi = float(torch.exp(torch.tensor(-psi**2 / 2))) / np.sqrt(2 * np.pi)
    mass = float(torch.special.erf(torch.tensor(psi / np.sqrt(2))))
    var = 1 - 2 * psi * phi / mass
    assert abs(float(z.mean())) < 0.01 and abs(float(z.var()) - var) < 0.01
    assert abs(var - psi**2 / 3) > 0.01
    # a large psi almost never truncates: the draw equals the untruncated prior
    assert torch.equal(gan.noise(20, generator=torch.Generator().manual_seed(4), truncation=50.0),
                       gan.noise(20, generator=torch.Generator().manual_seed(4)))
    # sample() passes it through: truncated samples are G of truncated latents, unlike the plain ones
    s_trunc = gan.sample(16, generator=torch.Generator().manual_seed(1), truncation=psi)
    s_plain = gan.sample(16, generator=torch.Generator().manual_seed(1))
    gan.eval()
    with torch.no_grad():
        z16 = gan.noise(16, generator=torch.Generator().manual_seed(1), truncation=psi)
        direct = gan.generator(z16[:, :, None, None])
    assert torch.allclose(s_trunc, direct) and not torch.allclose(s_trunc, s_plain)
    assert torch.equal(s_trunc, gan.sample(16, generator=torch.Generator().manual_seed(1), truncation=psi))
    for bad in (0.0, -1.0):
        with pytest.raises(ValueError):
            gan.noise(2, truncation=bad)


def test_vae_mixture_prior_matches_training_codes_and_round_trips() -> None:
    # data on a curved 1-d manifold: N(0, I) latents decode off it, mixture latents stay on it
    rng = np.random.default_rng(0)
    t = rng.uniform(-np.pi, np.pi, 1200)
    data = np.c_[np.cos(t), np.sin(t), 0.5 * np.cos(2 * t), 0.5 * np.sin(2 * t)] + rng.normal(0, 0.02, (1200, 4))
    train, held = data[:800], data[800:]
    torch.manual_seed(0)
    vae = MLPVAE(4, latent_dim=2, hidden=(64, 64), likelihood="gaussian", gaussian_sigma=0.05)
    fit(vae, train, epochs=40, batch_size=64, seed=0, kl_warmup_epochs=5, progress=False)
    assert not vae.has_latent_prior
    info = vae.fit_latent_prior(train, components=5, seed=0)
    assert info["components"] == [5] and vae.has_latent_prior
    codes = vae.encode_mean(train).double()
    w = vae.latent_prior_weights[0].double()
    mu = vae.latent_prior_means[0].double()
    cov = vae.latent_prior_scale_tril[0].double() @ vae.latent_prior_scale_tril[0].double().transpose(1, 2)
    mix_mean = (w[:, None] * mu).sum(0)
    mix_cov = (w[:, None, None] * (cov + mu[:, :, None] * mu[:, None, :])).sum(0) - torch.outer(mix_mean, mix_mean)
    assert torch.allclose(mix_mean, codes.mean(0), atol=1e-3)
    assert torch.allclose(mix_cov, torch.cov(codes.T), atol=1e-2 * float(torch.cov(codes.T).abs().max()))
    g = torch.Generator().manual_seed(5)
    z = vae.sample_latent(20000, generator=g, prior="mixture").double()
    assert torch.allclose(z.mean(0), codes.mean(0), atol=0.05 * float(codes.std()))
    std = precision_recall(held, vae.sample(400, generator=torch.Generator().manual_seed(1), prior="standard").numpy())
    mix = precision_recall(held, vae.sample(400, generator=torch.Generator().manual_seed(1)).numpy())  # default: mixture
    assert mix.precision > std.precision and mix.precision + mix.recall > std.precision + std.recall, (std, mix)
    # the mixture is part of the state dict: a fresh model gets it from load_state_dict
    fresh = MLPVAE(4, latent_dim=2, hidden=(64, 64), likelihood="gaussian", gaussian_sigma=0.05)
    fresh.load_state_dict(vae.state_dict())
    a = fresh.sample(8, generator=torch.Generator().manual_seed(2))
    b = vae.sample(8, generator=torch.Generator().manual_seed(2))
    assert fresh.has_latent_prior and torch.equal(a, b)


def test_conditional_vae_mixture_prior_is_per_class() -> None:
    x, y = two_class_binary(300, 12, seed=4)
    torch.manual_seed(0)
    vae = MLPVAE(12, latent_dim=3, hidden=(32,), n_classes=2)
    fit(vae, x, y, epochs=5, batch_size=32, seed=0, progress=False)
    with pytest.raises(ValueError):
        vae.fit_latent_prior(x)  # conditional: labels required
    info = vae.fit_latent_prior(x, y, components="bic", seed=0, candidates=(1, 2, 3))
    assert len(info["components"]) == 2 and vae.latent_prior_means.shape[:1] == (2,)
    for c in (0, 1):
        codes = vae.encode_mean(x[y == c], y[y == c])
        z = vae.sample_latent(5000, torch.full((5000,), c), generator=torch.Generator().manual_seed(c), prior="mixture")
        assert torch.allclose(z.mean(0), codes.mean(0), atol=0.1 * float(codes.std()) + 0.02)
    assert vae.sample(10, y=1).shape == (10, 12)


# ----------------------------------------------------------------------------------- trainer
class _Interrupt(Exception):
    pass


@pytest.mark.parametrize("kind", ["vae", "gan", "gan-ema"])
def test_checkpoint_resume_equals_uninterrupted_run(tmp_path: Path, kind: str) -> None:
    x, y = two_class_binary(200, 12, seed=3)

    def make() -> nn.Module:
        torch.manual_seed(123)
        if kind == "vae":
            return MLPVAE(12, latent_dim=3, hidden=(16,), n_classes=2)
        return GAN(12, latent_dim=4, hidden=(16, 16), n_classes=2, ema_decay=0.9 if kind == "gan-ema" else None)

    kw = dict(epochs=5, batch_size=32, seed=7, kl_warmup_epochs=3, progress=False)
    full = make()
    h_full = fit(full, x, y, **kw)

    def stop_after_two(epoch: int, _: dict) -> None:
        if epoch == 1:
            raise _Interrupt

    part = make()
    with pytest.raises(_Interrupt):
        fit(part, x, y, checkpoint_dir=tmp_path, checkpoint_every=1, on_epoch_end=stop_after_two, **kw)
    resumed = make()  # a fresh process would rebuild the model from scratch
    for p in resumed.parameters():
        nn.init.normal_(p)  # ... with other weights: everything must come from the checkpoint
    h_res = fit(resumed, x, y, checkpoint_dir=tmp_path, resume=True, **kw)

    # the interrupted epoch (index 1) ran but was never checkpointed; the resumed run redoes it
    assert len(h_res["loss" if kind == "vae" else "g_loss"]) == 5
    for k in h_full:
        if k != "seconds":
            assert h_full[k] == h_res[k], k
    sf, sr = full.state_dict(), resumed.state_dict()
    assert sf.keys() == sr.keys()
    for k in sf:
        assert torch.equal(sf[k], sr[k]), k
    if kind == "gan-ema":
        assert any(k.startswith("generator_ema.") for k in sf) and int(sf["ema_updates"]) == 5 * (200 // 32)
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert ckpt["epoch"] == 5 and set(ckpt) >= {"model", "optimizers", "history", "torch_rng", "numpy_rng"}


def test_loss_plot_is_a_png(tmp_path: Path) -> None:
    path = save_loss_plot({"d_loss": [1.0, 0.8, 0.7], "g_loss": [0.7, 0.9, 1.1], "seconds": [0.1] * 3},
                          tmp_path / "sub" / "loss.png", title="t")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000 and data[12:16] == b"IHDR"


# ----------------------------------------------------------------------------------- metrics
def test_precision_recall_sanity() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(300, 5))
    assert precision_recall(a, a.copy()) == precision_recall(a, a) and precision_recall(a, a).precision == 1.0
    assert precision_recall(a, a).recall == 1.0
    far = precision_recall(a, a + 100.0)
    assert far.precision == 0.0 and far.recall == 0.0
    # a generator covering half the modes: high precision, lower recall
    real = ring_of_gaussians(800, 0)
    half = real[np.arctan2(real[:, 1], real[:, 0]) > 0]
    pr = precision_recall(real, half)
    assert pr.precision > 0.9 and pr.recall < 0.7


@pytest.mark.slow
def test_c2st_auc() -> None:
    rng = np.random.default_rng(0)
    same = classifier_two_sample_auc(rng.normal(size=(400, 4)), rng.normal(size=(400, 4)))
    diff = classifier_two_sample_auc(rng.normal(size=(400, 4)), rng.normal(3.0, 1.0, size=(400, 4)))
    assert 0.35 < same < 0.65, same
    assert diff > 0.95, diff


def test_distance_to_closest_record_and_comparison() -> None:
    rng = np.random.default_rng(0)
    train = (rng.random((300, 30)) < 0.3).astype(float)
    holdout = (rng.random((200, 30)) < 0.3).astype(float)
    assert np.all(distance_to_closest_record(train, train[:10], metric="hamming") == 0)
    one_flip = train[:1].copy()
    one_flip[0, 0] = 1 - one_flip[0, 0]
    assert distance_to_closest_record(train, one_flip, metric="hamming")[0] <= 1
    copies = dcr_comparison(train, train[:200], holdout, metric="hamming")
    assert copies.share_exact_copies == 1.0 and copies.p_value_smaller < 1e-6
    fresh = dcr_comparison(train, (rng.random((200, 30)) < 0.3).astype(float), holdout, metric="hamming")
    assert fresh.share_exact_copies < 0.05 and fresh.p_value_smaller > 0.01


@pytest.mark.slow
def test_package_never_imports_graphrec() -> None:
    code = "import sys, generative; assert not [m for m in sys.modules if m.startswith('graphrec')]"
    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root, env={"PYTHONPATH": str(root)})
