#!/usr/bin/env bash
# Make sure Debian's Chromium is installed for the report's browser check
# (tests/test_reports.py renders the HTML report headless and fails on console errors and
# broken images). Installs it with apt-get when it is missing and we are root; otherwise says
# why and exits 0: the test then skips with that reason, the rest of `make test` still runs.
# Browsers are never downloaded by Playwright (`playwright install`): only Debian's package.
set -u

for candidate in "${GRAPHREC_CHROMIUM:-}" chromium chromium-browser; do
    if [ -n "$candidate" ] && command -v "$candidate" >/dev/null 2>&1; then
        echo "ensure-chromium: found $(command -v "$candidate")"
        exit 0
    fi
done

if [ "$(id -u)" != "0" ]; then
    echo "ensure-chromium: chromium not installed and not root: cannot apt-get install it (the browser check will be skipped)"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-chromium: chromium not installed and apt-get unavailable (the browser check will be skipped)"
    exit 0
fi

echo "ensure-chromium: installing Debian's chromium with apt-get"
log="${TMPDIR:-/tmp}/graphrec-ensure-chromium.log"
export DEBIAN_FRONTEND=noninteractive
if apt-get install -y --no-install-recommends chromium >"$log" 2>&1 \
   || { apt-get update >>"$log" 2>&1 && apt-get install -y --no-install-recommends chromium >>"$log" 2>&1; }; then
    echo "ensure-chromium: installed $(command -v chromium)"
else
    echo "ensure-chromium: apt-get could not install chromium (the browser check will be skipped); last lines of $log:"
    tail -n 5 "$log"
fi
exit 0
