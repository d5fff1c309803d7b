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
