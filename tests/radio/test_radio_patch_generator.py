"""Patch embedding, CPE crop and token order against hand-built references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sam3_radio.radio.patch_generator import PatchGenerator, crop_position_embedding, patchify


def bilinear_reference(grid: np.ndarray, out_rows: int, out_cols: int) -> np.ndarray:
    """Resize a [G, G, D] grid with align_corners=False bilinear interpolation, in loops."""
    in_rows, in_cols, dim = grid.shape
    result = np.zeros((out_rows, out_cols, dim))
    for y in range(out_rows):
        src_y = max((y + 0.5) * in_rows / out_rows - 0.5, 0.0)
        y0 = math.floor(src_y)
        y1 = min(y0 + 1, in_rows - 1)
        wy = src_y - y0
        for x in range(out_cols):
            src_x = max((x + 0.5) * in_cols / out_cols - 0.5, 0.0)
            x0 = math.floor(src_x)
            x1 = min(x0 + 1, in_cols - 1)
            wx = src_x - x0
            top = (1 - wx) * grid[y0, x0] + wx * grid[y0, x1]
            bottom = (1 - wx) * grid[y1, x0] + wx * grid[y1, x1]
            result[y, x] = (1 - wy) * top + wy * bottom
    return result


def cpe_reference(table: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Square resize to max(rows, cols), then keep the top-left rows x cols corner."""
    grid_side = int(round(math.sqrt(table.shape[0])))
    grid = table.reshape(grid_side, grid_side, -1)
    side = max(rows, cols)
    square = bilinear_reference(grid, side, side)
    return square[:rows, :cols].reshape(rows * cols, -1)


@pytest.mark.parametrize(
    "grid, rows, cols",
    [
        (6, 3, 5),  # downscale 6 -> 5, keep 3 rows
        (6, 5, 2),  # downscale 6 -> 5, keep 2 columns
        (4, 6, 3),  # upscale 4 -> 6, keep 3 columns
        (5, 5, 5),  # downscale 5 -> 5 is the identity
        (4, 2, 2),  # square downscale
    ],
)
def test_cpe_crop_matches_loop_reference(grid, rows, cols):
    generator = torch.Generator().manual_seed(grid * 100 + rows * 10 + cols)
    table = torch.randn(1, grid * grid, 3, generator=generator)
    expected = cpe_reference(table[0].double().numpy(), rows, cols)
    actual = crop_position_embedding(table, rows, cols)[0].double().numpy()
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-6)


def test_cpe_full_grid_returns_table():
    table = torch.randn(1, 16, 4)
    assert crop_position_embedding(table, 4, 4) is table


def test_cpe_under_autocast_stays_fp32():
    table = torch.randn(1, 36, 8)
    expected = crop_position_embedding(table, 3, 5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        actual = crop_position_embedding(table, 3, 5)
    assert actual.dtype == torch.float32
    assert torch.equal(actual, expected)


def test_patchify_equals_stride16_conv():
    generator = torch.Generator().manual_seed(1)
    images = torch.randn(2, 3, 32, 48, generator=generator)
    kernel = torch.randn(5, 3, 16, 16, generator=generator)
    conv = F.conv2d(images, kernel, stride=16).flatten(2).transpose(1, 2)
    linear = patchify(images, 16) @ kernel.reshape(5, -1).T
    torch.testing.assert_close(linear, conv, rtol=1e-4, atol=1e-4)


def test_patchify_flattens_channel_row_column():
    images = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    patches = patchify(images, 2)
    # Patch (row 1, col 0) of image 1 holds pixels y in 2..3, x in 0..1 of each channel.
    expected = [
        images[1, c, 2 + dy, 0 + dx].item() for c in range(3) for dy in range(2) for dx in range(2)
    ]
    assert patches[1, 2].tolist() == expected


@pytest.fixture
def order_generator():
    """Generator with 2 prefix tokens whose patch token equals its raster index plus 100."""
    generator = PatchGenerator(embed_dim=2, patch_size=16, pos_grid_size=3, num_prefix_tokens=2)
    with torch.no_grad():
        generator.embedder.weight.zero_()
        generator.embedder.weight[0] = 1.0 / (3 * 16 * 16)
        generator.pos_embed.zero_()
        generator.pos_embed[0, :, 1] = 100.0
        generator.prefix_tokens.copy_(torch.tensor([[-1.0, -2.0], [-3.0, -4.0]]))
    return generator


def test_token_order_prefix_first(order_generator):
    image = torch.zeros(1, 3, 48, 48)
    for index in range(9):
        row, col = divmod(index, 3)
        image[:, :, row * 16 : (row + 1) * 16, col * 16 : (col + 1) * 16] = float(index)
    with torch.no_grad():
        tokens = order_generator(image)[0]
    assert tokens[:2].tolist() == [[-1.0, -2.0], [-3.0, -4.0]]
    assert torch.allclose(tokens[2:, 0], torch.arange(9, dtype=torch.float32), atol=1e-5)


def test_token_order_no_position_on_prefix(order_generator):
    with torch.no_grad():
        tokens = order_generator(torch.zeros(1, 3, 48, 48))[0]
    assert tokens[:2, 1].tolist() == [-2.0, -4.0]
    assert tokens[2:, 1].tolist() == [100.0] * 9
