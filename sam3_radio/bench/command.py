"""The `sam3-radio bench` subcommand: Hydra overrides in, docs/benchmarks.md out."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sam3_radio.hydra_config import add_config_arguments, compose_named_config

CONFIG_NAME = "bench"

DESCRIPTION = """\
Measure PE against C-RADIOv4 (H and SO400M) in SAM 3:
  - trunk and trunk+neck latency and peak memory at the 72x72 token grid, with global
    attention and every window size, in fp32 and bf16
  - our block loop against the straightforward one
  - a 512-2048 px resolution sweep
  - end-to-end and many-prompt image latency, and video latency per frame
Writes a markdown report with a plot (default docs/benchmarks.md) and the raw results as
JSON. Settings come from configs/bench.yaml. Change any of them with KEY=VALUE overrides.
"""

EPILOG = """\
main settings (see configs/bench.yaml for all):
  sections=[trunks,implementation,sweep,pipeline,video]   parts to run
  device=auto|cpu|cuda     dtypes=[fp32,bf16]     threads=N
  repeats=N warmup=N       timed runs (median) and warm-up runs per measurement
  trunks.mode=probe|full   compose trunks from two-block copies, or time whole trunks
  trunks.windows=all|[8,12]
  report=PATH              results=PATH

examples:
  sam3-radio bench                                   # regenerate docs/benchmarks.md
  sam3-radio bench sections=[trunks] dtypes=[fp32] report=outputs/trunks.md
  sam3-radio bench device=cuda trunks.mode=full repeats=10
"""


def compose_config(overrides: list[str], config_dir: Path | None = None):
    """Compose bench.yaml with Hydra command-line `overrides`."""
    from sam3_radio.bench.runner import BenchConfigError

    return compose_named_config(CONFIG_NAME, overrides, config_dir, BenchConfigError)


def add_bench_parser(commands: argparse._SubParsersAction) -> None:
    """Add the `bench` subcommand to the `sam3-radio` parser."""
    parser = commands.add_parser(
        "bench",
        help="benchmark PE against C-RADIOv4 and regenerate docs/benchmarks.md",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_arguments(parser, "bench", "sections=[trunks] dtypes=[fp32]")
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="rewrite the report from the results JSON of an earlier run, measuring nothing",
    )


def run_bench_command(args: argparse.Namespace) -> int:
    """Run `sam3-radio bench` and write the report."""
    from omegaconf import OmegaConf

    from sam3_radio.bench.report import speed_target, write_report
    from sam3_radio.bench.runner import (
        BenchConfigError,
        check_config,
        repository_path,
        run_bench,
    )

    config = compose_config(args.overrides, args.config_dir)
    check_config(config)
    if args.print_config:
        print(OmegaConf.to_yaml(config), end="")
        return 0
    if args.render_only:
        results_path = repository_path(config.results)
        if not results_path.is_file():
            raise BenchConfigError(
                f"results file {results_path} not found: run the benchmark first, or point "
                "results=PATH at an earlier run's JSON"
            )
        results = json.loads(results_path.read_text())
        if "total_seconds" not in results:
            raise BenchConfigError(
                f"{results_path} is from an unfinished run: rerun the benchmark"
            )
    else:
        command = " ".join(["sam3-radio bench", *args.overrides])
        results = run_bench(config, command)
    report = write_report(results, repository_path(config.report))
    print(f"wrote {report} and {repository_path(config.results)}")
    target = speed_target(results)
    if target:
        print(
            f"SO400M window {target['window_size']} / PE trunk latency in {target['dtype']}: "
            f"{target['ratio']:.2f}"
        )
    return 0
