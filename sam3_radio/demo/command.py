"""The `sam3-radio demo` subcommand: build both backbones and serve the app on localhost."""

from __future__ import annotations

import argparse
import logging
import time

from sam3_radio.hydra_config import add_config_arguments

logger = logging.getLogger(__name__)

# The app is for the local machine only. Reach it from elsewhere through an
# SSH tunnel, e.g. `ssh -L 7860:127.0.0.1:7860 host`.
HOST = "127.0.0.1"

DESCRIPTION = """\
Serve a Gradio app on 127.0.0.1 that runs two SAM 3 backbones (by default the
Perception Encoder and C-RADIOv4-SO400M with window 12) on the same image, text
prompt and example boxes, and shows both overlays, their timings and the
agreement of their masks. Settings come from configs/demo.yaml; change any of
them with KEY=VALUE overrides.
"""

EPILOG = """\
main settings (see configs/demo.yaml for all):
  backbones.N.backbone=pe|radio-h|radio-so400m   trunk of side N (0 or 1)
  backbones.N.window_size=12|null                ViTDet window size of a RADIO side
  weights=hf|PATH|random                         SAM 3 weights of both sides
  radio_weights=hf|PATH                          C-RADIOv4 weights of the RADIO side
  device=auto|cpu|cuda  dtype=fp32|bf16
  server.port=7860  server.concurrency_limit=1  server.max_queue_size=8
  cache.max_entries=8  video.enabled=true|false

examples:
  sam3-radio demo
  sam3-radio demo weights=random
  sam3-radio demo 'backbones=[{backbone:tiny-pe},{backbone:tiny-radio}]' weights=random
"""


def add_demo_parser(commands: argparse._SubParsersAction) -> None:
    """Add the `demo` subcommand to the `sam3-radio` parser."""
    parser = commands.add_parser(
        "demo",
        help="Gradio app comparing two backbones side by side (localhost only)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_arguments(parser, "demo", "weights=random server.port=7861")

def build_runners(settings) -> list:
    """Build one image model and runner per configured backbone, sharing one feature cache."""
    from sam3_radio.demo.cache import FeatureCache
    from sam3_radio.demo.comparison import BackboneRunner
    from sam3_radio.model.builder import build_sam3_image_model

    cache = FeatureCache(settings.cache_entries)
    runners = []
    for backbone in settings.backbones:
        start = time.perf_counter()
        model = build_sam3_image_model(
            backbone.backbone,
            weights=backbone.weights,
            radio_weights=backbone.radio_weights,
            window_size=backbone.window_size,
            device=settings.device,
            interactive=False,
            seed=settings.seed,
        )
        logger.info("built %s in %.1f s", backbone.label, time.perf_counter() - start)
        runners.append(BackboneRunner(backbone.label, model, cache, settings.dtype))
    return runners


def create_app(settings, runners, video_runners=None):
    """Build the app for `settings` with a request queue of bounded size and concurrency."""
    from sam3_radio.demo.ui import build_app

    video_tab = None
    if video_runners is not None:
        from sam3_radio.demo.video import video_tab_builder

        video_tab = video_tab_builder(video_runners, settings.video_max_frames)
    app = build_app(
        runners,
        threshold=settings.threshold,
        max_image_side=settings.max_image_side,
        video_tab=video_tab,
    )
    app.queue(
        default_concurrency_limit=settings.concurrency_limit,
        max_size=settings.max_queue_size,
    )
    return app


def launch_app(app, settings, *, port: int | None = None, block: bool = True):
    """Serve `app` on 127.0.0.1; return without blocking when `block` is False."""
    return app.launch(
        server_name=HOST,
        server_port=port or settings.port,
        share=False,
        prevent_thread_lock=not block,
        max_file_size=settings.max_file_size,
        quiet=not block,
    )


def run_demo(args: argparse.Namespace) -> int:
    """Run `sam3-radio demo` until the server is stopped."""
    from omegaconf import OmegaConf

    from sam3_radio.demo.config import compose_config, settings_from_config

    config = compose_config(args.overrides, args.config_dir)
    if args.print_config:
        print(OmegaConf.to_yaml(config), end="")
        return 0
    settings = settings_from_config(config)
    runners = build_runners(settings)
    video_runners = None
    if settings.video_enabled:
        from sam3_radio.demo.video import build_video_runners

        video_runners = build_video_runners(settings)
    app = create_app(settings, runners, video_runners)
    launch_app(app, settings)
    return 0
