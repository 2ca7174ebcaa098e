#!/usr/bin/env bash
# The whole book: runs every chapter with papermill, builds the HTML book (book/_build/html), opens its
# pages in offline headless Chromium (screenshots in book/_build/html/_screenshots) and records the wall
# times in book/_build/timings.json. Needs a `chromium` on PATH (or EGMA_CHROMIUM=/path/to/chrome).
# Usage: bash scripts/book.sh [--preset ci|small|paper] [--chapters 1,2] [--param key=value ...]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
python -m egma.book all "$@"
