"""Report section: do the synthetic users look like the real ones?

Drawn from the store's users as they are now (real and ``is_synthetic`` ones, one snapshot):

* profile marginals: how often each feature column is set (non-zero) among real and among
  synthetic users -- the 30 most frequent columns of the real users side by side, and every column
  as a scatter against the diagonal (on the diagonal: the generator reproduces that column's
  frequency);
* the degree distribution of both groups (log-log CCDF) and their local clustering coefficients;
* the latest synth run's realism and privacy figures as ``graphrec synth`` recorded them
  (``model_runs`` of kind ``synth``).

Without synthetic users the section says so and how to make them, and still shows the latest
run's figures when there is one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from graphrec.reports.html import Block, Plot, Section, Table, Text

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from graphrec.reports.context import ReportContext

TITLE = "Synthetic users"
#: how many of the most frequent feature columns the side-by-side bars show
TOP_FEATURES = 30
#: at most this many columns in the frequency scatter (a random subset beyond)
MAX_POINTS = 5000
#: external ids of the users ``graphrec synth`` writes (:mod:`graphrec.tasks.synth.synthesize`:
#: ``synthetic-<batch>-<i>``); other synthetic users (the demo bots of ``import ego-facebook
#: --with-demo-bots``, imported flagged rows) were not drawn by the generator and are left out
GENERATED_PREFIX = "synthetic-"


def generated_mask(graph: Any) -> "np.ndarray":
    """``bool[n]``: the users ``graphrec synth`` generated (flagged synthetic, with its id prefix).
    Without external ids every synthetic user counts."""
    import numpy as np

    syn = np.zeros(graph.num_nodes, dtype=bool) if graph.is_synthetic is None else np.asarray(graph.is_synthetic, dtype=bool)
    if graph.external_ids is None:
        return syn
    prefixed = np.array([str(e).startswith(GENERATED_PREFIX) for e in graph.external_ids.tolist()], dtype=bool)
    return syn & prefixed


def feature_frequencies(features: "np.ndarray", is_synthetic: "np.ndarray") -> tuple["np.ndarray", "np.ndarray"]:
    """Per feature column, the share of real and of synthetic users with a non-zero value
    (``float64[d]`` each; zeros for an empty group)."""
    import numpy as np

    x = np.asarray(features) != 0
    syn = np.asarray(is_synthetic, dtype=bool)
    real_freq = x[~syn].mean(axis=0) if (~syn).any() else np.zeros(x.shape[1])
    syn_freq = x[syn].mean(axis=0) if syn.any() else np.zeros(x.shape[1])
    return real_freq.astype(np.float64), syn_freq.astype(np.float64)


def top_features(real_freq: "np.ndarray", k: int = TOP_FEATURES) -> "np.ndarray":
    """Indices of the ``k`` columns most often set among real users, most frequent first (ties by column)."""
    import numpy as np

    order = np.lexsort((np.arange(real_freq.size), -real_freq))
    return order[:k]


def _short(name: str, limit: int = 34) -> str:
    return name if len(name) <= limit else "…" + name[-(limit - 1):]


def marginals_plot(names: list[str], real_freq: "np.ndarray", syn_freq: "np.ndarray", top: "np.ndarray") -> str:
    """Grouped horizontal bars: the ``top`` columns' frequency among real and synthetic users."""
    import numpy as np

    from graphrec.reports.style import figure, png_data_uri, series_style

    idx = top[::-1]  # most frequent at the top
    y = np.arange(idx.size)
    h = 0.4
    with figure(6.4, max(3.0, 0.2 * idx.size + 1.4)) as (fig, (ax,)):
        ax.barh(y + h / 2, real_freq[idx], height=h, color=series_style(1)["color"], label="real users")
        ax.barh(y - h / 2, syn_freq[idx], height=h, color=series_style(0)["color"], label="synthetic users")
        ax.set_yticks(y)
        ax.set_yticklabels([_short(names[i]) for i in idx], fontsize=7)
        ax.set_xlabel("share of users with the feature set")
        ax.set_title(f"The {idx.size} most frequent profile features")
        ax.grid(axis="y", visible=False)
        ax.legend(loc="lower right")
        return png_data_uri(fig)


