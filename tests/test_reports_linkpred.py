"""Report sections of friend recommendation (``linkpred``) and user embeddings (``embeddings``),
and the curve data ``graphrec eval linkpred`` / ``eval siamese`` record for them."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import numpy as np
import pytest

from conftest import ego_facebook_store
from graphrec.core.metrics import RankingMetrics
from graphrec.reports.context import ReportContext
from graphrec.reports.evals import record_eval
from graphrec.reports.html import Plot, Section, Table
from graphrec.reports.sections import embeddings, linkpred
from graphrec.store.store import GraphStore
from graphrec.tasks.base import train_and_register
from graphrec.tasks.linkpred.config import LinkPredConfig
from graphrec.tasks.linkpred.evaluate import HitsCurve, RecallCurve, evaluate_linkpred, evaluate_seeds
from graphrec.tasks.linkpred.train import LinkPredTask
from graphrec.tasks.siamese.config import SiameseConfig
from graphrec.tasks.siamese.evaluate import recall_curve
from graphrec.tasks.siamese.train import SiameseTask

PNG = b"\x89PNG\r\n\x1a\n"


def _random_graph(n: int, m: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pairs: set[tuple[int, int]] = set()
    while len(pairs) < m:
        a, b = sorted(rng.integers(0, n, 2).tolist())
        if a != b:
            pairs.add((a, b))
    return np.array(sorted(pairs), dtype=np.int64)


def _png(plot: Plot) -> bytes:
    assert plot.data_uri.startswith("data:image/png;base64,")
    data = base64.b64decode(plot.data_uri.split(",", 1)[1])
    assert data.startswith(PNG)
    return data


def _plots(section: Section) -> list[Plot]:
    return [b for b in section.blocks if isinstance(b, Plot)]


# -- curve data -----------------------------------------------------------------------------------

def test_recall_and_hits_curves_on_a_known_case() -> None:
    curve = RecallCurve(k_max=5)
    curve.add(np.array([5, 3, 9, 1, 7]), [3, 1])  # hits at positions 1 and 3
    curve.add(np.array([2, 4]), [4])  # a ranking shorter than k_max
    assert curve.result() == pytest.approx([(0 + 0) / 2, (0.5 + 1) / 2, (0.5 + 1) / 2, (1 + 1) / 2, (1 + 1) / 2])
    hits = HitsCurve(k_max=4)
    hits.add(np.array([0.9, 0.5]), np.array([1.0, 0.7, 0.5, 0.1]))  # ranks 2 and 1 + (2 + 3) / 2 = 3.5 (a tie counts half)
    assert hits.result() == pytest.approx([0.0, 0.5, 0.5, 1.0])


def test_eval_linkpred_curves_are_the_printed_figures_at_their_k() -> None:
    n = 150
    edges = _random_graph(n, 500, seed=1)
    report, _ = evaluate_linkpred(edges, n, None, seed=0, include_model=False, hard_negatives=12)
    curves = report.curves
    assert curves["k"] == list(range(1, 101)) and curves["hard_k"] == list(range(1, 13))
    assert set(curves["recall"]) == set(report.metrics) == set(curves["hard_hits"])
    for method, figures in report.metrics.items():
        assert curves["recall"][method][19] == figures["recall@20"]  # same rankings, same summation order
        assert curves["recall"][method][49] == figures["recall@50"]
        assert np.all(np.diff(curves["recall"][method]) >= 0)
        assert curves["hard_hits"][method][0] == pytest.approx(report.hard[method]["hits@1"])
        assert curves["hard_hits"][method][9] == pytest.approx(report.hard[method]["hits@10"])
    assert "curves" not in report.as_dict()  # the printed figures are unchanged


def test_seed_sweep_curves_are_the_mean_per_k() -> None:
    n = 90
    edges = _random_graph(n, 220, seed=2)
    sweep = evaluate_seeds(edges, n, None, [0, 1, 2], include_model=False, hard_negatives=6)
    curves = sweep.curves()
    for method in sweep.reports[0].metrics:
        runs = np.array([r.curves["recall"][method] for r in sweep.reports])
        assert curves["recall"][method] == pytest.approx(runs.mean(axis=0).tolist())
        assert curves["recall_std"][method] == pytest.approx(runs.std(axis=0, ddof=1).tolist())
        hard = np.array([r.curves["hard_hits"][method] for r in sweep.reports])
        assert curves["hard_hits"][method] == pytest.approx(hard.mean(axis=0).tolist())
    assert "curves" not in sweep.as_dict()


def test_siamese_recall_curve_matches_recall_at_k() -> None:
    rng = np.random.default_rng(0)
    n, users = 300, np.array([3, 10, 42, 77], dtype=np.int64)
    rows = rng.random((users.size, n))
    truth = [np.sort(rng.choice(n, size=s, replace=False)) for s in (1, 5, 12, 30)]
    truth = [t[t != u] for t, u in zip(truth, users.tolist())]
    metrics = RankingMetrics((1, 10, 50), average="pairwise")
    for i, u in enumerate(users.tolist()):
        metrics.add_scores(rows[i], truth[i], exclude=u)
    want = metrics.result()
    curve = recall_curve(rows, users, truth, 100)
    assert len(curve) == 100 and np.all(np.diff(curve) >= 0)
    for k in (1, 10, 50):
        assert curve[k - 1] == pytest.approx(want[f"recall@{k}"], abs=1e-12)


# -- sections without their data --------------------------------------------------------------------

def test_sections_say_what_is_missing_on_an_empty_store(store: GraphStore) -> None:
    ctx = ReportContext(store)
    lp = linkpred.build(ctx)
    assert lp.id == "linkpred" and not lp.blocks and lp.missing is not None
    assert "`graphrec train linkpred`" in lp.missing and "`graphrec eval linkpred`" in lp.missing
    emb = embeddings.build(ctx)
    assert emb.id == "embeddings" and not emb.blocks and emb.missing is not None
    assert "`graphrec train siamese`" in emb.missing and "`graphrec eval siamese`" in emb.missing


def test_linkpred_section_draws_a_recorded_evaluation_without_a_model(store: GraphStore) -> None:
    n = 120
    edges = _random_graph(n, 400, seed=3)
    sweep = evaluate_seeds(edges, n, None, [0, 1], include_model=False, hard_negatives=10)
    record_eval(Path(store.settings.home), "linkpred", sweep.as_dict(), sweep.curves())
    section = linkpred.build(ReportContext(store))
    assert section.missing is not None and "graphrec train linkpred" in section.missing and "eval linkpred" not in section.missing
    plots = _plots(section)
    assert len(plots) == 3  # Recall@K, MRR bars, hard-negative Hits@K
    for plot in plots:
        _png(plot)
        assert plot.alt and plot.caption and "seeds 0, 1" in plot.caption
    assert "K=20: common neighbours" in plots[0].alt
    table = next(b for b in section.blocks if isinstance(b, Table))
    assert [r[0] for r in table.rows] == ["common neighbours", "Adamic-Adar", "resource allocation", "personalized PageRank"]
    cn = sweep.as_dict()["metrics"]["common_neighbours"]
    assert table.rows[0][1:4] == [cn["recall@20"], cn["recall@50"], cn["mrr"]]


def test_an_old_record_without_curves_still_draws_its_bars(store: GraphStore) -> None:
    result = {"params": {"seed": 0, "max_users": 10, "test_edges": 40, "test_fraction": 0.1, "hard_negatives": 0},
              "metrics": {"model": {"recall@20": 0.5, "recall@50": 0.7, "mrr": 0.4}, "common_neighbours": {"recall@20": 0.4, "recall@50": 0.6, "mrr": 0.3}},
              "hard_negatives": {}}
    record_eval(Path(store.settings.home), "linkpred", result, {})
    blocks, missing = linkpred.eval_blocks(ReportContext(store).latest_eval("linkpred"))
    assert missing is not None and "no Recall@K curves" in missing
    plots = [b for b in blocks if isinstance(b, Plot)]
    assert len(plots) == 1 and "link model 0.400" in plots[0].alt
    _png(plots[0])


def test_a_broken_served_model_is_reported_and_the_evaluation_still_drawn(store: GraphStore) -> None:
    home = Path(store.settings.home)
    for kind in ("linkpred", "siamese"):  # a served version whose manifest is missing
        (home / "models" / kind / "20260101T000000-abcdef").mkdir(parents=True)
        (home / "models" / kind / "LATEST").write_text("20260101T000000-abcdef")
    n = 100
    edges = _random_graph(n, 300, seed=4)
    sweep = evaluate_seeds(edges, n, None, [0], include_model=False, hard_negatives=0)
    record_eval(home, "linkpred", sweep.as_dict(), sweep.curves())
    lp = linkpred.build(ReportContext(store))
    assert lp.missing is not None and "cannot be loaded" in lp.missing and "train linkpred" in lp.missing
    assert len(_plots(lp)) == 2  # Recall@K and MRR: no hard negatives were ranked
    emb = embeddings.build(ReportContext(store))
    assert emb.missing is not None and "Siamese model 20260101T000000-abcdef cannot be loaded" in emb.missing


def test_circle_and_label_groups() -> None:
    circles = [np.array([2, 3]), np.array([0, 1, 2]), np.array([5]), np.array([6])]
    g = embeddings.circle_groups(circles, 8, limit=2)
    # largest circle first (0, 1, 2), then the next (3: 2 is taken), smaller circles grey, no circle light grey
    assert g.kind == "circle" and g.group.tolist() == [0, 0, 0, 1, -2, -1, -1, -2]
    assert g.sizes == [3, 2] and g.others == 2 and g.names[0] == "circle 1 (3 members)"
    labels = np.array(["bot", None, "human", "human", "spam", None], dtype=object)
    lg = embeddings.user_groups([], labels, 6)
    assert lg.kind == "label" and lg.group.tolist() == [1, -2, 0, 0, 2, -2] and lg.names[0] == "human (2 users)"
    assert embeddings.user_groups([], np.array([None, None], dtype=object), 2).kind == ""


# -- sections from trained models on ego-Facebook ---------------------------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> GraphStore:
    store = ego_facebook_store(tmp_path_factory.mktemp("reports-linkpred"))
    train_and_register(store, LinkPredTask(), LinkPredConfig(seed=0, rounds=1, users_per_round=300, epochs=1, gnn_dim=8, threads=1))
    train_and_register(store, SiameseTask(), SiameseConfig(seed=0, epochs=1, hidden=32, dim=8, hard_every=0, threads=1))
    return store


def test_linkpred_section_samples_the_served_model(trained: GraphStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(linkpred, "SAMPLE_USERS", 20)
    ctx = ReportContext(trained)
    sample = linkpred.sample_served(ctx, users=25, k=5)
    assert sample is not None and sample.users == 25 and not sample.out_of_time
    assert len(sample.candidates) == 25 and min(sample.candidates) > 0
    assert len(sample.first_scores) == 25 and 0 < len(sample.top_scores) <= 125
    assert max(sample.first_scores) == max(sample.top_scores)  # the first suggestion is the best scored
    again = linkpred.sample_served(ctx, users=25, k=5)
    assert again is not None and again.candidates == sample.candidates  # seeded
    assert linkpred.sample_served(ctx, users=25, budget_s=0.0).out_of_time  # type: ignore[union-attr]
    section = linkpred.build(ctx)
    assert section.missing is not None and "eval linkpred" in section.missing and "train linkpred" not in section.missing
    plots = _plots(section)
    assert len(plots) == 2 and "over 20 users" in plots[0].alt and "for 20 users" in plots[1].alt
    for plot in plots:
        assert plot.caption
        _png(plot)


def test_embeddings_section_projects_the_served_encoder(trained: GraphStore) -> None:
    ctx = ReportContext(trained)
    section = embeddings.build(ctx)
    assert section.missing is not None and "eval siamese" in section.missing and "train siamese" not in section.missing
    (plot,) = _plots(section)
    _png(plot)
    assert "coloured" in plot.alt or "circle" in plot.alt
    assert re.search(r"circle 1 \([\d,]+ members\)", plot.alt)
    assert "all 4,039 real users" in plot.caption
