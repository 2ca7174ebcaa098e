#!/usr/bin/env bash
# Runs every chapter of the book with papermill and builds the HTML book (book/_build/html).
# Usage: bash scripts/book.sh [--preset ci|small|paper] [--chapters 1,2] [--param key=value ...]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
python -m egma.book all "$@"
