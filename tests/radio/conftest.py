"""Shared fixtures for the C-RADIO tests: tiny configs and models, and no network access."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from sam3_radio.radio import RADIO_PRESETS, RadioConfig
from sam3_radio.radio.writers import build_model


@pytest.fixture(autouse=True)
def offline_hub(monkeypatch):
    """Keep huggingface_hub from sending requests during the tests."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(autouse=True)
def single_thread():
    """Run on one thread: on tiny tensors, thread hand-off costs more than the work."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny_config() -> RadioConfig:
    """Tiny preset with a 512 px position table, so every test forward stays cheap."""
    return dataclasses.replace(RADIO_PRESETS["tiny"], cpe_max_size=512, max_resolution=512)


@pytest.fixture
def tiny_model(tiny_config):
    """Random tiny model with every teacher head, identical for a given config."""
    return build_model(tiny_config, seed=3)


@pytest.fixture
def images():
    """Return a function making a fixed random batch `[B, 3, H, W]` in [0, 1]."""

    def make(height: int, width: int, batch: int = 2, seed: int = 0) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed)
        return torch.rand(batch, 3, height, width, generator=generator)

    return make
