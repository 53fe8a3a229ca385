"""Report section: Training curves (to be written)."""

from __future__ import annotations

from typing import Any

from graphrec.reports.html import Section

TITLE = "Training curves"


def build(ctx: Any) -> Section:
    return Section("training", TITLE, missing="not drawn yet")
