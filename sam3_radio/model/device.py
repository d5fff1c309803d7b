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

The video detector and tracker also cast three tensors to bfloat16 on the
assumption that a CUDA bf16 autocast is always active: the tracker neck
features (`Sam3ImageOnVideoMultiGPU`) and the stored memory features
(`Sam3TrackerPredictor`, twice). Without autocast, the float32 layers that
read them raise a dtype error. `inference_context(..., keep_float32=True)`
turns `Tensor.to(torch.bfloat16)` into a no-op so that an fp32 run stays in
fp32. Unlike the CUDA redirect it applies on every device, because the casts
break fp32 runs on a GPU too.

The CPU fallback of `sam3`'s connected components
(`sam3.perflib.connected_components.connected_components_cpu`) has two
problems. It calls `torch.stack` on an empty list when a frame has no masks,
which happens on every video frame without detections. It also sums one
boolean image per component in a Python loop, which takes seconds per mask
when a mask has thousands of components, as random-weight masks do. In a
tiny-model video frame that loop took 17 % of the time.
`install_cpu_fixes()` replaces the routine with `connected_components_cpu`,
which labels with scikit-image as `sam3` does and counts every label with
one `bincount`, so labels and areas are identical (tests/test_device.py
compares them with `sam3`'s routine). CUDA tensors never reach that function.
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


_CPU_FIXES_INSTALLED = False


def connected_components_cpu(masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Label 8-connected components of each mask and give each pixel its component's area.

    Args:
        masks: [B, H, W] or [B, 1, H, W]; nonzero values are foreground.

    Returns:
        (labels, areas), shaped like `masks`, in scikit-image's label dtype as
        in `sam3`: labels number the components of each mask from 1
        (background 0), areas hold the pixel count of the pixel's component
        (background 0).
    """
    from skimage.measure import label

    shape = masks.shape
    planes = masks.reshape(-1, *shape[-2:]).cpu().numpy()
    if len(planes) == 0:
        empty = torch.zeros(shape, dtype=torch.int64, device=masks.device)
        return empty, empty.clone()
    labels, areas = [], []
    for plane in planes:
        plane_labels, count = label(plane, return_num=True)
        plane_labels = torch.from_numpy(plane_labels)
        counts = torch.bincount(plane_labels.flatten().long(), minlength=count + 1)
        counts[0] = 0
        labels.append(plane_labels)
        areas.append(counts[plane_labels.long()].to(plane_labels.dtype))
    labels = torch.stack(labels).view(shape).to(masks.device)
    return labels, torch.stack(areas).view(shape).to(masks.device)


def install_cpu_fixes() -> None:
    """Put `connected_components_cpu` in place of `sam3`'s CPU routine (idempotent)."""
    global _CPU_FIXES_INSTALLED
    if _CPU_FIXES_INSTALLED:
        return
    from sam3.perflib import connected_components as module

    module.connected_components_cpu = connected_components_cpu
    _CPU_FIXES_INSTALLED = True


def cpu_has_native_bf16() -> bool:
    """Return True when this CPU has bf16 matrix instructions (AVX-512 BF16 or AMX)."""
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


_CONVOLUTIONS = frozenset(
    {
        torch.nn.functional.conv1d,
        torch.nn.functional.conv2d,
        torch.nn.functional.conv3d,
        torch.nn.functional.conv_transpose1d,
        torch.nn.functional.conv_transpose2d,
        torch.nn.functional.conv_transpose3d,
    }
)


def _to_float32(value: object) -> object:
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        return value.float()
    return value


class _Float32Convolutions(TorchFunctionMode):
    """Torch function mode that runs convolutions in fp32 inside a CPU bf16 autocast.

    On CPUs without bf16 instructions, PyTorch's bf16 convolutions are
    hundreds of times slower than fp32 ones: a 3x3 256-channel convolution at
    144x144 took 125 s against 0.5 s on an AVX2 machine. That makes SAM 3's
    necks and mask heads unusable in bf16. The result is cast back to bf16, so
    the layers after a convolution see the dtype that autocast would give them.
    """

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func not in _CONVOLUTIONS:
            return func(*args, **kwargs)
        with torch.autocast("cpu", enabled=False):
            output = func(
                *(_to_float32(value) for value in args),
                **{key: _to_float32(value) for key, value in kwargs.items()},
            )
        return output.to(torch.bfloat16)


@contextlib.contextmanager
def autocast_context(device: torch.device, dtype: torch.dtype) -> Iterator[None]:
    """Enter autocast for `dtype` on `device`, with fp32 convolutions on CPUs lacking bf16.

    Does nothing for fp32. See `_Float32Convolutions` for why convolutions
    leave bf16 on such CPUs.
    """
    enabled = dtype == torch.bfloat16
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled):
        if enabled and device.type == "cpu" and not cpu_has_native_bf16():
            with _Float32Convolutions():
                yield
        else:
            yield


def _is_cuda(device: object) -> bool:
    if isinstance(device, torch.device):
        return device.type == "cuda"
    if isinstance(device, str):
        return device.startswith("cuda")
    return False


class _CudaRedirect(TorchFunctionMode):
    """Torch function mode that sends CUDA-only calls to `target` instead.

    With `target` None it leaves devices alone. With `keep_float32` it also
    skips `Tensor.to(torch.bfloat16)` casts (see the module docstring).
    """

    def __init__(self, target: torch.device | None, keep_float32: bool = False):
        super().__init__()
        self.target = target
        self.keep_float32 = keep_float32

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if self.keep_float32 and func is torch.Tensor.to and _is_bf16_cast(args, kwargs):
            return args[0]
        if self.target is None:
            return func(*args, **kwargs)
        if func is torch.Tensor.pin_memory:
            return args[0]
        if func is torch.Tensor.cuda:
            return args[0].to(self.target)
        if _is_cuda(kwargs.get("device")):
            kwargs["device"] = self.target
        if func is torch.Tensor.to and len(args) > 1 and _is_cuda(args[1]):
            args = (args[0], self.target, *args[2:])
        return func(*args, **kwargs)


def _is_bf16_cast(args: tuple, kwargs: dict) -> bool:
    """Return True for `tensor.to(torch.bfloat16)` and `tensor.to(dtype=torch.bfloat16)`."""
    if len(args) == 2 and not kwargs:
        return args[1] is torch.bfloat16
    return len(args) == 1 and kwargs == {"dtype": torch.bfloat16}


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
    device: str | torch.device,
    dtype: torch.dtype = torch.float32,
    keep_float32: bool = False,
) -> Iterator[None]:
    """Enter inference mode, the CUDA redirect and, for bf16, autocast on `device`.

    On CPUs without bf16 instructions, convolutions run in fp32 inside the
    bf16 autocast (see `autocast_context`).

    The autocast is entered here, per call and per thread, because the `sam3`
    tracker constructor enters a bf16 CUDA autocast only in the thread that
    builds it, which leaves worker threads without it.

    With `keep_float32` and an fp32 `dtype`, the `sam3` video code's bfloat16
    casts are skipped on any device (see the module docstring).
    """
    target = torch.device(device)
    install_cpu_fixes()
    autocast = autocast_context(target, dtype)
    keep = keep_float32 and dtype == torch.float32
    redirect = None if target.type == "cuda" else target
    if redirect is None and not keep:
        mode = contextlib.nullcontext()
    else:
        mode = _CudaRedirect(redirect, keep_float32=keep)
    with torch.inference_mode(), mode, autocast:
        yield
