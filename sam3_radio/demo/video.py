"""The demo's video tab: one text prompt on a short clip, tracked by both backbones.

Video models are built on the first video request, not at start-up, because
each one contains a second copy of SAM 3 beside the image model. Each runner's
tracker keeps one video's session state, so it is used under the runner's
lock. The annotated clips are written as WebM (VP8), which browsers play and
OpenCV's bundled FFmpeg encodes without a system FFmpeg.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import gradio as gr

from sam3_radio.predict.export import RANDOM_WEIGHTS_WARNING

logger = logging.getLogger(__name__)

DEFAULT_FPS = 24.0


@dataclass
class VideoResult:
    """One backbone's annotated clip and what it found."""

    label: str
    path: Path
    num_frames: int
    num_masklets: int
    seconds: float


class VideoRunner:
    """One side of the video comparison: a lazily built video model and its tracker.

    Args:
        label: name shown in the app.
        build_model: returns a video model from `build_sam3_video_model`;
            called once, on the first request.
        dtype: 'fp32' or 'bf16'.
    """

    def __init__(self, label: str, build_model: Callable[[], object], dtype: str = "fp32"):
        self.label = label
        self.dtype = dtype
        self.lock = threading.Lock()
        self._build_model = build_model
        self._tracker = None

    def _get_tracker(self):
        from sam3_radio.predict.video import Sam3VideoTracker

        if self._tracker is None:
            start = time.perf_counter()
            model = self._build_model()
            logger.info("built %s video model in %.1f s", self.label, time.perf_counter() - start)
            self._tracker = Sam3VideoTracker(model, dtype=self.dtype)
        return self._tracker

    def run(self, video: str | Path, text: str, max_frames: int, output_dir: Path) -> VideoResult:
        """Find `text` on frame 0, track it through `max_frames` frames and write the clip."""
        with self.lock:
            tracker = self._get_tracker()
            start = time.perf_counter()
            tracker.set_video(video)
            try:
                tracker.add_prompt(frame_index=0, text=text)
                # `max_frames` of `propagate` counts the frames after the start frame.
                results = dict(tracker.propagate("forward", max_frames=max_frames - 1))
                seconds = time.perf_counter() - start
                banner = RANDOM_WEIGHTS_WARNING if tracker.model.build_info.random_weights else None
                path = output_dir / f"{_file_stem(self.label)}.webm"
                write_clip(path, tracker.frames, results, banner)
            finally:
                tracker.close()
        masklets = {
            int(obj_id)
            for detections in results.values()
            if detections.tracker_id is not None
            for obj_id in detections.tracker_id
        }
        logger.info(
            "%s: tracked %r over %d frames, %d masklets, in %.1f s",
            self.label,
            text,
            len(results),
            len(masklets),
            seconds,
        )
        return VideoResult(self.label, path, len(results), len(masklets), seconds)


def write_clip(path: Path, frames, results: dict, banner: str | None) -> None:
    """Write the frames in `results` (frame index to detections), annotated, as a VP8 WebM."""
    from sam3_radio.predict.video_export import FrameAnnotator

    annotator = FrameAnnotator(banner)
    fps = frames.fps or DEFAULT_FPS
    writer = cv2.VideoWriter(
        str(path), cv2.VideoWriter_fourcc(*"VP80"), fps, (frames.width, frames.height)
    )
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write a VP8 WebM file at {path}")
    try:
        for frame_index in sorted(results):
            scene = annotator.annotate(frames.read_rgb(frame_index), results[frame_index])
            writer.write(cv2.cvtColor(scene, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()


def _file_stem(label: str) -> str:
    return "".join(character if character.isalnum() else "_" for character in label)


def build_video_runners(settings) -> list[VideoRunner]:
    """Return one video runner per configured backbone; the models are built on first use."""
    runners = []
    for backbone in settings.backbones:

        def build(backbone=backbone):
            from sam3_radio.model.video_builder import build_sam3_video_model

            return build_sam3_video_model(
                backbone.backbone,
                weights=backbone.weights,
                radio_weights=backbone.radio_weights,
                window_size=backbone.window_size,
                device=settings.device,
                seed=settings.seed,
            )

        runners.append(VideoRunner(backbone.label, build, settings.dtype))
    return runners


def compare_video(
    runners: Sequence[VideoRunner], video: str | Path | None, text: str | None, max_frames: int
) -> list[VideoResult]:
    """Track `text` through the first `max_frames` frames of `video` with every runner.

    Raises:
        ValueError: no video, an empty text prompt, or an unreadable video.
    """
    if not video:
        raise ValueError("no video: upload a short clip first")
    text = (text or "").strip()
    if not text:
        raise ValueError("no prompt: type a noun phrase such as 'person'")
    if max_frames < 1:
        raise ValueError(f"max_frames={max_frames} must be 1 or more")
    output_dir = Path(tempfile.mkdtemp(prefix="sam3-radio-demo-"))
    return [runner.run(video, text, max_frames, output_dir) for runner in runners]


def video_summary(result: VideoResult) -> str:
    """Return one backbone's frame count, masklet count and time as Markdown."""
    return (
        f"**frames** {result.num_frames} · **masklets** {result.num_masklets} · "
        f"**total** {result.seconds:.1f} s"
    )


def video_tab_builder(runners: Sequence[VideoRunner], max_frames: int) -> Callable[[], None]:
    """Return a function that lays out the video tab inside the current `gr.Tab`."""

    def handle(video, text):
        try:
            results = compare_video(runners, video, text, max_frames)
        except ValueError as error:
            logger.warning("rejected video request: %s", error)
            raise gr.Error(str(error), print_exception=False) from error
        except Exception as error:
            logger.exception("video request failed")
            raise gr.Error(
                f"tracking failed ({type(error).__name__}: {error}). See the server log "
                "for the traceback."
            ) from error
        outputs = []
        for result in results:
            outputs.extend([str(result.path), video_summary(result)])
        return outputs

    def layout() -> None:
        gr.Markdown(
            f"Upload a short clip and type a noun phrase. Both backbones find it on the first "
            f"frame and track it through at most {max_frames} frames."
        )
        with gr.Row():
            video = gr.Video(label="Clip", sources=["upload"], elem_id="video-input")
            with gr.Column():
                text = gr.Textbox(
                    label="Text prompt (noun phrase)",
                    placeholder="e.g. person",
                    elem_id="video-text",
                )
                run = gr.Button("Track with both backbones", variant="primary", elem_id="run-video")
        outputs = []
        with gr.Row():
            for index, runner in enumerate(runners):
                with gr.Column():
                    gr.Markdown(f"### {runner.label}")
                    outputs.append(
                        gr.Video(
                            show_label=False, interactive=False, elem_id=f"video-output-{index}"
                        )
                    )
                    outputs.append(gr.Markdown(elem_id=f"video-summary-{index}"))
        run.click(handle, inputs=[video, text], outputs=outputs)

    return layout
