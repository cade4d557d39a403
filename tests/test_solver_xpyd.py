"""Tests of the integer xPyD enumeration with hand-computed deployments."""

import pytest

from harness.solver.xpyd import deployment, enumerate_xpyd, prefill_per_decode_ratio


def test_ratio_dep8_dep48() -> None:
    # Prefill 13000 tok/s/GPU x 8 GPUs / ISL 1000 = 104 requests/s;
    # decode 9000 x 48 / OSL 1000 = 432 requests/s; 432 / 104 = 4.153846...
    assert prefill_per_decode_ratio(104.0, 432.0) == pytest.approx(4.153846153846154, rel=1e-12)


def test_ratio_rejects_zero() -> None:
    with pytest.raises(ValueError, match="must be positive"):
        prefill_per_decode_ratio(0.0, 432.0)


def test_deployment_prefill_bound() -> None:
    option = deployment(4, 1, prefill_rps=104.0, decode_rps=432.0,
                        prefill_gpus=8, decode_gpus=48, osl=1000)

    # Prefill pool 4 x 104 = 416 < decode pool 432, so 416 requests/s;
    # GPUs 4 x 8 + 48 = 80; 416 x 1000 / 80 = 5200 output tok/s/GPU.
    assert option.requests_per_s == 416.0
    assert option.gpus == 80
    assert option.output_tps_per_gpu == 5200.0
    assert option.bottleneck == "prefill"
    assert option.label == "4P1D"


def test_deployment_decode_bound() -> None:
    option = deployment(5, 1, prefill_rps=104.0, decode_rps=432.0,
                        prefill_gpus=8, decode_gpus=48, osl=1000)

    # Prefill pool 5 x 104 = 520 > 432, so decode limits to 432 requests/s.
    assert option.requests_per_s == 432.0
    assert option.bottleneck == "decode"


def test_deployment_balanced() -> None:
    option = deployment(3, 2, prefill_rps=2.0, decode_rps=3.0, prefill_gpus=1, decode_gpus=2, osl=1)

    # 3 x 2 = 6 = 2 x 3.
    assert option.bottleneck == "balanced"


def test_enumerate_fractional_ratio() -> None:
    options = enumerate_xpyd(prefill_rps=2.0, decode_rps=3.0, prefill_gpus=1, decode_gpus=2,
                             osl=1, gpu_budget=8, max_options=10)

    # ratio 3 / 2 = 1.5. y=1: x in {1, 2}; y=2: x = 3; y=3 needs 4 + 6 = 10 > 8 GPUs.
    # 3P2D: 7 GPUs, min(6, 6) = 6 rps, 6 / 7 = 0.857 tok/s/GPU;
    # 2P1D: 4 GPUs, min(4, 3) = 3 rps, 3 / 4 = 0.75;
    # 1P1D: 3 GPUs, min(2, 3) = 2 rps, 2 / 3 = 0.667.
    assert [option.label for option in options] == ["3P2D", "2P1D", "1P1D"]
    assert options[0].output_tps_per_gpu == pytest.approx(6 / 7)
    assert [option.bottleneck for option in options] == ["balanced", "decode", "prefill"]


def test_enumerate_drops_multiples() -> None:
    options = enumerate_xpyd(prefill_rps=1.0, decode_rps=2.0, prefill_gpus=1, decode_gpus=1,
                             osl=10, gpu_budget=6, max_options=10)

    # ratio 2: 2P1D on 3 GPUs and 4P2D on 6 GPUs both give 2 x 10 / 3 = 20 / 3 tok/s/GPU,
    # and 4P2D, a multiple of 2P1D, is left out.
    assert [option.label for option in options] == ["2P1D"]


def test_enumerate_dep8_dep48_budget() -> None:
    options = enumerate_xpyd(prefill_rps=104.0, decode_rps=432.0, prefill_gpus=8, decode_gpus=48,
                             osl=1000, gpu_budget=512, max_options=3)

    # y=6: 6 x 4.1538 = 24.9, so x = 25: 200 + 288 = 488 GPUs, min(2600, 2592) = 2592 rps,
    # 2592000 / 488 = 5311.48. y=5: 21P5D: 408 GPUs, min(2184, 2160) = 2160 rps, 5294.12.
    # y=4: 17P4D: 328 GPUs, min(1768, 1728) = 1728 rps, 5268.29.
    # y=7 needs at least 29 x 8 + 7 x 48 = 568 > 512 GPUs.
    assert [option.label for option in options] == ["25P6D", "21P5D", "17P4D"]
    assert options[0].output_tps_per_gpu == pytest.approx(2_592_000 / 488)
    assert options[0].gpus == 488


def test_enumerate_keeps_max_options() -> None:
    options = enumerate_xpyd(prefill_rps=104.0, decode_rps=432.0, prefill_gpus=8, decode_gpus=48,
                             osl=1000, gpu_budget=512, max_options=2)

    assert len(options) == 2


def test_enumerate_respects_budget() -> None:
    options = enumerate_xpyd(prefill_rps=104.0, decode_rps=432.0, prefill_gpus=8, decode_gpus=48,
                             osl=1000, gpu_budget=84, max_options=10)

    # Only 4P1D fits: 4 x 8 + 48 = 80 <= 84, while 5P1D needs 88.
    assert [option.label for option in options] == ["4P1D"]


def test_enumerate_at_least_one_prefill() -> None:
    options = enumerate_xpyd(prefill_rps=100.0, decode_rps=10.0, prefill_gpus=1, decode_gpus=1,
                             osl=1, gpu_budget=2, max_options=10)

    # ratio 0.1 rounds down to 0 prefill servers, which is raised to 1: 1P1D.
    assert [option.label for option in options] == ["1P1D"]


def test_enumerate_budget_below_1p1d() -> None:
    options = enumerate_xpyd(prefill_rps=104.0, decode_rps=432.0, prefill_gpus=8, decode_gpus=48,
                             osl=1000, gpu_budget=55, max_options=10)

    assert options == []
