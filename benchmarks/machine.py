"""Facts about the machine and the software versions, stored with every benchmark result."""

import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO_DIR = Path(__file__).resolve().parent.parent


def cpu_model() -> str | None:
    """Return the "model name" line of /proc/cpuinfo, or None where there is none."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


def memory_gib() -> float | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        return None
    return None


def git_revision() -> str | None:
    """Return the checked-out commit, with "+dirty" when the work tree has changes."""
    try:
        revision = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_DIR, capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain"], cwd=REPO_DIR, capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return revision + ("+dirty" if status.strip() else "")


def package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def venv_package_version(python: Path, name: str) -> str | None:
    """Return the version of a package installed in another interpreter's environment."""
    code = f"import importlib.metadata as m; print(m.version({name!r}))"
    try:
        result = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() or None


def machine_facts(tool_pythons: dict[str, Path]) -> dict[str, Any]:
    """Collect CPU, memory, OS and versions. tool_pythons maps a PyPI package to its interpreter."""
    load_1m, load_5m, load_15m = os.getloadavg()
    return {
        "cpu_model": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "memory_gib": memory_gib(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "load_average_at_start": [load_1m, load_5m, load_15m],
        "git_revision": git_revision(),
        "packages": {
            "aiohttp": package_version("aiohttp"),
            "numpy": package_version("numpy"),
            "pandas": package_version("pandas"),
            "pyarrow": package_version("pyarrow"),
            **{name: venv_package_version(python, name) for name, python in tool_pythons.items()},
        },
    }
