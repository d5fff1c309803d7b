"""`sam3-radio` command line: segment images with SAM 3 and a PE or C-RADIOv4 trunk."""

from __future__ import annotations

import argparse
import logging
import sys
import time
import warnings
from pathlib import Path

# Import-time warnings of `sam3` 0.1.4 that carry no information about the user's run: its
# use of torch.jit.script, and its CUDA autocast decorators on machines without CUDA. This
# package enters autocast itself, per call and per device.
warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated", category=FutureWarning)
warnings.filterwarnings(
    "ignore", message="CUDA is not available or torch_xla is imported", category=UserWarning
)

from sam3_radio.annotate.command import add_annotate_parser, run_annotate
from sam3_radio.bench.command import add_bench_parser, run_bench_command
from sam3_radio.demo.command import add_demo_parser, run_demo
from sam3_radio.evaluate.command import add_eval_parser, run_eval
from sam3_radio.model.builder import BACKBONES, WeightsUnavailableError
from sam3_radio.predict.boxes import parse_box
from sam3_radio.track import add_track_parser, run_track

logger = logging.getLogger("sam3_radio")

WEIGHTS_HELP = (
    "SAM 3 weights: path to sam3.pt, 'hf' to download facebook/sam3 (gated: accept the "
    "licence and run `hf auth login`), or 'random' for a smoke run with meaningless outputs"
)


def _box(text: str) -> tuple[float, float, float, float]:
    try:
        return parse_box(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def _window_size(text: str) -> int:
    try:
        value = int(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"invalid window size {text!r}: expected an integer") from error
    return value


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options that choose and load a model."""
    parser.add_argument(
        "--backbone",
        default="pe",
        choices=sorted(BACKBONES),
        help="image trunk: SAM 3's Perception Encoder (pe), C-RADIOv4 (radio-h, radio-so400m), "
        "or a tiny test preset (default: pe)",
    )
    parser.add_argument(
        "--window-size",
        type=_window_size,
        default=None,
        help="ViTDet window size in tokens for RADIO trunks; must divide 72 (default: global)",
    )
    parser.add_argument("--weights", default="hf", help=WEIGHTS_HELP + " (default: hf)")
    parser.add_argument(
        "--radio-weights",
        default="hf",
        help="C-RADIOv4 weights for RADIO backbones: a .pth.tar file or Hugging Face folder, "
        "or 'hf' to download nvidia/C-RADIOv4-H or -SO400M (default: hf)",
    )
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: auto)")
    parser.add_argument(
        "--dtype",
        default="fp32",
        choices=["fp32", "bf16"],
        help="compute precision; bf16 runs under autocast (default: fp32)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of --weights random (default: 0)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sam3-radio",
        description="SAM 3 with its Perception Encoder or NVIDIA's C-RADIOv4 as the image trunk.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    commands = parser.add_subparsers(dest="command", required=True)

    segment = commands.add_parser(
        "segment",
        help="segment images from a text and/or box prompt",
        description="Find every instance of a concept (text and/or example boxes) in each image, "
        "or with --interactive segment one object per box. Writes <stem>.png (overlay) and "
        "<stem>.json (COCO results with RLE masks) per image to --out and prints a table.",
    )
    segment.add_argument("images", nargs="+", type=Path, help="image files (JPEG, PNG, ...)")
    segment.add_argument(
        "--text", action="append", default=[], help="noun phrase to find; repeat for several"
    )
    segment.add_argument(
        "--box", action="append", default=[], type=_box, metavar="X0,Y0,X1,Y1",
        help="positive example box in pixels; repeat for several",
    )
    segment.add_argument(
        "--negative-box", action="append", default=[], type=_box, metavar="X0,Y0,X1,Y1",
        help="negative example box in pixels; repeat for several",
    )
    segment.add_argument(
        "--interactive", action="store_true",
        help="one mask per --box with the SAM 1-style predictor instead of finding all instances",
    )
    segment.add_argument(
        "--threshold", type=float, default=0.5,
        help="keep detections scoring above this value, in [0, 1) (default: 0.5)",
    )
    segment.add_argument("--out", type=Path, default=Path("outputs/segment"), help="output folder")
    segment.add_argument(
        "--compile", action="store_true",
        help="compile the trunk and pixel decoder with torch.compile: the first image takes "
        "minutes longer, later ones may run faster",
    )
    add_model_arguments(segment)
    add_track_parser(commands)
    add_eval_parser(commands)
    add_annotate_parser(commands)
    add_demo_parser(commands)
    add_bench_parser(commands)
    return parser


def build_model_from_args(args: argparse.Namespace, interactive: bool = True):
    """Build the image model that `args` describe."""
    from sam3_radio.model.builder import build_sam3_image_model

    return build_sam3_image_model(
        args.backbone,
        weights=args.weights,
        radio_weights=args.radio_weights,
        window_size=args.window_size,
        device=args.device,
        interactive=interactive,
        seed=args.seed,
        compile=getattr(args, "compile", False),
    )


def run_segment(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from sam3_radio.predict.image import Sam3ImagePredictor
    from sam3_radio.segment import SegmentRequest, detection_rows, segment_images

    if not args.text and not args.box:
        raise ValueError("no prompt: pass --text and/or --box")
    if any(not text.strip() for text in args.text):
        raise ValueError("--text is empty: pass a noun phrase such as 'truck'")
    request = SegmentRequest(
        texts=args.text,
        boxes=args.box,
        negative_boxes=args.negative_box,
        interactive=args.interactive,
        threshold=args.threshold,
    )
    start = time.perf_counter()
    model = build_model_from_args(args, interactive=args.interactive)
    logger.info("built %s in %.1f s", args.backbone, time.perf_counter() - start)
    predictor = Sam3ImagePredictor(model, dtype=args.dtype, threshold=args.threshold)
    info = model.build_info
    metadata = {
        "tool": "sam3-radio segment",
        "backbone": info.backbone,
        "window_size": info.window_size,
        "sam3_weights": info.sam3_weights,
        "radio_weights": info.radio_weights,
        "random_weights": info.random_weights,
        "dtype": args.dtype,
    }
    if info.random_weights:
        metadata["warning"] = "random weights: masks and scores are meaningless"
    results = segment_images(predictor, args.images, request, args.out, metadata)
    print(tabulate(detection_rows(results), headers=["image", "#", "class", "score", "box xyxy"]))
    written = sum(result.detections is not None for result in results)
    print(f"wrote {written} overlay(s) and COCO JSON file(s) to {args.out}")
    if info.random_weights:
        logger.warning("these results come from RANDOM weights and are meaningless")
    return 0 if written == len(results) else 1


COMMANDS = {
    "segment": run_segment,
    "track": run_track,
    "eval": run_eval,
    "annotate": run_annotate,
    "demo": run_demo,
    "bench": run_bench_command,
}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # A dependency may have configured the root logger on import, which makes
    # basicConfig a no-op, so set the level explicitly.
    logging.getLogger().setLevel(level)
    try:
        return COMMANDS[args.command](args)
    except WeightsUnavailableError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
