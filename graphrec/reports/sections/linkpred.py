"""Report section: Friend recommendation.

Two parts, each drawn when its data exists:

* **The latest ``graphrec eval linkpred``** (:func:`graphrec.reports.evals.latest_eval`): Recall@K
  for every K from 1 to 100 of the link model beside the heuristics (common neighbours,
  Adamic-Adar, resource allocation, personalized PageRank), the MRR of each (full ranking and,
  when the evaluation ranked hard negatives, against them) and the hard-negative Hits@K curves,
  with the evaluation's date and parameters in the captions. Seed sweeps draw the mean over the
  seeds with a ±1 standard deviation band.
* **The served link model** (``LATEST``), through the recommender the service answers with
  (:class:`graphrec.serving.recommend.Recommender`): for a seeded sample of at most
  :data:`SAMPLE_USERS` real users, how many candidates the model ranks per user before any filter
  and the scores of the top :data:`TOP_K` it recommends. The sample stops early once
  :data:`TIME_BUDGET_S` seconds are spent (the caption then says how many users it covers), so a
  big store does not hold the report up.

Nothing here trains a model or runs the evaluation again.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from graphrec.reports.html import Block, Plot, Section, Table, Text

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from graphrec.reports.context import ReportContext

log = logging.getLogger(__name__)

TITLE = "Friend recommendation"
#: how many real users the served-model plots sample (seeded)
SAMPLE_USERS = 200
#: the recommendation list whose scores are drawn
TOP_K = 20
#: the served-model sample stops after this many seconds (and says so)
TIME_BUDGET_S = 20.0
#: the seed of the user sample
SAMPLE_SEED = 0

#: the evaluation's method keys in drawing order (the model first), with the names people read
METHODS = {
    "model": "link model",
    "common_neighbours": "common neighbours",
    "adamic_adar": "Adamic-Adar",
    "resource_allocation": "resource allocation",
    "personalized_pagerank": "personalized PageRank",
}

EVAL_COMMAND = "run `graphrec eval linkpred` (add `--report DIR` to write this section on its own)"
TRAIN_COMMAND = "run `graphrec train linkpred`"


def _name(method: str) -> str:
    return METHODS.get(method, method.replace("_", " "))


def _ordered(methods: Any) -> list[str]:
    """``methods`` in :data:`METHODS` order (unknown ones after, as given)."""
    known = [m for m in METHODS if m in methods]
    return known + [m for m in methods if m not in METHODS]


def _style(method: str) -> dict[str, Any]:
    """The model in series 0, each heuristic in a fixed series, so colours match across plots."""
    from graphrec.reports.style import series_style

    keys = list(METHODS)
    return series_style(keys.index(method) if method in keys else len(keys))


# -- the evaluation record ----------------------------------------------------------------------

def eval_description(record: dict[str, Any]) -> str:
    """One line on which evaluation the plots show: its date, users, held-out friendships, seeds."""
    result = record.get("result") or {}
    p = result.get("params") or {}
    when = str(record.get("created_at", "?")).replace("T", " ")[:16]
    seeds = p.get("seeds") or ([p["seed"]] if "seed" in p else [])
    seed_text = f"seed {seeds[0]}" if len(seeds) == 1 else f"mean of seeds {', '.join(map(str, seeds))}" if seeds else "seed ?"
    parts = [f"`graphrec eval linkpred` of {when} UTC"]
    if "max_users" in p:
        parts.append(f"{int(p['max_users']):,} users ranked")
    if "test_edges" in p:
        share = f" ({float(p['test_fraction']):.0%} held out)" if "test_fraction" in p else ""
        parts.append(f"{int(p['test_edges']):,} held-out friendships{share}")
    parts.append(seed_text)
    return ", ".join(parts)


def _band(ax: Any, k: list[int], mean: list[float], std: list[float] | None, style: dict[str, Any]) -> None:
    if std and any(s > 0 for s in std):
        import numpy as np

        m, s = np.asarray(mean, dtype=float), np.asarray(std, dtype=float)
        ax.fill_between(k, np.clip(m - s, 0, 1), np.clip(m + s, 0, 1), color=style["color"], alpha=0.15, linewidth=0)


def _plain_log_ticks(ax: Any, k_max: int) -> None:
    """K ticks at 1, 2, 5, 10, 20, 50, ... written as plain numbers on a log axis."""
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator

    ticks = [t for t in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000) if t <= k_max]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xticklabels([str(t) for t in ticks])


def recall_plot(record: dict[str, Any]) -> Plot | None:
    """Recall@K against K (log axis) for every method of the record; None without curve data."""
    from graphrec.reports.style import figure, png_data_uri

    curves = record.get("curves") or {}
    k, recall = curves.get("k"), curves.get("recall")
    if not k or not recall:
        return None
    std = curves.get("recall_std") or {}
    methods = _ordered(recall)
    with figure() as (fig, (ax,)):
        for m in methods:
            st = _style(m)
            _band(ax, k, recall[m], std.get(m), st)
            ax.plot(k, recall[m], label=_name(m), linewidth=2.4 if m == "model" else 1.5, **st)
        for mark in (20, 50):
            if mark <= k[-1]:
                ax.axvline(mark, color="#999999", linewidth=0.8, linestyle=":")
        ax.set_xscale("log")
        ax.set_xlim(k[0], k[-1])
        _plain_log_ticks(ax, k[-1])
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("K (suggestions shown to the user, log scale)")
        ax.set_ylabel("Recall@K (share of held-out friends found)")
        ax.set_title("Recall@K: link model against the heuristics")
        ax.legend(loc="upper left")
        uri = png_data_uri(fig)
    best = {m: recall[m][min(19, len(recall[m]) - 1)] for m in methods}
    alt = "Line chart of Recall@K for K from 1 to {} per method; at K=20: {}.".format(
        k[-1], "; ".join(f"{_name(m)} {v:.3f}" for m, v in best.items()))
    seeds_note = " The band is ±1 standard deviation over the seeds." if any(any(v > 0 for v in s) for s in std.values()) else ""
    return Plot(uri, alt, f"{eval_description(record)}. Look for the link model's curve above every heuristic at the K a user sees "
                          f"(dotted lines at K = 20 and 50).{seeds_note}")


def mrr_plot(record: dict[str, Any]) -> Plot | None:
    """MRR per method as horizontal bars: over the full ranking and, when recorded, against the
    hard negatives (hatched, beside it); None when the record has no figures."""
    from graphrec.reports.style import figure, png_data_uri

    result = record.get("result") or {}
    metrics = result.get("metrics") or {}
    hard = result.get("hard_negatives") or {}
    std = result.get("std") or {}
    methods = [m for m in _ordered(metrics) if "mrr" in (metrics[m] or {})]
    if not methods:
        return None
    n_neg = (result.get("params") or {}).get("hard_negatives", "?")
    groups = [("full ranking", metrics, std.get("metrics") or {}, "")]
    if hard:
        groups.append((f"against {n_neg} hard negatives per user", hard, std.get("hard_negatives") or {}, "///"))
    height = 0.8 / len(groups)
    any_error = False
    right = 0.0
    with figure() as (fig, (ax,)):
        for g, (label, table, table_std, hatch) in enumerate(groups):
            ys = [len(methods) - 1 - i + (len(groups) - 1) * height / 2 - g * height for i in range(len(methods))]
            values = [float((table.get(m) or {}).get("mrr", float("nan"))) for m in methods]
            errors = [float((table_std.get(m) or {}).get("mrr", 0.0)) for m in methods]
            any_error = any_error or any(errors)
            ax.barh(ys, values, height=height * 0.92, xerr=errors if any(errors) else None, capsize=3, hatch=hatch,
                    color=[_style(m)["color"] for m in methods], edgecolor="#333333", linewidth=0.5,
                    alpha=1.0 if not hatch else 0.55, label=label)
            for y, v, e in zip(ys, values, errors):
                if v == v:
                    ax.text(v + e, y, f" {v:.3f}", va="center", fontsize=8)
                    right = max(right, v + e)
        ax.set_yticks(range(len(methods)))
        ax.set_yticklabels([_name(m) for m in methods][::-1])
        ax.set_xlim(0, min(1.0, right * 1.25 + 0.01))  # room for the value labels; MRR never exceeds 1
        ax.set_xlabel("MRR (mean of 1 / rank of the first held-out friend)")
        fig.suptitle("Mean reciprocal rank per method", fontsize=11)
        ax.grid(axis="y", visible=False)
        if len(groups) > 1:
            from matplotlib.patches import Patch

            ax.legend(handles=[Patch(facecolor="#bbbbbb", edgecolor="#333333", label=groups[0][0]),
                               Patch(facecolor="#dddddd", edgecolor="#333333", hatch="///", label=groups[1][0])],
                      loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False)
        uri = png_data_uri(fig)
    summary = "; ".join(f"{_name(m)} {float(metrics[m]['mrr']):.3f}" for m in methods)
    if hard:
        summary += "; against hard negatives: " + "; ".join(
            f"{_name(m)} {float(hard[m]['mrr']):.3f}" for m in methods if "mrr" in (hard.get(m) or {}))
    caption = (f"{eval_description(record)}. Longer bars rank a true new friend nearer the top; the link model's (blue) bars "
               "should be the longest" + (", solid (full ranking) and hatched (hard negatives)." if hard else "."))
    if any_error:
        caption += " Error bars: ±1 standard deviation over the seeds."
    return Plot(uri, f"Bar chart of the mean reciprocal rank per method over the full ranking: {summary}.", caption)


def hard_hits_plot(record: dict[str, Any]) -> Plot | None:
    """Hits@K against each user's hard negatives, K from 1 to their count; None when not recorded."""
    from graphrec.reports.style import figure, png_data_uri

    curves = record.get("curves") or {}
    k, hits = curves.get("hard_k"), curves.get("hard_hits")
    if not k or not hits:
        return None
    std = curves.get("hard_hits_std") or {}
    methods = _ordered(hits)
    with figure() as (fig, (ax,)):
        for m in methods:
            st = _style(m)
            _band(ax, k, hits[m], std.get(m), st)
            ax.plot(k, hits[m], label=_name(m), linewidth=2.4 if m == "model" else 1.5, **st)
        ax.set_xscale("log")
        ax.set_xlim(k[0], k[-1])
        _plain_log_ticks(ax, k[-1])
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("K (rank among the hard negatives, log scale)")
        ax.set_ylabel("Hits@K (share of held-out friendships)")
        ax.set_title(f"Hits@K against {k[-1]} hard negatives per user")
        ax.legend(loc="upper left")
        uri = png_data_uri(fig)
    at10 = "; ".join(f"{_name(m)} {hits[m][min(9, len(hits[m]) - 1)]:.3f}" for m in methods)
    return Plot(uri, f"Line chart of Hits@K against hard negatives for K from 1 to {k[-1]}; at K=10: {at10}.",
                f"{eval_description(record)}. Each held-out friend is ranked among the user's hardest non-friends (top common-neighbour, "
                "resource-allocation and PageRank candidates); a curve that rises early separates friends from near misses.")


