"""Config composition from conf/ and the errors for invalid overrides."""

import pytest

from harness.config import compose_config
from harness.config.schema import EndpointKind, ModeName
from harness.errors import ConfigError


def test_defaults_compose_to_local_sim():
    composed = compose_config([])

    assert composed.cfg.cluster.executor.value == "local"
    assert composed.cfg.engine.name == "sim"
    assert composed.cfg.mode.name == ModeName.aggregated
    assert composed.cfg.workload.endpoint == EndpointKind.completions
    assert composed.experiment == "adhoc"


def test_experiment_sets_groups_and_axes():
    composed = compose_config(["+experiment=prefill_dep8"])

    assert composed.experiment == "prefill_dep8"
    assert composed.choices["parallelism"] == "dep8"
    assert composed.cfg.parallelism.dp == 8
    assert composed.cfg.parallelism.dp_attention is True
    assert composed.cfg.mode.osl == 5
    assert list(composed.cfg.sweep["engine.args.chunked_prefill_size"]) == [4096, 8192]


def test_command_line_group_beats_experiment():
    composed = compose_config(["+experiment=prefill_dep8", "parallelism=tep8"])

    assert composed.choices["parallelism"] == "tep8"
    assert composed.cfg.parallelism.tp == 8


@pytest.mark.parametrize("group", ["cluster", "engine", "model", "parallelism", "mode", "workload", "bench"])
def test_every_group_option_composes(group):
    from harness.config.compose import conf_dir

    for option in sorted(path.stem for path in (conf_dir() / group).glob("*.yaml")):
        composed = compose_config([f"{group}={option}"])
        assert composed.choices[group] == option


def test_every_experiment_composes():
    from harness.config.compose import conf_dir

    for path in sorted((conf_dir() / "experiment").glob("*.yaml")):
        composed = compose_config([f"+experiment={path.stem}"])
        assert composed.experiment == path.stem


def test_misspelled_key_names_key_and_valid_keys():
    with pytest.raises(ConfigError) as excinfo:
        compose_config(["bench.concurency=[4]"])

    message = str(excinfo.value)
    assert "'bench.concurency'" in message
    assert "Did you mean 'concurrency'?" in message
    assert "requests_per_level" in message


def test_misspelled_top_level_key_lists_sections():
    with pytest.raises(ConfigError) as excinfo:
        compose_config(["workloads.isl=10"])

    assert "Did you mean 'workload'?" in str(excinfo.value)


def test_wrong_type_names_key_and_value():
    with pytest.raises(ConfigError) as excinfo:
        compose_config(["bench.requests_per_level=many"])

    message = str(excinfo.value)
    assert "'bench.requests_per_level'" in message
    assert "'many'" in message


def test_unknown_group_option_lists_options():
    with pytest.raises(ConfigError) as excinfo:
        compose_config(["parallelism=dep9"])

    message = str(excinfo.value)
    assert "'dep9'" in message
    assert "dep48, dep8, tep8, tp1, tp8" in message


def test_invalid_enum_lists_allowed_values():
    with pytest.raises(ConfigError) as excinfo:
        compose_config(["mode.name=prefil"])

    assert "aggregated, prefill, decode, disagg" in str(excinfo.value)


def test_new_engine_arg_needs_plus():
    with pytest.raises(ConfigError) as excinfo:
        compose_config(["engine.args.new_flag=1"])
    assert "+engine.args.new_flag=VALUE" in str(excinfo.value)

    composed = compose_config(["+engine.args.new_flag=1"])
    assert composed.cfg.engine.args.new_flag == 1


def test_ep_must_divide_ranks():
    with pytest.raises(ConfigError, match=r"parallelism.ep=3 does not divide tp\*dp=8"):
        compose_config(["parallelism=tp8", "parallelism.ep=3"])


def test_lengths_must_fit_context():
    with pytest.raises(ConfigError, match="exceeds model.context_length=16384"):
        compose_config(["workload.isl=16000", "workload.osl=1000"])


def test_disagg_mode_composes():
    cfg = compose_config(["mode=disagg", "mode.prefill_workers=3"]).cfg

    assert cfg.mode.name == ModeName.disagg
    assert cfg.mode.prefill_workers == 3
    assert cfg.mode.prefill_parallelism is None


def test_burstiness_needs_gamma_arrivals():
    with pytest.raises(ConfigError, match="set bench.arrival=gamma"):
        compose_config(["bench.request_rate=[2.0]", "bench.burstiness=0.5"])

    composed = compose_config(["bench.request_rate=[2.0]", "bench.burstiness=0.5", "bench.arrival=gamma"])
    assert composed.cfg.bench.burstiness == 0.5


def test_too_few_requests_for_concurrency():
    with pytest.raises(ConfigError, match="at least 3 x 16 = 48 requests"):
        compose_config(["bench.concurrency=[16]", "bench.requests_per_level=20"])


def test_added_key_in_schema_section_rejected():
    with pytest.raises(ConfigError) as excinfo:
        compose_config(["+bench.foo=1"])

    assert "unknown config key 'bench.foo'" in str(excinfo.value)
    assert "requests_per_level" in str(excinfo.value)


def test_added_key_in_free_mapping_allowed():
    composed = compose_config(["+engine.env.MY_FLAG=1", "+cluster.sbatch_extra.exclusive=true"])

    assert composed.cfg.engine.env.MY_FLAG == "1"
    assert composed.cfg.cluster.sbatch_extra.exclusive is True
