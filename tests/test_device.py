import pytest
import torch
from sam3.model.position_encoding import PositionEmbeddingSine

from sam3_radio.model.device import inference_context, redirect_cuda, resolve_device, resolve_dtype

NO_CUDA = not torch.cuda.is_available()


def test_redirect_factory_device_kwarg():
    with redirect_cuda("cpu"):
        tensor = torch.zeros(2, device="cuda")
    assert tensor.device.type == "cpu"


def test_redirect_pin_memory_returns_input():
    tensor = torch.ones(3)
    with redirect_cuda("cpu"):
        pinned = tensor.pin_memory()
    assert pinned is tensor


def test_redirect_tensor_cuda_method():
    with redirect_cuda("cpu"):
        moved = torch.ones(3).cuda()
    assert moved.device.type == "cpu"


def test_redirect_tensor_to_cuda():
    with redirect_cuda("cpu"):
        moved = torch.ones(3).to("cuda", non_blocking=True)
    assert moved.device.type == "cpu"


def test_redirect_keeps_cpu_calls_unchanged():
    with redirect_cuda("cpu"):
        tensor = torch.arange(4, dtype=torch.float32) * 2
    assert tensor.tolist() == [0.0, 2.0, 4.0, 6.0]


@pytest.mark.skipif(not NO_CUDA, reason="checks the failure that happens without CUDA")
def test_sam3_position_encoding_fails_without_redirect():
    with pytest.raises((RuntimeError, AssertionError)):
        PositionEmbeddingSine(num_pos_feats=256, normalize=True, precompute_resolution=1008)


def test_sam3_position_encoding_builds_with_redirect():
    with redirect_cuda("cpu"):
        encoding = PositionEmbeddingSine(num_pos_feats=256, normalize=True, precompute_resolution=1008)
    assert encoding.cache[(252, 252)].device.type == "cpu"


def test_inference_context_bf16_enables_cpu_autocast():
    with inference_context("cpu", torch.bfloat16):
        product = torch.ones(4, 4) @ torch.ones(4, 4)
    assert product.dtype == torch.bfloat16


def test_inference_context_fp32_keeps_float32():
    with inference_context("cpu", torch.float32):
        product = torch.ones(4, 4) @ torch.ones(4, 4)
    assert product.dtype == torch.float32


@pytest.mark.skipif(not NO_CUDA, reason="needs a machine without CUDA")
def test_resolve_device_cuda_without_gpu():
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device("cuda")


def test_resolve_device_invalid_name():
    with pytest.raises(ValueError, match="invalid device 'gpu0'"):
        resolve_device("gpu0")


def test_resolve_dtype_names():
    assert resolve_dtype("bf16") is torch.bfloat16
    assert resolve_dtype("fp32") is torch.float32
    with pytest.raises(ValueError, match="unsupported dtype 'fp8'"):
        resolve_dtype("fp8")


def test_connected_components_match_sam3_loop():
    from sam3.perflib.connected_components import connected_components_cpu_single

    from sam3_radio.model.device import connected_components_cpu

    generator = torch.Generator().manual_seed(0)
    masks = torch.rand(3, 1, 48, 64, generator=generator) > 0.5
    labels, areas = connected_components_cpu(masks)
    assert labels.shape == areas.shape == masks.shape
    for index in range(len(masks)):
        expected_labels, expected_areas = connected_components_cpu_single(masks[index, 0])
        assert torch.equal(labels[index, 0], expected_labels)
        assert torch.equal(areas[index, 0], expected_areas)
        assert areas.dtype == expected_areas.dtype


def test_connected_components_accept_empty_batch():
    from sam3_radio.model.device import connected_components_cpu

    labels, areas = connected_components_cpu(torch.zeros(0, 1, 8, 8, dtype=torch.bool))
    assert labels.shape == areas.shape == (0, 1, 8, 8)


def test_inference_context_installs_connected_components():
    from sam3.perflib import connected_components as module

    from sam3_radio.model.device import connected_components_cpu

    with inference_context("cpu"):
        pass
    assert module.connected_components_cpu is connected_components_cpu


def _conv_and_input():
    generator = torch.Generator().manual_seed(0)
    conv = torch.nn.Conv2d(8, 8, 3, padding=1)
    return conv, torch.randn(1, 8, 16, 16, generator=generator)


def test_bf16_convolutions_run_in_float32_without_bf16_instructions(monkeypatch):
    from sam3_radio.model import device as device_module

    monkeypatch.setattr(device_module, "cpu_has_native_bf16", lambda: False)
    conv, images = _conv_and_input()
    with inference_context("cpu", torch.bfloat16):
        output = conv(images)
        linear = torch.nn.functional.linear(images.flatten(1)[:, :8], torch.ones(4, 8))
    with torch.inference_mode():
        expected = conv(images).to(torch.bfloat16)
    assert output.dtype == torch.bfloat16
    assert torch.equal(output, expected)
    assert linear.dtype == torch.bfloat16


def test_bf16_convolutions_stay_bf16_with_bf16_instructions(monkeypatch):
    from sam3_radio.model import device as device_module

    monkeypatch.setattr(device_module, "cpu_has_native_bf16", lambda: True)
    conv, images = _conv_and_input()
    with inference_context("cpu", torch.bfloat16):
        output = conv(images)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        expected = conv(images)
    assert torch.equal(output, expected)
