"""Evaluation harnesses: COCO (text and box prompts), SA-Co/Gold, SA-Co/VEval and SA-V.

Each task is configured by a Hydra config in `configs/eval/<task>.yaml` with
the model from the `configs/eval/model/` group. `eval/<task>.py` runs it as a
Hydra app (multirun over models with `-m model=pe,radio_h`), and
`sam3-radio eval <task>` composes the same configs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

logger = logging.getLogger(__name__)

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs" / "eval"
TASK_NAMES = ("coco_text", "coco_box", "gold", "veval", "sav")

def create_task(cfg: Any, **tracker: Any):
    """Build the task that `cfg.task` names.

    `tracker` passes a `concept_tracker` (veval) or `object_tracker` (sav)
    callable in place of the SAM 3 video tracker.
    """
    from sam3_radio.evaluate.coco_tasks import CocoBoxTask, CocoTextTask
    from sam3_radio.evaluate.gold_task import GoldTask
    from sam3_radio.evaluate.sav_task import SavTask
    from sam3_radio.evaluate.veval_task import VEvalTask

    classes = {
        "coco_text": CocoTextTask,
        "coco_box": CocoBoxTask,
        "gold": GoldTask,
        "veval": VEvalTask,
        "sav": SavTask,
    }
    if cfg.task not in classes:
        raise ValueError(f"unknown evaluation task {cfg.task!r}: use one of {TASK_NAMES}")
    return classes[cfg.task](cfg, **tracker)


def compose_config(task: str, overrides: Sequence[str] = (), config_dir: Path = CONFIG_DIR) -> DictConfig:
    """Compose `configs/eval/<task>.yaml` with Hydra overrides such as `model=radio_h`."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if task not in TASK_NAMES:
        raise ValueError(f"unknown evaluation task {task!r}: use one of {TASK_NAMES}")
    if not config_dir.is_dir():
        raise FileNotFoundError(f"evaluation configs not found at {config_dir}")
    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
        cfg = compose(config_name=task, overrides=list(overrides))
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ValueError(
            f"evaluation config {task} needs {', '.join(missing)}: pass e.g. {missing[0]}=PATH"
        )
    return cfg


def evaluate(cfg: DictConfig, **tracker: Any) -> dict[str, Any] | None:
    """Run the task of `cfg` with `cfg.model`; return its metrics on rank 0."""
    from sam3_radio.evaluate.runner import run_evaluation

    return run_evaluation(cfg, create_task(cfg, **tracker))
