"""Measure the peak memory of video tracking at several video lengths.

For each length the tracking runs in a fresh process, which reports its peak
resident set size (ru_maxrss) and the bytes of tensors held in the `sam3`
inference state at the end. The video is synthetic: the 48 sample frames,
played forward and backward in turn, resized and written as a JPEG folder.

The tiny preset with random weights is used. Random weights give no
detections, so the script lowers the detection thresholds, forces the
tracker's object score positive and caps the number of masklets at
`--max-objects`: the state then contains a fixed number of masklets on every
frame, and its growth comes from the frames alone.

Example:
    python scripts/video_memory.py --frames 50 500 --memory trim
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

DEFAULT_SOURCE = Path(__file__).resolve().parents[2] / "shared" / "data" / "video-0001"


def write_synthetic_video(source: Path, folder: Path, num_frames: int, width: int) -> None:
    """Write `num_frames` frames, ping-ponging through the source frames, at `width` px wide."""
    sources = sorted(source.glob("*.jpg"))
    order = list(range(len(sources))) + list(range(len(sources) - 2, 0, -1))
    for index in range(num_frames):
        image = Image.open(sources[order[index % len(order)]]).convert("RGB")
        height = round(image.height * width / image.width)
        image.resize((width, height)).save(folder / f"{index:05d}.jpg", quality=90)


def state_tensor_bytes(state) -> int:
    """Return the bytes of distinct tensor storages reachable from `state`."""
    import torch

    seen, total, stack = set(), 0, [state]
    while stack:
        item = stack.pop()
        if isinstance(item, torch.Tensor):
            key = item.untyped_storage().data_ptr()
            if key not in seen:
                seen.add(key)
                total += item.untyped_storage().nbytes()
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set)):
            stack.extend(item)
    return total


def measure(args: argparse.Namespace) -> dict:
    """Track one synthetic video in this process and return the measurements."""
    import torch

    from sam3_radio.model.video_builder import build_sam3_video_model
    from sam3_radio.predict.video import Sam3VideoTracker

    logging.getLogger("sam3").setLevel(logging.ERROR)
    torch.set_num_threads(args.threads)
    model = build_sam3_video_model(args.backbone, weights="random", device="cpu")
    model.score_threshold_detection = 0.0
    model.new_det_thresh = 0.0
    model.max_num_objects = args.max_objects
    with torch.no_grad():
        model.tracker.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.fill_(10.0)
    tracker = Sam3VideoTracker(model, dtype=args.dtype, memory=args.memory)
    with tempfile.TemporaryDirectory() as folder:
        write_synthetic_video(args.source, Path(folder), args.measure_frames, args.width)
        tracker.set_video(folder)
        start = time.perf_counter()
        if args.prompt == "text":
            tracker.add_prompt(0, text="person")
        else:
            width, height = tracker.frame_size
            tracker.add_object(0, box=[width * 0.2, height * 0.2, width * 0.6, height * 0.8])
        rss_after_prompt = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        objects = set()
        state_curve = {}
        for frame_index, detections in tracker.propagate("forward"):
            objects.update(detections.tracker_id.tolist())
            if frame_index % args.report_every == 0:
                state_curve[frame_index] = round(state_tensor_bytes(tracker._state) / 2**20, 1)
        seconds = time.perf_counter() - start
    return {
        "frames": args.measure_frames,
        "memory": args.memory,
        "prompt": args.prompt,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_rss_after_prompt_mib": rss_after_prompt / 1024,
        "state_tensor_mib": state_tensor_bytes(tracker._state) / 2**20,
        "state_tensor_mib_by_frame": state_curve,
        "masklets_seen": len(objects),
        "masklets_tracked_at_end": len(tracker.object_ids),
        "seconds": round(seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[50, 500])
    parser.add_argument("--memory", choices=["trim", "full"], default="trim")
    parser.add_argument(
        "--prompt",
        choices=["text", "box"],
        default="text",
        help="text: concept prompt 'person'; box: one object from a box (exactly one masklet)",
    )
    parser.add_argument("--backbone", default="tiny-pe")
    parser.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--width", type=int, default=320, help="synthetic frame width in px")
    parser.add_argument("--max-objects", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--report-every", type=int, default=10, help="record the state size every N frames"
    )
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--measure-frames", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.measure_frames is not None:
        print(json.dumps(measure(args)))
        return
    print(f"# {platform.platform()}, {platform.processor() or 'cpu'}, python {platform.python_version()}")
    for frames in args.frames:
        command = [sys.executable, __file__, *sys.argv[1:], "--measure-frames", str(frames)]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        print(output.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
