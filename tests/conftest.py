"""Fixtures and markers shared by every test module."""

import pytest

# Importing the fixture here makes it one session fixture for all modules. A module that
# imported it itself would get a second copy, which would start a second cluster.
from slurm_cluster import slurm_cluster  # noqa: F401


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slurm: needs the local SLURM cluster of scripts/slurm/start.sh (root; still run in CI)"
    )
