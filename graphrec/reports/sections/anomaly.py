"""Report section: anomalies (the nightly anomaly runs of ``graphrec score``).

From the latest complete anomaly run: the distribution of its scores with the flagging threshold,
the ten highest-scoring users with the explanation the run recorded for each (the view that drives
the score and the profile features that reconstruct worst: observed against expected), and the
share of the flagged users each view (attributes or structure) drives.

The runs do not record that split in their summary; the run explains every flagged user (up to
the job's ``max_details``, 10,000 by default) with the view that drives the score (the larger of
the attribute and structure tail ranks for the default ``context`` detector), so the split is
counted from those explanations (:func:`view_split`), and the section says how many flagged users
it could read. A run whose summary does carry ``drivers`` (view -> count) is taken as it is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from graphrec.reports.html import Block, Plot, Section, Table, Text

if TYPE_CHECKING:  # pragma: no cover
    from graphrec.store import RunInfo
    from graphrec.store.scores import TopScore
    from graphrec.store.store import GraphStore

TITLE = "Anomalies"
#: the scoring-run kind of the nightly anomaly runs
RUN_KIND = "anomaly"
#: rows of the top-anomalies table
TOP = 10
#: most flagged users whose explanations are read for the view split
MAX_EXPLAINED = 10_000
#: the views a flag can be driven by, in display order
VIEWS = ("attributes", "structure")
#: what the score axis shows, per detector kind (:data:`graphrec.tasks.anomaly.detector.KINDS`)
SCORE_LABELS = {
    "context": "anomaly score: tail rank of the worse view (share of users lower)",
    "dominant": "anomaly score: DOMINANT reconstruction error",
    "vanilla": "anomaly score: autoencoder reconstruction error",
    "denoising": "anomaly score: autoencoder reconstruction error",
    "sparse": "anomaly score: autoencoder reconstruction error",
}


def describe_features(details: dict[str, Any] | None, limit: int = 3) -> str:
    """The features that explain one user's score, worst reconstructed first:
    ``name = observed (expected e)``; empty when the run recorded none."""
    parts = []
    for f in ((details or {}).get("features") or [])[:limit]:
        try:
            parts.append(f"{f['feature']} = {float(f['value']):.3g} (expected {float(f['expected']):.2g})")
        except (KeyError, TypeError, ValueError):
            continue
    return "; ".join(parts)


def _rank(details: dict[str, Any] | None, key: str) -> float | None:
    value = (details or {}).get(key)
    return float(value) if isinstance(value, (int, float)) else None


def top_table(top: list["TopScore"]) -> Table:
    """The highest-scoring users with the explanation of each."""
    rows = []
    for i, t in enumerate(top, 1):
        d = t.details or {}
        rows.append([i, t.user, t.score, "yes" if t.flagged else "no", d.get("driver") or "", _rank(d, "attribute_rank"),
                     _rank(d, "structure_rank"), d.get("friends"), describe_features(d)])
    return Table(["#", "user", "score", "flagged", "view that drives it", "attribute rank", "structure rank", "friends",
                  "features that explain it: observed (expected from the friends)"], rows,
                 caption=f"The {len(top)} most anomalous users of the run (ranks: share of users scoring lower in that view)",
                 digits=4)


def view_split(run: "RunInfo", flagged_details: list[dict[str, Any] | None]) -> tuple[dict[str, int], int, str]:
    """How many flagged users each view drives, how many flagged users that count covers, and
    where it comes from: the run's summary (``drivers``) when it recorded them, otherwise the
    ``driver`` of each flagged user's explanation in ``flagged_details`` (users without an
    explanation, or whose detector names no view, are left out of the count)."""
    recorded = (run.summary or {}).get("drivers")
    if isinstance(recorded, dict) and recorded:
        counts = {str(k): int(v) for k, v in recorded.items()}
        return counts, sum(counts.values()), "recorded in the run's summary"
    counted: dict[str, int] = {}
    for d in flagged_details:
        driver = (d or {}).get("driver")
        if isinstance(driver, str):
            counted[driver] = counted.get(driver, 0) + 1
    covered = sum(counted.values())
    return counted, covered, (f"counted from the explanations the run recorded: {covered:,} of its {run.n_flagged:,} flagged users "
                             "name the view with the larger tail rank")


def split_plot(counts: dict[str, int], covered: int, source: str) -> Plot:
    """Horizontal bars: the share of the flagged users each view drives, with the counts."""
    from graphrec.reports.style import figure, png_data_uri, series_style

    names = [v for v in VIEWS if v in counts] + sorted(k for k in counts if k not in VIEWS)
    shares = [counts[n] / covered if covered else 0.0 for n in names]
    with figure(6.4, 2.2 + 0.35 * len(names)) as (fig, (ax,)):
        bars = ax.barh(names, [100 * s for s in shares], color=[series_style(i)["color"] for i in range(len(names))])
        for bar, n, s in zip(bars, names, shares):
            ax.text(bar.get_width() + 1, bar.get_y() + bar.get_height() / 2, f"{100 * s:.0f}% ({counts[n]:,})", va="center")
        ax.set_xlim(0, 115)
        ax.invert_yaxis()
        ax.set_xlabel("share of the flagged users (%)")
        ax.set_title(f"Which view drives the {covered:,} flagged users explained")
        ax.grid(axis="y", visible=False)
        uri = png_data_uri(fig)
    alt = "Share of flagged users per view: " + ", ".join(f"{n} {100 * s:.0f}% ({counts[n]})" for n, s in zip(names, shares))
    return Plot(uri, alt, f"Attributes: the profile does not fit the friends' profiles; structure: the friendships do not fit the "
                          f"user's communities. Source: {source}.")


def run_blocks(store: "GraphStore", run: "RunInfo", detector: str | None = None) -> list[Block]:
    """The blocks drawn from one complete anomaly run (``detector``: the served model's detector
    kind, which says what the scores are)."""
    from graphrec.reports.sections.bots import read_run_scores, score_histogram

    scores, synthetic = read_run_scores(store, run.id)
    share = run.n_flagged / run.n_scored if run.n_scored else 0.0
    summary = run.summary or {}
    uri = score_histogram(scores, synthetic, run.threshold, flag_rule=">",
                          title=f"Anomaly run of {run.run_date.isoformat()}: {run.n_flagged:,} of {run.n_scored:,} users flagged",
                          xlabel=SCORE_LABELS.get(detector or "", "anomaly score (higher = more anomalous)"))
    blocks: list[Block] = []
    if summary.get("model_version"):
        before = len(store.recent_runs(RUN_KIND, 2)) > 1  # the change is against the run before, when there is one
        change = f", {int(summary.get('newly_flagged') or 0):,} newly flagged against the run before" if before else ""
        blocks.append(Text(f"Latest anomaly run: {run.run_date.isoformat()}, model {summary['model_version']}{change}."))
    threshold = "none" if run.threshold is None else f"{run.threshold:.3g}"
    blocks.append(Plot(uri, f"Histogram of {run.n_scored} anomaly scores of the run of {run.run_date.isoformat()}, threshold "
                            f"{threshold}, {run.n_flagged} users flagged",
                       f"The run flagged {run.n_flagged:,} users ({100 * share:.1f}%), those right of the dashed threshold (the "
                       "training scores' 1 - contamination quantile); synthetic users far right would mean the generator makes "
                       "odd users."))
    top = store.top_scores(run.id, TOP)
    if top:
        blocks.append(top_table(top))
    flagged = [t.details for t in store.top_scores(run.id, min(run.n_flagged, MAX_EXPLAINED)) if t.flagged] if run.n_flagged else []
    counts, covered, source = view_split(run, flagged)
    if covered:
        blocks.append(split_plot(counts, covered, source))
    elif run.n_flagged:
        blocks.append(Text("The run's explanations name no view (a detector other than context or DOMINANT): the share of flags "
                           "each view drives is not known."))
    return blocks


def build(ctx: Any) -> Section:
    """The anomalies section of the latest anomaly run (see the module docs), or what is missing."""
    run = ctx.store.latest_run(RUN_KIND)
    if run is None:
        served = ctx.manifest(RUN_KIND) is not None
        hint = "run `graphrec score`" if served else "run `graphrec train anomaly` then `graphrec score`"
        return Section("anomaly", TITLE, missing=f"no anomaly run yet: {hint}")
    manifest = ctx.manifest(RUN_KIND)
    return Section("anomaly", TITLE, run_blocks(ctx.store, run, (manifest or {}).get("detector")))
