"""Spectral reparametrisation and DAMP baking against a NumPy power-iteration reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sam3_radio.radio.spectral import bake_parametrizations

PREFIX = "lin.parametrizations.weight"


def normalize(x, eps):
    return x / max(np.linalg.norm(x), eps)


def baked_reference(weight, scale, u, v, version, eps):
    """One power-iteration step, then W * s / (u . W v + eps)."""
    u = normalize(weight @ v, eps)
    v = normalize(weight.T @ u, eps)
    sigma = u @ weight @ v + eps
    factor = scale if version == 1 else math.log1p(math.exp(scale)) + 0.05
    return weight * factor / sigma


def spectral_entry(rows, cols, seed):
    rng = np.random.default_rng(seed)
    return dict(
        weight=rng.normal(size=(rows, cols)),
        scale=float(rng.normal()),
        u=normalize(rng.normal(size=rows), 1e-12),
        v=normalize(rng.normal(size=cols), 1e-12),
    )


def as_tensors(entry, prefix, version):
    tensors = {
        f"{prefix}.scale": torch.tensor([[entry["scale"]]], dtype=torch.float32),
        f"{prefix}._u": torch.from_numpy(entry["u"]).float(),
        f"{prefix}._v": torch.from_numpy(entry["v"]).float(),
    }
    if version == 2:
        tensors[f"{prefix}._sn_version"] = torch.tensor(2)
    return tensors


@pytest.mark.parametrize("version, eps", [(2, 1e-6), (1, 1e-6), (2, 1e-12)])
def test_spectral_bake_matches_numpy(version, eps):
    entry = spectral_entry(5, 4, seed=version)
    state = {f"{PREFIX}.original": torch.from_numpy(entry["weight"]).float()}
    state.update(as_tensors(entry, f"{PREFIX}.0", version))
    baked = bake_parametrizations(state, eps=eps)
    expected = baked_reference(
        entry["weight"], entry["scale"], entry["u"], entry["v"], version, eps
    )
    np.testing.assert_allclose(baked["lin.weight"].double().numpy(), expected, rtol=1e-5, atol=1e-6)


def test_spectral_bake_leaves_only_weight():
    entry = spectral_entry(3, 3, seed=0)
    state = {
        f"{PREFIX}.original": torch.from_numpy(entry["weight"]).float(),
        "lin.bias": torch.zeros(3),
    }
    state.update(as_tensors(entry, f"{PREFIX}.0", 2))
    assert sorted(bake_parametrizations(state)) == ["lin.bias", "lin.weight"]


def test_spectral_qkv_chunks_baked_separately():
    chunks = [spectral_entry(4, 4, seed=10 + i) for i in range(3)]
    weight = np.concatenate([c["weight"] for c in chunks])
    state = {"attn.qkv.parametrizations.weight.original": torch.from_numpy(weight).float()}
    for index in (0, 1):  # the value chunk has no entry, as with renorm_values=False
        state.update(
            as_tensors(chunks[index], f"attn.qkv.parametrizations.weight.0.parts.{index}", 2)
        )
    baked = bake_parametrizations(state)["attn.qkv.weight"].double().numpy()
    for index in (0, 1):
        c = chunks[index]
        expected = baked_reference(c["weight"], c["scale"], c["u"], c["v"], 2, 1e-6)
        np.testing.assert_allclose(baked[4 * index : 4 * index + 4], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(baked[8:], chunks[2]["weight"], rtol=1e-6)


def test_damp_original_renamed():
    weight = torch.randn(3, 2)
    baked = bake_parametrizations({f"{PREFIX}.original": weight})
    assert list(baked) == ["lin.weight"]
    assert torch.equal(baked["lin.weight"], weight)


def test_spectral_without_original_kept_for_report():
    entry = spectral_entry(3, 3, seed=1)
    state = as_tensors(entry, f"{PREFIX}.0", 2)
    assert set(bake_parametrizations(state)) == set(state)
