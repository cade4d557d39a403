"""SLURM job states (sacct and squeue output) and the state that `harness status` shows."""

import pytest

from harness.launch.accounting import base_state, is_final, parse_job_states
from harness.launch.control import displayed_state
from harness.results.status import PointState


def test_parse_states_skips_steps():
    text = "123|COMPLETED\n123.batch|COMPLETED\n123.0|COMPLETED\n124_1|CANCELLED by 0\n"

    assert parse_job_states(text) == {"123": "COMPLETED", "124_1": "CANCELLED by 0"}


def test_parse_states_expands_array_range():
    # A pending range with a parallelism limit: tasks 0 to 2 and 5.
    assert parse_job_states("130_[0-2,5%2]|PENDING\n") == {
        "130_0": "PENDING", "130_1": "PENDING", "130_2": "PENDING", "130_5": "PENDING",
    }


def test_base_state_drops_detail():
    assert base_state("CANCELLED by 0") == "CANCELLED"
    assert base_state("") == ""


def test_final_states():
    assert is_final("TIMEOUT")
    assert is_final("CANCELLED by 1000")
    assert not is_final("RUNNING")
    assert not is_final("REQUEUED")


@pytest.mark.parametrize(("status_state", "slurm_state", "shown"), [
    # No SLURM state (a local sweep, or sacct unavailable): status.json decides.
    (PointState.running, None, "running"),
    (None, None, "unknown"),
    # The job itself wrote done before it ended.
    (PointState.done, "COMPLETED", "done"),
    (PointState.done, "CANCELLED by 0", "done"),
    # The job's SIGTERM handler wrote failed while scancel ended it.
    (PointState.failed, "CANCELLED by 0", "cancelled"),
    (PointState.running, "CANCELLED by 0", "cancelled"),
    # Killed at the time limit, or a node failed, before the job could write anything.
    (PointState.running, "TIMEOUT", "failed"),
    (PointState.starting, "NODE_FAIL", "failed"),
    (PointState.failed, "FAILED", "failed"),
    # Preempted: the SIGTERM handler wrote failed, and SLURM queued the job again.
    (PointState.failed, "REQUEUED", "pending"),
    (PointState.failed, "PENDING", "pending"),
    # The job started but has not written its status yet.
    (PointState.pending, "RUNNING", "starting"),
    (None, "RUNNING", "starting"),
    (PointState.pending, "PENDING", "pending"),
    (PointState.running, "RUNNING", "running"),
])
def test_displayed_state(status_state, slurm_state, shown):
    assert displayed_state(status_state, slurm_state) == shown
