"""The report's bot and anomaly sections: the curve data ``graphrec eval bots`` records, the
curves and bins drawn from it on small known cases, the sections on an empty store (they say
what is missing and how to make it) and on a store with runs and an evaluation record (every
plot a PNG, the table and the view split right)."""

from __future__ import annotations

import base64
import datetime as dt
import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from graphrec.reports.build import build_section
from graphrec.reports.context import ReportContext
from graphrec.reports.evals import record_eval
from graphrec.reports.html import Plot, Section, Table, Text
from graphrec.reports.sections import anomaly as anomaly_section
from graphrec.reports.sections import bots as bots_section
from graphrec.store.scores import NewScoringRun
from graphrec.store.store import GraphStore


def _png_size(plot: Plot) -> tuple[int, int]:
    """The plot's image decoded (it must be a PNG): its size in pixels."""
    from PIL import Image

    prefix = "data:image/png;base64,"
    assert plot.data_uri.startswith(prefix)
    img = Image.open(io.BytesIO(base64.b64decode(plot.data_uri[len(prefix):])))
    assert img.format == "PNG"
    return img.size


def _plots(section: Section) -> list[Plot]:
    return [b for b in section.blocks if isinstance(b, Plot)]


# -- the recorded curve data -------------------------------------------------------------------
def test_eval_bots_records_every_methods_scores_on_the_test_users() -> None:
    from sklearn.metrics import roc_auc_score

    from graphrec.tasks.bots.config import BotConfig
    from graphrec.tasks.bots.evaluate import evaluate_bots
    from graphrec.tasks.bots.inject import honest_graph, inject_bot_region, sample_labels

    g = inject_bot_region(honest_graph(200, mean_degree=8, n_features=6, seed=0), n_bots=20, attack_edges=3, seed=0)
    labelled = sample_labels(g.is_bot, 0.3, seed=0)
    test = np.setdiff1d(np.arange(g.num_nodes), labelled)
    report = evaluate_bots(g.graph, labelled, g.is_bot[labelled], test, g.is_bot[test], BotConfig(folds=2, epochs=8, threads=1))
    curves = report.curves
    assert np.array_equal(np.asarray(curves["y_true"], dtype=bool), g.is_bot[test])
    assert list(curves["scores"]) == list(report.metrics)  # model first, then every baseline, in the printed order
    assert all(len(s) == test.size for s in curves["scores"].values())
    np.testing.assert_array_equal(curves["probability"], curves["scores"]["model"])
    assert curves["threshold"] == report.threshold
    for name, scores in curves["scores"].items():  # the recorded scores are the ones the printed figures came from
        assert roc_auc_score(curves["y_true"], scores) == pytest.approx(report.metrics[name]["roc_auc"])
    assert "curves" not in report.as_dict()  # the printed figures are unchanged


# -- curves and bins on known cases --------------------------------------------------------------
def test_method_curves_on_a_known_case() -> None:
    curves = {"y_true": [0, 0, 0, 1, 1],
              "scores": {"model": [0.1, 0.2, 0.3, 0.8, 0.9], "reversed": [0.9, 0.8, 0.7, 0.2, 0.1],
                         "half": [0.1, 0.6, 0.3, 0.5, 0.9], "no scores": [None, 0.1, 0.2, 0.3, 0.4], "short": [0.1]}}
    methods, skipped = bots_section.method_curves(curves)
    by_name = {m.name: m for m in methods}
    assert list(by_name) == ["model", "reversed", "half"] and skipped == ["no scores", "short"]
    assert by_name["model"].roc_auc == 1.0 and by_name["model"].average_precision == 1.0
    assert by_name["reversed"].roc_auc == 0.0
    assert by_name["half"].roc_auc == pytest.approx(5 / 6)  # 5 of the 6 (bot, human) pairs ordered right
    assert by_name["model"].tpr[-1] == 1.0 and by_name["model"].fpr[-1] == 1.0
    assert bots_section.method_curves({"y_true": [1, 1], "scores": {"model": [0.1, 0.2]}}) == ([], [])  # one class: no curve

    point = bots_section.operating_point(np.array([0, 0, 0, 1, 1]), np.array([0.1, 0.6, 0.3, 0.5, 0.9]), 0.5)
    assert point == {"fpr": pytest.approx(1 / 3), "tpr": 1.0, "precision": pytest.approx(2 / 3), "recall": 1.0}
    assert bots_section.calibration_counts(np.array([0.05, 0.05, 0.55, 0.95, 1.0]), 10) == [2, 1, 2]


