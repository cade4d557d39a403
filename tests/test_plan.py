"""Sweep expansion: Cartesian product, pinned axes, stable point ids, topology sizing."""

from harness.config.overrides import format_value, parse_overrides
from harness.launch.plan import plan_sweep
from harness.launch.topology import pack_nodes


def test_experiment_axis_expands():
    plan = plan_sweep(["+experiment=prefill_dep8"])

    assert plan.axes == {"engine.args.chunked_prefill_size": ["4096", "8192"]}
    assert [point.cfg.engine.args.chunked_prefill_size for point in plan.points] == [4096, 8192]


def test_command_line_axis_adds_product():
    plan = plan_sweep(["+experiment=prefill_dep8", "engine.args.max_running_requests=64,128"])

    # 2 chunk sizes x 2 batch caps = 4 points, experiment axis first.
    pairs = [(p.cfg.engine.args.chunked_prefill_size, p.cfg.engine.args.max_running_requests)
             for p in plan.points]
    assert pairs == [(4096, 64), (4096, 128), (8192, 64), (8192, 128)]


def test_command_line_axis_replaces_experiment_axis():
    plan = plan_sweep(["+experiment=prefill_dep8", "engine.args.chunked_prefill_size=1024,2048,4096"])

    assert [p.cfg.engine.args.chunked_prefill_size for p in plan.points] == [1024, 2048, 4096]


def test_single_value_override_pins_axis():
    plan = plan_sweep(["+experiment=prefill_dep8", "engine.args.chunked_prefill_size=2048"])

    assert plan.axes == {}
    assert len(plan.points) == 1
    assert plan.points[0].cfg.engine.args.chunked_prefill_size == 2048


def test_group_axis_sweeps_config_files():
    plan = plan_sweep(["+experiment=baseline_agg"])

    assert [p.composed.choices["parallelism"] for p in plan.points] == ["tp8", "dep8"]
    assert [p.topology.num_gpus for p in plan.points] == [8, 8]


def test_point_id_stable_and_distinct():
    first = plan_sweep(["+experiment=prefill_dep8"])
    second = plan_sweep(["+experiment=prefill_dep8"])

    ids = [point.point_id for point in first.points]
    assert ids == [point.point_id for point in second.points]
    assert len(set(ids)) == 2
    assert all(len(point_id) == 10 for point_id in ids)


def test_point_id_ignores_slo_and_cluster():
    base = plan_sweep(["+experiment=prefill_dep8", "engine.args.chunked_prefill_size=4096"])
    judged = plan_sweep([
        "+experiment=prefill_dep8", "engine.args.chunked_prefill_size=4096",
        "bench.slo.ttft_ms=500", "cluster=slurm",
    ])

    assert base.points[0].point_id == judged.points[0].point_id


def test_identical_points_deduplicated():
    plan = plan_sweep(["engine.args.chunked_prefill_size=8192,8192"])

    assert len(plan.points) == 1


def test_dep48_needs_six_nodes():
    plan = plan_sweep(["+experiment=decode_dep48"])

    assert plan.points[0].topology.num_gpus == 48
    assert plan.points[0].topology.num_nodes == 6


def test_pack_nodes_first_fit():
    # 4+4 share one 8-GPU node, 2+2+2 share a second, 16 takes two whole nodes.
    assert pack_nodes([4, 4, 2, 2, 2, 16], gpus_per_node=8) == 4
    assert pack_nodes([8], gpus_per_node=4) == 2
    assert pack_nodes([1], gpus_per_node=8) == 1


def test_parse_overrides_splits_sweeps():
    parsed = parse_overrides(["+experiment=x", "a.b=1,2", "c=3", "+engine.args.f=1,2"])

    assert parsed.fixed == ["+experiment=x", "c=3"]
    assert parsed.axes == {"a.b": ["1", "2"], "+engine.args.f": ["1", "2"]}


def test_format_value_round_trips():
    assert format_value(None) == "null"
    assert format_value(True) == "true"
    assert format_value(4096) == "4096"
    assert format_value("dep8") == "dep8"
    assert format_value("a b") == "'a b'"
    assert format_value("true") == "'true'"
    assert format_value([1, 2]) == "[1,2]"


def test_glob_sweeps_group_options():
    plan = plan_sweep(["parallelism=glob(tp*)"])

    assert plan.axes == {"parallelism": ["tp1", "tp8"]}


def test_glob_without_match_rejected():
    import pytest

    from harness.errors import ConfigError

    with pytest.raises(ConfigError, match="matches no option of 'parallelism'"):
        plan_sweep(["parallelism=glob(x*)"])


def test_multinode_real_engine_needs_slurm():
    import pytest

    from harness.errors import ConfigError

    with pytest.raises(ConfigError, match="needs 48 GPUs, more than the 8 of one node"):
        plan_sweep(["+experiment=decode_dep48", "engine=sglang", "engine.args.max_running_requests=64"])

    plan = plan_sweep(["+experiment=decode_dep48", "engine=sglang",
                       "engine.args.max_running_requests=64", "cluster=slurm"])
    assert plan.points[0].topology.num_nodes == 6
