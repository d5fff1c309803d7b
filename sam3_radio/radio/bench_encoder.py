"""Measure C-RADIO encoder latency (backbone plus `sam3` head) on the current device.

Runs random-weight preset models at several square resolutions, with global attention and with
ViTDet windows, in fp32 and under bf16 autocast. Before each setting it measures `F.linear`
throughput of the same precision as a reference. Prints one Markdown table row per setting.
"matmul fraction" is the estimated encoder FLOP/s divided by that reference FLOP/s.

Example::

    python -m sam3_radio.radio.bench_encoder --presets tiny c-radio_v4-h --resolutions 512 1152 \\
        --window-size 8 --repeats 3
"""

from __future__ import annotations

import argparse
import platform
from collections.abc import Callable, Iterator

import torch

from sam3_radio.bench import measure

from .config import RADIO_PRESETS, RadioConfig
from .model import RadioModel
from .vitdet import default_global_blocks


def time_call(function: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Return the median wall time of `function` in seconds over `repeats` runs after `warmup`."""
    return measure.time_call(function, torch.device("cpu"), repeats, warmup).median_s


def matmul_flops_per_second(precision: str, size: int = 1024, repeats: int = 3) -> float:
    """Measure `F.linear` throughput on fp32 [size, size] operands in FLOP/s.

    "bf16" runs under bf16 autocast, which is the path the encoder's Linear layers take.
    """
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    return measure.matmul_rate(torch.device("cpu"), dtype, size, size, size, repeats)


def encoder_flops(config: RadioConfig, resolution: int, window_size: int | None) -> float:
    """Estimate matmul FLOPs of one image through the backbone and the `sam3` feature head.

    Counts Linear layers and the two attention products. Norms, GELU and softmax are ignored.
    """
    dim, hidden = config.embed_dim, config.mlp_hidden_dim
    patches = (resolution // config.patch_size) ** 2
    tokens = patches + config.num_summary_tokens
    global_blocks = (
        set(default_global_blocks(config.depth)) if window_size else set(range(config.depth))
    )
    total = 2 * patches * 3 * config.patch_size**2 * dim
    for index in range(config.depth):
        if index in global_blocks:
            count, attended = tokens, tokens
        else:
            count, attended = patches, window_size**2
        total += 2 * count * dim * (4 * dim + 2 * hidden)  # qkv, proj, fc1, fc2
        total += 4 * count * attended * dim  # q @ k^T and attn @ v
    head = config.teacher("sam3").feature_head
    total += 2 * patches * (head.input_dim * head.hidden_dim + head.hidden_dim * head.output_dim)
    total += 2 * patches * head.num_inner * head.hidden_dim**2
    return float(total)


def run(
    presets: list[str],
    resolutions: list[int],
    window_size: int,
    precisions: list[str],
    repeats: int,
    warmup: int,
) -> Iterator[dict]:
    """Time every (preset, resolution, attention, precision) setting, yielding one row each.

    The matmul reference of the row's precision is measured right before each setting, so a
    change in machine load between rows affects both numbers of a row alike.
    """
    for preset in presets:
        config = RADIO_PRESETS[preset]
        torch.manual_seed(0)
        model = RadioModel(config, adaptor_names=("sam3",))
        for resolution in resolutions:
            images = torch.rand(1, 3, resolution, resolution)
            baseline = None
            for window in (None, window_size):
                model.window_size = window
                for precision in precisions:
                    reference = matmul_flops_per_second(precision)
                    seconds = _time_forward(model, images, precision, repeats, warmup)
                    flops = encoder_flops(config, resolution, window)
                    baseline = baseline or seconds
                    row = dict(
                        preset=preset,
                        resolution=resolution,
                        window=window or "global",
                        precision=precision,
                        seconds=seconds,
                        gflops=flops / 1e9,
                        matmul_gflops=reference / 1e9,
                        matmul_fraction=flops / seconds / reference,
                        vs_baseline=seconds / baseline,
                    )
                    yield row
        del model


def _time_forward(
    model: RadioModel, images: torch.Tensor, precision: str, repeats: int, warmup: int
) -> float:
    def forward() -> None:
        with (
            torch.no_grad(),
            torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=precision == "bf16"),
        ):
            model(images)

    return time_call(forward, repeats, warmup)


def _format_row(row: dict) -> str:
    return (
        f"| {row['preset']} | {row['resolution']} | {row['window']} | {row['precision']} | "
        f"{row['seconds'] * 1e3:.1f} | {row['gflops']:.1f} | {row['matmul_gflops']:.1f} | "
        f"{row['matmul_fraction']:.2f} | "
        f"{row['vs_baseline']:.2f} |"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--presets", nargs="+", default=["tiny", "c-radio_v4-h"], choices=sorted(RADIO_PRESETS)
    )
    parser.add_argument(
        "--resolutions", nargs="+", type=int, default=[512, 1152], help="square input side in px"
    )
    parser.add_argument("--window-size", type=int, default=8, help="ViTDet window side in tokens")
    parser.add_argument(
        "--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"]
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per setting (median)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs per setting")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    machine = platform.processor() or platform.machine()
    print(f"torch {torch.__version__}, {machine}, {torch.get_num_threads()} threads")
    print(
        "| preset | px | attention | precision | median ms | GFLOP | matmul GFLOP/s | "
        "matmul fraction | vs first row of this px |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    rows = run(
        args.presets,
        args.resolutions,
        args.window_size,
        args.precisions,
        args.repeats,
        args.warmup,
    )
    for row in rows:
        print(_format_row(row), flush=True)


if __name__ == "__main__":
    main()
