"""Trunk probes: the composed full-trunk cost and the block loop baseline."""

import pytest
import torch

from sam3_radio.bench import trunks
from sam3_radio.bench.measure import count_flops, peak_memory, time_call
from sam3_radio.radio import RADIO_PRESETS, RadioModel
from sam3_radio.radio.vitdet import run_blocks

CPU = torch.device("cpu")


def test_probe_composition_equals_full_trunk():
    # At 256 px the full SO400M trunk is cheap enough to count directly. A windowed case
    # composes both block kinds.
    case = trunks.TrunkCase("radio-so400m", 8, resolution=256)
    composed = trunks.ProbeTimer(CPU, repeats=1, warmup=0).measure(case, torch.float32)
    full = trunks.build_full_trunk(case, CPU)
    images = trunks.random_images(case, CPU)
    with torch.inference_mode():
        full_flops = count_flops(lambda: full(images))
    assert composed.flops == full_flops
    assert composed.parameter_bytes == 4 * sum(p.numel() for p in full.parameters())
    assert composed.seconds > 0


def test_probe_block_counts_follow_radio_rule():
    probe = trunks.build_probe(trunks.TrunkCase("radio-so400m", 12, resolution=384), CPU)
    assert (probe.windowed_count, probe.global_count) == (22, 5)
    probe = trunks.build_probe(trunks.TrunkCase("radio-h", None, resolution=192), CPU)
    assert (probe.windowed_count, probe.global_count) == (0, 32)


def test_pe_probe_has_one_block_of_each_kind():
    probe = trunks.build_probe(trunks.TrunkCase("pe"), CPU)
    assert (probe.windowed_count, probe.global_count) == (28, 4)
    assert probe.windowed_block.window_size == 24
    assert probe.global_block.window_size == 0
    assert probe.windowed_input.shape == (1, 72, 72, 1024)


def test_window_equal_to_grid_counts_as_global():
    case = trunks.TrunkCase("radio-so400m", 12, resolution=192)
    assert case.attention == "global"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"backbone": "pe", "window_size": 8}, "RADIO trunks only"),
        ({"backbone": "radio-h", "window_size": 5}, "does not divide the 72x72"),
        ({"backbone": "tiny-pe"}, "unknown trunk backbone"),
    ],
)
def test_trunk_case_rejects_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        trunks.TrunkCase(**kwargs)


@pytest.mark.parametrize("window_size", [2, 4, 8])
def test_block_loop_equals_straightforward_loop(window_size):
    radio = RadioModel(RADIO_PRESETS["tiny"], adaptor_names=("sam3",), window_size=window_size)
    generator = torch.Generator().manual_seed(0)
    prefix = radio.num_summary_tokens
    tokens = torch.randn(2, prefix + 16 * 24, radio.config.embed_dim, generator=generator)
    with torch.inference_mode():
        ours = run_blocks(radio.blocks, tokens, prefix, (16, 24), window_size, radio.global_blocks)
        plain = trunks.straightforward_blocks(
            list(radio.blocks), tokens, prefix, (16, 24), window_size, radio.global_blocks
        )
    torch.testing.assert_close(ours, plain, rtol=0, atol=1e-5)


def test_flop_count_includes_cpu_attention():
    query = torch.randn(1, 4, 100, 32)
    flops = count_flops(lambda: torch.nn.functional.scaled_dot_product_attention(query, query, query))
    # Two products of [100, 32] x [32, 100] sized work per head, 2 FLOPs per multiply-add.
    assert flops == 2 * 2 * 4 * 100 * 100 * 32


def test_peak_memory_sees_a_large_allocation():
    with peak_memory(CPU) as memory:
        block = torch.ones(64 * 2**20 // 4)
        del block
    assert memory["peak_bytes"] >= 60 * 2**20


def test_time_call_rejects_zero_repeats():
    with pytest.raises(ValueError, match="repeats=0"):
        time_call(lambda: None, CPU, repeats=0)