def figures_table(record: dict[str, Any]) -> Table | None:
    """The printed figures of the record, one row per method."""
    result = record.get("result") or {}
    metrics = result.get("metrics") or {}
    if not metrics:
        return None
    hard = result.get("hard_negatives") or {}
    headers = ["method", "recall@20", "recall@50", "MRR"] + (["hard MRR", "hard hits@10"] if hard else [])
    rows = []
    for m in _ordered(metrics):
        row: list[Any] = [_name(m)] + [metrics[m].get(x) for x in ("recall@20", "recall@50", "mrr")]
        if hard:
            row += [(hard.get(m) or {}).get("mrr"), (hard.get(m) or {}).get("hits@10")]
        rows.append(row)
    return Table(headers, rows, caption=f"Figures of the {eval_description(record)}")


def eval_blocks(record: dict[str, Any] | None) -> tuple[list[Block], str | None]:
    """The evaluation's blocks, and what is missing (None when complete)."""
    if record is None:
        return [], f"friend recommendation was never evaluated: {EVAL_COMMAND}"
    blocks: list[Block] = []
    recall = recall_plot(record)
    if recall is not None:
        blocks.append(recall)
    mrr = mrr_plot(record)
    if mrr is not None:
        blocks.append(mrr)
    hits = hard_hits_plot(record)
    if hits is not None:
        blocks.append(hits)
    table = figures_table(record)
    if table is not None:
        blocks.append(table)
    if recall is None:
        return blocks, f"the latest linkpred evaluation has no Recall@K curves (recorded by an older graphrec): {EVAL_COMMAND}"
    return blocks, None


