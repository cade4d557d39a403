"""validate_engine: combinations an engine cannot run fail at plan time, naming the fix."""

import pytest

from harness.config.compose import compose_config
from harness.config.schema import ModeName
from harness.engines.validate import validate_engine
from harness.errors import ConfigError


def compose(*overrides: str, disagg: bool = False):
    cfg = compose_config(["model=deepseek_r1", *overrides]).cfg
    if disagg:
        cfg.mode.name = ModeName.disagg
    return cfg


@pytest.mark.parametrize("engine", ["sim", "sglang", "vllm", "trtllm", "dynamo"])
@pytest.mark.parametrize("parallelism", ["tp1", "tp8", "tep8", "dep8", "dep48"])
def test_shipped_parallelism_valid(engine, parallelism):
    validate_engine(compose(f"engine={engine}", f"parallelism={parallelism}"))


@pytest.mark.parametrize("engine", ["sglang", "vllm", "trtllm", "dynamo"])
def test_disagg_renders(engine):
    validate_engine(compose(f"engine={engine}", "parallelism=dep8", disagg=True))


def test_disagg_without_router():
    with pytest.raises(ConfigError, match="engine sim has no router .* so it cannot run mode=disagg"):
        validate_engine(compose("engine=sim", "engine.router.template=null", disagg=True))


def test_vllm_partial_ep():
    # tp 8, ep 4: vLLM shards experts over all 8 ranks or none.
    with pytest.raises(ConfigError, match=r"engine vllm \(vllm\) cannot run parallelism tp=8 dp=1 ep=4 "
                                          r"pp=1 dp_attention=false: vLLM shards experts over all "
                                          r"tp\*dp=8 ranks"):
        validate_engine(compose("engine=vllm", "parallelism=tp8", "parallelism.ep=4"))


def test_vllm_replica_spans_nodes():
    with pytest.raises(ConfigError, match=r"one replica of tp\*pp=16 GPUs would span nodes"):
        validate_engine(compose("engine=vllm", "parallelism=tp8", "parallelism.tp=16"))


def test_trtllm_dp_without_attention_dp():
    with pytest.raises(ConfigError, match="one trtllm-serve has no data-parallel replicas without attention DP"):
        validate_engine(compose("engine=trtllm", "parallelism=tp8", "parallelism.tp=1", "parallelism.dp=8"))


def test_trtllm_attention_tp_inside_dp():
    # tp 2 x dp 4 with DP-attention: TRT-LLM runs attention DP with one GPU per rank.
    with pytest.raises(ConfigError, match=r"attention TP inside a DP rank \(tp > 1 with dp_attention\)"):
        validate_engine(compose("engine=trtllm", "parallelism=dep8", "parallelism.tp=2", "parallelism.dp=4",
                                "parallelism.ep=8"))


def test_sglang_replica_ep_exceeds_tp():
    # dp 4 replicas of tp 2 without DP-attention: ep 8 cannot divide a 2-GPU replica.
    with pytest.raises(ConfigError, match="so ep must divide tp"):
        validate_engine(compose("engine=sglang", "parallelism=tp8", "parallelism.tp=2", "parallelism.dp=4",
                                "parallelism.ep=8"))


def test_worker_not_whole_nodes():
    # 12 GPUs on nodes of 8: neither inside one node nor whole nodes.
    with pytest.raises(ConfigError, match="a worker of 12 GPUs does not fill whole nodes of cluster.gpus_per_node=8"):
        validate_engine(compose("engine=sglang", "parallelism=tp8", "parallelism.tp=12"))


def test_args_set_parallel_flag():
    with pytest.raises(ConfigError, match=r"engine sglang: engine.args sets tp_size, which harness renders itself "
                                          r"from parallelism\.\*"):
        validate_engine(compose("engine=sglang", "+engine.args.tp_size=8"))


def test_role_args_set_port():
    with pytest.raises(ConfigError, match="engine vllm: engine.role_args.aggregated sets port"):
        validate_engine(compose("engine=vllm", "+engine.role_args.aggregated.port=9000"))


def test_trtllm_served_name_mismatch():
    with pytest.raises(ConfigError, match=r"model.served_name='r1' cannot be served, because trtllm-serve has no "
                                          r"--served-model-name .* set model.served_name to one of "
                                          r"\['/models/DeepSeek-R1', 'DeepSeek-R1'\]"):
        validate_engine(compose("engine=trtllm", "model.path=/models/DeepSeek-R1", "model.served_name=r1"))


def test_trtllm_served_folder_name():
    validate_engine(compose("engine=trtllm", "model.path=/models/DeepSeek-R1/", "model.served_name=DeepSeek-R1"))


def test_template_fail_reaches_plan():
    # A router template that calls fail() stops validation with the engine's name.
    with pytest.raises(ConfigError, match="engine sglang, router: the SGLang PD router fronts prefill and decode "
                                          "workers only"):
        validate_engine(compose("engine=sglang", "engine.router.every_mode=true"))


def test_unknown_template():
    with pytest.raises(ConfigError, match="engine sglang, aggregated-0: template 'nope.j2' not found in"):
        validate_engine(compose("engine=sglang", "engine.template=nope.j2"))


def test_service_health_port_unknown():
    with pytest.raises(ConfigError, match=r"service etcd: health_port 'admin' is not one of its ports \['client', "
                                          r"'peer'\]"):
        validate_engine(compose("engine=dynamo", "engine.services.0.health_port=admin"))
