#!/usr/bin/env bash
# Runs the test suite, including every chapter on the `ci` preset. Extra arguments go to pytest.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
python -m pytest tests "$@"