# -- the served model -------------------------------------------------------------------------

@dataclass
class ServedSample:
    """What the served link model did for a sample of real users: candidates each user's list
    is ranked from (before filters), and the scores of the top-``k`` recommended."""

    version: str
    wanted: int
    users: int = 0
    candidates: list[int] = field(default_factory=list)
    top_scores: list[float] = field(default_factory=list)
    first_scores: list[float] = field(default_factory=list)
    seconds: float = 0.0
    out_of_time: bool = False
    profile_model: str | None = None


def sample_served(ctx: "ReportContext", *, users: int | None = None, k: int = TOP_K, budget_s: float | None = None,
                  seed: int = SAMPLE_SEED) -> ServedSample | None:
    """Recommend for a seeded sample of up to ``users`` (default :data:`SAMPLE_USERS`) real users
    of the served model (users with friends: the link model's path; a user without friends is
    answered by the profile model instead) with the serving recommender, stopping once
    ``budget_s`` (default :data:`TIME_BUDGET_S`) seconds are spent. None when no link model is
    served."""
    import numpy as np

    users = SAMPLE_USERS if users is None else users
    budget_s = TIME_BUDGET_S if budget_s is None else budget_s

    from graphrec.errors import NotFoundError
    from graphrec.serving.recommend import Recommender

    if ctx.manifest("linkpred") is None:
        return None
    t0 = time.perf_counter()
    rec = Recommender(ctx.store)
    model = rec.model
    graph = ctx.graph
    ids = [] if graph.external_ids is None else [str(x) for x in graph.external_ids]
    degree = graph.degrees
    pool = [i for i, ext in enumerate(ids) if degree[i] > 0 and model.node(ext) >= 0]
    rng = np.random.default_rng(seed)
    chosen = rng.choice(np.asarray(pool, dtype=np.int64), size=min(users, len(pool)), replace=False) if pool else np.empty(0, np.int64)
    out = ServedSample(rec.version, int(chosen.size), profile_model=None if rec.profile_model is None else rec.profile_model.version)
    for i in chosen.tolist():
        if time.perf_counter() - t0 > budget_s:
            out.out_of_time = True
            break
        try:
            suggestions, _, seen = rec.recommend_traced(ids[i], k)
        except NotFoundError:  # deleted since the snapshot
            continue
        out.candidates.append(seen["candidates"])
        out.top_scores.extend(float(s.score) for s in suggestions)
        if suggestions:
            out.first_scores.append(float(suggestions[0].score))
        out.users += 1
    out.seconds = round(time.perf_counter() - t0, 2)
    return out


