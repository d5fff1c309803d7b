"""Run the `sam3` package on any device without editing its installed files.

`sam3` 0.1.4 assumes CUDA in a few places that run while a model is built or
called: factory calls with `device="cuda"` (the sine position encoding cache,
the decoder coordinate cache, RoPE tables when CUDA is merely available),
`Tensor.pin_memory()` on every box encoding, and `.cuda()` calls in the
tracker. `redirect_cuda(device)` is a torch function mode that rewrites those
calls to the target device while it is active. For a CUDA target it does
nothing, so the same code runs unchanged on a GPU.

`inference_context(device, dtype)` combines the redirect with autocast and
inference mode. Every call into a `sam3` model in this package goes through it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch.overrides import TorchFunctionMode

SUPPORTED_DTYPES = {
    "fp32": torch.float32,
    "float32": torch.float32,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
}


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """Return `device` as a `torch.device`, or CUDA when available and CPU otherwise."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as error:
        raise ValueError(
            f"invalid device {device!r}: use 'cpu', 'cuda', 'cuda:N' or 'auto'"
        ) from error
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device {device!r} was requested but CUDA is not available: use 'cpu'"
        )
    return resolved


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """Return the compute dtype for a name such as 'fp32' or 'bf16'."""
    if isinstance(dtype, torch.dtype):
        if dtype not in SUPPORTED_DTYPES.values():
            raise ValueError(f"unsupported dtype {dtype}: use fp32 or bf16")
        return dtype
    if dtype not in SUPPORTED_DTYPES:
        raise ValueError(
            f"unsupported dtype {dtype!r}: use one of {sorted(SUPPORTED_DTYPES)}"
        )
    return SUPPORTED_DTYPES[dtype]


def _is_cuda(device: object) -> bool:
    if isinstance(device, torch.device):
        return device.type == "cuda"
    if isinstance(device, str):
        return device.startswith("cuda")
    return False


class _CudaRedirect(TorchFunctionMode):
    """Torch function mode that sends CUDA-only calls to `target` instead."""

    def __init__(self, target: torch.device):
        super().__init__()
        self.target = target

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func is torch.Tensor.pin_memory:
            return args[0]
        if func is torch.Tensor.cuda:
            return args[0].to(self.target)
        if _is_cuda(kwargs.get("device")):
            kwargs["device"] = self.target
        if func is torch.Tensor.to and len(args) > 1 and _is_cuda(args[1]):
            args = (args[0], self.target, *args[2:])
        return func(*args, **kwargs)


@contextlib.contextmanager
def redirect_cuda(device: str | torch.device) -> Iterator[None]:
    """Redirect the `sam3` package's CUDA-only calls to `device` while active.

    A no-op when `device` is a CUDA device.
    """
    target = torch.device(device)
    if target.type == "cuda":
        yield
        return
    with _CudaRedirect(target):
        yield


@contextlib.contextmanager
def inference_context(
    device: str | torch.device, dtype: torch.dtype = torch.float32
) -> Iterator[None]:
    """Enter inference mode, the CUDA redirect and, for bf16, autocast on `device`.

    The autocast is entered here, per call and per thread, because the `sam3`
    tracker constructor enters a bf16 CUDA autocast only in the thread that
    builds it, which leaves worker threads without it.
    """
    target = torch.device(device)
    autocast = torch.autocast(
        device_type=target.type,
        dtype=torch.bfloat16,
        enabled=dtype == torch.bfloat16,
    )
    with torch.inference_mode(), redirect_cuda(target), autocast:
        yield
