"""ViTDet windowed attention for a plain ViT: block schedule, token order and the block loop.

Windowed blocks attend inside non-overlapping, unpadded, unshifted ws x ws windows of patch
tokens. The cls and register tokens are held out of windowed blocks, so they keep their value
from the last global block and change only in global blocks. Patch tokens are permuted once to
window-major order on entry and back on exit, so switching between windowed and global blocks is
a reshape. Global blocks see the permuted sequence, which is harmless because attention has no
relative position term.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import nn

DEFAULT_NUM_GLOBAL = 4


def default_global_blocks(depth: int, num_global: int = DEFAULT_NUM_GLOBAL) -> tuple[int, ...]:
    """Return the indices of global-attention blocks under RADIO's default ViTDet rule.

    With period P = max(depth // num_global, 1), block i is global when i % P == P - 1, and the
    last block is always global. Depth 32 gives (7, 15, 23, 31), depth 27 gives
    (5, 11, 17, 23, 26) and depth 8 gives (1, 3, 5, 7).
    """
    period = max(depth // num_global, 1)
    blocks = {i for i in range(depth) if i % period == period - 1}
    blocks.add(depth - 1)
    return tuple(sorted(blocks))


def valid_window_sizes(rows: int, cols: int) -> list[int]:
    """Return the window sizes that tile a rows x cols token grid without padding."""
    return [size for size in range(1, min(rows, cols) + 1) if rows % size == 0 and cols % size == 0]


def check_window_size(window_size: int, rows: int, cols: int) -> None:
    """Raise ValueError unless `window_size` divides both sides of the token grid."""
    if rows % window_size == 0 and cols % window_size == 0:
        return
    raise ValueError(
        f"Window size {window_size} does not divide the {rows} x {cols} token grid. Valid window "
        f"sizes for this grid: {valid_window_sizes(rows, cols)}. Alternatively, resize the input "
        f"to a multiple of patch_size * window_size pixels on each side."
    )


def to_window_order(patches: torch.Tensor, rows: int, cols: int, window_size: int) -> torch.Tensor:
    """Permute raster-ordered patch tokens to window-major order.

    Args:
        patches: `[B, rows*cols, D]` in raster order.

    Returns:
        `[B, rows*cols, D]`: windows in raster order, then the ws x ws tokens of each window in
        raster order, so a reshape to `[B*num_windows, ws*ws, D]` yields the windows.
    """
    batch, _, dim = patches.shape
    ws = window_size
    grid = patches.reshape(batch, rows // ws, ws, cols // ws, ws, dim)
    return grid.permute(0, 1, 3, 2, 4, 5).reshape(batch, rows * cols, dim)


def from_window_order(
    patches: torch.Tensor, rows: int, cols: int, window_size: int
) -> torch.Tensor:
    """Invert `to_window_order`: `[B, rows*cols, D]` window-major back to raster order."""
    batch, _, dim = patches.shape
    ws = window_size
    grid = patches.reshape(batch, rows // ws, cols // ws, ws, ws, dim)
    return grid.permute(0, 1, 3, 2, 4, 5).reshape(batch, rows * cols, dim)


def run_blocks(
    blocks: Sequence[nn.Module],
    tokens: torch.Tensor,
    num_prefix_tokens: int,
    grid: tuple[int, int],
    window_size: int | None,
    global_blocks: Iterable[int],
) -> torch.Tensor:
    """Run transformer blocks, windowing every block not listed in `global_blocks`.

    Args:
        tokens: `[B, num_prefix + rows*cols, D]` with patch tokens in raster order.
        grid: (rows, cols) of the patch token grid.
        window_size: None runs every block with global attention.

    Returns:
        `[B, num_prefix + rows*cols, D]`, patch tokens in raster order.
    """
    if window_size is None:
        for block in blocks:
            tokens = block(tokens)
        return tokens

    rows, cols = grid
    check_window_size(window_size, rows, cols)
    global_set = set(global_blocks)
    prefix = tokens[:, :num_prefix_tokens]
    patches = to_window_order(tokens[:, num_prefix_tokens:], rows, cols, window_size)
    batch, num_patches, dim = patches.shape
    windows_shape = (batch * (num_patches // window_size**2), window_size**2, dim)

    for index, block in enumerate(blocks):
        if index in global_set:
            sequence = block(torch.cat([prefix, patches], dim=1))
            prefix = sequence[:, :num_prefix_tokens]
            patches = sequence[:, num_prefix_tokens:]
        else:
            windows = block(patches.reshape(windows_shape))
            patches = windows.reshape(batch, num_patches, dim)

    patches = from_window_order(patches, rows, cols, window_size)
    return torch.cat([prefix, patches], dim=1)
