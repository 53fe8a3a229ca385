"""Progress bars that show on a terminal and stay quiet when output is piped or logged.

``GRAPHREC_PROGRESS=1`` forces bars on, ``GRAPHREC_PROGRESS=0`` forces them off.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from tqdm.auto import tqdm


def progress_enabled() -> bool:
    forced = os.environ.get("GRAPHREC_PROGRESS")
    if forced is not None:
        return forced not in ("0", "false", "no", "")
    return sys.stderr.isatty()


def progress_bar(*, total: int | None = None, desc: str = "", unit: str = "it", **kwargs: Any) -> tqdm:
    """A tqdm bar on stderr, disabled unless stderr is a terminal (usable as a context manager)."""
    return tqdm(total=total, desc=desc, unit=unit, disable=not progress_enabled(), file=sys.stderr, leave=False, dynamic_ncols=True, **kwargs)
