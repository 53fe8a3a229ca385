"""Report section: Friend recommendation (to be written)."""

from __future__ import annotations

from typing import Any

from graphrec.reports.html import Section

TITLE = "Friend recommendation"


def build(ctx: Any) -> Section:
    return Section("linkpred", TITLE, missing="not drawn yet")
