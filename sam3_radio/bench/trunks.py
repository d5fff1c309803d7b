"""Trunk and neck latency of PE and C-RADIOv4 at SAM 3's 72x72 token grid.

A trunk is a stem (patch embedding, position embedding, final norm and, for
RADIO, the `sam3` head) followed by blocks of two kinds: windowed and global.
Blocks of one kind cost the same. So "probe" mode builds a two-block copy of
the trunk, with one block of each kind at full width, and times the copy and
each block alone. The stem costs the copy's time minus its two blocks, and

    trunk = stem + windowed blocks * windowed block + global blocks * global block

FLOPs are counted and parameter bytes added the same way. Peak memory is the
full trunk's parameters plus the activation peak of the copy, because a
forward pass frees each block's activations before the next block runs.
"full" mode builds and times the whole trunk instead, which takes several
times longer on a CPU.
"""

from __future__ import annotations

import dataclasses
import statistics
from dataclasses import dataclass

import torch
from sam3.model.necks import Sam3DualViTDetNeck
from torch import nn

from sam3_radio.bench.measure import Timing, autocast_for, count_flops, peak_memory, time_call
from sam3_radio.model import sam3_parts
from sam3_radio.model.builder import RADIO_INPUT_SIZE, get_backbone_preset
from sam3_radio.model.device import redirect_cuda
from sam3_radio.model.sam3_parts import SAM3_FULL, TOKEN_GRID
from sam3_radio.model.trunk import RadioTrunk
from sam3_radio.radio import RADIO_PRESETS, RadioModel
from sam3_radio.radio.vitdet import default_global_blocks, from_window_order, to_window_order

TRUNK_BACKBONES = ("pe", "radio-h", "radio-so400m")


@dataclass(frozen=True)
class TrunkCase:
    """One trunk setting: a backbone, and for RADIO a ViTDet window (None: global attention)."""

    backbone: str
    window_size: int | None = None
    resolution: int | None = None

    def __post_init__(self) -> None:
        if self.backbone not in TRUNK_BACKBONES:
            raise ValueError(
                f"unknown trunk backbone {self.backbone!r}: use one of {list(TRUNK_BACKBONES)}"
            )
        if self.backbone == "pe" and self.window_size is not None:
            raise ValueError(
                f"window_size={self.window_size} applies to RADIO trunks only: PE has fixed "
                "24-token windows with 4 global blocks"
            )
        grid = self.grid
        if self.window_size is not None and (self.window_size < 1 or grid % self.window_size):
            valid = [size for size in range(1, grid + 1) if grid % size == 0]
            raise ValueError(
                f"window_size={self.window_size} does not divide the {grid}x{grid} token grid "
                f"of {self.input_size} px: use one of {valid}"
            )

    @property
    def input_size(self) -> int:
        if self.resolution is not None:
            return self.resolution
        return sam3_parts.IMAGE_SIZE if self.backbone == "pe" else RADIO_INPUT_SIZE

    @property
    def patch_size(self) -> int:
        return sam3_parts.PATCH_SIZE if self.backbone == "pe" else 16

    @property
    def grid(self) -> int:
        return self.input_size // self.patch_size

    @property
    def attention(self) -> str:
        """Attention label for tables: PE's fixed layout, 'global', or 'window N'."""
        if self.backbone == "pe":
            return "window 24 + 4 global"
        if self.window_size is None or self.window_size == self.grid:
            return "global"
        return f"window {self.window_size}"

    @property
    def label(self) -> str:
        return f"{self.backbone} {self.input_size}px {self.attention}"


@dataclass
class Probe:
    """A two-block copy of a trunk, inputs for each block, and the full trunk's block counts."""

    module: nn.Module
    windowed_block: nn.Module
    global_block: nn.Module
    windowed_input: torch.Tensor
    global_input: torch.Tensor
    windowed_count: int
    global_count: int
    full_parameter_count: int


@dataclass(frozen=True)
class TrunkResult:
    """Measured (or, in probe mode, composed) cost of one trunk setting in one precision."""

    case: TrunkCase
    dtype: str
    seconds: float
    flops: int
    parameter_bytes: int
    activation_peak_bytes: int | None
    mode: str

    @property
    def peak_bytes(self) -> int | None:
        if self.activation_peak_bytes is None:
            return None
        return self.parameter_bytes + self.activation_peak_bytes


