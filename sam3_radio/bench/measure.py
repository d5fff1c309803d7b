"""Timing, peak memory and FLOP counting for the benchmarks."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils import flop_counter
from torch.utils.flop_counter import FlopCounterMode

from sam3_radio.model.device import autocast_context

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")
# glibc's mallopt parameter for the size from which allocations get their own mapping.
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD_BYTES = 1 << 20
_libc = None


def _glibc():
    """Return glibc through ctypes with the 1 MiB mmap threshold set, or None without glibc."""
    global _libc
    if _libc is None:
        try:
            _libc = ctypes.CDLL("libc.so.6")
            _libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_BYTES)
        except (OSError, AttributeError):
            _libc = False
    return _libc or None


def _release_free_memory() -> None:
    """Return freed memory to the operating system before a peak measurement.

    On first use this also makes glibc map every allocation of 1 MiB or more on
    its own and unmap it on free. By default glibc raises that threshold after
    large frees. Freed heap memory that stays resident would then serve new
    tensors without raising the resident set size, and hide them from the peak.
    """
    gc.collect()
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


@dataclass(frozen=True)
class Timing:
    """Median and spread of wall times in seconds."""

    median_s: float
    min_s: float
    max_s: float
    runs: int


def synchronize(device: torch.device) -> None:
    """Wait for queued CUDA work so that wall times cover it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(
    function: Callable[[], object], device: torch.device, repeats: int = 1, warmup: int = 1
) -> Timing:
    """Return the wall time of `function` over `repeats` runs after `warmup` untimed runs."""
    if repeats < 1:
        raise ValueError(f"invalid repeats={repeats}: need at least 1 timed run")
    for _ in range(warmup):
        function()
    synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return Timing(statistics.median(times), min(times), max(times), len(times))


def _resident_kib(field: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


@contextlib.contextmanager
def peak_memory(device: torch.device) -> Iterator[dict]:
    """Record the extra memory that the enclosed code uses at its peak, in bytes.

    On CUDA this is the allocator's peak above the memory allocated on entry.
    On CPU it is the rise of the process's peak resident set size (VmHWM),
    which Linux resets when 5 is written to /proc/self/clear_refs. Allocations
    of 1 MiB or more are counted in full (see `_release_free_memory`). The
    result is stored under "peak_bytes", or None where neither is available.
    """
    result: dict = {"peak_bytes": None}
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        start = torch.cuda.memory_allocated(device)
        yield result
        synchronize(device)
        result["peak_bytes"] = torch.cuda.max_memory_allocated(device) - start
        return
    _release_free_memory()
    start = _resident_kib("VmRSS")
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        start = None
    yield result
    peak = _resident_kib("VmHWM")
    if start is not None and peak is not None:
        result["peak_bytes"] = max(peak - start, 0) * 1024


def _cpu_attention_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs):
    return flop_counter.sdpa_flop_count(query_shape, key_shape, value_shape)


def count_flops(function: Callable[[], object]) -> int:
    """Return the FLOPs that torch's flop counter attributes to one call of `function`.

    torch 2.14 counts no FLOPs for the CPU attention kernel, so it is mapped to
    the counter's own attention formula here.
    """
    mapping = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_attention_flops}
    counter = FlopCounterMode(display=False, custom_mapping=mapping)
    with counter:
        function()
    return counter.get_total_flops()


def autocast_for(device: torch.device, dtype: torch.dtype):
    """Return the product's autocast context for `dtype` on `device` (see `autocast_context`)."""
    return autocast_context(device, dtype)


def matmul_rate(
    device: torch.device, dtype: torch.dtype, rows: int, inner: int, outer: int, repeats: int = 3
) -> float:
    """Measure FLOP/s of one `F.linear` [rows, inner] x [inner, outer], as the model runs it.

    The operands are fp32 and the product runs under the same autocast as the
    model, so a bf16 rate includes the casts that every bf16 Linear layer pays.
    """
    generator = torch.Generator().manual_seed(0)
    left = torch.randn(rows, inner, generator=generator).to(device)
    right = torch.randn(outer, inner, generator=generator).to(device)

    def product() -> None:
        with torch.inference_mode(), autocast_for(device, dtype):
            F.linear(left, right)

    timing = time_call(product, device, repeats=repeats, warmup=1)
    return 2 * rows * inner * outer / timing.median_s
