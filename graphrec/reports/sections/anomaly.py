"""Report section: Anomalies (to be written)."""

from __future__ import annotations

from typing import Any

from graphrec.reports.html import Section

TITLE = "Anomalies"


def build(ctx: Any) -> Section:
    return Section("anomaly", TITLE, missing="not drawn yet")
