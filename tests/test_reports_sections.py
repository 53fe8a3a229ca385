"""Report sections for synthetic users, generative models, training curves and the store
(issue 19): the data behind the plots on small known cases, the per-epoch losses training now
records, every section on an empty store (says what is missing) and on a store with synthetic
users (draws decodable PNGs), and the loss plots that keep probabilities off the loss axis."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from graphrec.reports.context import ReportContext
from graphrec.reports.html import Plot, Section, Table
from graphrec.reports.sections import generative as generative_section
from graphrec.reports.sections import store as store_section
from graphrec.reports.sections import synth as synth_section
from graphrec.reports.sections import training as training_section
from graphrec.store.importers import EdgeBatch, UserBatch
from graphrec.store.store import GraphStore

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MINE = (synth_section, generative_section, training_section, store_section)


def _pngs(section: Section) -> list[bytes]:
    out = []
    for b in section.blocks:
        if isinstance(b, Plot):
            assert b.data_uri.startswith("data:image/png;base64,") and b.alt
            out.append(base64.b64decode(b.data_uri.split(",", 1)[1]))
    return out


def _captured_figures(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every matplotlib figure saved from now on (to inspect axes after a function saved it)."""
    from matplotlib.figure import Figure

    saved: list[Any] = []
    original = Figure.savefig

    def spy(self: Any, *args: Any, **kwargs: Any) -> Any:
        saved.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", spy)
    return saved


def _load_small(store: GraphStore, n: int = 200) -> None:
    from graphrec.tasks.bots.inject import honest_graph

    g = honest_graph(n, mean_degree=8, n_features=12, seed=0)
    edges, feats = g.edge_array(), (g.features > np.median(g.features, axis=0)).astype(np.float32)
    ids = [str(i) for i in range(n)]
    store.load_users(UserBatch("test", ids, [f"f{j}" for j in range(feats.shape[1])], feats, [{} for _ in ids], [], None))
    store.load_edges(EdgeBatch("test", ids, edges[:, 0].copy(), edges[:, 1].copy(), int(edges.shape[0])), create_users=False)


# -- data behind the plots -------------------------------------------------------------------

def test_degree_ccdf_on_a_known_case() -> None:
    values, share = store_section.degree_ccdf(np.array([0, 1, 1, 2, 4]))
    assert values.tolist() == [1, 2, 4]  # the isolated user is left out of the log axes
    assert share.tolist() == [1.0, 0.5, 0.25]
    empty_x, empty_y = store_section.degree_ccdf(np.zeros(3, dtype=np.int64))
    assert empty_x.size == 0 and empty_y.size == 0


def test_feature_frequencies_and_top_features() -> None:
    x = np.array([[1, 0, 2], [1, 0, 0], [0, 1, 0], [1, 1, 0]], dtype=np.float32)
    syn = np.array([False, False, True, True])
    real, synthetic = synth_section.feature_frequencies(x, syn)
    assert real.tolist() == [1.0, 0.0, 0.5] and synthetic.tolist() == [0.5, 1.0, 0.0]
    assert synth_section.top_features(real, 2).tolist() == [0, 2]
    assert synth_section.top_features(np.array([0.5, 0.5, 0.9]), 3).tolist() == [2, 0, 1]  # ties by column


def test_generated_mask_leaves_out_other_synthetic_users() -> None:
    from graphrec.core.graph import Graph

    g = Graph.from_edges(np.array([[0, 1], [1, 2], [2, 3]]), num_nodes=4)
    g.external_ids = np.array(["a", "synthetic-7-0", "demo-bot", "synthetic-7-1"], dtype=object)
    g.is_synthetic = np.array([False, True, True, True])
    assert synth_section.generated_mask(g).tolist() == [False, True, False, True]


def test_loss_curves_read_where_each_model_records_them() -> None:
    lc = training_section.loss_curves
    assert lc("linkpred", {"training": {"train_loss": [3.0, 2.0]}}) == {"train loss": [3.0, 2.0]}
    assert lc("anomaly", {"metrics": {"train_loss": [0.5, 0.4, 0.3], "final_loss": 0.3}}) == {"train loss": [0.5, 0.4, 0.3]}
    assert lc("bot", {"metrics": {"train_loss_by_fold": [[1.0, 0.5], [0.9, 0.6]]}}) == {"fold 1": [1.0, 0.5], "fold 2": [0.9, 0.6]}
    gan = {"metrics": {"history": {"d_loss": [1.3], "g_loss": [0.8], "d_real": [0.6], "d_fake": [0.4], "seconds": [0.1]}}}
    assert set(lc("synth", gan)) == {"d_loss", "g_loss", "d_real", "d_fake"}
    assert lc("anomaly", {"metrics": {"final_loss": 0.3}}) == {}  # an old model: only the last epoch
    assert "ROC-AUC 0.900" in training_section.validation_figure("bot", {"metrics": {"out_of_fold": {"roc_auc": 0.9}}})


