"""Hydra configs of the subcommands (configs/<name>.yaml): folder, composition, CLI options."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from omegaconf import DictConfig

CONFIG_DIR_VARIABLE = "SAM3_RADIO_CONFIG_DIR"


def default_config_dir() -> Path:
    """Return `$SAM3_RADIO_CONFIG_DIR`, or the repository's `configs/` folder beside the package."""
    if os.environ.get(CONFIG_DIR_VARIABLE):
        return Path(os.environ[CONFIG_DIR_VARIABLE])
    # NOTE: configs/ sits beside the package in the source tree. An installed wheel
    # has no copy of it, so there the folder must be given with --config-dir.
    return Path(__file__).resolve().parents[1] / "configs"


def compose_named_config(
    name: str,
    overrides: list[str],
    config_dir: Path | None,
    error_type: type[ValueError],
) -> DictConfig:
    """Compose `<name>.yaml` with Hydra command-line `overrides`, raising `error_type` on failure."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException

    config_dir = Path(config_dir or default_config_dir()).resolve()
    if not (config_dir / f"{name}.yaml").is_file():
        raise error_type(
            f"{name}.yaml not found in {config_dir}: pass --config-dir or set "
            f"${CONFIG_DIR_VARIABLE} to the folder that contains it"
        )
    try:
        with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
            return compose(config_name=name, overrides=list(overrides))
    except HydraException as error:
        raise error_type(f"invalid override in {overrides}: {error}") from error


def add_config_arguments(parser: argparse.ArgumentParser, name: str, example: str) -> None:
    """Add the overrides, `--config-dir` and `--print-config` options of a Hydra subcommand."""
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help=f"Hydra overrides of configs/{name}.yaml, e.g. {example}",
    )
    parser.add_argument(
        "--config-dir",
        type=Path,
        default=None,
        help=f"folder with {name}.yaml (default: ${CONFIG_DIR_VARIABLE}, else the repository's "
        "configs/)",
    )
    parser.add_argument(
        "--print-config",
        action="store_true",
        help="print the composed configuration and exit without running",
    )
