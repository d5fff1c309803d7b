"""The `sam3-radio eval` subcommand: compose a task's Hydra config and run it per model."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from sam3_radio.evaluate import TASK_NAMES

logger = logging.getLogger(__name__)

EVAL_EPILOG = """examples:
  sam3-radio eval coco_text data.annotations=instances_val2017.json data.images=val2017 \\
      --models pe radio_h radio_so400m
  sam3-radio eval veval data.gt_file=saco_veval_sav_test.json predictions_file=preds.json
  sam3-radio eval report outputs/eval/coco_text
  torchrun --nproc-per-node 8 -m sam3_radio.cli eval gold data.root=/data/gold model=radio_h
"""


def add_eval_parser(commands: argparse._SubParsersAction) -> None:
    """Add the `eval` subcommand to the `sam3-radio` parser."""
    parser = commands.add_parser(
        "eval",
        help="evaluate backbones on COCO, SA-Co/Gold, SA-Co/VEval or SA-V",
        description="Run an evaluation task with the configs in configs/eval/. Overrides use "
        "Hydra syntax (key=value). Each model writes <out_dir>/<model>/metrics.json, and "
        "<out_dir>/report.md and report.png compare every model run into out_dir. "
        "'report DIR' redraws the report of an output folder.",
        epilog=EVAL_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("task", choices=[*TASK_NAMES, "report"], help="evaluation task")
    parser.add_argument(
        "overrides",
        nargs="*",
        help="Hydra overrides such as model=radio_h model.window_size=8 data.images=DIR; "
        "for 'report', the output folder",
    )
    parser.add_argument(
        "--models",
        nargs="+",
        default=None,
        metavar="NAME",
        help="model configs (configs/eval/model/) to run one after another, "
        "e.g. pe radio_h radio_so400m (default: the config's model)",
    )


def run_eval(args: argparse.Namespace) -> int:
    """Run `sam3-radio eval`; print each model's headline metrics."""
    from sam3_radio.evaluate import compose_config, evaluate
    from sam3_radio.evaluate.report import write_report

    if args.task == "report":
        if len(args.overrides) != 1:
            raise ValueError("eval report takes one output folder, e.g. outputs/eval/coco_text")
        markdown, plot = write_report(Path(args.overrides[0]))
        print(markdown.read_text())
        print(f"wrote {markdown} and {plot}")
        return 0

    if any(item.startswith("model=") for item in args.overrides) and args.models:
        raise ValueError("pass the model either as model=NAME or with --models, not both")
    runs = [[f"model={name}"] for name in args.models] if args.models else [[]]
    for extra in runs:
        cfg = compose_config(args.task, [*args.overrides, *extra])
        metrics = evaluate(cfg)
        if metrics is None:
            continue
        values = ", ".join(f"{name} {value:.4g}" for name, value in metrics["headline"].items() if value is not None)
        print(f"{args.task} {metrics['model']['name']}: {values or 'no metrics'}")
        for note in metrics.get("notes", []):
            print(f"  note: {note}")
        print(f"report: {Path(cfg.out_dir) / 'report.md'}")
    return 0
