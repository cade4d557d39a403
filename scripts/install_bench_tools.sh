#!/usr/bin/env bash
# Install the load generators that benchmarks/loadgen_bench.py compares harness with,
# each in its own virtual environment under .venv-bench/, because they pin versions of
# aiohttp, pydantic and transformers that conflict with the project's and each other's.
#
# Usage: scripts/install_bench_tools.sh [aiperf|guidellm ...]   (default: both)
# Versions can be changed with AIPERF_VERSION and GUIDELLM_VERSION.
set -euo pipefail

repo_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv_root="${BENCH_VENV_DIR:-$repo_dir/.venv-bench}"
python_bin="${PYTHON:-python3}"
aiperf_version="${AIPERF_VERSION:-0.13.0}"
guidellm_version="${GUIDELLM_VERSION:-0.8.1}"

tools=("$@")
if [ ${#tools[@]} -eq 0 ]; then
    tools=(aiperf guidellm)
fi

for tool in "${tools[@]}"; do
    case "$tool" in
        aiperf) spec="aiperf==$aiperf_version" ;;
        guidellm) spec="guidellm==$guidellm_version" ;;
        *)
            echo "unknown tool '$tool'; choose aiperf or guidellm" >&2
            exit 2
            ;;
    esac

    venv="$venv_root/$tool"
    echo "installing $spec into $venv"
    "$python_bin" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet "$spec"
    "$venv/bin/$tool" --help >/dev/null
    echo "$tool ready: $venv/bin/$tool"
done
