"""The Gradio app: two backbones side by side on the same image and prompts.

`build_app` lays out the components and wires them to `compare_image`, which
does the work and can be called without a browser. Per-session data (the
table of this session's runs) lives in `gr.State`, so sessions never see each
other's results. Models, predictors and the feature cache are shared by all
sessions and guarded by locks (see `comparison`).
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import gradio as gr

from sam3_radio.demo.comparison import (
    BackboneRunner,
    Comparison,
    Prompt,
    compare_backbones,
    detection_rows,
)
from sam3_radio.demo.editor import (
    NEGATIVE_COLOR,
    POSITIVE_COLOR,
    css_rgb,
    limit_image_side,
    parse_editor_value,
)

logger = logging.getLogger(__name__)

SAMPLES_DIR = Path(__file__).resolve().parents[1] / "samples"
DETECTION_HEADERS = ["#", "class", "score", "box x0, y0, x1, y1"]
MAX_PAIRS_SHOWN = 10
HISTORY_HEADERS = ["run", "prompt", "positive boxes", "negative boxes", "agreement"]

BOX_HELP = (
    "Draw example boxes with the brush: **green** strokes are positive examples, **red** "
    "strokes negative ones. Each separate stroke becomes one box, the rectangle around it, "
    "so outline an object or scribble over it."
)
AGREEMENT_HELP = (
    "Agreement is the mean mask IoU after Hungarian matching of the two backbones' masks. "
    "Each mask without a partner (or whose best partner does not overlap it) counts as IoU 0. "
    "When neither backbone finds anything the agreement is 1."
)


def sample_images() -> dict[str, str]:
    """Return the shipped sample images by name, e.g. {'truck': '/.../truck.jpg'}."""
    return {path.stem: str(path) for path in sorted(SAMPLES_DIR.glob("*.jpg"))}


def random_weights_banner(runners: Sequence) -> str:
    """Return an HTML warning naming the backbones with random weights, or ''."""
    labels = [html.escape(runner.label) for runner in runners if runner.random_weights]
    if not labels:
        return ""
    return (
        f"<b style='color:inherit'>RANDOM WEIGHTS ({', '.join(labels)}): masks and scores "
        "are meaningless.</b> Start the demo with real weights (weights=hf or a sam3.pt "
        "path) to compare the backbones."
    )


def timing_text(result) -> str:
    """Return the encoder and total times of one backbone as Markdown."""
    encoder = "cached" if result.cached else f"{result.encoder_seconds:.2f} s"
    return (
        f"**encoder** {encoder} · **total** {result.total_seconds:.2f} s · "
        f"**detections** {len(result.detections)}"
    )


def agreement_text(comparison: Comparison) -> str:
    """Return the agreement score and its matched pairs as Markdown."""
    agreement = comparison.agreement
    first, second = (result.label for result in comparison.results[:2])
    lines = [f"### Agreement: {agreement.score:.3f}"]
    lines.append(
        f"{len(agreement.matches)} matched pairs, {len(agreement.unmatched_first)} masks of "
        f"{first} and {len(agreement.unmatched_second)} of {second} unmatched."
    )
    if agreement.matches:
        listed = agreement.matches[:MAX_PAIRS_SHOWN]
        pairs = ", ".join(f"#{match.first}↔#{match.second} ({match.iou:.2f})" for match in listed)
        hidden = len(agreement.matches) - len(listed)
        if hidden:
            pairs += f" and {hidden} more"
        lines.append(f"Pairs ({first} ↔ {second}, IoU): {pairs}")
    return "\n\n".join(lines)


def _history_row(run: int, prompt: Prompt, comparison: Comparison) -> list:
    return [
        run,
        prompt.text or "",
        len(prompt.boxes),
        len(prompt.negative_boxes),
        round(comparison.agreement.score, 3),
    ]


def compare_image(
    runners: Sequence[BackboneRunner],
    editor_value,
    text: str | None,
    threshold: float,
    history: list[list] | None,
    max_image_side: int,
    notify: Callable[[str], None] | None = None,
) -> tuple[Comparison, list[list]]:
    """Run both backbones on the editor's image, text and boxes.

    Args:
        runners: the two backbones.
        editor_value: the `gr.ImageEditor` value (see `editor.parse_editor_value`).
        text: noun phrase, or empty for boxes only.
        threshold: score threshold in [0, 1).
        history: this session's rows of earlier runs.
        max_image_side: longer image side, in pixels, above which the image and
            its boxes are downscaled first.
        notify: called with a message when the image was downscaled.

    Returns:
        The comparison and the session's history with this run appended.

    Raises:
        ValueError: no image, no prompt, or an invalid box or threshold.
    """
    prompt_input = parse_editor_value(editor_value)
    prompt_input, scale = limit_image_side(prompt_input, max_image_side)
    if scale != 1.0 and notify is not None:
        width, height = prompt_input.image.size
        notify(f"The image was downscaled to {width}x{height} for segmentation.")
    prompt = Prompt(
        text=(text or "").strip() or None,
        boxes=prompt_input.boxes,
        negative_boxes=prompt_input.negative_boxes,
    )
    width, height = prompt_input.image.size
    logger.info(
        "request on a %dx%d image: text %r, positive boxes %s, negative boxes %s",
        width,
        height,
        prompt.text,
        prompt.boxes.round(1).tolist(),
        prompt.negative_boxes.round(1).tolist(),
    )
    comparison = compare_backbones(runners, prompt_input.image, prompt, float(threshold))
    history = list(history or [])
    history.append(_history_row(len(history) + 1, prompt, comparison))
    return comparison, history


def _image_handler(runners: Sequence[BackboneRunner], max_image_side: int):
    """Return the event handler of the run button, turning failures into `gr.Error`."""

    def handle(editor_value, text, threshold, history):
        try:
            comparison, history = compare_image(
                runners, editor_value, text, threshold, history, max_image_side, gr.Info
            )
        except ValueError as error:
            logger.warning("rejected image request: %s", error)
            raise gr.Error(str(error), print_exception=False) from error
        except Exception as error:
            logger.exception("image request failed")
            raise gr.Error(
                f"segmentation failed ({type(error).__name__}: {error}). See the server log "
                "for the traceback."
            ) from error
        outputs = []
        for result in comparison.results:
            outputs.extend([result.overlay, detection_rows(result.detections), timing_text(result)])
        outputs.extend([agreement_text(comparison), history, history])
        return outputs

    return handle


def _image_tab(runners: Sequence[BackboneRunner], threshold: float, max_image_side: int) -> None:
    samples = sample_images()
    history = gr.State([])
    with gr.Row():
        with gr.Column(scale=3):
            editor = gr.ImageEditor(
                label="Image (draw example boxes here)",
                type="numpy",
                image_mode="RGBA",
                sources=["upload", "clipboard"],
                transforms=(),
                layers=False,
                brush=gr.Brush(
                    colors=[css_rgb(POSITIVE_COLOR), css_rgb(NEGATIVE_COLOR)],
                    default_color=css_rgb(POSITIVE_COLOR),
                    color_mode="fixed",
                ),
                elem_id="image-editor",
            )
        with gr.Column(scale=2):
            sample = gr.Dropdown(
                choices=list(samples), value=None, label="Sample image", elem_id="sample-image"
            )
            text = gr.Textbox(
                label="Text prompt (noun phrase)",
                placeholder="e.g. truck",
                elem_id="text-prompt",
            )
            gr.Markdown(BOX_HELP)
            threshold_slider = gr.Slider(
                0.0, 0.99, value=threshold, step=0.01, label="Score threshold", elem_id="threshold"
            )
            run = gr.Button("Run both backbones", variant="primary", elem_id="run-image")

    outputs = []
    with gr.Row():
        for index, runner in enumerate(runners):
            with gr.Column():
                # The label goes above the image, because Gradio's label badge
                # would cover the overlay's random-weights banner.
                gr.Markdown(f"### {runner.label}")
                outputs.append(
                    gr.Image(
                        label=runner.label,
                        show_label=False,
                        type="numpy",
                        format="jpeg",
                        interactive=False,
                        elem_id=f"overlay-{index}",
                    )
                )
                outputs.append(
                    gr.Dataframe(
                        headers=DETECTION_HEADERS,
                        label=f"{runner.label} detections",
                        interactive=False,
                        max_height=300,
                        elem_id=f"detections-{index}",
                    )
                )
                outputs.append(gr.Markdown(elem_id=f"timing-{index}"))
    agreement = gr.Markdown(elem_id="agreement")
    gr.Markdown(AGREEMENT_HELP)
    history_table = gr.Dataframe(
        headers=HISTORY_HEADERS,
        label="Runs in this session",
        interactive=False,
        elem_id="history",
    )

    sample.change(lambda name: samples.get(name), inputs=sample, outputs=editor)
    run.click(
        _image_handler(runners, max_image_side),
        inputs=[editor, text, threshold_slider, history],
        outputs=[*outputs, agreement, history_table, history],
    )


def build_app(
    runners: Sequence[BackboneRunner],
    *,
    threshold: float = 0.5,
    max_image_side: int = 2048,
    video_tab: Callable[[], None] | None = None,
) -> gr.Blocks:
    """Lay out the demo for two runners; `video_tab` adds the video tab's components."""
    if len(runners) != 2:
        raise ValueError(f"the demo compares exactly 2 backbones, got {len(runners)}")
    labels = " vs ".join(runner.label for runner in runners)
    # analytics_enabled=False also turns off Gradio's version check, so the
    # server contacts no host but the browser that opens it.
    with gr.Blocks(title=f"SAM 3: {labels}", analytics_enabled=False) as app:
        gr.Markdown(f"# SAM 3 backbones side by side: {labels}")
        banner = random_weights_banner(runners)
        if banner:
            gr.HTML(
                f'<div style="background:#b40000;color:white;padding:8px 12px;'
                f'border-radius:6px">{banner}</div>',
                elem_id="random-weights-banner",
            )
        with gr.Tab("Image"):
            _image_tab(runners, threshold, max_image_side)
        if video_tab is not None:
            with gr.Tab("Video"):
                video_tab()
    return app
