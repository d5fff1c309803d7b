import pytest
import torch

from sam3_radio.model.builder import (
    BACKBONES,
    build_sam3_image_model,
    valid_window_sizes,
)
from sam3_radio.model.weights import TRUNK_PREFIX, WeightsUnavailableError


def _non_trunk_state(model):
    return {k: v for k, v in model.state_dict().items() if not k.startswith(TRUNK_PREFIX)}


def test_presets_cover_required_backbones():
    assert {"pe", "radio-h", "radio-so400m", "tiny-pe", "tiny-radio"} <= set(BACKBONES)


def test_random_build_is_finite_and_seeded(tiny_pe_model):
    again = build_sam3_image_model("tiny-pe", weights="random", device="cpu")
    for name, tensor in tiny_pe_model.state_dict().items():
        assert torch.equal(tensor, again.state_dict()[name]), name
    text = tiny_pe_model.backbone.language_backbone.encoder
    assert torch.isfinite(text.positional_embedding).all()
    assert torch.isfinite(text.text_projection).all()


def test_random_build_records_random_weights(tiny_pe_model):
    assert tiny_pe_model.build_info.random_weights is True


def test_random_builds_share_non_trunk_weights(tiny_pe_model):
    radio = build_sam3_image_model("tiny-radio", weights="random", device="cpu")
    pe_state, radio_state = _non_trunk_state(tiny_pe_model), _non_trunk_state(radio)
    assert sorted(pe_state) == sorted(radio_state)
    assert all(torch.equal(pe_state[k], radio_state[k]) for k in pe_state)


def test_checkpoint_builds_have_identical_non_trunk_parameters(
    tiny_sam3_checkpoint, tiny_radio_checkpoint
):
    pe = build_sam3_image_model("tiny-pe", weights=tiny_sam3_checkpoint, device="cpu", seed=11)
    radio = build_sam3_image_model(
        "tiny-radio",
        weights=tiny_sam3_checkpoint,
        radio_weights=tiny_radio_checkpoint,
        device="cpu",
        seed=12,
    )
    pe_state, radio_state = _non_trunk_state(pe), _non_trunk_state(radio)
    assert sorted(pe_state) == sorted(radio_state)
    differing = [k for k in pe_state if not torch.equal(pe_state[k], radio_state[k])]
    assert differing == []
    assert radio.build_info.random_weights is False


def test_radio_trunk_loads_hub_checkpoint_with_sam3_head(tiny_sam3_checkpoint, tiny_radio_checkpoint):
    from sam3_radio.radio import load_radio

    model = build_sam3_image_model(
        "tiny-radio", weights=tiny_sam3_checkpoint, radio_weights=tiny_radio_checkpoint, device="cpu"
    )
    reference = load_radio(tiny_radio_checkpoint, adaptor_names=("sam3",))
    trunk_state = model.backbone.vision_backbone.trunk.radio.state_dict()
    for name, tensor in reference.state_dict().items():
        assert torch.equal(trunk_state[name], tensor), name


def test_radio_trunk_contract_shapes():
    model = build_sam3_image_model("tiny-radio", weights="random", device="cpu", window_size=12)
    trunk = model.backbone.vision_backbone.trunk
    images = torch.rand(1, 3, 1008, 1008) * 2 - 1
    with torch.inference_mode():
        features = trunk(images)
    assert isinstance(features, list)
    assert features[-1].shape == (1, trunk.channel_list[-1], 72, 72)


def test_radio_trunk_maps_input_range(monkeypatch):
    model = build_sam3_image_model("tiny-radio", weights="random", device="cpu")
    trunk = model.backbone.vision_backbone.trunk
    seen = {}

    def record(images, feature_fmt):
        seen["images"] = images
        return {"sam3": type("Output", (), {"features": torch.zeros(1, 64, 72, 72)})()}

    monkeypatch.setattr(trunk.radio, "forward", record)
    trunk(torch.full((1, 3, 1152, 1152), -1.0))
    assert seen["images"].min().item() == 0.0
    assert seen["images"].max().item() == 0.0


def test_unknown_backbone_lists_valid_names():
    with pytest.raises(ValueError, match="unknown backbone 'vit-g'.*radio-so400m"):
        build_sam3_image_model("vit-g", weights="random")


def test_window_size_rejected_for_pe():
    with pytest.raises(ValueError, match="RADIO backbones only"):
        build_sam3_image_model("tiny-pe", weights="random", window_size=12)


def test_window_size_not_dividing_grid_lists_valid():
    with pytest.raises(ValueError, match=r"window_size=16 does not divide.*\[1, 2, 3, 4, 6, 8, 9, 12"):
        build_sam3_image_model("tiny-radio", weights="random", window_size=16)


def test_valid_window_sizes_of_72():
    assert valid_window_sizes() == [1, 2, 3, 4, 6, 8, 9, 12, 18, 24, 36, 72]


def test_missing_weights_path_says_where_weights_come_from(tmp_path):
    with pytest.raises(WeightsUnavailableError, match="'hf' to download it from facebook/sam3"):
        build_sam3_image_model("tiny-pe", weights=tmp_path / "missing.pt")


def test_offline_download_names_file_and_fix(monkeypatch):
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    def offline(**kwargs):
        raise LocalEntryNotFoundError("offline")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    with pytest.raises(WeightsUnavailableError, match="facebook/sam3/sam3.pt.*hf download"):
        build_sam3_image_model("tiny-pe", weights="hf")


def test_incomplete_checkpoint_lists_missing_keys(tmp_path, tiny_sam3_checkpoint):
    checkpoint = torch.load(tiny_sam3_checkpoint, weights_only=True)["model"]
    dropped = "detector.dot_prod_scoring.hs_proj.weight"
    assert dropped in checkpoint
    del checkpoint[dropped]
    path = tmp_path / "partial.pt"
    torch.save(checkpoint, path)
    with pytest.raises(WeightsUnavailableError, match="dot_prod_scoring.hs_proj.weight"):
        build_sam3_image_model("tiny-pe", weights=path)


def test_non_checkpoint_file_is_rejected(tmp_path):
    path = tmp_path / "notes.pt"
    path.write_text("not a checkpoint")
    with pytest.raises(WeightsUnavailableError, match="failed to read SAM 3 checkpoint"):
        build_sam3_image_model("tiny-pe", weights=path)


def test_missing_radio_weights_raise_weights_error(tiny_sam3_checkpoint, tmp_path):
    with pytest.raises(WeightsUnavailableError, match="C-RADIO weights unavailable.*absent.pth.tar"):
        build_sam3_image_model(
            "tiny-radio", weights=tiny_sam3_checkpoint, radio_weights=tmp_path / "absent.pth.tar"
        )
