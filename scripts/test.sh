#!/usr/bin/env bash
# Install harness with its test dependencies, then run the test suite.
# Usage: bash scripts/test.sh [pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install --quiet --disable-pip-version-check -e '.[test]'

# pytest exits with 5 when it collected no test; that is a failure here too.
python3 -m pytest "$@"
