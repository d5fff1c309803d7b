"""Models for evaluation, built from a `model` config and kept for reuse within a process."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

_CACHE: dict[tuple, Any] = {}


@dataclass(frozen=True)
class ModelSpec:
    """The `model` config node: which trunk, which weights, which precision.

    `name` labels the run in reports and output folders.
    """

    name: str
    backbone: str
    weights: str = "hf"
    radio_weights: str = "hf"
    window_size: int | None = None
    dtype: str = "fp32"
    seed: int = 0

    @classmethod
    def from_config(cls, node: Any) -> ModelSpec:
        data = dict(node)
        missing = {"name", "backbone"} - set(data)
        if missing:
            raise ValueError(f"model config lacks {sorted(missing)}: see configs/eval/model/")
        window = data.get("window_size")
        return cls(
            name=str(data["name"]),
            backbone=str(data["backbone"]),
            weights=str(data.get("weights", "hf")),
            radio_weights=str(data.get("radio_weights", "hf")),
            window_size=None if window is None else int(window),
            dtype=str(data.get("dtype", "fp32")),
            seed=int(data.get("seed", 0)),
        )

    @property
    def run_name(self) -> str:
        """Folder and column name: the model name, plus the window size when set."""
        return self.name if self.window_size is None else f"{self.name}-w{self.window_size}"

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.run_name,
            "backbone": self.backbone,
            "window_size": self.window_size,
            "weights": self.weights,
            "radio_weights": self.radio_weights if "radio" in self.backbone else None,
            "dtype": self.dtype,
            "random_weights": self.weights == "random",
        }


def _build_args(spec: ModelSpec, device: str) -> dict[str, Any]:
    return {
        "weights": spec.weights,
        "radio_weights": spec.radio_weights,
        "window_size": spec.window_size,
        "device": device,
        "seed": spec.seed,
    }


def image_model(spec: ModelSpec, device: str):
    """Return the SAM 3 image model (with the interactive predictor) for `spec`."""
    from sam3_radio.model.builder import build_sam3_image_model

    key = ("image", spec.backbone, spec.weights, spec.radio_weights, spec.window_size, spec.seed, device)
    if key not in _CACHE:
        logger.info("building image model %s on %s", spec.run_name, device)
        _CACHE[key] = build_sam3_image_model(
            spec.backbone, interactive=True, **_build_args(spec, device)
        )
    return _CACHE[key]


def video_model(spec: ModelSpec, device: str, apply_temporal_disambiguation: bool = True):
    """Return the SAM 3 video model for `spec`."""
    from sam3_radio.model.video_builder import build_sam3_video_model

    key = (
        "video",
        spec.backbone,
        spec.weights,
        spec.radio_weights,
        spec.window_size,
        spec.seed,
        device,
        apply_temporal_disambiguation,
    )
    if key not in _CACHE:
        logger.info("building video model %s on %s", spec.run_name, device)
        _CACHE[key] = build_sam3_video_model(
            spec.backbone,
            apply_temporal_disambiguation=apply_temporal_disambiguation,
            **_build_args(spec, device),
        )
    return _CACHE[key]


def clear_cache() -> None:
    """Drop every cached model."""
    _CACHE.clear()