def frequency_scatter(real_freq: "np.ndarray", syn_freq: "np.ndarray", n_real: int, n_syn: int, seed: int = 0) -> str:
    """Every column's synthetic frequency against its real frequency on log-log axes (the
    frequencies span decades: most profile columns are rare), with the diagonal. A column no user
    of a group has is drawn on that group's floor, half of one user's share (``0.5 / n``)."""
    import numpy as np

    from graphrec.reports.style import THRESHOLD_COLOUR, figure, png_data_uri, series_style

    idx = np.arange(real_freq.size)
    if idx.size > MAX_POINTS:
        idx = np.sort(np.random.default_rng(seed).choice(idx, MAX_POINTS, replace=False))
    floor_x, floor_y = 0.5 / max(n_real, 1), 0.5 / max(n_syn, 1)
    x, y = np.maximum(real_freq[idx], floor_x), np.maximum(syn_freq[idx], floor_y)
    lo = min(floor_x, floor_y) * 0.8
    with figure(5.6, 4.6) as (fig, (ax,)):
        ax.plot([lo, 1.0], [lo, 1.0], color=THRESHOLD_COLOUR, linestyle="--", linewidth=1.0, label="equal frequency")
        ax.scatter(x, y, s=8, alpha=0.45, color=series_style(0)["color"], label=f"feature column ({idx.size:,})")
        ax.axhline(floor_y, color="grey", linewidth=0.7, linestyle=":", label="no synthetic user has it")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(lo, 1.2)
        ax.set_ylim(lo, 1.2)
        ax.set_xlabel("share of real users with the feature (log)")
        ax.set_ylabel("share of synthetic users with the feature (log)")
        ax.set_title("Feature frequency: synthetic vs real")
        ax.legend(loc="upper left")
        return png_data_uri(fig)


def clustering_plot(clus: "np.ndarray", deg: "np.ndarray", syn: "np.ndarray", real: "np.ndarray") -> str:
    """Histograms (share of each group) of the local clustering coefficient of real and synthetic
    users with at least two friends."""
    import numpy as np

    from graphrec.reports.style import figure, png_data_uri, series_style

    ok = deg >= 2
    bins = np.linspace(0.0, 1.0, 26).tolist()
    with figure() as (fig, (ax,)):
        for i, (name, mask) in enumerate((("synthetic users", syn & ok), ("real users", real & ok))):
            values = clus[mask]
            if values.size:
                weights = np.full(values.size, 1.0 / values.size)
                ax.hist(values, bins=bins, weights=weights, histtype="step", linewidth=1.8, color=series_style(i)["color"],
                        label=f"{name} ({values.size:,}; mean {values.mean():.3f})")
        ax.set_xlabel("local clustering coefficient")
        ax.set_ylabel("share of the group's users")
        ax.set_title("Local clustering (users with ≥ 2 friends)")
        ax.legend()
        return png_data_uri(fig)


def _fmt(value: Any) -> Any:
    if isinstance(value, list):
        return "; ".join(str(v) for v in value) or "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "-" if value is None else value


def figures_table(run: dict[str, Any]) -> Table:
    """The realism and privacy figures of one synth run (``model_runs`` row)."""
    metrics = run.get("metrics") or {}
    rows: list[list[Any]] = []
    labels = {
        "degree_ks": "degree KS statistic (0 = same distribution)",
        "degree_ks_pvalue": "degree KS p-value",
        "clustering_real": "mean clustering, real users",
        "clustering_synthetic": "mean clustering, synthetic users",
        "triangles_through_real": "share of synthetic users' triangles closed through real users",
        "c2st_auc": "profile C2ST AUC vs held-out real users (0.5 = indistinguishable)",
        "exact_copy_rate": "exact copies of training rows",
        "holdout_exact_copy_rate": "same, held-out real rows (baseline)",
        "membership_auc": "membership-inference AUC (0.5 = no leak)",
        "dcr_median_synthetic": "median distance to closest training row, synthetic",
        "dcr_median_holdout": "same, held-out real rows (baseline)",
        "copy_p_value": "p-value: synthetic rows copy training rows more often than held-out rows do",
        "dcr_p_value_smaller": "p-value: synthetic rows sit closer to training rows than held-out rows do",
        "passed": "privacy gate passed",
        "forced": "written with --force",
    }
    for group in ("realism", "privacy"):
        for key, value in (metrics.get(group) or {}).items():
            rows.append([group, labels.get(key, key.replace("_", " ")), _fmt(value)])
    return Table(["kind", "figure", "value"], rows, digits=4,
                 caption=f"Latest synth run (version {run.get('version')}, data revision {run.get('data_revision')}): realism and privacy")