def test_histogram_bins_follow_the_scores() -> None:
    rng = np.random.default_rng(0)
    probabilities = np.concatenate([10.0 ** rng.uniform(-12, -3, 500), rng.uniform(0.9, 1.0, 10), [0.0]])
    edges, log_x = bots_section.histogram_bins(probabilities, 0.01)
    assert log_x and edges[0] == probabilities[probabilities > 0].min() and edges[-1] == pytest.approx(1.0)
    assert 0.01 in edges  # the threshold is an edge: no bin mixes flagged and unflagged users
    ranks = rng.uniform(0, 1, 500)
    edges, log_x = bots_section.histogram_bins(ranks, 0.95)
    assert not log_x and edges[0] == 0.0 and edges[-1] == 1.0 and 0.95 in edges and np.all(np.diff(edges) > 0)
    errors = rng.uniform(2.0, 9.0, 100)
    edges, log_x = bots_section.histogram_bins(errors, 12.0)
    assert not log_x and edges[0] == errors.min() and edges[-1] == 12.0


# -- the sections on a store ----------------------------------------------------------------------
def test_sections_say_what_is_missing_on_an_empty_store(store: GraphStore) -> None:
    ctx = ReportContext(store)
    bots = build_section("bots", ctx)
    assert bots.missing is not None and not bots.blocks
    assert "`graphrec eval bots`" in bots.missing and "`graphrec train bots`" in bots.missing and "`graphrec score`" in bots.missing
    anomalies = build_section("anomaly", ctx)
    assert anomalies.missing == "no anomaly run yet: run `graphrec train anomaly` then `graphrec score`" and not anomalies.blocks


def _users(store: GraphStore, n_real: int, n_synthetic: int) -> np.ndarray:
    """Internal ids of ``n_real`` users r0.. then ``n_synthetic`` users s0.., in that order."""
    for i in range(n_real):
        store.add_user(f"r{i}")
    for i in range(n_synthetic):
        store.add_user(f"s{i}", is_synthetic=True)
    snap = store.snapshot()
    order = {ext: uid for ext, uid in zip(snap.external_ids.tolist(), snap.user_ids.tolist())}
    return np.array([order[f"r{i}"] for i in range(n_real)] + [order[f"s{i}"] for i in range(n_synthetic)], dtype=np.int64)


def _eval_record(home: Path) -> None:
    rng = np.random.default_rng(1)
    y = np.array([0] * 90 + [1] * 10)
    model = np.clip(np.where(y == 1, rng.uniform(0.5, 1.0, y.size), rng.uniform(0.0, 0.4, y.size)), 0, 1)
    scores: dict[str, Any] = {"model": model, "features only": rng.normal(size=y.size), "personalized pagerank": [None] * y.size}
    metrics = {name: {"roc_auc": 0.5, "average_precision": 0.1, "f1": 0.0, "precision": 0.0, "recall": 0.0, "precision@10": 0.0}
               for name in scores}
    result = {"seed": 0, "n_train": 200, "n_test": 100, "test_bots": 10, "threshold": 0.45, "smoothing": "none", "metrics": metrics,
              "seconds": {"model": 1.0}}
    record_eval(home, "bots", result, {"y_true": y, "scores": scores, "probability": model, "threshold": 0.45})


