"""Time one text prompt on truck.jpg with a full-size model, fp32 against bf16, on the CPU.

Each precision runs `sam3-radio segment` in its own process under `/usr/bin/time -v`, so
each gets its own peak resident memory. The script prints a markdown table with the
wall time, the model build time, the per-image time (encode + one prompt) and the peak RSS.

Usage: python scripts/time_segment.py [--backbone radio-so400m] [--window-size N]
"""

from __future__ import annotations

import argparse
import platform
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGE = ROOT / "sam3_radio" / "samples" / "truck.jpg"


def run_once(backbone: str, dtype: str, window_size: int | None) -> dict[str, float]:
    """Run one segment command and return its timings in seconds and peak RSS in GiB."""
    with tempfile.TemporaryDirectory() as out:
        command = [
            "/usr/bin/time", "-v", sys.executable, "-m", "sam3_radio.cli", "segment", str(IMAGE),
            "--text", "truck", "--backbone", backbone, "--weights", "random",
            "--device", "cpu", "--dtype", dtype, "--out", out,
        ]
        if window_size is not None:
            command += ["--window-size", str(window_size)]
        completed = subprocess.run(command, capture_output=True, text=True, check=False)
    log = completed.stderr
    if completed.returncode != 0:
        raise RuntimeError(f"segment failed with status {completed.returncode}:\n{log[-3000:]}")
    build = float(re.search(r"built \S+ in ([\d.]+) s", log).group(1))
    image = float(re.search(r"truck.jpg: \d+ detections in ([\d.]+) s", log).group(1))
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", log).group(1)
    seconds = sum(float(part) * 60**index for index, part in enumerate(reversed(wall.split(":"))))
    rss_kib = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", log).group(1))
    return {"wall": seconds, "build": build, "image": image, "rss_gib": rss_kib / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="radio-so400m")
    parser.add_argument("--window-size", type=int, default=None)
    args = parser.parse_args()

    results = {dtype: run_once(args.backbone, dtype, args.window_size) for dtype in ("fp32", "bf16")}
    print(f"backbone {args.backbone}, window {args.window_size or 'global'}, "
          f"python {platform.python_version()}, {platform.processor() or platform.machine()}")
    print("| dtype | build (s) | encode + 1 prompt (s) | process wall (s) | peak RSS (GiB) |")
    print("|---|---|---|---|---|")
    for dtype, row in results.items():
        print(f"| {dtype} | {row['build']:.1f} | {row['image']:.1f} | {row['wall']:.1f} | {row['rss_gib']:.2f} |")
    ratio = results["bf16"]["image"] / results["fp32"]["image"]
    print(f"bf16 / fp32 time for encode + 1 prompt: {ratio:.2f}")


if __name__ == "__main__":
    main()
