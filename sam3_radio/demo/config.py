"""Compose and check the demo configuration (configs/demo.yaml)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from sam3_radio.hydra_config import compose_named_config
from sam3_radio.model.builder import BACKBONES, check_window_size, get_backbone_preset
from sam3_radio.model.device import SUPPORTED_DTYPES

CONFIG_NAME = "demo"
NUM_BACKBONES = 2
BACKBONE_KEYS = {"backbone", "window_size", "weights", "radio_weights", "label"}


class DemoConfigError(ValueError):
    """Raised when a demo setting is missing or invalid."""


def compose_config(overrides: list[str], config_dir: Path | None = None) -> DictConfig:
    """Compose demo.yaml with Hydra command-line `overrides` such as `weights=random`."""
    return compose_named_config(CONFIG_NAME, overrides, config_dir, DemoConfigError)


@dataclass(frozen=True)
class BackboneSettings:
    """One side of the comparison: a trunk, its ViTDet window size and its weights."""

    backbone: str
    window_size: int | None
    weights: str
    radio_weights: str
    label: str


@dataclass(frozen=True)
class DemoSettings:
    """Checked demo settings."""

    backbones: tuple[BackboneSettings, ...]
    device: str
    dtype: str
    seed: int
    threshold: float
    max_image_side: int
    cache_entries: int
    port: int
    concurrency_limit: int
    max_queue_size: int
    max_file_size: str
    video_enabled: bool
    video_max_frames: int

    @property
    def random_weights(self) -> bool:
        """Whether any backbone runs with random weights."""
        return any(backbone.weights == "random" for backbone in self.backbones)


def _default_label(backbone: str, window_size: int | None) -> str:
    if window_size is None:
        return backbone
    return f"{backbone} (window {window_size})"


def _backbone_settings(index: int, entry: Any, defaults: dict[str, Any]) -> BackboneSettings:
    where = f"backbones[{index}]"
    if not isinstance(entry, dict):
        raise DemoConfigError(
            f"{where} must be a mapping such as {{backbone: pe, window_size: null}}, got {entry!r}"
        )
    unknown = set(entry) - BACKBONE_KEYS
    if unknown:
        raise DemoConfigError(
            f"{where} has unknown keys {sorted(unknown)}: use {sorted(BACKBONE_KEYS)}"
        )
    if "backbone" not in entry:
        raise DemoConfigError(f"{where}.backbone is missing: use one of {sorted(BACKBONES)}")

    name = str(entry["backbone"])
    window_size = entry.get("window_size")
    try:
        preset = get_backbone_preset(name)
        if window_size is not None:
            window_size = int(window_size)
        check_window_size(preset, window_size)
    except (TypeError, ValueError) as error:
        raise DemoConfigError(f"{where}: {error}") from error

    weights = entry.get("weights") or defaults["weights"]
    radio_weights = entry.get("radio_weights") or defaults["radio_weights"]
    label = entry.get("label") or _default_label(name, window_size)
    return BackboneSettings(
        backbone=name,
        window_size=window_size,
        weights=str(weights),
        radio_weights=str(radio_weights),
        label=str(label),
    )


def _positive_int(config: dict[str, Any], path: str) -> int:
    value: Any = config
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            raise DemoConfigError(f"{path} is missing from the demo configuration")
        value = value[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise DemoConfigError(f"{path}={value!r} must be a positive integer")
    return value


def settings_from_config(config: DictConfig) -> DemoSettings:
    """Check a composed demo configuration and return it as `DemoSettings`."""
    try:
        data = OmegaConf.to_container(config, resolve=True, throw_on_missing=True)
    except Exception as error:  # omegaconf raises several unrelated types here
        raise DemoConfigError(f"cannot resolve the demo configuration: {error}") from error

    entries = data.get("backbones")
    if not isinstance(entries, list) or len(entries) != NUM_BACKBONES:
        raise DemoConfigError(
            f"backbones must list exactly {NUM_BACKBONES} entries to compare, got {entries!r}"
        )
    defaults = {
        "weights": data.get("weights", "hf"),
        "radio_weights": data.get("radio_weights", "hf"),
    }
    backbones = tuple(
        _backbone_settings(index, entry, defaults) for index, entry in enumerate(entries)
    )
    labels = [backbone.label for backbone in backbones]
    if len(set(labels)) != len(labels):
        raise DemoConfigError(
            f"both backbones are labelled {labels[0]!r}: give them distinct `label`s"
        )

    dtype = str(data.get("dtype", "fp32"))
    if dtype not in SUPPORTED_DTYPES:
        raise DemoConfigError(f"dtype={dtype!r} is invalid: use one of {sorted(SUPPORTED_DTYPES)}")
    threshold = float(data.get("threshold", 0.5))
    if not 0.0 <= threshold < 1.0:
        raise DemoConfigError(f"threshold={threshold} must be in [0, 1)")
    server = data.get("server") or {}
    port = _positive_int(data, "server.port")
    if port > 65535:
        raise DemoConfigError(f"server.port={port} must be at most 65535")
    video = data.get("video") or {}
    return DemoSettings(
        backbones=backbones,
        device=str(data.get("device", "auto")),
        dtype=dtype,
        seed=int(data.get("seed", 0)),
        threshold=threshold,
        max_image_side=_positive_int(data, "max_image_side"),
        cache_entries=_positive_int(data, "cache.max_entries"),
        port=port,
        concurrency_limit=_positive_int(data, "server.concurrency_limit"),
        max_queue_size=_positive_int(data, "server.max_queue_size"),
        max_file_size=str(server.get("max_file_size", "20mb")),
        video_enabled=bool(video.get("enabled", True)),
        video_max_frames=_positive_int(data, "video.max_frames"),
    )