def _pe_trunk(depth: int, global_blocks: tuple[int, ...]) -> nn.Module:
    spec = dataclasses.replace(
        SAM3_FULL,
        trunk=dataclasses.replace(SAM3_FULL.trunk, depth=depth, global_att_blocks=global_blocks),
    )
    return sam3_parts.build_pe_trunk(spec)


def build_radio_model(case: TrunkCase, depth: int | None = None) -> RadioModel:
    """Build the RADIO encoder of `case` with random weights, cut to `depth` blocks if given.

    A cut model keeps one global block, its last.
    """
    config = RADIO_PRESETS[get_backbone_preset(case.backbone).radio_preset]
    global_blocks = None
    if depth is not None:
        config = dataclasses.replace(config, depth=depth)
        global_blocks = (depth - 1,)
    return RadioModel(
        config, adaptor_names=("sam3",), window_size=case.window_size, global_blocks=global_blocks
    )


def _radio_block_counts(case: TrunkCase) -> tuple[int, int]:
    """Return (windowed, global) block counts of the full RADIO trunk for `case`."""
    depth = RADIO_PRESETS[get_backbone_preset(case.backbone).radio_preset].depth
    if case.attention == "global":
        return 0, depth
    num_global = len(default_global_blocks(depth))
    return depth - num_global, num_global


