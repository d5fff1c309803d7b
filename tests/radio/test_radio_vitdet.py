"""ViTDet block schedule, window partition and merge, and windowed runs against a loop reference."""

from __future__ import annotations

import pytest
import torch

from sam3_radio.radio import RadioModel
from sam3_radio.radio.vitdet import (
    default_global_blocks,
    from_window_order,
    run_blocks,
    to_window_order,
    valid_window_sizes,
)


@pytest.mark.parametrize(
    "depth, expected",
    [
        (32, (7, 15, 23, 31)),  # C-RADIOv4-H, equal to SAM 3's own global blocks
        (27, (5, 11, 17, 23, 26)),  # C-RADIOv4-SO400M: rule blocks plus the last block
        (8, (1, 3, 5, 7)),  # tiny preset
        (3, (0, 1, 2)),  # period 1: every block global
    ],
)
def test_default_global_blocks_rule(depth, expected):
    assert default_global_blocks(depth) == expected


def window_major_indices(rows: int, cols: int, window: int) -> list[int]:
    """Raster indices listed window by window, each window in raster order."""
    order = []
    for window_row in range(rows // window):
        for window_col in range(cols // window):
            for y in range(window):
                for x in range(window):
                    order.append((window_row * window + y) * cols + window_col * window + x)
    return order


@pytest.mark.parametrize("rows, cols, window", [(4, 6, 2), (6, 3, 3), (2, 2, 2), (4, 8, 1)])
def test_window_partition_order(rows, cols, window):
    tokens = torch.arange(rows * cols, dtype=torch.float32).reshape(1, -1, 1)
    permuted = to_window_order(tokens, rows, cols, window)
    assert permuted[0, :, 0].long().tolist() == window_major_indices(rows, cols, window)


@pytest.mark.parametrize("rows, cols, window", [(4, 6, 2), (6, 3, 3)])
def test_window_merge_inverts_partition(rows, cols, window):
    tokens = torch.randn(2, rows * cols, 5)
    restored = from_window_order(to_window_order(tokens, rows, cols, window), rows, cols, window)
    assert torch.equal(restored, tokens)


def run_blocks_reference(blocks, tokens, num_prefix, rows, cols, window, global_blocks):
    """Windowed ViT in raster order: gather each window's tokens, run, scatter back."""
    prefix = tokens[:, :num_prefix].clone()
    patches = tokens[:, num_prefix:].clone()
    windows = [
        torch.tensor(window_major_indices(rows, cols, window)[i : i + window * window])
        for i in range(0, rows * cols, window * window)
    ]
    for index, block in enumerate(blocks):
        if index in global_blocks:
            sequence = block(torch.cat([prefix, patches], dim=1))
            prefix, patches = sequence[:, :num_prefix], sequence[:, num_prefix:].clone()
            continue
        updated = patches.clone()
        for indices in windows:
            updated[:, indices] = block(patches[:, indices])
        patches = updated
    return torch.cat([prefix, patches], dim=1)


@pytest.mark.parametrize("rows, cols, window", [(4, 6, 2), (6, 9, 3), (4, 4, 1)])
def test_windowed_blocks_match_reference(tiny_model, rows, cols, window):
    blocks = tiny_model.blocks
    num_prefix = tiny_model.num_summary_tokens
    tokens = torch.randn(2, num_prefix + rows * cols, tiny_model.config.embed_dim)
    global_blocks = (1, 3, 5, 7)
    with torch.no_grad():
        actual = run_blocks(blocks, tokens, num_prefix, (rows, cols), window, global_blocks)
        expected = run_blocks_reference(
            blocks, tokens, num_prefix, rows, cols, window, global_blocks
        )
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)


def test_prefix_frozen_in_windowed_blocks(tiny_model):
    tokens = torch.randn(1, tiny_model.num_summary_tokens + 16, tiny_model.config.embed_dim)
    with torch.no_grad():
        # Only block 7 is global, so blocks 0..6 must leave the prefix untouched before it.
        windowed_only = run_blocks(tiny_model.blocks[:7], tokens, 8, (4, 4), 2, global_blocks=())
    assert torch.equal(windowed_only[:, :8], tokens[:, :8])


def test_single_window_without_prefix_equals_global(tiny_model):
    tokens = torch.randn(2, 24, tiny_model.config.embed_dim)
    with torch.no_grad():
        windowed = run_blocks(tiny_model.blocks, tokens, 0, (4, 6), 2, global_blocks=())
        one_window = run_blocks(tiny_model.blocks, tokens[:, :16], 0, (4, 4), 4, global_blocks=())
        plain = run_blocks(tiny_model.blocks, tokens[:, :16], 0, (4, 4), None, global_blocks=())
    torch.testing.assert_close(one_window, plain, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(windowed[:, :16], plain, atol=1e-3)


def test_model_window_equal_to_grid_is_global(tiny_model, images):
    windowed = RadioModel(tiny_model.config, adaptor_names=("sam3",), window_size=6)
    windowed.load_state_dict(tiny_model.state_dict(), strict=False)
    batch = images(96, 96)
    with torch.no_grad():
        expected = tiny_model(batch)
        actual = windowed(batch)
    assert torch.equal(actual["backbone"].features, expected["backbone"].features)
    assert torch.equal(actual["sam3"].features, expected["sam3"].features)


def test_model_windowed_changes_output(tiny_model, images):
    windowed = RadioModel(tiny_model.config, adaptor_names=("sam3",), window_size=3)
    windowed.load_state_dict(tiny_model.state_dict(), strict=False)
    batch = images(96, 96)
    with torch.no_grad():
        difference = (windowed(batch)["sam3"].features - tiny_model(batch)["sam3"].features).abs()
    assert difference.max() > 1e-3


def test_valid_window_sizes_of_72_grid():
    assert valid_window_sizes(72, 72) == [1, 2, 3, 4, 6, 8, 9, 12, 18, 24, 36, 72]


def test_invalid_window_error_lists_valid_sizes(tiny_model, images):
    windowed = RadioModel(tiny_model.config, adaptor_names=(), window_size=4)
    with pytest.raises(ValueError) as error:
        windowed(images(96, 96, batch=1))
    assert "[1, 2, 3, 6]" in str(error.value)
    assert "resize=True" in str(error.value)


def test_run_blocks_invalid_window_lists_valid_sizes(tiny_model):
    tokens = torch.randn(1, 8 + 12, tiny_model.config.embed_dim)
    with pytest.raises(ValueError, match=r"Valid window sizes for this grid: \[1, 2\]"):
        run_blocks(tiny_model.blocks, tokens, 8, (2, 6), 4, global_blocks=(7,))
