#!/usr/bin/env bash
# Install everything the test suite needs into .venv and run it (the README's test command).
set -euo pipefail
cd "$(dirname "$0")/.."
# Debian's chromium renders the HTML report in the end-to-end test.
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
python3 -m venv .venv
. .venv/bin/activate
pip install -q -e ".[test]"
ruff check .
ruff format --check .
python -m pytest -q "$@"
