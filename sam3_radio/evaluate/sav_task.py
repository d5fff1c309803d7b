"""SA-V semi-supervised video object segmentation, scored with J&F.

Layout (as in the SA-V val and test releases):

    <root>/JPEGImages_24fps/<video>/<frame>.jpg
    <root>/Annotations_6fps/<video>/<object id>/<frame>.png

Each object is prompted on its first annotated frame where its mask is not
empty, with that mask (`prompt: mask`, the semi-supervised VOS protocol) or
with its box (`prompt: box`), and tracked forward from there by SAM 3's
tracker alone (`Sam3InstanceTracker`). J&F is computed on the annotated
frames of each object without the first and the last (see `metrics.jf`). A
unit is one video. Its payload contains each object's J and F and the
predicted masks of the annotated frames as RLE.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from sam3_radio.evaluate.models import ModelSpec, video_model
from sam3_radio.evaluate.store import OK, UnitResult
from sam3_radio.evaluate.video_tracking import (
    OBJECT_PROMPTS,
    ObjectPrompt,
    ObjectTrackFn,
    Sam3ObjectTracker,
    mask_box,
)
from sam3_radio.metrics.jf import ObjectScore, score_video_masks, summarize_jf
from sam3_radio.predict.export import encode_rle
from sam3_radio.predict.io import ImageReadError, load_image

logger = logging.getLogger(__name__)

FRAMES_FOLDER = "JPEGImages_24fps"
ANNOTATIONS_FOLDER = "Annotations_6fps"
FRAME_SUFFIXES = (".jpg", ".jpeg", ".png")


def read_object_masks(folder: Path, frame_positions: dict[str, int]) -> dict[int, np.ndarray]:
    """Read one object's PNG masks as {frame index: bool [H, W]} (any non-zero pixel is the object)."""
    masks = {}
    for path in sorted(folder.glob("*.png")):
        if path.stem not in frame_positions:
            raise ValueError(
                f"annotation {path} names frame {path.stem!r}, which the video's frame folder "
                "lacks: the annotations belong to another video or frame rate"
            )
        masks[frame_positions[path.stem]] = np.asarray(Image.open(path)) > 0
    return masks


class SavTask:
    """SA-V val or test from `cfg.data.root`, optionally only `cfg.data.videos`."""

    name = "sav"
    latency_unit = "frame"

    def __init__(self, cfg: Any, object_tracker: ObjectTrackFn | None = None):
        self.root = Path(cfg.data.root)
        self.frames_root = self.root / FRAMES_FOLDER
        self.annotations_root = self.root / ANNOTATIONS_FOLDER
        for folder in (self.frames_root, self.annotations_root):
            if not folder.is_dir():
                raise FileNotFoundError(
                    f"SA-V folder {folder} not found: data.root must contain "
                    f"{FRAMES_FOLDER}/ and {ANNOTATIONS_FOLDER}/"
                )
        if cfg.data.get("videos"):
            self.videos = [str(name) for name in cfg.data.videos]
        else:
            self.videos = sorted(path.name for path in self.annotations_root.iterdir() if path.is_dir())
        self.prompt = str(cfg.get("prompt", "mask"))
        if self.prompt not in OBJECT_PROMPTS:
            raise ValueError(f"prompt={self.prompt!r} is invalid: use 'mask' or 'box'")
        self.memory_selection = bool(cfg.get("memory_selection", True))
        self.skip_first_and_last = bool(cfg.get("skip_first_and_last", True))
        self.object_tracker = object_tracker

    def units(self) -> list[str]:
        return list(self.videos)

    def setup(self, spec: ModelSpec, device: str) -> None:
        if self.object_tracker is not None:
            return
        from sam3_radio.predict.instance_tracker import Sam3InstanceTracker

        # Only the tracker runs, so `apply_temporal_disambiguation` changes
        # nothing but the tracker's memory selection.
        model = video_model(
            spec, device, apply_temporal_disambiguation=self.memory_selection
        )
        tracker = Sam3InstanceTracker(model, dtype=spec.dtype)
        self.object_tracker = Sam3ObjectTracker(tracker, prompt=self.prompt)

    def _frame_paths(self, video: str) -> list[Path]:
        folder = self.frames_root / video
        if not folder.is_dir():
            return []
        paths = [path for path in folder.iterdir() if path.suffix.lower() in FRAME_SUFFIXES]
        if all(path.stem.isdigit() for path in paths):
            return sorted(paths, key=lambda path: int(path.stem))
        return sorted(paths)

    def run_unit(self, key: str) -> UnitResult:
        paths = self._frame_paths(key)
        if not paths:
            return UnitResult.skipped(key, f"video {key} has no frames in {self.frames_root / key}")
        positions = {path.stem: index for index, path in enumerate(paths)}
        object_folders = sorted(path for path in (self.annotations_root / key).iterdir() if path.is_dir())
        ground_truths = {folder.name: read_object_masks(folder, positions) for folder in object_folders}
        if not ground_truths:
            return UnitResult.skipped(key, f"video {key} has no annotated object")
        try:
            frames = [np.asarray(load_image(path)) for path in paths]
        except ImageReadError as error:
            return UnitResult.skipped(key, f"video {key}: {error}")

        prompts, numeric_ids = [], {}
        for index, (object_id, masks) in enumerate(sorted(ground_truths.items()), start=1):
            numeric_ids[object_id] = index
            first = next((frame for frame in sorted(masks) if masks[frame].any()), None)
            if first is None:
                logger.warning("video %s object %s is empty in every frame; not prompted", key, object_id)
                continue
            prompts.append(ObjectPrompt(index, first, masks[first], mask_box(masks[first])))

        start = time.perf_counter()
        masklets = self.object_tracker(frames, prompts) if prompts else {}
        seconds = time.perf_counter() - start

        predictions = {
            object_id: masklets.get(numeric_ids[object_id], {}) for object_id in ground_truths
        }
        scores = score_video_masks(key, predictions, ground_truths, self.skip_first_and_last)
        stored_masks = {
            object_id: {
                str(frame): encode_rle(predictions[object_id][frame])
                for frame in ground_truths[object_id]
                if frame in predictions[object_id]
            }
            for object_id in ground_truths
        }
        payload = {
            "objects": [
                {"object_id": item.object_id, "J": item.j, "F": item.f, "num_frames": item.num_frames}
                for item in scores
            ],
            "masks": stored_masks,
        }
        return UnitResult(key, payload, seconds, len(frames))

    def finalize(self, results: dict[str, UnitResult], run_dir: Path) -> dict[str, Any]:
        objects = [
            ObjectScore(key, item["object_id"], item["J"], item["F"], item["num_frames"])
            for key, result in results.items()
            if result.status == OK
            for item in result.payload["objects"]
        ]
        summary = summarize_jf(objects)
        return {
            "headline": {"J&F": summary.jf, "J": summary.j, "F": summary.f},
            "metrics": summary.as_dict(),
            "notes": [
                f"{self.prompt} prompt on each object's first annotated frame; J&F on a "
                "0-100 scale"
                + (", first and last annotated frames not scored" if self.skip_first_and_last else "")
            ],
        }
