"""Whole-pipeline latency: one text prompt per image, further prompts, and video frames."""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from sam3_radio.bench.measure import synchronize
from sam3_radio.model.builder import build_sam3_image_model
from sam3_radio.model.video_builder import build_sam3_video_model
from sam3_radio.predict.image import Sam3ImagePredictor
from sam3_radio.predict.video import Sam3VideoTracker

logger = logging.getLogger(__name__)

# Ten COCO category names, the prompts of the many-prompts measurement.
PROMPTS = (
    "truck", "car", "person", "window", "wheel", "tree", "road", "sign", "building", "sky",
)


@dataclass(frozen=True)
class ImagePipelineResult:
    """Latency of the image pipeline with one backbone, in seconds."""

    backbone: str
    window_size: int | None
    dtype: str
    encode_s: float
    one_prompt_s: float
    many_prompts_s: float | None
    num_prompts: int | None

    @property
    def end_to_end_s(self) -> float:
        """Encode the image, then run one text prompt."""
        return self.encode_s + self.one_prompt_s

    @property
    def further_prompt_s(self) -> float | None:
        """Cost of each prompt beyond the first in one batch on the encoded image."""
        if self.many_prompts_s is None:
            return None
        return (self.many_prompts_s - self.one_prompt_s) / (self.num_prompts - 1)

    @property
    def many_to_one_ratio(self) -> float | None:
        if self.many_prompts_s is None:
            return None
        return self.many_prompts_s / self.one_prompt_s


@dataclass(frozen=True)
class VideoResult:
    """Latency of text-prompted video tracking with one backbone, in seconds."""

    backbone: str
    window_size: int | None
    dtype: str
    prompt_s: float
    per_frame_s: float
    frames: int


def _timed(function) -> tuple[object, float]:
    start = time.perf_counter()
    result = function()
    return result, time.perf_counter() - start


def measure_image_pipeline(
    backbone: str,
    window_size: int | None,
    device: torch.device,
    dtype: str,
    image_path: Path,
    num_prompts: int | None = 10,
) -> ImagePipelineResult:
    """Time encoding, one text prompt, and `num_prompts` prompts in one batch on one image.

    The model has random weights. The one-prompt call runs twice and the
    second run counts, so that one-time setup does not count as prompt cost.
    With `num_prompts` None the many-prompts batch is skipped.
    """
    if num_prompts is not None and not 2 <= num_prompts <= len(PROMPTS):
        raise ValueError(f"invalid num_prompts={num_prompts}: use 2 to {len(PROMPTS)}")
    model = build_sam3_image_model(
        backbone, weights="random", window_size=window_size, device=device, interactive=False
    )
    predictor = Sam3ImagePredictor(model, dtype=dtype)
    image = Image.open(image_path).convert("RGB")
    texts = list(PROMPTS[: num_prompts or 1])

    def encode() -> None:
        predictor.set_image(image)
        synchronize(device)

    def one() -> None:
        predictor.predict_texts(texts[:1])
        synchronize(device)

    def many() -> None:
        predictor.predict_texts(texts)
        synchronize(device)

    _, encode_s = _timed(encode)
    one()
    _, one_s = _timed(one)
    many_s = _timed(many)[1] if num_prompts else None
    return ImagePipelineResult(
        backbone=backbone,
        window_size=window_size,
        dtype=dtype,
        encode_s=encode_s,
        one_prompt_s=one_s,
        many_prompts_s=many_s,
        num_prompts=num_prompts,
    )


def measure_video(
    backbone: str,
    window_size: int | None,
    device: torch.device,
    dtype: str,
    frames_dir: Path,
    frames: int = 2,
) -> VideoResult:
    """Time a text prompt on frame 0 and the propagation through the next `frames` frames.

    The per-frame latency is the time of the prompt and the propagation
    together divided by the `frames` + 1 frames processed, because SAM 3 may
    run the detector on frames ahead while it handles the prompt. The model
    has random weights, so the detector finds few or no objects and the
    tracker's share of the time is what a video with few objects costs.
    """
    if frames < 1:
        raise ValueError(f"invalid frames={frames}: propagate at least 1 frame")
    sources = sorted(Path(frames_dir).glob("*.jpg"))[: frames + 1]
    if len(sources) < frames + 1:
        raise ValueError(
            f"{frames_dir} has {len(sources)} JPEG frames, but the video benchmark needs "
            f"{frames + 1}: lower video.frames or pass a longer video"
        )
    model = build_sam3_video_model(
        backbone, weights="random", window_size=window_size, device=device
    )
    tracker = Sam3VideoTracker(model, dtype=dtype)
    with tempfile.TemporaryDirectory() as folder:
        for index, source in enumerate(sources):
            (Path(folder) / f"{index:05d}.jpg").symlink_to(source.resolve())
        tracker.set_video(folder)
        _, prompt_s = _timed(lambda: tracker.add_prompt(0, text="person"))
        _, propagate_s = _timed(lambda: list(tracker.propagate(max_frames=frames)))
        tracker.close()
    return VideoResult(
        backbone=backbone,
        window_size=window_size,
        dtype=dtype,
        prompt_s=prompt_s,
        per_frame_s=(prompt_s + propagate_s) / (frames + 1),
        frames=frames,
    )
