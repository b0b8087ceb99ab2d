#!/usr/bin/env bash
# Create .venv (once) and install attune with its dev tools and the `sim` extra (the plots and
# progress bars of `attune simulate` and `attune train`), and Debian's chromium with CJK fonts
# for the profile page's browser test (tests/e2e/test_profile_page.py). Safe to run again: pip
# and apt skip what is already there.
#
# Every Python dependency comes from requirements.lock, pinned and checked against its SHA-256
# (`make lock` regenerates it from pyproject.toml); attune itself is then installed without
# resolving anything more (--no-deps) and built with the locked setuptools.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --require-hashes -r requirements.lock
.venv/bin/python -m pip install -q --no-deps --no-build-isolation -e '.[dev,sim]'
# The browser test drives Debian's chromium through Playwright's executable_path; Playwright's
# own browser download is never used. Installed only where it is missing and apt can be used
# (CI runs as root).
have_browser() { [ -x /usr/bin/chromium ] && dpkg -s fonts-noto-cjk >/dev/null 2>&1; }
if ! have_browser && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk >/dev/null
fi
