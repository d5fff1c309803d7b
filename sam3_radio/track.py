"""The `track` job: prompt SAM 3 on a video, track the masklets, write the results.

Outputs, named after the video, in `--out`:
- `<name>.mp4`: the frames with masks, boxes and `#id class score` labels;
- `<name>_pred.json`: the masklets in SA-Co/VEval prediction format, a list of
  `{video_id, category_id, score, bboxes[T], segmentations[T], areas[T]}`
  with pixel xywh boxes and COCO RLE masks, None on frames without the object;
- `<name>_meta.json`: how the results were made (model, weights, prompts);
- with `--mask-pngs`, `<name>_masks/NNNNN.png`: one label image per tracked
  frame, pixel value = object id + 1, 0 for background (16-bit when ids
  exceed 254).
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

DEFAULT_FPS = 24.0


def _hide_sam3_progress_bar() -> None:
    """Silence `sam3`'s own per-pass progress bar, which would interleave with ours."""
    import functools

    from sam3.model import sam3_video_inference

    if not isinstance(sam3_video_inference.tqdm, functools.partial):
        sam3_video_inference.tqdm = functools.partial(sam3_video_inference.tqdm, disable=True)


@dataclass(frozen=True)
class FrameBox:
    """A box prompt on one frame: pixel xyxy."""

    frame: int
    box: tuple[float, float, float, float]


