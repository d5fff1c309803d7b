"""A vectorised stand-in for `sam3`'s CPU connected-component areas, for fast tests.

`sam3.perflib.connected_components.connected_components_cpu_single` (sam3 0.1.4)
sums one boolean image per component in a Python loop. Random-weight masks have
thousands of components, so one box prompt takes seconds on a CPU. This version
counts every label with one `bincount` and returns the same labels and areas;
`test_fast_components_match_sam3` checks that on random masks.
"""

from __future__ import annotations

import torch


def connected_components_cpu_single(values: torch.Tensor):
    from skimage.measure import label

    labels, count = label(values.cpu().numpy(), return_num=True)
    labels = torch.from_numpy(labels)
    areas = torch.bincount(labels.flatten(), minlength=count + 1)
    areas[0] = 0
    return labels, areas[labels].to(labels.dtype)


def sam3_loop_version():
    """Return `sam3`'s own function, also after `install`."""
    from sam3.perflib import connected_components

    return getattr(connected_components, "_loop_version", None) or (
        connected_components.connected_components_cpu_single
    )


def install() -> None:
    """Replace the loop in the `sam3` module for this process."""
    from sam3.perflib import connected_components

    original = sam3_loop_version()
    connected_components._loop_version = original
    connected_components.connected_components_cpu_single = connected_components_cpu_single
