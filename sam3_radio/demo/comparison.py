"""Run two backbones on the same image and prompts, and compare their masks.

Each `BackboneRunner` owns one image predictor. A predictor keeps the features
of one image at a time, so every use of it (restore or encode the features,
then decode the prompt) happens under the runner's lock. Image features come
from a `FeatureCache` shared by all sessions, so a new prompt on a known image
runs only the decoder.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import supervision as sv
import torch
from PIL import Image

from sam3_radio.demo.agreement import Agreement, match_masks
from sam3_radio.demo.cache import EncodedImage, FeatureCache, image_digest
from sam3_radio.predict.export import RANDOM_WEIGHTS_WARNING, draw_overlay
from sam3_radio.predict.image import Sam3ImagePredictor

logger = logging.getLogger(__name__)


@dataclass
class Prompt:
    """A concept prompt: a noun phrase and/or example boxes (pixel xyxy [N, 4])."""

    text: str | None
    boxes: np.ndarray
    negative_boxes: np.ndarray

    def check(self) -> None:
        """Raise ValueError unless the prompt has a noun phrase or a positive box."""
        if self.text is not None and not self.text.strip():
            self.text = None
        if self.text is None and len(self.boxes) == 0:
            if len(self.negative_boxes):
                raise ValueError(
                    "invalid prompt: negative boxes need a text prompt or a positive (green) box"
                )
            raise ValueError(
                "missing prompt: type a noun phrase such as 'truck' and/or draw a positive "
                "(green) box"
            )


@dataclass
class BackboneResult:
    """One backbone's answer to a prompt.

    `encoder_seconds` is the time of `set_image`, or 0.0 when the features
    came from the cache. `total_seconds` covers the encoder (or the cache
    lookup) and the decoder with mask upsampling, not the drawing of the overlay.
    """

    label: str
    detections: sv.Detections
    overlay: np.ndarray
    encoder_seconds: float
    total_seconds: float
    cached: bool


@dataclass
class Comparison:
    """The results of both backbones on one image and prompt, and their agreement."""

    results: list[BackboneResult]
    agreement: Agreement


def _synchronize(device: torch.device) -> None:
    # CUDA kernels run asynchronously, so a timer must wait for them to finish.
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class BackboneRunner:
    """One side of the comparison: a model, its predictor, a lock and the shared cache.

    Args:
        label: name shown in the app and used in cache keys; unique per runner.
        model: a `Sam3Image` from `build_sam3_image_model`.
        cache: feature cache shared by the runners.
        dtype: 'fp32' or 'bf16'.
    """

    def __init__(self, label: str, model, cache: FeatureCache, dtype: str = "fp32"):
        self.label = label
        self.model = model
        self.cache = cache
        self.predictor = Sam3ImagePredictor(model, dtype=dtype)
        self.lock = threading.Lock()

    @property
    def random_weights(self) -> bool:
        info = getattr(self.model, "build_info", None)
        return bool(info is not None and info.random_weights)

    def _restore_or_encode(self, image: Image.Image, digest: str) -> tuple[bool, float]:
        """Load the image's features into the predictor; return (cache hit, encoder seconds)."""
        key = (digest, self.label)
        entry = self.cache.get(key)
        predictor = self.predictor
        if entry is not None:
            predictor.restore_encoded_image(entry)
            return True, 0.0

        start = time.perf_counter()
        predictor.set_image(image)
        _synchronize(predictor.device)
        seconds = time.perf_counter() - start
        self.cache.put(key, predictor.encoded_image())
        return False, seconds

    def run(
        self, image: Image.Image, digest: str, prompt: Prompt, threshold: float
    ) -> BackboneResult:
        """Segment `image` (RGB) with `prompt`, encoding it only if the cache lacks it."""
        with self.lock:
            start = time.perf_counter()
            cached, encoder_seconds = self._restore_or_encode(image, digest)
            detections = self.predictor.predict(
                text=prompt.text,
                boxes=prompt.boxes,
                negative_boxes=prompt.negative_boxes,
                threshold=threshold,
            )
            total_seconds = time.perf_counter() - start
        logger.info(
            "%s: %d detections for %r in %.2f s (encoder %s)",
            self.label,
            len(detections),
            prompt.text,
            total_seconds,
            "cached" if cached else f"{encoder_seconds:.2f} s",
        )
        banner = RANDOM_WEIGHTS_WARNING if self.random_weights else None
        return BackboneResult(
            label=self.label,
            detections=detections,
            overlay=draw_overlay(image, detections, banner),
            encoder_seconds=encoder_seconds,
            total_seconds=total_seconds,
            cached=cached,
        )


def compare_backbones(
    runners: Sequence[BackboneRunner], image: Image.Image, prompt: Prompt, threshold: float
) -> Comparison:
    """Run every runner on `image` and `prompt` in turn and score the agreement of the first two.

    The runners run one after another, not in parallel, so that each one's
    timings are not slowed by the other's.
    """
    prompt.check()
    if not 0.0 <= threshold < 1.0:
        raise ValueError(f"threshold {threshold} is outside [0, 1): use e.g. 0.5")
    digest = image_digest(image)
    results = [runner.run(image, digest, prompt, threshold) for runner in runners]
    agreement = match_masks(results[0].detections.mask, results[1].detections.mask)
    return Comparison(results=results, agreement=agreement)


def detection_rows(detections: sv.Detections) -> list[list]:
    """Return one table row per detection: index, class, score and pixel xyxy box."""
    names = detections.data.get("class_name", ["object"] * len(detections))
    rows = []
    for index in range(len(detections)):
        box = ", ".join(f"{value:.0f}" for value in detections.xyxy[index])
        rows.append([index, str(names[index]), round(float(detections.confidence[index]), 3), box])
    return rows
