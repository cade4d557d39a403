"""Exception hierarchy of harness, grouped by cause.

The CLI catches HarnessError, prints its message and exits with status 2, so every
message must name the offending value and say how to fix it.
"""


class HarnessError(Exception):
    """Base class of every error that harness reports to the user."""


class ConfigError(HarnessError):
    """A config value, override or file is invalid."""


class LaunchError(HarnessError):
    """A job, process or server could not be started or did not become ready."""


class ResultsError(HarnessError):
    """A results file or folder is missing, unreadable or inconsistent."""


class SolverError(HarnessError):
    """The results table cannot answer the rate-matching question."""
