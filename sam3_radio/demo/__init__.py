"""Gradio demo that compares two SAM 3 backbones on the same prompts.

The app logic lives in importable modules so that it can be tested without a
browser: `editor` (boxes from brush strokes), `cache` (LRU of encoded images),
`comparison` (runners and timings), `agreement` (matched mask IoU), `ui`
(the Gradio layout) and `command` (the `sam3-radio demo` subcommand).
"""
