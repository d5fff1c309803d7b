"""Compose and check the `annotate` configuration (configs/annotate.yaml)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from sam3_radio.hydra_config import compose_named_config

CONFIG_NAME = "annotate"
MODES = ("boxes", "concept")
INPUT_FORMATS = ("coco", "yolo", "voc")
MASK_FORMATS = ("rle", "polygon")
CONCEPT_CATEGORIES = ("present", "all")


class AnnotateConfigError(ValueError):
    """Raised when an `annotate` setting is missing or invalid."""


def compose_config(overrides: list[str], config_dir: Path | None = None) -> DictConfig:
    """Compose annotate.yaml with Hydra command-line `overrides` such as `mode=concept`."""
    return compose_named_config(CONFIG_NAME, overrides, config_dir, AnnotateConfigError)


@dataclass(frozen=True)
class ModelSettings:
    backbone: str
    weights: str
    radio_weights: str
    window_size: int | None
    device: str
    dtype: str
    seed: int


@dataclass(frozen=True)
class AnnotateSettings:
    """Checked `annotate` settings. Paths are absolute."""

    mode: str
    input_format: str
    annotations: Path
    images: Path
    classes: Path | None
    output_dir: Path
    write_coco: bool
    coco_file: str
    mask_format: str
    write_yolo: bool
    polygon_simplification: float
    batch_size: int
    keep_existing_masks: bool
    concept_text: bool
    concept_example_boxes: bool
    concept_categories: str
    concept_threshold: float
    duplicate_iou: float | None
    model: ModelSettings
    max_warnings_per_reason: int

    @property
    def coco_path(self) -> Path:
        return self.output_dir / self.coco_file

    @property
    def journal_path(self) -> Path:
        return self.output_dir / "journal.jsonl"

    @property
    def summary_path(self) -> Path:
        return self.output_dir / "summary.json"

    @property
    def labels_dir(self) -> Path:
        return self.output_dir / "labels"

    @property
    def data_yaml_path(self) -> Path:
        return self.output_dir / "data.yaml"

    def journal_fingerprint(self) -> dict[str, Any]:
        """Return the settings that change journal records, so a resume can check them.

        Output settings are left out because the final files are rebuilt from
        the journal on every run. The device is left out so a run can resume on
        another machine.
        """
        return {
            "mode": self.mode,
            "input_format": self.input_format,
            "keep_existing_masks": self.keep_existing_masks,
            "concept": {
                "text": self.concept_text,
                "example_boxes": self.concept_example_boxes,
                "categories": self.concept_categories,
                "threshold": self.concept_threshold,
                "duplicate_iou": self.duplicate_iou,
            }
            if self.mode == "concept"
            else None,
            "model": {
                "backbone": self.model.backbone,
                "weights": self.model.weights,
                "radio_weights": self.model.radio_weights,
                "window_size": self.model.window_size,
                "dtype": self.model.dtype,
                "seed": self.model.seed,
            },
        }


def _require(config: DictConfig, key: str) -> Any:
    value = OmegaConf.select(config, key, throw_on_missing=False)
    if value is None or OmegaConf.is_missing(config, key):
        raise AnnotateConfigError(f"{key} is not set: pass {key}=VALUE on the command line")
    return value


def _choice(config: DictConfig, key: str, choices: tuple[str, ...]) -> str:
    value = str(_require(config, key))
    if value not in choices:
        raise AnnotateConfigError(f"invalid {key}={value!r}: use one of {list(choices)}")
    return value


def _fraction(config: DictConfig, key: str) -> float:
    value = float(_require(config, key))
    if not 0.0 <= value < 1.0:
        raise AnnotateConfigError(f"invalid {key}={value}: expected a value in [0, 1)")
    return value


def _optional_path(value: Any) -> Path | None:
    return None if value in (None, "") else Path(str(value)).expanduser().resolve()


def settings_from_config(config: DictConfig) -> AnnotateSettings:
    """Check a composed config and return it as `AnnotateSettings`."""
    batch_size = int(_require(config, "boxes.batch_size"))
    if batch_size < 1:
        raise AnnotateConfigError(f"invalid boxes.batch_size={batch_size}: expected at least 1")
    duplicate_iou = OmegaConf.select(config, "concept.duplicate_iou")
    if duplicate_iou is not None:
        duplicate_iou = float(duplicate_iou)
        if not 0.0 < duplicate_iou <= 1.0:
            raise AnnotateConfigError(
                f"invalid concept.duplicate_iou={duplicate_iou}: expected a value in (0, 1] or null"
            )
    window_size = OmegaConf.select(config, "model.window_size")
    settings = AnnotateSettings(
        mode=_choice(config, "mode", MODES),
        input_format=_choice(config, "input.format", INPUT_FORMATS),
        annotations=_optional_path(_require(config, "input.annotations")),
        images=_optional_path(_require(config, "input.images")),
        classes=_optional_path(OmegaConf.select(config, "input.classes")),
        output_dir=_optional_path(_require(config, "output.dir")),
        write_coco=bool(_require(config, "output.coco")),
        coco_file=str(_require(config, "output.coco_file")),
        mask_format=_choice(config, "output.mask_format", MASK_FORMATS),
        write_yolo=bool(_require(config, "output.yolo")),
        polygon_simplification=_fraction(config, "output.polygon_simplification"),
        batch_size=batch_size,
        keep_existing_masks=bool(_require(config, "boxes.keep_existing_masks")),
        concept_text=bool(_require(config, "concept.text")),
        concept_example_boxes=bool(_require(config, "concept.example_boxes")),
        concept_categories=_choice(config, "concept.categories", CONCEPT_CATEGORIES),
        concept_threshold=_fraction(config, "concept.threshold"),
        duplicate_iou=duplicate_iou,
        model=ModelSettings(
            backbone=str(_require(config, "model.backbone")),
            weights=str(_require(config, "model.weights")),
            radio_weights=str(_require(config, "model.radio_weights")),
            window_size=None if window_size is None else int(window_size),
            device=str(_require(config, "model.device")),
            dtype=str(_require(config, "model.dtype")),
            seed=int(_require(config, "model.seed")),
        ),
        max_warnings_per_reason=int(_require(config, "max_warnings_per_reason")),
    )
    _check_consistency(settings)
    return settings


def _check_consistency(settings: AnnotateSettings) -> None:
    if Path(settings.coco_file).name != settings.coco_file:
        raise AnnotateConfigError(
            f"invalid output.coco_file={settings.coco_file!r}: give a file name, "
            "the folder is output.dir"
        )
    if not settings.write_coco and not settings.write_yolo:
        raise AnnotateConfigError("output.coco and output.yolo are both false: enable at least one")
    if settings.mode == "concept":
        if not settings.concept_text and not settings.concept_example_boxes:
            raise AnnotateConfigError(
                "concept.text and concept.example_boxes are both false: a concept prompt "
                "needs a category name, example boxes, or both"
            )
        if settings.concept_categories == "all" and not settings.concept_text:
            raise AnnotateConfigError(
                "concept.categories=all needs concept.text=true, because a category "
                "without boxes in an image can be prompted only by its name"
            )
    _check_output_paths(settings)


def _check_output_paths(settings: AnnotateSettings) -> None:
    """Reject output paths that would overwrite an input file or folder."""
    inputs = {settings.annotations, settings.images}
    if settings.classes is not None:
        inputs.add(settings.classes)
    outputs = {
        "output.dir": settings.output_dir,
        "the COCO output": settings.coco_path,
        "the journal": settings.journal_path,
        "the summary": settings.summary_path,
        "the YOLO labels folder": settings.labels_dir,
        "the YOLO data.yaml": settings.data_yaml_path,
    }
    for name, path in outputs.items():
        if path in inputs:
            raise AnnotateConfigError(
                f"{name} {path} is also an input: choose another output.dir so that "
                "input files are never overwritten"
            )
    labels_in, labels_out = settings.annotations, settings.labels_dir
    overlapping = labels_in.is_relative_to(labels_out) or labels_out.is_relative_to(labels_in)
    if settings.input_format == "yolo" and settings.write_yolo and overlapping:
        raise AnnotateConfigError(
            f"the YOLO labels folder {labels_out} overlaps the input labels {labels_in}: "
            "choose another output.dir so that input files are never overwritten"
        )