def _sample_note(sample: ServedSample) -> str:
    note = f"{sample.users:,} real users with friends, drawn with seed {SAMPLE_SEED}"
    if sample.out_of_time:
        note += f" (of {sample.wanted:,} drawn: the sample stops after {TIME_BUDGET_S:.0f} s)"
    return note


def candidates_plot(sample: ServedSample) -> Plot:
    """Histogram of candidates per user (log bins when the counts span a decade or more)."""
    import numpy as np

    from graphrec.reports.style import figure, png_data_uri, series_style

    counts = np.asarray(sample.candidates, dtype=np.float64)
    lo, hi = max(float(counts.min()), 1.0), max(float(counts.max()), 1.0)
    log_bins = hi / lo >= 10
    with figure() as (fig, (ax,)):
        bins: Any = np.geomspace(lo, hi * 1.01, 30).tolist() if log_bins else 30
        ax.hist(np.maximum(counts, 1.0) if log_bins else counts, bins=bins, color=series_style(0)["color"], edgecolor="white", linewidth=0.5)
        med = float(np.median(counts))
        ax.axvline(med, color="#333333", linestyle="--", linewidth=1.2, label=f"median {med:,.0f}")
        if log_bins:
            from matplotlib.ticker import FuncFormatter

            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
            # minor ticks at 2 and 5 times a power of ten are labelled too
            ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if f"{v:.0e}"[0] in "25" else ""))
        ax.set_xlabel("candidates ranked per user" + (" (log scale)" if log_bins else ""))
        ax.set_ylabel("users")
        ax.set_title("Candidates the link model ranks per user, before filtering")
        ax.legend(loc="upper left")
        uri = png_data_uri(fig)
    alt = (f"Histogram of how many candidates the served link model ranks per user, over {sample.users} users: "
           f"median {float(np.median(counts)):,.0f}, range {int(counts.min()):,} to {int(counts.max()):,}.")
    sources = "friends-of-friends, GNN-embedding neighbours" + (" and Siamese profile neighbours" if sample.profile_model else "")
    return Plot(uri, alt, f"Served link model {sample.version}, {_sample_note(sample)}; candidates are the {sources}, counted before "
                          "any filter. Users with very few candidates get mostly PageRank back-fill instead of ranked suggestions: "
                          "look for a thin left tail.")


