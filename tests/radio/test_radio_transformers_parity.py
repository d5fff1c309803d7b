"""Backbone equality with transformers' native RadioModel on identical random weights, in fp32."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from sam3_radio.radio import load_radio, write_hf_checkpoint

transformers_radio = pytest.importorskip("transformers.models.radio")

RESOLUTIONS = [(512, 512), (256, 384), (384, 160), (144, 96), (16, 32)]


@pytest.fixture(scope="module")
def reference_model():
    """transformers RadioModel with a 512 px table and random non-trivial weights."""
    config = transformers_radio.RadioConfig(
        hidden_size=64,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_cls_tokens=3,
        num_registers=5,
        max_img_size=512,
        summary_idxs=[0, 2],
        norm_mean=[0.4, 0.5, 0.6],
        norm_std=[0.2, 0.3, 0.25],
    )
    model = transformers_radio.RadioModel(config).eval()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            noise = torch.randn(parameter.shape, generator=generator)
            parameter.copy_(1.0 + 0.2 * noise if "norm" in name else 0.05 * noise)
    return model


@pytest.fixture(scope="module")
def saved_folder(reference_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("native")
    reference_model.save_pretrained(folder)
    return folder


def compare(ours, reference, height, width):
    images = torch.rand(
        2, 3, height, width, generator=torch.Generator().manual_seed(height + width)
    )
    with torch.no_grad():
        expected = reference(pixel_values=images)
        actual = ours(images)["backbone"]
    return actual, expected


@pytest.mark.parametrize("height, width", RESOLUTIONS)
def test_features_equal_transformers(saved_folder, reference_model, height, width):
    ours = load_radio(saved_folder, adaptor_names=())
    actual, expected = compare(ours, reference_model, height, width)
    torch.testing.assert_close(actual.features, expected.features, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("height, width", RESOLUTIONS[:3])
def test_summary_equals_transformers(saved_folder, reference_model, height, width):
    ours = load_radio(saved_folder, adaptor_names=())
    actual, expected = compare(ours, reference_model, height, width)
    torch.testing.assert_close(actual.summary, expected.summary, rtol=1e-5, atol=1e-5)


def test_in_memory_key_names_load(tmp_path, saved_folder, reference_model):
    state = {key: value.contiguous() for key, value in reference_model.state_dict().items()}
    save_file(state, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text((saved_folder / "config.json").read_text())
    ours = load_radio(tmp_path, adaptor_names=())
    actual, expected = compare(ours, reference_model, 256, 384)
    torch.testing.assert_close(actual.features, expected.features, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("height, width", [(96, 160), (512, 512)])
def test_native_writer_loads_in_transformers(tmp_path, tiny_model, height, width):
    folder = write_hf_checkpoint(tiny_model, tmp_path / "native", layout="native")
    reference = transformers_radio.RadioModel.from_pretrained(folder).eval()
    actual, expected = compare(tiny_model, reference, height, width)
    torch.testing.assert_close(actual.features, expected.features, rtol=1e-5, atol=1e-5)
