"""Screenshot the top of an HTML report for the README (docs/report.png).

Renders the page (``graphrec report --output DIR`` wrote ``DIR/index.html``) in Debian's headless
chromium through Playwright (never a downloaded browser), keeps the top ``--height`` pixels of a
``--viewport``-wide page, scales it to ``--width`` and writes a 256-colour PNG, so the file stays
small (the README's picture should be well under 300 KB)::

    .venv/bin/python scripts/report_screenshot.py report/index.html docs/report.png

The browser check of the test suite (tests/test_reports.py) is the one that fails on console
errors and broken images; this script only takes the picture.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("page", type=Path, help="the report's index.html")
    ap.add_argument("output", type=Path, help="the PNG to write")
    ap.add_argument("--viewport", type=int, default=1280, help="browser width in CSS pixels (default 1280)")
    ap.add_argument("--height", type=int, default=1260, help="how much of the top of the page to keep, in CSS pixels (default 1260)")
    ap.add_argument("--width", type=int, default=1200, help="width of the written PNG (default 1200)")
    ap.add_argument("--colours", type=int, default=256, help="palette size of the written PNG (default 256; 0: full colour)")
    ap.add_argument("--chromium", default=os.environ.get("GRAPHREC_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser"),
                    help="the chromium binary (default: chromium on PATH; scripts/ensure-chromium.sh installs it)")
    args = ap.parse_args(argv)
    if not args.chromium:
        print("chromium not found: run scripts/ensure-chromium.sh (apt-get install chromium) first", file=sys.stderr)
        return 2
    from PIL import Image
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, headless=True,
                                    args=["--disable-dev-shm-usage"] + (["--no-sandbox"] if os.geteuid() == 0 else []))
        try:
            page = browser.new_page(viewport={"width": args.viewport, "height": args.height})
            page.goto(args.page.resolve().as_uri(), wait_until="load")
            raw = page.screenshot(clip={"x": 0, "y": 0, "width": args.viewport, "height": args.height})
        finally:
            browser.close()
    with Image.open(io.BytesIO(raw)) as im:
        shot = im.convert("RGB")
    if shot.width != args.width:
        shot = shot.resize((args.width, round(shot.height * args.width / shot.width)), Image.Resampling.LANCZOS)
    out = shot.quantize(colors=args.colours, method=Image.Quantize.MEDIANCUT) if args.colours else shot
    args.output.parent.mkdir(parents=True, exist_ok=True)
    out.save(args.output, optimize=True)
    print(f"{args.output}: {out.width}x{out.height}, {args.output.stat().st_size / 1024:.0f} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