def scores_plot(sample: ServedSample, k: int = TOP_K) -> Plot:
    """Histogram of the scores of the recommended top-``k`` (and of each user's first suggestion)."""
    import numpy as np

    from graphrec.reports.style import figure, png_data_uri, series_style

    scores = np.asarray(sample.top_scores, dtype=np.float64)
    first = np.asarray(sample.first_scores, dtype=np.float64)
    with figure() as (fig, (ax,)):
        bins = np.histogram_bin_edges(scores, bins=40).tolist()
        ax.hist(scores, bins=bins, weights=np.full(scores.size, 1.0 / scores.size), color=series_style(0)["color"], alpha=0.75,
                label=f"all top-{k} suggestions ({scores.size:,})")
        if first.size:
            st = series_style(1)
            ax.hist(first, bins=bins, weights=np.full(first.size, 1.0 / first.size), histtype="step", linewidth=2.0, color=st["color"],
                    label=f"first suggestion only ({first.size:,} users)")
        ax.set_xlabel("link-model score (listwise logit; higher ranks first)")
        ax.set_ylabel("share of the suggestions per bin")
        ax.set_title(f"Scores of the recommended top {k}")
        ax.legend(loc="upper left")
        uri = png_data_uri(fig)
    alt = (f"Histogram of the served link model's scores of the top {k} suggestions for {sample.users} users: median "
           f"{float(np.median(scores)):.2f}, first suggestion median {float(np.median(first)) if first.size else float('nan'):.2f}.")
    return Plot(uri, alt, f"Served link model {sample.version}, {_sample_note(sample)}; the suggestions the service returns after its "
                          "filters (bots, blocked, deleted, synthetic). A first-suggestion peak well right of the rest means the model is "
                          "confident about its best pick; a long low tail means PageRank back-fill.")


def served_blocks(ctx: "ReportContext") -> tuple[list[Block], str | None]:
    """The served model's blocks, and what is missing (None when complete). A served model that
    cannot be loaded is reported as missing, so the evaluation's plots are still drawn."""
    from graphrec.artifacts import ArtifactError

    try:
        sample = sample_served(ctx)
    except ArtifactError as exc:
        log.warning("report: the served link model cannot be loaded: %s", exc)
        return [], f"the served friend-recommendation model cannot be loaded ({exc}): {TRAIN_COMMAND}"
    if sample is None:
        return [], f"no friend-recommendation model is served: {TRAIN_COMMAND}"
    if sample.users == 0:
        return [Text(f"Served link model {sample.version}: no real user with friends to sample.")], None
    blocks: list[Block] = [candidates_plot(sample)]
    if sample.top_scores:
        blocks.append(scores_plot(sample))
    else:
        blocks.append(Text(f"The served link model {sample.version} recommended nobody to the sampled users."))
    return blocks, None


def build(ctx: "ReportContext") -> Section:
    """The section: the latest evaluation's plots, then the served model's sample."""
    blocks, missing_eval = eval_blocks(ctx.latest_eval("linkpred"))
    served, missing_model = served_blocks(ctx)
    missing = "; ".join(m for m in (missing_model, missing_eval) if m)
    return Section("linkpred", TITLE, blocks + served, missing=missing or None)
