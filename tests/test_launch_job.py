"""A point's job: resume at the first unmeasured level, requeue, error text."""

import json
import signal

import pytest

from harness.launch.job import PointJob, PointRun, describe_error, run_point
from harness.launch.plan import plan_sweep
from harness.launch.processes import start_process
from harness.launch.submit import write_sweep_files
from harness.results.layout import PointPaths
from harness.results.status import PointState, PointStatus, read_status

# The simulator on tiny levels: 64-token prompts, 4 output tokens, 6 requests a level.
TINY = [
    "workload.isl=64", "workload.osl=4", "bench.requests_per_level=6", "bench.warmup_requests=0",
    "bench.validity.max_loop_lag_ms=1000",
]


def write_point(tmp_path, concurrency: str):
    plan = plan_sweep([*TINY, f"bench.concurrency={concurrency}"])
    write_sweep_files(tmp_path, plan, list(plan.points))
    return PointPaths(tmp_path / plan.points[0].point_id)


def test_run_skips_measured_level(tmp_path):
    paths = write_point(tmp_path, "[1,2]")
    # A summary.json marks c1 as measured by an earlier, interrupted run.
    paths.summary("c1").parent.mkdir(parents=True)
    paths.summary("c1").write_text('{"marker": "earlier run"}\n')

    state = run_point(str(paths.root))

    assert state == "done"
    assert read_status(paths.status).levels_done == ["c1", "c2"]
    assert json.loads(paths.summary("c1").read_text()) == {"marker": "earlier run"}
    assert json.loads(paths.summary("c2").read_text())["completed"] == 6


def test_checkpoint_requeues_same_point():
    job = PointJob("/results/exp/sweep/abc")

    delayed = job.checkpoint()

    assert isinstance(delayed.function, PointJob)
    assert delayed.function.point_dir == "/results/exp/sweep/abc"
    assert delayed.args == ()


def test_requeue_stops_processes_and_marks_pending(tmp_path):
    paths = PointPaths(tmp_path / "point")
    run = PointRun(paths.root)
    run.status = PointStatus(point_id="point", state=PointState.running, current_level="c2")
    process = start_process("sleeper", ["sleep", "60"], {}, paths.logs / "sleeper.log", stop_signal=signal.SIGINT)
    run.processes.append(process)

    run.prepare_requeue()

    # Popen reports a process that a signal ended as minus the signal number.
    assert process.exit_code() == -signal.SIGINT
    status = read_status(paths.status)
    assert status.state == PointState.pending
    assert status.current_level is None


def test_describe_error_unwraps_groups():
    group = BaseExceptionGroup("unhandled errors in a TaskGroup", [KeyboardInterrupt("stop"), ValueError("bad")])

    assert describe_error(group) == "KeyboardInterrupt: stop; ValueError: bad"


def test_describe_error_plain():
    assert describe_error(RuntimeError("boom")) == "RuntimeError: boom"


@pytest.fixture(autouse=True)
def keep_sigterm_handler():
    """Restore SIGTERM's handler, which run_point replaces while it runs."""
    previous = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, previous)