def build(ctx: "ReportContext") -> Section:
    """The synthetic-users section (see the module docs); never raises for missing data."""
    import numpy as np

    from graphrec.core.ops import local_clustering
    from graphrec.reports.sections.store import degree_plot

    blocks: list[Block] = []
    missing: str | None = None
    runs = ctx.store.model_runs("synth", limit=1)
    g = ctx.graph_with_synthetic
    flagged = np.zeros(g.num_nodes, dtype=bool) if g.is_synthetic is None else np.asarray(g.is_synthetic, dtype=bool)
    syn = generated_mask(g)
    other = flagged & ~syn  # synthetic users the generator did not draw: in neither group
    real = ~flagged
    n_syn, n_real = int(syn.sum()), int(real.sum())
    if other.any():
        blocks.append(Text(f"{n_syn:,} generated synthetic users are compared with {n_real:,} real users; {int(other.sum()):,} other users "
                           "flagged synthetic (such as the demo bots of `graphrec import ego-facebook --with-demo-bots`) are in neither group."))
    if n_syn == 0 or n_real == 0:
        missing = ("no synthetic users in the store: run `graphrec synth --n 100` to make some" if n_real else
                   "no real users in the store: import a graph first (`graphrec import ego-facebook`), then `graphrec synth --n 100`")
    else:
        if g.features.shape[1]:
            keep = syn | real
            real_freq, syn_freq = feature_frequencies(g.features[keep], syn[keep])
            top = top_features(real_freq)
            gap = float(np.abs(real_freq - syn_freq).mean())
            blocks.append(Plot(marginals_plot(g.feature_names, real_freq, syn_freq, top),
                               alt=f"Grouped bars: for the {top.size} profile features most often set among real users, the share of real and of synthetic users that have each.",
                               caption="Pairs of bars of equal length mean the generator reproduces how common each feature is; long names are cut from the left."))
            blocks.append(Plot(frequency_scatter(real_freq, syn_freq, n_real, n_syn),
                               alt=f"Scatter of every feature column's frequency among synthetic users against real users, with the diagonal; mean absolute gap {gap:.4f}.",
                               caption=f"Points on the dashed diagonal are columns as common among synthetic as among real users (mean absolute gap {gap:.4f}); among {n_syn:,} synthetic users a column rarer than about 1 in {n_syn:,} is often absent by chance (the dotted floor)."))
        deg = g.degrees
        blocks.append(Plot(degree_plot([("synthetic users", deg[syn]), ("real users", deg[real])], "Degree distribution (CCDF): synthetic vs real"),
                           alt=f"Log-log CCDF of the degree of {n_syn:,} synthetic and {n_real:,} real users.",
                           caption="Where the synthetic curve follows the real one the synthetic users have realistic numbers of friends; synthetic users only befriend real ones."))
        clus = local_clustering(g.indptr, g.indices)
        blocks.append(Plot(clustering_plot(clus, deg, syn, real),
                           alt="Step histograms of the local clustering coefficient of synthetic and real users with at least two friends.",
                           caption="Similar shapes mean synthetic users' friends know each other as often as real users' friends do."))
    if runs:
        blocks.append(figures_table(runs[-1]))
    elif missing is None:
        missing = "no synth run is recorded in model_runs (the synthetic users were written another way): run `graphrec synth --n 100` for its realism and privacy figures"
    return Section("synth", TITLE, blocks, missing=missing)