def parse_frame_box(text: str) -> FrameBox:
    """Parse 'FRAME:x0,y0,x1,y1' into a `FrameBox`."""
    from sam3_radio.predict.boxes import parse_box

    frame_text, separator, box_text = text.partition(":")
    if not separator:
        raise argparse.ArgumentTypeError(
            f"invalid box {text!r}: expected FRAME:x0,y0,x1,y1, e.g. 0:100,200,300,400"
        )
    try:
        frame = int(frame_text)
        box = parse_box(box_text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(
            f"invalid box {text!r}: expected FRAME:x0,y0,x1,y1 with an integer frame ({error})"
        ) from error
    return FrameBox(frame, box)


def add_track_parser(subparsers) -> argparse.ArgumentParser:
    """Add the `track` subcommand to the `sam3-radio` parser."""
    from sam3_radio.cli import add_model_arguments

    parser = subparsers.add_parser(
        "track",
        help="track every instance of a concept through a video",
        description="Find every instance of a concept (a noun phrase and/or example boxes on "
        "one frame) and track it through the video. Writes an annotated mp4, the masklets "
        "in SA-Co/VEval prediction format and a metadata file to --out.",
    )
    parser.add_argument(
        "video", type=Path, help="video file (mp4, ...) or folder of frames named 00000.jpg, ..."
    )
    parser.add_argument("--text", help="noun phrase to track, e.g. 'person'")
    parser.add_argument(
        "--box",
        action="append",
        default=[],
        type=parse_frame_box,
        metavar="FRAME:X0,Y0,X1,Y1",
        help="positive example box in pixels on frame FRAME; repeat for several (one frame)",
    )
    parser.add_argument(
        "--negative-box",
        action="append",
        default=[],
        type=parse_frame_box,
        metavar="FRAME:X0,Y0,X1,Y1",
        help="negative example box in pixels on frame FRAME; repeat for several",
    )
    parser.add_argument(
        "--frame",
        type=int,
        default=None,
        help="frame of a text-only prompt (default: 0; with boxes, the boxes' frame)",
    )
    parser.add_argument(
        "--direction",
        choices=["forward", "backward", "both"],
        default="both",
        help="propagation direction from the prompted frame (default: both)",
    )
    parser.add_argument(
        "--max-frames",
        type=int,
        default=None,
        help="frames to track in each direction (default: all)",
    )
    parser.add_argument(
        "--mask-pngs", action="store_true", help="also write one mask label PNG per frame"
    )
    parser.add_argument(
        "--memory",
        choices=["trim", "full"],
        default="trim",
        help="trim: drop tracker memory that is no longer read (flat memory on long videos); "
        "full: keep it all, as sam3 does (default: trim)",
    )
    parser.add_argument(
        "--no-temporal-disambiguation",
        action="store_true",
        help="turn off SAM 3's hotstart and reconditioning heuristics",
    )
    parser.add_argument(
        "--fps",
        type=float,
        default=None,
        help=f"frame rate of the output video (default: the input's, or {DEFAULT_FPS:g} "
        "for frame folders)",
    )
    parser.add_argument("--video-id", type=int, default=0, help="video_id in the JSON (default: 0)")
    parser.add_argument(
        "--category-id", type=int, default=1, help="category_id in the JSON (default: 1)"
    )
    parser.add_argument("--out", type=Path, default=Path("outputs/track"), help="output folder")
    add_model_arguments(parser)
    return parser


@dataclass
class TrackRequest:
    """The prompt of a `track` run, checked against the video."""

    frame: int
    text: str | None
    boxes: list[tuple[float, float, float, float]] = field(default_factory=list)
    negative_boxes: list[tuple[float, float, float, float]] = field(default_factory=list)


def build_request(args: argparse.Namespace) -> TrackRequest:
    """Check the prompt options and return the prompt, or raise ValueError."""
    text = args.text
    if text is not None and not text.strip():
        raise ValueError("--text is empty: pass a noun phrase such as 'person'")
    if text is None and not args.box:
        raise ValueError("no prompt: pass --text and/or --box FRAME:x0,y0,x1,y1")
    frames = {item.frame for item in args.box + args.negative_box}
    if args.frame is not None:
        frames.add(args.frame)
    if len(frames) > 1:
        raise ValueError(
            f"prompts on frames {sorted(frames)}: SAM 3 takes a concept prompt (text and "
            "boxes) on one frame, so give every --box, --negative-box and --frame the same frame"
        )
    frame = frames.pop() if frames else 0
    return TrackRequest(
        frame=frame,
        text=text.strip() if text else None,
        boxes=[item.box for item in args.box],
        negative_boxes=[item.box for item in args.negative_box],
    )


def run_track(args: argparse.Namespace) -> int:
    """Run the `track` subcommand; return the process exit code."""
    from sam3_radio.model.builder import RADIO_INPUT_SIZE, get_backbone_preset
    from sam3_radio.model.sam3_parts import IMAGE_SIZE
    from sam3_radio.model.video_builder import build_sam3_video_model
    from sam3_radio.predict.video import Sam3VideoTracker
    from sam3_radio.predict.video_frames import VideoFrames

    request = build_request(args)
    if args.max_frames is not None and args.max_frames < 0:
        raise ValueError(f"--max-frames {args.max_frames} must be 0 or more")
    preset = get_backbone_preset(args.backbone)
    resolution = RADIO_INPUT_SIZE if preset.is_radio else IMAGE_SIZE
    frames = VideoFrames(args.video, resolution)
    if not 0 <= request.frame < len(frames):
        raise ValueError(
            f"prompt frame {request.frame} is out of range: {args.video} has {len(frames)} "
            f"frames (0 to {len(frames) - 1})"
        )

    start = time.perf_counter()
    model = build_sam3_video_model(
        args.backbone,
        weights=args.weights,
        radio_weights=args.radio_weights,
        window_size=args.window_size,
        device=args.device,
        seed=args.seed,
        apply_temporal_disambiguation=not args.no_temporal_disambiguation,
    )
    logger.info("built %s video model in %.1f s", args.backbone, time.perf_counter() - start)
    tracker = Sam3VideoTracker(model, dtype=args.dtype, memory=args.memory)
    tracker.set_video(frames)
    metadata = _metadata(args, model.build_info, request, len(frames))
    writer = TrackWriter(args, frames, metadata)

    start = time.perf_counter()
    first = tracker.add_prompt(
        request.frame,
        text=request.text,
        boxes=request.boxes or None,
        negative_boxes=request.negative_boxes or None,
    )
    logger.info("%d detections on prompt frame %d", len(first), request.frame)
    writer.track(tracker, args.direction, args.max_frames)
    seconds = time.perf_counter() - start
    writer.finish(seconds)
    print(
        f"tracked {writer.num_masklets} masklet(s) over {writer.num_frames} frame(s) in "
        f"{seconds:.1f} s; wrote {', '.join(str(path) for path in writer.written)}"
    )
    if model.build_info.random_weights:
        logger.warning("these results come from RANDOM weights and are meaningless")
    return 0


def _metadata(args, info, request: TrackRequest, num_frames: int) -> dict:
    metadata = {
        "tool": "sam3-radio track",
        "video": str(args.video),
        "num_frames": num_frames,
        "backbone": info.backbone,
        "window_size": info.window_size,
        "sam3_weights": info.sam3_weights,
        "radio_weights": info.radio_weights,
        "random_weights": info.random_weights,
        "dtype": args.dtype,
        "device": str(args.device),
        "direction": args.direction,
        "max_frames": args.max_frames,
        "memory": args.memory,
        "temporal_disambiguation": not args.no_temporal_disambiguation,
        "prompt": {
            "frame": request.frame,
            "text": request.text,
            "boxes_xyxy": request.boxes,
            "negative_boxes_xyxy": request.negative_boxes,
        },
    }
    if info.random_weights:
        metadata["warning"] = "random weights: masks and scores are meaningless"
    return metadata


class TrackWriter:
    """Record tracking results as they arrive, then write the video and JSON files."""

    def __init__(self, args: argparse.Namespace, frames, metadata: dict):
        from sam3_radio.predict.video_export import MaskletRecorder

        self.args = args
        self.frames = frames
        self.metadata = metadata
        self.out_dir: Path = args.out
        self.name = frames.name
        self.recorder = MaskletRecorder(len(frames))
        self.class_name = "visual"
        self.scores: dict[int, float] = {}
        self.written: list[Path] = []
        self.out_dir.mkdir(parents=True, exist_ok=True)

    @property
    def num_frames(self) -> int:
        return len(self.recorder.frame_indices)

    @property
    def num_masklets(self) -> int:
        return len(self.recorder.object_ids)

    def track(self, tracker, direction: str, max_frames: int | None) -> None:
        """Propagate with `tracker`, recording each frame and writing mask PNGs."""
        from tqdm import tqdm

        from sam3_radio.predict.video_export import mask_label_image, write_label_png

        _hide_sam3_progress_bar()
        self.class_name = tracker.class_name
        width, height = tracker.frame_size
        mask_dir = self.out_dir / f"{self.name}_masks"
        results = tracker.propagate(direction, max_frames=max_frames)
        for frame_index, detections in tqdm(results, desc="track", unit="frame"):
            self.recorder.record(frame_index, detections)
            if self.args.mask_pngs:
                labels = mask_label_image(detections, width, height)
                write_label_png(mask_dir / f"{frame_index:05d}.png", labels)
        self.scores = tracker.object_scores
        if self.args.mask_pngs:
            self.written.append(mask_dir)

    def finish(self, seconds: float) -> None:
        """Write the annotated video, the VEval predictions and the metadata."""
        import json

        from sam3_radio.predict.export import atomic_write_text

        self._write_video()
        predictions = self.recorder.veval_predictions(
            self.args.video_id, self.args.category_id, self.scores
        )
        pred_path = self.out_dir / f"{self.name}_pred.json"
        atomic_write_text(pred_path, json.dumps(predictions))
        self.metadata.update(
            {
                "class_name": self.class_name,
                "tracked_frames": self.num_frames,
                "num_masklets": self.num_masklets,
                "seconds": round(seconds, 2),
                "video_id": self.args.video_id,
                "category_id": self.args.category_id,
            }
        )
        meta_path = self.out_dir / f"{self.name}_meta.json"
        atomic_write_text(meta_path, json.dumps(self.metadata, indent=1))
        self.written = [self._video_path, pred_path, meta_path, *self.written]

    @property
    def _video_path(self) -> Path:
        return self.out_dir / f"{self.name}.mp4"

    def _write_video(self) -> None:
        """Write every frame, annotated where it was tracked, through a temporary file."""
        import os

        import cv2
        import supervision as sv
        from tqdm import tqdm

        from sam3_radio.predict.export import RANDOM_WEIGHTS_WARNING
        from sam3_radio.predict.video_export import FrameAnnotator

        banner = RANDOM_WEIGHTS_WARNING if self.metadata.get("random_weights") else None
        annotator = FrameAnnotator(banner)
        fps = self.args.fps or self.frames.fps or DEFAULT_FPS
        info = sv.VideoInfo(
            width=self.frames.width, height=self.frames.height, fps=fps, total_frames=len(self.frames)
        )
        temporary = self._video_path.with_name(f".{self._video_path.stem}.tmp.mp4")
        with sv.VideoSink(str(temporary), info) as sink:
            for index in tqdm(range(len(self.frames)), desc="write video", unit="frame"):
                detections = self.recorder.detections(index, self.class_name)
                scene = annotator.annotate(self.frames.read_rgb(index), detections)
                sink.write_frame(cv2.cvtColor(scene, cv2.COLOR_RGB2BGR))
        os.replace(temporary, self._video_path)
