"""Launching sweeps: planning points, sizing allocations, submitting and running jobs."""