def test_bot_section_draws_the_evaluation_and_the_runs(store: GraphStore) -> None:
    ids = _users(store, 40, 10)
    day = dt.date(2026, 11, 20)
    for k, n_bots in enumerate((8, 10, 12)):
        scores = np.full(ids.size, 1e-6)
        scores[-n_bots:] = 0.99
        store.write_scoring_runs([NewScoringRun("bot", day + dt.timedelta(days=k), ids, scores, scores >= 0.5, 0.5,
                                                summary={"model_version": "v1", "newly_flagged": 2 * k, "no_longer_flagged": 0,
                                                         "flag_check": {"limit": 0.3}})])
    ctx = ReportContext(store)
    section = bots_section.build(ctx)
    assert section.missing == "never evaluated: run `graphrec eval bots` to compare the model with the baselines"
    plots = _plots(section)
    assert len(plots) == 2 and all(_png_size(p) == (640, 400) for p in plots)  # 6.4 x 4 in at 100 dpi
    assert "12 users flagged" in plots[0].alt and "12 users (24.0%)" in plots[0].caption
    assert plots[1].alt == "Users flagged per run: 2026-11-20 8, 2026-11-21 10, 2026-11-22 12"
    assert any(isinstance(b, Text) and "4 newly flagged" in b.text for b in section.blocks)

    _eval_record(ctx.home)
    section = bots_section.build(ReportContext(store))
    assert section.missing is None
    plots = _plots(section)
    assert len(plots) == 5 and all(_png_size(p)[0] == 640 for p in plots)  # ROC, PR, calibration, histogram, flagged per run
    assert "model AUC 1.000" in plots[0].alt and "features only AUC" in plots[0].alt and "pagerank" not in plots[0].alt
    assert "model AP 1.000" in plots[1].alt
    assert plots[2].alt.startswith("Calibration curve of the bot model on 100 test users")
    assert any(isinstance(b, Text) and "personalized pagerank" in b.text for b in section.blocks)  # said, not silently dropped
    table = next(b for b in section.blocks if isinstance(b, Table))
    assert [r[0] for r in table.rows] == ["model", "features only", "personalized pagerank"]


def test_bot_section_asks_for_a_new_evaluation_without_curve_data(store: GraphStore) -> None:
    ctx = ReportContext(store)
    record_eval(ctx.home, "bots", {"n_test": 10, "metrics": {"model": {"roc_auc": 0.9}}}, None)
    section = bots_section.build(ctx)
    assert section.missing is not None and "rerun `graphrec eval bots`" in section.missing
    assert any(isinstance(b, Table) for b in section.blocks) and not _plots(section)


def test_anomaly_section_shows_the_top_users_and_the_view_split(store: GraphStore) -> None:
    ids = _users(store, 30, 5)
    scores = np.linspace(0.0, 1.0, ids.size)  # the last users score highest
    flagged = scores > 0.87  # the top 5: s0..s4
    top = np.flatnonzero(flagged)
    drivers = ["attributes", "attributes", "structure", "attributes", None]  # the lowest flagged user is not explained
    details = {int(i): {"score": float(scores[i]), "friends": 3, "driver": d, "attribute_rank": 0.9, "structure_rank": 0.5,
                        "features": [{"feature": "city=Oslo", "value": 1.0, "expected": 0.012, "error": 4.4}]}
               for i, d in zip(top[::-1], drivers) if d is not None}
    store.write_scoring_runs([NewScoringRun("anomaly", dt.date(2026, 11, 30), ids, scores, flagged, 0.87, details=details,
                                            summary={"model_version": "a1"})])
    section = anomaly_section.build(ReportContext(store))
    assert section.missing is None
    plots = _plots(section)
    assert len(plots) == 2 and all(_png_size(p)[0] == 640 for p in plots)
    assert "5 users flagged" in plots[0].alt
    assert [b.text for b in section.blocks if isinstance(b, Text)] == ["Latest anomaly run: 2026-11-30, model a1."]  # no run before
    assert plots[1].alt == "Share of flagged users per view: attributes 75% (3), structure 25% (1)"
    assert "4 of its 5 flagged users" in plots[1].caption
    table = next(b for b in section.blocks if isinstance(b, Table))
    assert [r[1] for r in table.rows] == ["s4", "s3", "s2", "s1", "s0", "r29", "r28", "r27", "r26", "r25"]
    assert table.rows[0][4] == "attributes" and table.rows[0][8] == "city=Oslo = 1 (expected 0.012)"
    assert table.rows[5][3] == "no" and table.rows[5][4] == ""


def test_anomaly_view_split_prefers_what_the_run_recorded() -> None:
    from graphrec.store import RunInfo

    run = RunInfo(1, "anomaly", dt.date(2026, 11, 30), "complete", 0.9, 100, 10, {"drivers": {"structure": 6, "attributes": 4}}, None)
    counts, covered, source = anomaly_section.view_split(run, [{"driver": "attributes"}])
    assert counts == {"structure": 6, "attributes": 4} and covered == 10 and source == "recorded in the run's summary"
