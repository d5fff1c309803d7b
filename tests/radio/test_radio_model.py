"""RadioModel construction, input checks, resolution helpers, output formats and bf16 autocast."""

from __future__ import annotations

import pytest
import torch

from sam3_radio.radio import RADIO_PRESETS, RadioModel, nearest_supported_resolution
from sam3_radio.radio.vitdet import default_global_blocks


@pytest.mark.parametrize(
    "size, patch, window, expected",
    [
        ((1010, 1010), 16, None, (1008, 1008)),
        ((1000, 1000), 16, None, (992, 992)),  # 62.5 steps round half to even
        ((1152, 700), 16, None, (1152, 704)),
        ((8, 8), 16, None, (16, 16)),  # floor of one step
        ((24, 40), 16, None, (32, 32)),  # 1.5 and 2.5 steps round half to even
        ((1100, 1200), 16, 12, (1152, 1152)),  # step 192
        ((3000, 100), 16, None, (2048, 96)),  # capped at the maximum resolution
    ],
)
def test_nearest_supported_resolution(size, patch, window, expected):
    assert nearest_supported_resolution(*size, patch_size=patch, window_size=window) == expected


def test_model_nearest_uses_window(tiny_model):
    windowed = RadioModel(tiny_model.config, adaptor_names=(), window_size=3)
    assert windowed.nearest_supported_resolution(100, 200) == (96, 192)


@pytest.mark.parametrize("name", ["tiny", "c-radio_v4-h", "c-radio_v4-so400m"])
def test_preset_global_blocks(name):
    config = RADIO_PRESETS[name]
    expected = {"tiny": (1, 3, 5, 7), "c-radio_v4-h": (7, 15, 23, 31)}
    expected["c-radio_v4-so400m"] = (5, 11, 17, 23, 26)
    assert default_global_blocks(config.depth) == expected[name]


def test_preset_sam3_channels():
    assert RADIO_PRESETS["tiny"].teacher("sam3").feature_head.channels == 64
    assert RADIO_PRESETS["c-radio_v4-h"].teacher("sam3").feature_head.channels == 1024


def test_random_init_deterministic(tiny_config):
    torch.manual_seed(11)
    first = RadioModel(tiny_config, adaptor_names=tiny_config.teacher_names).state_dict()
    torch.manual_seed(11)
    second = RadioModel(tiny_config, adaptor_names=tiny_config.teacher_names).state_dict()
    for key, value in first.items():
        assert torch.equal(value, second[key]), key


def test_random_init_finite(tiny_config):
    torch.manual_seed(12)
    model = RadioModel(tiny_config, adaptor_names=tiny_config.teacher_names)
    for key, value in model.state_dict().items():
        assert torch.isfinite(value.float()).all(), key


def test_tiny_preset_builds_with_full_table():
    torch.manual_seed(0)
    model = RadioModel(RADIO_PRESETS["tiny"])
    assert model.patch_generator.pos_embed.shape == (1, 128 * 128, 64)


def test_model_is_in_eval_mode(tiny_config):
    assert not RadioModel(tiny_config).training


@pytest.mark.parametrize(
    "shape, message",
    [
        ((2, 3, 100, 96), "not a multiple of 16 px"),
        ((2, 3, 96, 100), "pass resize=True"),
        ((2, 1, 96, 96), r"\[B, 3, H, W\]"),
        ((3, 96, 96), r"\[B, 3, H, W\]"),
        ((1, 3, 528, 16), "exceeds the maximum resolution 512 px"),
    ],
)
def test_input_errors(tiny_model, shape, message):
    with pytest.raises(ValueError, match=message):
        tiny_model(torch.rand(*shape))


def test_max_resolution_2048_enforced():
    torch.manual_seed(0)
    model = RadioModel(RADIO_PRESETS["tiny"], adaptor_names=())
    with pytest.raises(ValueError, match="maximum resolution 2048 px"):
        model(torch.rand(1, 3, 2064, 16))


def test_invalid_feature_format(tiny_model, images):
    with pytest.raises(ValueError, match="feature_fmt"):
        tiny_model(images(32, 32), feature_fmt="NHWC")


def test_unknown_adaptor_lists_teachers(tiny_config):
    with pytest.raises(ValueError, match="dino_v3"):
        RadioModel(tiny_config, adaptor_names=("sam",))


def test_resize_true_snaps_size(tiny_model, images):
    with torch.no_grad():
        outputs = tiny_model(images(100, 70), feature_fmt="NCHW", resize=True)
    assert outputs["sam3"].features.shape[-2:] == (6, 4)


def test_output_shapes(tiny_model, images):
    with torch.no_grad():
        outputs = tiny_model(images(64, 96), feature_fmt="NLC")
    assert set(outputs) == {"backbone", "siglip2-g", "dino_v3", "sam3"}
    assert outputs["backbone"].summary.shape == (2, 64 * 2)
    assert outputs["backbone"].features.shape == (2, 24, 64)
    assert outputs["dino_v3"].features.shape == (2, 96, 24)
    assert outputs["sam3"].summary.shape == (2, 64)


def test_nchw_equals_nlc(tiny_model, images):
    batch = images(64, 96)
    with torch.no_grad():
        nlc = tiny_model(batch, feature_fmt="NLC")
        nchw = tiny_model(batch, feature_fmt="NCHW")
    for name in nlc:
        flattened = nchw[name].features.flatten(2).transpose(1, 2)
        assert torch.equal(flattened, nlc[name].features), name


def test_batch_items_independent(tiny_model, images):
    batch = images(64, 64, batch=3)
    with torch.no_grad():
        together = tiny_model(batch)["sam3"].features
        alone = tiny_model(batch[1:2])["sam3"].features
    torch.testing.assert_close(together[1:2], alone, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("window_size", [None, 2])
def test_bf16_autocast_close_to_fp32(tiny_model, images, window_size):
    model = RadioModel(tiny_model.config, adaptor_names=("sam3",), window_size=window_size)
    model.load_state_dict(tiny_model.state_dict(), strict=False)
    batch = images(64, 96)
    with torch.no_grad():
        reference = model(batch)["sam3"].features
        with torch.autocast(batch.device.type, dtype=torch.bfloat16):
            mixed = model(batch)["sam3"].features
    assert mixed.dtype == torch.float32
    assert torch.isfinite(mixed).all()
    relative = (mixed - reference).norm() / reference.norm()
    assert relative < 0.05


def test_bf16_weights_run(tiny_model, images):
    model = RadioModel(tiny_model.config, adaptor_names=("sam3",))
    model.load_state_dict(tiny_model.state_dict(), strict=False)
    model.blocks.to(torch.bfloat16)
    model.patch_generator.to(torch.bfloat16)
    with torch.no_grad():
        features = model(images(32, 48))["sam3"].features
    assert features.dtype == torch.float32