def _count_parameters(module: nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


def build_probe(case: TrunkCase, device: torch.device) -> Probe:
    """Build the two-block copy of the trunk of `case` with random weights on `device`."""
    generator = torch.Generator().manual_seed(0)
    if case.backbone == "pe":
        full = SAM3_FULL.trunk
        with redirect_cuda(device):
            module = _pe_trunk(2, (1,)).to(device).eval()
        grid = case.grid
        tokens = torch.randn(1, grid, grid, full.embed_dim, generator=generator).to(device)
        block_parameters = _count_parameters(module.blocks[0])
        return Probe(
            module=module,
            windowed_block=module.blocks[0],
            global_block=module.blocks[1],
            windowed_input=tokens,
            global_input=tokens,
            windowed_count=full.depth - len(full.global_att_blocks),
            global_count=len(full.global_att_blocks),
            full_parameter_count=_count_parameters(module) + (full.depth - 2) * block_parameters,
        )

    radio = build_radio_model(case, depth=2)
    module = RadioTrunk(radio, input_size=case.input_size).to(device).eval()
    config = radio.config
    patches = case.grid**2
    prefix = config.num_summary_tokens
    global_input = torch.randn(1, prefix + patches, config.embed_dim, generator=generator)
    windowed_count, global_count = _radio_block_counts(case)
    if case.attention == "global":
        windowed_input = global_input
    else:
        size = case.window_size
        windowed_input = torch.randn(
            patches // size**2, size**2, config.embed_dim, generator=generator
        )
    block_parameters = _count_parameters(radio.blocks[0])
    full_depth = windowed_count + global_count
    return Probe(
        module=module,
        windowed_block=radio.blocks[0],
        global_block=radio.blocks[1],
        windowed_input=windowed_input.to(device),
        global_input=global_input.to(device),
        windowed_count=windowed_count,
        global_count=global_count,
        full_parameter_count=_count_parameters(module) + (full_depth - 2) * block_parameters,
    )


def build_full_trunk(case: TrunkCase, device: torch.device) -> nn.Module:
    """Build the whole trunk of `case` with random weights on `device`."""
    if case.backbone == "pe":
        with redirect_cuda(device):
            return sam3_parts.build_pe_trunk(SAM3_FULL).to(device).eval()
    return RadioTrunk(build_radio_model(case), input_size=case.input_size).to(device).eval()


def random_images(case: TrunkCase, device: torch.device) -> torch.Tensor:
    """Return one image in SAM 3's trunk input range [-1, 1] at the size of `case`."""
    generator = torch.Generator().manual_seed(1)
    images = torch.rand(1, 3, case.input_size, case.input_size, generator=generator) * 2 - 1
    return images.to(device)


def _timed(function, device, dtype, repeats, warmup) -> Timing:
    def run() -> None:
        with torch.inference_mode(), redirect_cuda(device), autocast_for(device, dtype):
            function()

    return time_call(run, device, repeats=repeats, warmup=warmup)


@dataclass(frozen=True)
class Measurement:
    """Median wall time, FLOPs and activation peak of one function."""

    seconds: float
    flops: int
    peak_bytes: int | None


def measure_call(function, device, dtype, repeats: int = 1, warmup: int = 1) -> Measurement:
    """Time `function` under the product's autocast, counting FLOPs and peak memory on the way.

    The first timed run also carries the FLOP counter and the peak-memory
    probe, so each setting runs `warmup + repeats` times in all. The counter
    adds microseconds per operator, nothing next to these trunks' operators.
    """
    if repeats < 1:
        raise ValueError(f"invalid repeats={repeats}: need at least 1 timed run")
    counted: dict = {}

    def counted_run() -> None:
        with peak_memory(device) as memory:
            counted["flops"] = count_flops(function)
        counted["peak_bytes"] = memory["peak_bytes"]

    with torch.inference_mode(), redirect_cuda(device), autocast_for(device, dtype):
        for _ in range(warmup):
            function()
        times = [time_call(counted_run, device, repeats=1, warmup=0).median_s]
        for _ in range(repeats - 1):
            times.append(time_call(function, device, repeats=1, warmup=0).median_s)
    seconds = statistics.median(times)
    return Measurement(seconds, counted["flops"], counted["peak_bytes"])


@dataclass(frozen=True)
class _Baseline:
    """Costs shared by every window setting of one trunk: the stem and one global block."""

    stem: Measurement
    global_block: Measurement
    probe_peak_bytes: int | None


class ProbeTimer:
    """Compose full-trunk costs from two-block probes, timing shared parts once.

    The stem and the global block cost the same for every window size of a
    trunk, so they are timed once per (backbone, resolution, precision): the
    stem is the probe's forward time minus its two blocks. Each further window
    size then needs only its windowed block timed.
    """

    def __init__(self, device: torch.device, repeats: int = 1, warmup: int = 1):
        self.device = device
        self.repeats = repeats
        self.warmup = warmup
        self._baselines: dict[tuple, _Baseline] = {}

    def _measure(self, function, dtype: torch.dtype) -> Measurement:
        return measure_call(function, self.device, dtype, self.repeats, self.warmup)

    def measure(self, case: TrunkCase, dtype: torch.dtype) -> TrunkResult:
        """Return the composed latency, FLOPs and peak memory of the full trunk of `case`."""
        probe = build_probe(case, self.device)

        def windowed() -> None:
            probe.windowed_block(probe.windowed_input)

        key = (case.backbone, case.input_size, dtype)
        windowed_block = None
        if key not in self._baselines:
            self._baselines[key], windowed_block = self._baseline(case, probe, dtype)
        baseline = self._baselines[key]
        if probe.windowed_count and windowed_block is None:
            windowed_block = self._measure(windowed, dtype)
        if not probe.windowed_count:
            windowed_block = Measurement(0.0, 0, None)
        seconds = (
            baseline.stem.seconds
            + probe.windowed_count * windowed_block.seconds
            + probe.global_count * baseline.global_block.seconds
        )
        flops = (
            baseline.stem.flops
            + probe.windowed_count * windowed_block.flops
            + probe.global_count * baseline.global_block.flops
        )
        return TrunkResult(
            case=case,
            dtype=_dtype_name(dtype),
            seconds=seconds,
            flops=flops,
            parameter_bytes=probe.full_parameter_count * 4,
            activation_peak_bytes=baseline.probe_peak_bytes,
            mode="probe",
        )

    def _baseline(
        self, case: TrunkCase, probe: Probe, dtype: torch.dtype
    ) -> tuple[_Baseline, Measurement | None]:
        """Measure the stem and the global block; also return the windowed block if timed."""
        images = random_images(case, self.device)

        def stem_and_two_blocks() -> None:
            probe.module(images)

        def windowed() -> None:
            probe.windowed_block(probe.windowed_input)

        def global_() -> None:
            probe.global_block(probe.global_input)

        whole = self._measure(stem_and_two_blocks, dtype)
        global_block = self._measure(global_, dtype)
        if probe.windowed_count:
            # The probe runs one windowed and one global block.
            first = self._measure(windowed, dtype)
        else:
            # A global-attention probe runs two global blocks.
            first = global_block
        stem = Measurement(
            max(whole.seconds - first.seconds - global_block.seconds, 0.0),
            whole.flops - first.flops - global_block.flops,
            None,
        )
        baseline = _Baseline(stem, global_block, whole.peak_bytes)
        return baseline, first if probe.windowed_count else None


def measure_probe(
    case: TrunkCase,
    device: torch.device,
    dtype: torch.dtype,
    repeats: int = 1,
    warmup: int = 1,
) -> TrunkResult:
    """Compose the full trunk's latency, FLOPs and peak memory from its two-block probe."""
    return ProbeTimer(device, repeats, warmup).measure(case, dtype)


def measure_full(
    case: TrunkCase,
    device: torch.device,
    dtype: torch.dtype,
    repeats: int = 1,
    warmup: int = 1,
) -> TrunkResult:
    """Time the whole trunk of `case` directly."""
    trunk = build_full_trunk(case, device)
    images = random_images(case, device)
    measurement = measure_call(lambda: trunk(images), device, dtype, repeats, warmup)
    return TrunkResult(
        case=case,
        dtype=_dtype_name(dtype),
        seconds=measurement.seconds,
        flops=measurement.flops,
        parameter_bytes=_count_parameters(trunk) * 4,
        activation_peak_bytes=measurement.peak_bytes,
        mode="full",
    )


class _FixedFeatures(nn.Module):
    """Stand-in trunk that returns precomputed features, to time the neck alone."""

    def __init__(self, features: torch.Tensor):
        super().__init__()
        self.features = features
        self.channel_list = [features.shape[1]]

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        return [self.features]


def measure_neck(
    device: torch.device, dtype: torch.dtype, repeats: int = 1, warmup: int = 1
) -> float:
    """Time SAM 3's dual neck (detector and tracker branches) on [1, 1024, 72, 72] features.

    Both trunks give the neck features of this shape, so its cost is the same
    for every backbone.
    """
    generator = torch.Generator().manual_seed(2)
    features = torch.randn(1, SAM3_FULL.trunk.embed_dim, TOKEN_GRID, TOKEN_GRID, generator=generator)
    with redirect_cuda(device):
        neck = Sam3DualViTDetNeck(
            trunk=_FixedFeatures(features.to(device)),
            position_encoding=sam3_parts._sine_position_encoding(
                precompute_resolution=sam3_parts.IMAGE_SIZE
            ),
            d_model=sam3_parts.D_MODEL,
            scale_factors=[4.0, 2.0, 1.0, 0.5],
            add_sam2_neck=True,
        ).to(device).eval()
    images = torch.zeros(1, 3, 8, 8, device=device)
    return _timed(lambda: neck(images), device, dtype, repeats, warmup).median_s


def straightforward_blocks(
    blocks: list[nn.Module],
    tokens: torch.Tensor,
    num_prefix_tokens: int,
    grid: tuple[int, int],
    window_size: int,
    global_blocks: tuple[int, ...],
) -> torch.Tensor:
    """Run ViTDet blocks the straightforward way: split into windows and merge at every block.

    This is the baseline that `sam3_radio.radio.vitdet.run_blocks` must match
    in output and beat or equal in speed: each windowed block partitions the
    raster-ordered patch tokens into windows and merges them back afterwards.
    """
    rows, cols = grid
    for index, block in enumerate(blocks):
        if index in global_blocks:
            tokens = block(tokens)
            continue
        prefix = tokens[:, :num_prefix_tokens]
        patches = to_window_order(tokens[:, num_prefix_tokens:], rows, cols, window_size)
        batch, count, dim = patches.shape
        windows = block(patches.reshape(batch * count // window_size**2, window_size**2, dim))
        patches = from_window_order(windows.reshape(batch, count, dim), rows, cols, window_size)
        tokens = torch.cat([prefix, patches], dim=1)
    return tokens


def _dtype_name(dtype: torch.dtype) -> str:
    return "bf16" if dtype == torch.bfloat16 else "fp32"
