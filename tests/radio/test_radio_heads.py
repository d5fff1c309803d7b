"""Teacher head versions, pixel shuffle and adaptor output formats against NumPy references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sam3_radio.radio import HeadConfig, RadioModel, TeacherConfig
from sam3_radio.radio.heads import (
    AttnHead,
    MlpV1,
    MlpV2,
    TeacherAdaptor,
    build_head,
    pixel_shuffle_tokens,
)

_erf = np.vectorize(math.erf)


def gelu(x):
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def layer_norm(x, weight, bias, eps):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


def params(module) -> dict[str, np.ndarray]:
    return {k: v.detach().double().numpy() for k, v in module.state_dict().items()}


def linear(p, name, x):
    out = x @ p[f"{name}.weight"].T
    if f"{name}.bias" in p:
        out = out + p[f"{name}.bias"]
    return out


def mlp_v1_reference(p, x, num_inner):
    h = np.maximum(layer_norm(linear(p, "fc1", x), p["norm.weight"], p["norm.bias"], 1e-5), 0)
    for k in range(num_inner):
        h = linear(p, f"inner.{3 * k}", h)
        h = np.maximum(
            layer_norm(h, p[f"inner.{3 * k + 1}.weight"], p[f"inner.{3 * k + 1}.bias"], 1e-5), 0
        )
    return linear(p, "fc2", h)


def mlp_v2_reference(p, x, num_inner, prefix=""):
    h = linear(p, f"{prefix}fc1", x)
    for k in range(num_inner):
        norm = layer_norm(
            h, p[f"{prefix}blocks.{k}.0.weight"], p[f"{prefix}blocks.{k}.0.bias"], 1e-5
        )
        h = h + linear(p, f"{prefix}blocks.{k}.2", gelu(norm))
    norm = layer_norm(h, p[f"{prefix}final.0.weight"], p[f"{prefix}final.0.bias"], 1e-5)
    return linear(p, f"{prefix}final.2", gelu(norm))


def attention_block_reference(p, prefix, x, num_heads):
    """Pre-norm ViT block: attention (no qkv bias) and MLP, each with LayerScale."""
    tokens, dim = x.shape[-2:]
    head_dim = dim // num_heads
    h = layer_norm(x, p[f"{prefix}norm1.weight"], p[f"{prefix}norm1.bias"], 1e-6)
    qkv = h @ p[f"{prefix}attn.qkv.weight"].T
    q, k, v = (qkv[..., i * dim : (i + 1) * dim] for i in range(3))
    heads = []
    for head in range(num_heads):
        cols = slice(head * head_dim, (head + 1) * head_dim)
        scores = q[..., cols] @ np.swapaxes(k[..., cols], -1, -2) / math.sqrt(head_dim)
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        heads.append(scores / scores.sum(-1, keepdims=True) @ v[..., cols])
    attended = linear(p, f"{prefix}attn.proj", np.concatenate(heads, axis=-1))
    x = x + attended * p[f"{prefix}ls1.gamma"]
    h = layer_norm(x, p[f"{prefix}norm2.weight"], p[f"{prefix}norm2.bias"], 1e-6)
    h = linear(p, f"{prefix}mlp.fc2", gelu(linear(p, f"{prefix}mlp.fc1", h)))
    return x + h * p[f"{prefix}ls2.gamma"]


def randomize(module, seed):
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
    return module


@pytest.mark.parametrize("num_inner", [0, 2])
def test_mlp_v1_matches_numpy(num_inner):
    head = randomize(MlpV1(HeadConfig("v1", 6, 8, 5, num_inner)), seed=num_inner)
    x = np.random.default_rng(0).normal(size=(3, 6))
    with torch.no_grad():
        actual = head(torch.from_numpy(x).float()).double().numpy()
    np.testing.assert_allclose(actual, mlp_v1_reference(params(head), x, num_inner), atol=1e-4)


@pytest.mark.parametrize("num_inner", [0, 1, 3])
def test_mlp_v2_matches_numpy(num_inner):
    head = randomize(MlpV2(HeadConfig("v2", 6, 8, 5, num_inner)), seed=10 + num_inner)
    x = np.random.default_rng(1).normal(size=(2, 4, 6))
    with torch.no_grad():
        actual = head(torch.from_numpy(x).float()).double().numpy()
    np.testing.assert_allclose(actual, mlp_v2_reference(params(head), x, num_inner), atol=1e-4)


def test_attn_head_matches_numpy():
    config = HeadConfig("attn", 16, 12, 10, num_heads=4)
    head = randomize(AttnHead(config), seed=5)
    x = np.random.default_rng(2).normal(size=(2, 6, 16))
    p = params(head)
    expected = x
    for index in range(2):
        expected = attention_block_reference(p, f"blocks.{index}.", expected, num_heads=4)
    expected = mlp_v2_reference(p, expected, 0, prefix="mlp.")
    with torch.no_grad():
        actual = head(torch.from_numpy(x).float()).double().numpy()
    np.testing.assert_allclose(actual, expected, atol=1e-4)


@pytest.mark.parametrize(
    "version, expected_keys",
    [
        ("v1", {"fc1.weight", "norm.weight", "inner.0.weight", "inner.1.weight", "fc2.weight"}),
        (
            "v2",
            {
                "fc1.weight",
                "blocks.0.0.weight",
                "blocks.0.2.weight",
                "final.0.weight",
                "final.2.weight",
            },
        ),
    ],
)
def test_head_checkpoint_key_names(version, expected_keys):
    head = build_head(HeadConfig(version, 4, 4, 4, num_inner=1))
    assert expected_keys <= set(head.state_dict())


def test_attn_head_checkpoint_key_names():
    keys = set(build_head(HeadConfig("attn", 16, 4, 4)).state_dict())
    expected = {
        "blocks.0.ls1.gamma",
        "blocks.1.attn.qkv.weight",
        "mlp.fc1.weight",
        "mlp.final.2.weight",
    }
    assert expected <= keys
    assert "blocks.0.attn.qkv.bias" not in keys


def pixel_shuffle_reference(tokens, rows, cols, u):
    batch, _, width = tokens.shape
    channels = width // (u * u)
    out = np.zeros((batch, rows * u * cols * u, channels))
    for y in range(rows):
        for x in range(cols):
            for u1 in range(u):
                for u2 in range(u):
                    start = (u1 * u + u2) * channels
                    target = (y * u + u1) * (cols * u) + x * u + u2
                    out[:, target] = tokens[:, y * cols + x, start : start + channels]
    return out


@pytest.mark.parametrize("rows, cols, u", [(2, 3, 2), (3, 2, 3), (2, 2, 1)])
def test_pixel_shuffle_matches_loops(rows, cols, u):
    tokens = np.arange(2 * rows * cols * u * u * 3, dtype=np.float64).reshape(2, rows * cols, -1)
    actual = pixel_shuffle_tokens(torch.from_numpy(tokens), rows, cols, u).numpy()
    np.testing.assert_array_equal(actual, pixel_shuffle_reference(tokens, rows, cols, u))


@pytest.mark.parametrize("version, upsample", [("attn", 1), ("attn", 2), ("v2", 2), ("v1", 1)])
def test_adaptor_nchw_equals_nlc(version, upsample):
    feature = HeadConfig(version, 16, 8, 6 * upsample**2, upsample_factor=upsample, num_heads=4)
    summary = HeadConfig("v2", 16, 8, 5)
    adaptor = TeacherAdaptor(TeacherConfig("t", 0, feature, summary))
    patches = torch.randn(2, 3 * 4, 16)
    with torch.no_grad():
        nlc = adaptor(torch.randn(2, 16), patches, (3, 4), "NLC").features
        nchw = adaptor(torch.randn(2, 16), patches, (3, 4), "NCHW").features
    assert nchw.shape == (2, 6, 3 * upsample, 4 * upsample)
    assert torch.equal(nchw.permute(0, 2, 3, 1).reshape(nlc.shape), nlc)


def test_adaptor_without_summary_head():
    adaptor = TeacherAdaptor(TeacherConfig("t", 0, HeadConfig("v2", 16, 8, 6), None))
    output = adaptor(torch.randn(1, 16), torch.randn(1, 4, 16), (2, 2), "NLC")
    assert output.summary is None


def test_model_heads_read_token_slot(tiny_model, images):
    batch = images(64, 96)
    with torch.no_grad():
        outputs = tiny_model(batch)
        tokens = tiny_model.patch_generator(tiny_model.input_conditioner(batch))
        for block in tiny_model.blocks:
            tokens = block(tokens)
        head = tiny_model.adaptors["dino_v3"].summary_head
        expected = head(tokens[:, tiny_model.config.teacher("dino_v3").token_slot])
    torch.testing.assert_close(outputs["dino_v3"].summary, expected)


@pytest.mark.parametrize(
    "name, channels",
    [("backbone", 64), ("sam3", 64), ("dino_v3", 24), ("siglip2-g", 32)],
)
def test_feature_dim_per_output(tiny_model, name, channels):
    assert tiny_model.feature_dim(name) == channels


@pytest.mark.parametrize("name", ["backbone", "sam3", "dino_v3", "siglip2-g"])
def test_feature_dim_matches_nchw_output(tiny_model, images, name):
    with torch.no_grad():
        outputs = tiny_model(images(64, 96, batch=1), feature_fmt="NCHW")
    assert outputs[name].features.shape[1] == tiny_model.feature_dim(name)


def test_sam3_feature_dim_configurable(tiny_config):
    model = RadioModel(tiny_config.with_feature_dim("sam3", 24), adaptor_names=("sam3",))
    assert model.feature_dim("sam3") == 24
