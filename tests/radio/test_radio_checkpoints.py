"""Loading tiny checkpoints in every official layout, and the errors for broken ones."""

from __future__ import annotations

import argparse
import dataclasses

import pytest
import torch

from sam3_radio.radio import (
    CheckpointKeyError,
    UntrustedCheckpointError,
    load_radio,
    write_hf_checkpoint,
    write_torchhub_checkpoint,
)
from sam3_radio.radio.writers import build_model, config_to_args, model_to_hub_state

ALL_TEACHERS = ("siglip2-g", "dino_v3", "sam3")


@pytest.fixture
def scaled_config(tiny_config):
    """Tiny config with LayerScale, a final norm and a feature normalizer."""
    return dataclasses.replace(
        tiny_config, layer_scale=True, final_norm=True, feature_normalizer=True
    )


@pytest.fixture
def scaled_model(scaled_config):
    model = build_model(scaled_config, seed=4)
    generator = torch.Generator().manual_seed(9)
    with torch.no_grad():
        for name, buffer in model.named_buffers():
            if name.startswith(("feature_normalizer.", "input_conditioner.")):
                buffer.add_(torch.rand(buffer.shape, generator=generator) * 0.1)
        for name, parameter in model.named_parameters():
            if name.endswith(".gamma"):
                parameter.copy_(torch.rand(parameter.shape, generator=generator) + 0.5)
    return model


def max_difference(first, second) -> dict[str, float]:
    return {
        name: (first[name].features - second[name].features).abs().max().item() for name in first
    }


TORCHHUB_CASES = {
    "plain_fp32": dict(half=False),
    "plain_half": dict(half=True),
    "spectral": dict(half=False, spectral=True),
    "damp": dict(half=False, damp=True),
    "spectral_damp": dict(half=False, spectral=True, damp=True),
    "ema": dict(half=False, ema=True),
    "gamma": dict(half=False, layer_scale_name="gamma"),
    "grandma": dict(half=False, layer_scale_name="grandma"),
    "name_keys": dict(half=False, teacher_key="name"),
}


@pytest.mark.parametrize("case", sorted(TORCHHUB_CASES))
def test_torchhub_layout_loads(tmp_path, scaled_model, images, case):
    options = TORCHHUB_CASES[case]
    path = write_torchhub_checkpoint(scaled_model, tmp_path / "radio.pth.tar", **options)
    loaded = load_radio(path, adaptor_names=ALL_TEACHERS)
    batch = images(64, 96)
    source = scaled_model
    if options.get("half"):
        source = build_model(scaled_model.config)
        source.load_state_dict({k: v.half().float() for k, v in scaled_model.state_dict().items()})
    with torch.no_grad():
        differences = max_difference(loaded(batch), source(batch))
    tolerance = 1e-4 if options.get("spectral") else 1e-6
    assert max(differences.values()) < tolerance, differences


def test_torchhub_loaded_config_matches_source(tmp_path, scaled_model):
    path = write_torchhub_checkpoint(scaled_model, tmp_path / "radio.pth.tar", half=False)
    config = load_radio(path, adaptor_names=ALL_TEACHERS).config
    source = scaled_model.config
    assert (
        dataclasses.replace(config, norm_mean=source.norm_mean, norm_std=source.norm_std) == source
    )


def test_torchhub_conditioner_values_from_file(tmp_path, scaled_model):
    path = write_torchhub_checkpoint(scaled_model, tmp_path / "radio.pth.tar", half=False)
    config = load_radio(path, adaptor_names=ALL_TEACHERS).config
    stored = scaled_model.input_conditioner.norm_mean.reshape(-1).tolist()
    assert config.norm_mean == pytest.approx(stored)


def test_torchhub_args_override_preset(tmp_path, tiny_config):
    changed = dataclasses.replace(tiny_config, num_registers=2, depth=3, num_heads=2)
    path = write_torchhub_checkpoint(changed, tmp_path / "radio.pth.tar")
    loaded = load_radio(path, adaptor_names=("sam3",))
    assert (loaded.config.num_registers, loaded.config.depth, loaded.config.num_heads) == (2, 3, 2)


def test_torchhub_sam3_head_only(tmp_path, tiny_model):
    path = write_torchhub_checkpoint(tiny_model, tmp_path / "radio.pth.tar")
    loaded = load_radio(path)
    assert loaded.adaptor_names == ("sam3",)
    assert loaded.feature_dim("sam3") == 64


