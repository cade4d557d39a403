"""The bash wrapper of every process: setup commands, GPU slice, exec of the engine argv."""

import os
import subprocess

from harness.launch.launcher import wrap_command

# Prints what the engine would see: its GPUs and its arguments, one per line.
SHOW = ["bash", "-c", 'echo "gpus=$CUDA_VISIBLE_DEVICES"; for arg in "$@"; do echo "$arg"; done', "engine"]


def run_wrapped(setup: list[str], first: int, count: int, visible: str | None, *args: str):
    env = {key: value for key, value in os.environ.items() if key != "CUDA_VISIBLE_DEVICES"}
    if visible is not None:
        env["CUDA_VISIBLE_DEVICES"] = visible
    argv = wrap_command("prefill-0", [*SHOW, *args], setup, first, count)
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=30, check=False)


def test_slice_takes_positions_of_visible_gpus():
    # SLURM gave the step GPUs 4-7; positions 1 and 2 of that list are GPUs 5 and 6.
    result = run_wrapped([], 1, 2, "4,5,6,7")

    assert result.stdout.splitlines() == ["gpus=5,6"]


def test_slice_without_visible_gpus_uses_indices():
    result = run_wrapped([], 2, 3, None)

    # Positions 2, 3, 4 are indices 2, 3, 4 when nothing narrowed the GPUs before.
    assert result.stdout.splitlines() == ["gpus=2,3,4"]


def test_slice_beyond_visible_gpus_fails():
    result = run_wrapped([], 1, 2, "0,1")

    assert result.returncode == 1
    assert "prefill-0: needs GPUs 1 to 2 of this node but CUDA_VISIBLE_DEVICES=0,1 lists 2" in result.stderr


def test_zero_gpus_hides_every_gpu():
    result = run_wrapped([], 0, 0, "0,1,2,3")

    assert result.stdout.splitlines() == ["gpus="]


def test_arguments_pass_unchanged():
    # Shell syntax in an argument reaches the engine as text, because it is never parsed.
    result = run_wrapped([], 0, 1, "0", "a b", "$HOME", "'; exit 3")

    assert result.returncode == 0
    assert result.stdout.splitlines() == ["gpus=0", "a b", "$HOME", "'; exit 3"]


def test_setup_runs_before_engine():
    result = run_wrapped(["export GREETING=hello", 'echo "setup $GREETING"'], 0, 1, "0")

    assert result.stdout.splitlines() == ["setup hello", "gpus=0"]


def test_failed_setup_stops_with_message():
    result = run_wrapped(["false", "echo after"], 0, 1, "0")

    assert result.returncode == 1
    assert result.stdout == ""
    assert "prefill-0: setup command failed with exit code 1: false" in result.stderr
