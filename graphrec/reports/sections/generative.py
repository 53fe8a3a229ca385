"""Report section: Generative models (to be written)."""

from __future__ import annotations

from typing import Any

from graphrec.reports.html import Section

TITLE = "Generative models"


def build(ctx: Any) -> Section:
    return Section("generative", TITLE, missing="not drawn yet")