def test_gan_curves_keep_probabilities_on_their_own_axis(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from generative import save_loss_plot

    history = {"d_loss": [1.4, 1.2, 1.3], "g_loss": [0.7, 0.9, 0.8], "d_real": [0.6, 0.55, 0.52], "d_fake": [0.4, 0.45, 0.47],
               "seconds": [0.1] * 3}
    saved = _captured_figures(monkeypatch)
    uri = training_section.curves_plot({k: v for k, v in history.items() if k != "seconds"}, "GAN")
    path = save_loss_plot(history, tmp_path / "gan.png")
    assert path.read_bytes().startswith(PNG_MAGIC) and base64.b64decode(uri.split(",", 1)[1]).startswith(PNG_MAGIC)
    for fig in saved:
        axes = fig.get_axes()
        assert len(axes) == 2
        loss_ax, prob_ax = axes
        assert loss_ax.get_ylabel().startswith("loss") and prob_ax.get_ylabel() == "D(x) probability"
        assert {ln.get_label() for ln in loss_ax.get_lines()} >= {"d_loss", "g_loss"}
        assert not {"d_real", "d_fake"} & {ln.get_label() for ln in loss_ax.get_lines()}
        assert {"d_real", "d_fake"} <= {ln.get_label() for ln in prob_ax.get_lines()}
        assert prob_ax.get_ylim() == (0.0, 1.0)
    assert len(saved) == 2
    # a VAE history has no probabilities: one loss axis
    saved.clear()
    save_loss_plot({"loss": [3.0, 2.0], "recon": [2.5, 1.8], "kl": [0.5, 0.2]}, tmp_path / "vae.png")
    assert len(saved[0].get_axes()) == 1 and saved[0].get_axes()[0].get_ylabel() == "loss"


# -- per-epoch losses recorded by training ----------------------------------------------------

def test_bot_and_anomaly_training_record_per_epoch_losses() -> None:
    from graphrec.tasks.anomaly.config import AnomalyConfig
    from graphrec.tasks.anomaly.train import AnomalyTask
    from graphrec.tasks.bots.config import BotConfig
    from graphrec.tasks.bots.inject import honest_graph, inject_bot_region, sample_labels
    from graphrec.tasks.bots.train import train_bot_detector

    g = inject_bot_region(honest_graph(300, mean_degree=8, n_features=6, seed=0), n_bots=30, attack_edges=3, seed=0)
    labelled = sample_labels(g.is_bot, 0.3, seed=0)
    model = train_bot_detector(g.graph, labelled, g.is_bot[labelled], BotConfig(folds=2, epochs=7, threads=1))
    folds = model.metrics["train_loss_by_fold"]
    assert len(folds) == 2 and all(len(f) == 7 and all(np.isfinite(f)) for f in folds)
    json.dumps(model.metrics)  # recorded as JSON in the manifest and model_runs

    anomaly = AnomalyTask().fit(g.graph, AnomalyConfig(seed=0, epochs=5, threads=1))
    losses = anomaly.metrics["train_loss"]
    assert 0 < len(losses) <= 5 and losses[-1] == pytest.approx(anomaly.metrics["final_loss"], abs=1e-5)


# -- whole sections --------------------------------------------------------------------------

def test_sections_on_an_empty_store_say_what_is_missing(store: GraphStore) -> None:
    ctx = ReportContext(store)
    built = {m.TITLE: m.build(ctx) for m in MINE}
    assert "graphrec synth --n 100" in (built["Synthetic users"].missing or "")
    gen = built["Generative models"].missing or ""
    assert "graphrec synth --n 100" in gen and "DCGAN" in gen and "Convolutional VAE" in gen
    assert "graphrec train linkpred" in (built["Training curves"].missing or "")
    st = built["Store"]
    assert "graphrec import" in (st.missing or "")
    tables = [b for b in st.blocks if isinstance(b, Table)]
    sizes = next(t for t in tables if t.caption == "Rows per table")
    assert {"users", "friendships", "model_runs"} <= {r[0] for r in sizes.rows}
    schema = next(t for t in tables if t.caption.startswith("Schema revisions"))
    assert schema.rows and schema.rows[-1][2] == "yes" and sum(r[3] != "" for r in schema.rows) == 1  # one current revision


def test_sections_on_a_store_with_synthetic_users(store: GraphStore) -> None:
    from graphrec.tasks.synth.config import SynthConfig
    from graphrec.tasks.synth.synthesize import synthesize

    _load_small(store)
    synthesize(store, SynthConfig(model="gan", n=20, seed=0, epochs=4, threads=1, force=True))
    ctx = ReportContext(store)

    syn = synth_section.build(ctx)
    assert syn.missing is None
    assert len(_pngs(syn)) == 4 and all(p.startswith(PNG_MAGIC) for p in _pngs(syn))
    figures = next(b for b in syn.blocks if isinstance(b, Table))
    names = {r[1] for r in figures.rows}
    assert any("C2ST" in n for n in names) and any("membership" in n for n in names) and "privacy gate passed" in names

    gen = generative_section.build(ctx)
    assert gen.missing is not None and "graphrec synth" not in gen.missing  # the generator is there; the image models are not
    assert len(_pngs(gen)) == 1
    history = ctx.manifest("synth")["metrics"]["history"]  # type: ignore[index]
    assert set(history) == {"d_loss", "g_loss", "d_real", "d_fake"} and all(len(v) == 4 for v in history.values())

    tr = training_section.build(ctx)
    assert len(_pngs(tr)) == 1 and "graphrec train bots" in (tr.missing or "") and "graphrec synth" not in (tr.missing or "")
    st = store_section.build(ctx)
    assert st.missing is None and len(_pngs(st)) == 2
    runs = next(b for b in st.blocks if isinstance(b, Table) and b.caption.startswith("Training runs"))
    assert runs.rows[-1][0] == "synth" and runs.rows[-1][-1] == "yes"


def test_image_models_from_kept_checkpoints(tmp_path: Path) -> None:
    import torch

    import generative

    torch.manual_seed(0)
    args = {"image_size": 8, "latent_dim": 8, "base": 8}
    folder = tmp_path / "generative" / "dcgan"
    x = generative.digits_split(seed=0).x_train[:128].reshape(-1, 1, 8, 8) * 2 - 1
    generative.fit(generative.DCGAN(**args), x, epochs=2, batch_size=64, seed=0, checkpoint_dir=folder, progress=False, threads=1)
    (folder / generative_section.MODEL_FILE).write_text(json.dumps({"class": "DCGAN", "args": args}), encoding="utf-8")

    blocks, missing = generative_section.image_models(tmp_path)
    assert missing is not None and "Convolutional VAE" in missing and "DCGAN or" not in missing
    pngs = [base64.b64decode(b.data_uri.split(",", 1)[1]) for b in blocks if isinstance(b, Plot)]
    assert len(pngs) == 2 and all(p.startswith(PNG_MAGIC) for p in pngs)  # the digit grids and the loss curves
    model, curves, options = generative_section.load_image_model(folder, "DCGAN")
    assert options == {}
    digits = generative_section.sample_digits(model, n=16, options={"truncation": 2.0})
    assert digits.shape == (16, 8, 8) and digits.min() >= 0.0 and digits.max() <= 1.0
    assert set(curves) == {"d_loss", "g_loss", "d_real", "d_fake"} and all(len(v) == 2 for v in curves.values())
    # weights that do not fit the constructor arguments are named, not drawn as noise
    (folder / generative_section.MODEL_FILE).write_text(json.dumps({"class": "DCGAN", "args": {**args, "base": 16}}), encoding="utf-8")
    blocks, missing = generative_section.image_models(tmp_path)
    assert missing is not None and "DCGAN" in missing and not any(isinstance(b, Plot) for b in blocks)
    assert any("could not be loaded" in getattr(b, "text", "") for b in blocks)
    grid = generative_section.digit_grid(np.zeros((4, 8, 8), dtype=np.float32))
    assert grid.shape == (19, 19) and grid.min() == 1.0  # blank digits are white, as are the gaps
