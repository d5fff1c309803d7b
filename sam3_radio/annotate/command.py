"""The `sam3-radio annotate` subcommand: Hydra overrides in, dataset files out."""

from __future__ import annotations

import argparse

from sam3_radio.hydra_config import add_config_arguments

DESCRIPTION = """\
Turn the boxes of a dataset into masks with SAM 3 and write COCO JSON (RLE or
polygon masks) and YOLO segmentation labels. Settings come from
configs/annotate.yaml; change any of them with KEY=VALUE overrides.

Rerunning the same command resumes: finished images are kept in
<output.dir>/journal.jsonl, and the final files are rebuilt from it.
"""

EPILOG = """\
main settings (see configs/annotate.yaml for all):
  mode=boxes|concept              one mask per box, or find every instance per category
  input.format=coco|yolo|voc      format of input.annotations
  input.annotations=PATH          COCO JSON file, YOLO labels folder, or VOC XML file/folder
  input.images=DIR                folder the image file names are relative to
  input.classes=FILE              YOLO/VOC class names (data.yaml or one name a line)
  output.dir=DIR                  annotations.json, labels/, data.yaml, summary.json, journal.jsonl
  output.mask_format=rle|polygon  COCO mask encoding (default rle)
  output.coco=true|false          write the COCO JSON
  output.yolo=true|false          write YOLO segmentation labels
  concept.threshold=0.5           score threshold of concept detections
  model.backbone=pe|radio-h|radio-so400m
  model.weights=hf|PATH|random    SAM 3 weights
  model.radio_weights=hf|PATH     C-RADIOv4 weights for radio backbones
  model.device=auto|cpu|cuda      model.dtype=fp32|bf16

example:
  sam3-radio annotate input.format=coco input.annotations=boxes.json input.images=images/ \\
      output.dir=out/ model.backbone=radio-h
"""


def add_annotate_parser(commands: argparse._SubParsersAction) -> None:
    """Add the `annotate` subcommand to the `sam3-radio` parser."""
    parser = commands.add_parser(
        "annotate",
        help="turn dataset boxes into masks (COCO, YOLO, VOC in; COCO and YOLO-seg out)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_arguments(parser, "annotate", "mode=concept output.dir=out/")

def run_annotate(args: argparse.Namespace) -> int:
    """Run `sam3-radio annotate` and print its summary."""
    from omegaconf import OmegaConf
    from tabulate import tabulate

    from sam3_radio.annotate.config import compose_config, settings_from_config
    from sam3_radio.annotate.pipeline import run_annotation

    config = compose_config(args.overrides, args.config_dir)
    if args.print_config:
        print(OmegaConf.to_yaml(config), end="")
        return 0
    settings = settings_from_config(config)
    summary = run_annotation(settings).as_dict()
    rows = [
        ["images", summary["images"]],
        ["images finished", summary["images_finished"]],
        ["images skipped", summary["images_skipped"]],
        ["boxes prompted", summary["boxes_prompted"]],
        ["masks", summary["masks"]],
        ["pre-labels", summary["prelabels"]],
        ["existing masks kept", summary["existing_masks_kept"]],
        ["skipped items", summary["skipped_count"]],
    ]
    rows.extend([f"  {reason}", count] for reason, count in summary["skipped_by_reason"].items())
    print(tabulate(rows, tablefmt="plain"))
    print(f"wrote {settings.output_dir} (details of skipped items in {settings.summary_path})")
    return 0