def test_torchhub_bf16_args_dtype_casts_backbone(tmp_path, tiny_config, images):
    config = dataclasses.replace(tiny_config, backbone_dtype="bfloat16")
    path = write_torchhub_checkpoint(config, tmp_path / "radio.pth.tar")
    loaded = load_radio(path)
    assert loaded.blocks[0].attn.qkv.weight.dtype == torch.bfloat16
    assert loaded.adaptors["sam3"].feature_head.fc1.weight.dtype == torch.float32
    with torch.no_grad():
        features = loaded(images(32, 32, batch=1))["sam3"].features
    assert features.dtype == torch.float32


@pytest.mark.parametrize("layout", ["remote", "native"])
def test_hf_layout_loads(tmp_path, tiny_model, images, layout):
    folder = write_hf_checkpoint(tiny_model, tmp_path / layout, layout=layout)
    names = ALL_TEACHERS if layout == "remote" else ()
    loaded = load_radio(folder, adaptor_names=names)
    batch = images(96, 64)
    with torch.no_grad():
        expected = tiny_model(batch)
        differences = max_difference(loaded(batch), {k: expected[k] for k in ("backbone", *names)})
    assert max(differences.values()) == 0.0, differences


def test_hf_remote_with_normalizers_loads(tmp_path, scaled_model, images):
    folder = write_hf_checkpoint(scaled_model, tmp_path / "remote", layout="remote")
    loaded = load_radio(folder, adaptor_names=ALL_TEACHERS)
    batch = images(64, 64)
    with torch.no_grad():
        differences = max_difference(loaded(batch), scaled_model(batch))
    assert max(differences.values()) == 0.0, differences


def test_hf_native_rejects_adaptor_request(tmp_path, tiny_model):
    folder = write_hf_checkpoint(tiny_model, tmp_path / "native", layout="native")
    with pytest.raises(ValueError, match="adaptor_names=()"):
        load_radio(folder, adaptor_names=("sam3",))


def save_checkpoint(path, args, state):
    torch.save({"args": args, "state_dict": state}, path)
    return path


def test_key_error_lists_every_problem(tmp_path, tiny_model):
    state = model_to_hub_state(tiny_model)
    state["base_model.blocks.0.extra.weight"] = torch.zeros(1)
    state["_feature_projections.7.fc1.weight"] = torch.zeros(1)
    state["base_model.blocks.1.mlp.fc2.bias"] = torch.zeros(3)
    del state["base_model.blocks.2.norm2.bias"]
    path = save_checkpoint(tmp_path / "bad.pth.tar", config_to_args(tiny_model.config), state)
    with pytest.raises(CheckpointKeyError) as error:
        load_radio(path, adaptor_names=ALL_TEACHERS)
    message = str(error.value)
    assert "base_model.blocks.0.extra.weight" in message
    assert "_feature_projections.7.fc1.weight" in message
    assert (
        "base_model.blocks.1.mlp.fc2.bias (model key blocks.1.mlp.fc2.bias): checkpoint [3]"
        in message
    )
    assert "Missing model keys (1): blocks.2.norm2.bias" in message


def test_unknown_teacher_request_lists_known(tmp_path, tiny_model):
    path = write_torchhub_checkpoint(tiny_model, tmp_path / "radio.pth.tar")
    with pytest.raises(ValueError, match=r"\['siglip2-g', 'dino_v3', 'sam3'\]"):
        load_radio(path, adaptor_names=("clip",))


class Opaque:
    """A pickled class outside the restricted unpickler's allow list."""


def test_pickle_in_folder_rejected(tmp_path, tiny_model):
    args = config_to_args(tiny_model.config, extra=Opaque())
    save_checkpoint(tmp_path / "radio.pth.tar", args, model_to_hub_state(tiny_model))
    with pytest.raises(UntrustedCheckpointError, match="Pass the file path"):
        load_radio(tmp_path)


def test_pickle_named_file_loads(tmp_path, tiny_model):
    args = config_to_args(tiny_model.config, extra=Opaque())
    path = save_checkpoint(tmp_path / "radio.pth.tar", args, model_to_hub_state(tiny_model))
    assert load_radio(path).adaptor_names == ("sam3",)


def test_plain_namespace_loads_from_folder(tmp_path, tiny_model):
    write_torchhub_checkpoint(tiny_model, tmp_path / "radio.pth.tar")
    assert isinstance(load_radio(tmp_path).config.num_heads, int)


def test_writer_args_are_namespace(tmp_path, tiny_config):
    path = write_torchhub_checkpoint(tiny_config, tmp_path / "radio.pth.tar")
    checkpoint = torch.load(path, weights_only=False)
    assert isinstance(checkpoint["args"], argparse.Namespace)
    assert checkpoint["state_dict"]["base_model.patch_generator.pos_embed"].dtype == torch.float16
