"""Report section: bot detection.

Two parts, each drawn from what the store and ``GRAPHREC_HOME`` already hold (nothing is trained):

* the latest ``graphrec eval bots`` record (:func:`graphrec.reports.evals.latest_eval`): ROC and
  precision-recall curves of the model against the baselines measured in the same run on the same
  test users (ROC-AUC and average precision in the legends, the model's operating point at its
  flagging threshold marked), the calibration curve of the model's probabilities, and the
  figures per method;
* the nightly bot runs (``graphrec score``): the distribution of the latest run's scores with
  the flagging threshold, and how many users each of the recent runs flagged.

The helpers that read a run's scores and draw a score histogram (:func:`read_run_scores`,
:func:`score_histogram`) are shared with the anomaly section.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from graphrec.reports.html import Block, Plot, Section, Table, Text

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from graphrec.store import RunInfo
    from graphrec.store.store import GraphStore

TITLE = "Bot detection"
#: the scoring-run kind of the nightly bot runs (``graphrec score``)
RUN_KIND = "bot"
#: how many recent runs the flagged-count plot shows
RECENT_RUNS = 30
#: equal-width bins of the calibration curve
CALIBRATION_BINS = 10
#: grey of the "chance" reference lines (not a threshold, so not the threshold colour)
CHANCE_COLOUR = "#999999"


# -- evaluation curves ---------------------------------------------------------------------------
@dataclass
class MethodCurve:
    """One method's ROC and precision-recall curves on the evaluation's test users."""

    name: str
    fpr: "np.ndarray"
    tpr: "np.ndarray"
    recall: "np.ndarray"
    precision: "np.ndarray"
    roc_auc: float
    average_precision: float


def method_curves(curves: dict[str, Any]) -> tuple[list[MethodCurve], list[str]]:
    """The ROC and PR curves of every method in an evaluation record's ``curves`` (``y_true`` and
    ``scores`` per method, model first), and the names of the methods that could not be drawn
    (scores missing, of the wrong length or not finite). Nothing when the test users hold only
    one class (no curve is defined)."""
    import numpy as np
    from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

    y = np.asarray(curves.get("y_true") or [], dtype=np.int64)
    if y.size == 0 or y.min() == y.max():
        return [], []
    out: list[MethodCurve] = []
    skipped: list[str] = []
    for name, values in (curves.get("scores") or {}).items():
        if values is None or len(values) != y.size or any(v is None for v in values):
            skipped.append(str(name))
            continue
        s = np.asarray(values, dtype=np.float64)
        if not np.isfinite(s).all():
            skipped.append(str(name))
            continue
        fpr, tpr, _ = roc_curve(y, s)
        precision, recall, _ = precision_recall_curve(y, s)
        out.append(MethodCurve(str(name), fpr, tpr, recall, precision, float(roc_auc_score(y, s)), float(average_precision_score(y, s))))
    return out, skipped


def operating_point(y_true: "np.ndarray", prob: "np.ndarray", threshold: float) -> dict[str, float]:
    """Where the model works at its flagging threshold (``prob >= threshold`` is flagged): its
    false- and true-positive rates and precision (1 when nothing is flagged) and recall."""
    import numpy as np

    y = np.asarray(y_true, dtype=bool)
    flagged = np.asarray(prob, dtype=np.float64) >= threshold
    tp = int((flagged & y).sum())
    fp = int((flagged & ~y).sum())
    pos, neg = int(y.sum()), int((~y).sum())
    return {"fpr": fp / neg if neg else 0.0, "tpr": tp / pos if pos else 0.0,
            "precision": tp / (tp + fp) if tp + fp else 1.0, "recall": tp / pos if pos else 0.0}


def _roc_plot(methods: list[MethodCurve], point: dict[str, float] | None, threshold: float | None) -> Plot:
    from graphrec.reports.style import THRESHOLD_COLOUR, figure, png_data_uri, series_style

    with figure() as (fig, (ax,)):
        for i, m in enumerate(methods):
            ax.plot(m.fpr, m.tpr, label=f"{m.name} (AUC {m.roc_auc:.3f})", linewidth=2.2 if i == 0 else 1.5, zorder=3 if i == 0 else 2,
                    **series_style(i))
        ax.plot([0, 1], [0, 1], color=CHANCE_COLOUR, linestyle=":", linewidth=1, label="chance (AUC 0.5)")
        if point is not None and threshold is not None:
            ax.plot([point["fpr"]], [point["tpr"]], marker="D", markersize=9, linestyle="none", color=THRESHOLD_COLOUR,
                    markeredgecolor="black", zorder=5, label=f"model at its threshold {threshold:.3g}")
        ax.set_xlim(-0.01, 1.01)
        ax.set_ylim(-0.01, 1.01)
        ax.set_xlabel("false-positive rate (share of humans flagged)")
        ax.set_ylabel("true-positive rate (share of bots flagged)")
        ax.set_title("ROC on the held-out labelled users")
        ax.legend(loc="lower right")
        uri = png_data_uri(fig)
    top = max(round(m.roc_auc, 3) for m in methods)
    best = [m.name for m in methods if round(m.roc_auc, 3) == top]
    leader = best[0] if len(best) == 1 else f"{', '.join(best[:-1])} and {best[-1]} tie"
    alt = "ROC curves: " + "; ".join(f"{m.name} AUC {m.roc_auc:.3f}" for m in methods)
    return Plot(uri, alt, f"The curve closest to the top-left corner separates bots from humans best (here {leader} at AUC "
                          f"{top:.3f}); the diamond is where the model works at its flagging threshold.")


def _pr_plot(methods: list[MethodCurve], prevalence: float, point: dict[str, float] | None, threshold: float | None) -> Plot:
    from graphrec.reports.style import THRESHOLD_COLOUR, figure, png_data_uri, series_style

    with figure() as (fig, (ax,)):
        for i, m in enumerate(methods):
            ax.plot(m.recall, m.precision, drawstyle="steps-post", label=f"{m.name} (AP {m.average_precision:.3f})",
                    linewidth=2.2 if i == 0 else 1.5, zorder=3 if i == 0 else 2, **series_style(i))
        ax.axhline(prevalence, color=CHANCE_COLOUR, linestyle=":", linewidth=1, label=f"chance (bot share {100 * prevalence:.1f}%)")
        if point is not None and threshold is not None:
            ax.plot([point["recall"]], [point["precision"]], marker="D", markersize=9, linestyle="none", color=THRESHOLD_COLOUR,
                    markeredgecolor="black", zorder=5, label=f"model at its threshold {threshold:.3g}")
        ax.set_xlim(-0.01, 1.01)
        ax.set_ylim(0.0, 1.02)
        ax.set_xlabel("recall (share of bots flagged)")
        ax.set_ylabel("precision (share of flagged users that are bots)")
        ax.set_title("Precision-recall on the held-out labelled users")
        ax.legend(loc="lower left")
        uri = png_data_uri(fig)
    alt = "Precision-recall curves: " + "; ".join(f"{m.name} AP {m.average_precision:.3f}" for m in methods)
    return Plot(uri, alt, "Bots are rare, so this is the honest view: a curve that stays high to the right finds most bots "
                          "without flagging humans; the dotted line is what random scores reach.")


def _calibration_plot(y_true: "np.ndarray", prob: "np.ndarray", threshold: float | None) -> Plot:
    import numpy as np
    from sklearn.calibration import calibration_curve

    from graphrec.reports.style import THRESHOLD_COLOUR, figure, png_data_uri, series_style

    frac_pos, mean_pred = calibration_curve(y_true, prob, n_bins=CALIBRATION_BINS, strategy="uniform")
    counts = calibration_counts(prob, CALIBRATION_BINS)
    with figure() as (fig, (ax,)):
        ax.plot([0, 1], [0, 1], color=CHANCE_COLOUR, linestyle=":", linewidth=1, label="perfectly calibrated")
        ax.plot(mean_pred, frac_pos, marker="o", linewidth=2, label=f"model ({CALIBRATION_BINS} bins of width {1 / CALIBRATION_BINS:g})",
                **series_style(0))
        for x, y, n in zip(mean_pred, frac_pos, counts):
            ax.annotate(f"n={n}", (x, y), textcoords="offset points", xytext=(6, -12) if x < 0.85 else (-36, -4), fontsize=8,
                        color="#444444")
        if threshold is not None:
            ax.axvline(threshold, color=THRESHOLD_COLOUR, linestyle="--", linewidth=1.2, label=f"flagging threshold {threshold:.3g}")
        ax.set_xlim(-0.01, 1.01)
        ax.set_ylim(-0.01, 1.01)
        ax.set_xlabel("mean predicted bot probability in the bin")
        ax.set_ylabel("share of bots in the bin")
        ax.set_title("Calibration of the model's bot probabilities")
        ax.legend(loc="upper left")
        uri = png_data_uri(fig)
    worst = float(np.max(np.abs(frac_pos - mean_pred))) if frac_pos.size else 0.0
    alt = (f"Calibration curve of the bot model on {y_true.size} test users in {len(counts)} non-empty bins; largest gap between "
           f"predicted and observed bot share {worst:.2f}")
    return Plot(uri, alt, "Points on the diagonal mean a predicted probability of p is a bot p of the time; points below it mean "
                          "the model over-states the risk, above it under-states it (n: test users in the bin; few users, "
                          "noisy point).")


def calibration_counts(prob: "np.ndarray", n_bins: int) -> list[int]:
    """Test users in each non-empty bin of ``calibration_curve(..., strategy="uniform")``, in
    the order of its points (the same bins: ``n_bins`` of equal width over ``[0, 1]``)."""
    import numpy as np

    edges = np.linspace(0.0, 1.0, n_bins + 1)
    ids = np.searchsorted(edges[1:-1], np.asarray(prob, dtype=np.float64))
    counts = np.bincount(ids, minlength=n_bins)
    return [int(c) for c in counts if c > 0]


def _metrics_table(result: dict[str, Any]) -> Table | None:
    metrics: dict[str, dict[str, Any]] = result.get("metrics") or {}
    if not metrics:
        return None
    seconds = result.get("seconds") or {}
    rows = []
    for name, m in metrics.items():
        at_k = next((v for k, v in m.items() if k.startswith("precision@")), None)
        rows.append([name, m.get("roc_auc"), m.get("average_precision"), m.get("precision"), m.get("recall"), m.get("f1"), at_k,
                     seconds.get(name)])
    k = result.get("test_bots")
    return Table(["method", "ROC-AUC", "average precision", "precision", "recall", "F1", f"precision@{k}", "seconds"], rows,
                 caption="Figures on the held-out users (the model at its own threshold, the baselines flagging as many users as "
                         "there are test bots)")


def evaluation_blocks(record: dict[str, Any]) -> tuple[list[Block], str | None]:
    """The blocks drawn from one ``graphrec eval bots`` record, and what is missing from it."""
    import numpy as np

    result: dict[str, Any] = record.get("result") or {}
    curves: dict[str, Any] = record.get("curves") or {}
    blocks: list[Block] = [Text(
        f"Latest evaluation ({record.get('created_at', 'unknown time')}): {result.get('n_test', '?')} held-out labelled users "
        f"({result.get('test_bots', '?')} bots), the model and the baselines trained on {result.get('n_train', '?')} others; "
        f"seed {result.get('seed', '?')}, post-processing {result.get('smoothing', 'none')}.")]
    missing: str | None = None
    methods, skipped = method_curves(curves)
    threshold = curves.get("threshold", result.get("threshold"))
    threshold = float(threshold) if threshold is not None else None
    y = np.asarray(curves.get("y_true") or [], dtype=np.int64)
    prob_values = curves.get("probability")
    prob = (np.asarray(prob_values, dtype=np.float64)
            if prob_values is not None and len(prob_values) == y.size and all(v is not None for v in prob_values) else None)
    if methods:
        point = operating_point(y, prob, threshold) if prob is not None and threshold is not None else None
        blocks.append(_roc_plot(methods, point, threshold))
        blocks.append(_pr_plot(methods, float(y.mean()), point, threshold))
        if skipped:
            blocks.append(Text(f"Not drawn (no usable scores recorded): {', '.join(skipped)}."))
    else:
        missing = "the evaluation recorded no curve data (or its test users hold one class): rerun `graphrec eval bots`"
    if prob is not None and y.size and y.min() != y.max():
        blocks.append(_calibration_plot(y, prob, threshold))
    table = _metrics_table(result)
    if table is not None:
        blocks.append(table)
    return blocks, missing


# -- nightly runs ----------------------------------------------------------------------------------
def read_run_scores(store: "GraphStore", run_id: int) -> tuple["np.ndarray", "np.ndarray"]:
    """Every score of scoring run ``run_id`` and whether each user is synthetic (``float64[n]``,
    ``bool[n]``), read in batches."""
    import numpy as np

    scores: list[float] = []
    synthetic: list[bool] = []
    for batch in store.iter_scores(run_id):
        scores.extend(s.score for s in batch)
        synthetic.extend(s.is_synthetic for s in batch)
    return np.asarray(scores, dtype=np.float64), np.asarray(synthetic, dtype=bool)


def histogram_bins(scores: "np.ndarray", threshold: float | None, bins: int = 50) -> tuple["np.ndarray", bool]:
    """Bin edges for a score histogram and whether the score axis is logarithmic.

    Log-spaced (from the smallest positive value; zeros go to the first bin) when the scores
    are not negative, the positive ones span more than two decades and half of them lie in the
    lowest hundredth of the range: the calibrated bot probabilities of a healthy model (most
    users at 1e-10 .. 1e-3, the flagged ones near 1) or heavy-tailed reconstruction errors.
    Otherwise linear, over ``[0, 1]`` for probabilities and ranks, over the range for the rest.
    The threshold is always inside and is itself an edge, so no bin mixes flagged and unflagged
    users."""
    import numpy as np

    values = scores[np.isfinite(scores)]
    if threshold is not None and np.isfinite(threshold):
        values = np.append(values, threshold)
    if values.size == 0:
        return np.linspace(0.0, 1.0, bins + 1), False
    lo, hi = float(values.min()), float(values.max())
    positive = values[values > 0]
    low_pos = float(positive.min()) if positive.size else 0.0
    if lo >= 0.0 and low_pos > 0.0 and hi / low_pos > 100.0 and float(np.median(values)) < hi / 100.0:
        top = 1.0 if hi <= 1.0 else hi  # probabilities and ranks end at 1
        edges, log_x = np.logspace(np.log10(low_pos), np.log10(top), bins + 1), True
    elif lo >= 0.0 and hi <= 1.0:
        edges, log_x = np.linspace(0.0, 1.0, bins + 1), False
    else:
        edges, log_x = np.linspace(lo, hi if hi > lo else lo + 1.0, bins + 1), False
    if threshold is not None and np.isfinite(threshold) and edges[0] < threshold < edges[-1]:
        edges = np.unique(np.append(edges, threshold))
    return edges, log_x


def score_histogram(scores: "np.ndarray", synthetic: "np.ndarray", threshold: float | None, *, title: str, xlabel: str,
                    flag_rule: str = ">=") -> str:
    """A histogram (log count axis) of one run's scores, real users filled and synthetic users
    outlined, the flagging threshold marked and the flagged side shaded; the PNG data URI."""
    import numpy as np

    from graphrec.reports.style import THRESHOLD_COLOUR, figure, png_data_uri, series_style

    edges, log_x = histogram_bins(scores, threshold)
    if log_x:  # zeros (and anything below the first edge) counted in the first bin
        scores = np.clip(scores, edges[0], edges[-1])
    with figure() as (fig, (ax,)):
        real = scores[~synthetic]
        counts, _, _ = ax.hist(real, bins=edges.tolist(), color=series_style(0)["color"], alpha=0.85, label=f"real users ({real.size:,})")
        peak = float(np.max(counts)) if len(counts) else 1.0
        if synthetic.any():
            synth_counts, _, _ = ax.hist(scores[synthetic], bins=edges.tolist(), histtype="step", linewidth=1.8, color=series_style(1)["color"],
                                         label=f"synthetic users ({int(synthetic.sum()):,})")
            peak = max(peak, float(np.max(synth_counts)))
        if threshold is not None and np.isfinite(threshold):
            ax.axvline(threshold, color=THRESHOLD_COLOUR, linestyle="--", linewidth=1.5,
                       label=f"flagging threshold {threshold:.3g} (flagged: score {flag_rule} it)")
            ax.axvspan(threshold, float(edges[-1]), color=THRESHOLD_COLOUR, alpha=0.07)
        if peak > 0:
            ax.set_yscale("log")
            ax.set_ylim(0.7, peak * 40)  # headroom above the bars for the legend
        if log_x:
            ax.set_xscale("log")
        ax.set_xlim(float(edges[0]), float(edges[-1]))
        ax.set_xlabel(f"{xlabel} (log scale)" if log_x else xlabel)
        ax.set_ylabel("users (log scale)")
        ax.set_title(title)
        ax.legend(loc="upper center")
        return png_data_uri(fig)


def _fmt(value: float | None) -> str:
    """A threshold for text: three significant digits, or "none"."""
    return "none" if value is None else f"{value:.3g}"


def _as_datetime(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day)


def flagged_over_runs(runs: list["RunInfo"], *, what: str) -> Plot:
    """Users flagged by each of ``runs`` (oldest first) as a line with markers over the run
    dates; from the second run on, the users newly flagged against the run before (the first
    run's count compares with a run the plot does not show, or with none); and, where the runs
    recorded the flag-rate guard, the most it allows."""
    import matplotlib.dates as mdates

    from graphrec.reports.style import THRESHOLD_COLOUR, figure, png_data_uri, series_style

    days = mdates.date2num([_as_datetime(r.run_date) for r in runs])  # matplotlib's date numbers (days)
    flagged = [r.n_flagged for r in runs]
    newly = [None] + [(r.summary or {}).get("newly_flagged") for r in runs[1:]]
    limits = [(r.summary or {}).get("flag_check") or {} for r in runs]
    with figure() as (fig, (ax,)):
        ax.plot(days, flagged, marker="o", linewidth=2, label="flagged", **series_style(0))
        if any(n is not None for n in newly):
            ax.plot(days, [n if n is not None else float("nan") for n in newly], marker="s", linewidth=1.5,
                    label="newly flagged (not flagged the run before)", **series_style(1))
        if any(lim.get("limit") is not None for lim in limits):
            ax.plot(days, [lim["limit"] * r.n_scored if lim.get("limit") is not None else float("nan") for lim, r in zip(limits, runs)],
                    color=THRESHOLD_COLOUR, linestyle="--", linewidth=1.2, marker="_", markersize=16,
                    label="most the flag-rate guard allows")
        if len(days) == 1:
            ax.set_xlim(float(days[0]) - 1.0, float(days[0]) + 1.0)
            ax.set_xticks([float(days[0])])
            ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d"))
        else:
            locator = mdates.AutoDateLocator(minticks=2, maxticks=8)
            ax.xaxis.set_major_locator(locator)
            ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
        ax.set_ylim(bottom=0)
        ax.set_xlabel("run date (UTC)")
        ax.set_ylabel("users")
        ax.set_title(f"{what} flagged by the last {len(runs)} run{'s' if len(runs) != 1 else ''}")
        ax.legend(loc="best")
        uri = png_data_uri(fig)
    alt = f"{what} flagged per run: " + ", ".join(f"{r.run_date.isoformat()} {r.n_flagged}" for r in runs)
    return Plot(uri, alt, "A sudden jump or drop between runs means the data or the model changed: check the newly flagged users "
                          "before acting on them.")


def run_blocks(store: "GraphStore") -> tuple[list[Block], str | None]:
    """The latest nightly bot run's score histogram and the flagged count over the recent runs;
    the missing note when there is no complete bot run."""
    run = store.latest_run(RUN_KIND)
    if run is None:
        return [], "no nightly bot run yet: run `graphrec score` (after `graphrec train bots`)"
    scores, synthetic = read_run_scores(store, run.id)
    share = run.n_flagged / run.n_scored if run.n_scored else 0.0
    summary = run.summary or {}
    uri = score_histogram(scores, synthetic, run.threshold,
                          title=f"Bot run of {run.run_date.isoformat()}: {run.n_flagged:,} of {run.n_scored:,} users flagged",
                          xlabel="calibrated bot probability")
    blocks: list[Block] = [Plot(
        uri, f"Histogram of {run.n_scored} bot probabilities of the run of {run.run_date.isoformat()}, threshold "
             f"{_fmt(run.threshold)}, {run.n_flagged} users flagged",
        f"The run flagged {run.n_flagged:,} users ({100 * share:.1f}%), those right of the dashed threshold; a healthy model puts "
        f"almost every user far below the threshold and the bots it is sure of near 1." + (" This run was written with --force past the flag-rate guard."
                                                            if summary.get("forced") else ""))]
    recent = store.recent_runs(RUN_KIND, RECENT_RUNS)
    if recent:
        blocks.append(flagged_over_runs(recent, what="Users"))
    before = len(recent) > 1  # the changes are against the run before, when there is one
    facts = [f"model {summary['model_version']}" if summary.get("model_version") else None,
             f"{summary['newly_flagged']:,} newly flagged" if before and summary.get("newly_flagged") is not None else None,
             f"{summary['no_longer_flagged']:,} no longer flagged against the run before"
             if before and summary.get("no_longer_flagged") is not None else None]
    if any(facts):
        blocks.insert(0, Text(f"Latest nightly bot run: {run.run_date.isoformat()}, " + ", ".join(f for f in facts if f) + "."))
    return blocks, None


def build(ctx: Any) -> Section:
    """The bot detection section: the latest evaluation's curves and the nightly runs (see the
    module docs); what is missing is named with the command that makes it."""
    blocks: list[Block] = []
    missing: list[str] = []
    record = ctx.latest_eval("bots")
    if record is None:
        missing.append("never evaluated: run `graphrec eval bots` to compare the model with the baselines")
    else:
        eval_blocks, eval_missing = evaluation_blocks(record)
        blocks.extend(eval_blocks)
        if eval_missing:
            missing.append(eval_missing)
    if ctx.manifest(RUN_KIND) is None and ctx.store.latest_run(RUN_KIND) is None:
        missing.append("no bot model served: run `graphrec train bots`, then `graphrec score`")
    else:
        nightly, run_missing = run_blocks(ctx.store)
        blocks.extend(nightly)
        if run_missing:
            missing.append(run_missing)
    return Section("bots", TITLE, blocks, "; ".join(missing) if missing else None)
