"""Box-prompt annotation: turn the boxes of a dataset into masks, resumably.

Entry points: `sam3-radio annotate` on the command line, or
`run_annotation(settings_from_config(compose_config([...])))` in Python.
"""

from sam3_radio.annotate.config import (
    AnnotateConfigError,
    AnnotateSettings,
    compose_config,
    settings_from_config,
)
from sam3_radio.annotate.pipeline import AnnotationSummary, run_annotation

__all__ = [
    "AnnotateConfigError",
    "AnnotateSettings",
    "AnnotationSummary",
    "compose_config",
    "run_annotation",
    "settings_from_config",
]
