"""Bake weight parametrizations (spectral reparametrisation, DAMP) into plain Linear weights.

A checkpoint saved while `torch.nn.utils.parametrize` was active stores a Linear weight as
`<linear>.parametrizations.weight.original`. DAMP is an identity parametrization with no state,
so its weight is just renamed. Spectral reparametrisation adds, per parametrization index n,
`<linear>.parametrizations.weight.<n>.{scale,_u,_v,_sn_version}`. A fused qkv weight has one set
per q, k and v chunk under `.<n>.parts.<k>.`, and a chunk without keys is left unscaled.

The effective weight of one chunk is W * s / sigma, where
- s = softplus(scale) + 0.05 for `_sn_version` 2, or s = scale when `_sn_version` is absent (v1),
- sigma = u . (W v) + eps, after one power-iteration step u = normalize(W v),
  v = normalize(W^T u) from the stored vectors. RADIO bakes freshly built modules, which are in
  training mode, and PyTorch's spectral norm runs that step in training mode.
"""

from __future__ import annotations

import re
from collections import defaultdict

import torch
import torch.nn.functional as F

ORIGINAL_SUFFIX = ".parametrizations.weight.original"
SPECTRAL_ALPHA = 0.05
_PARAM_KEY = re.compile(r"^(?P<module>.+)\.parametrizations\.weight\.(?P<rest>.+)$")
_SPECTRAL_ENTRY = re.compile(
    r"^(?P<index>\d+)\.(?:parts\.(?P<part>\d+)\.)?(?P<name>scale|_u|_v|_sn_version)$"
)


def bake_spectral_chunk(
    weight: torch.Tensor,
    scale: torch.Tensor,
    u: torch.Tensor,
    v: torch.Tensor,
    version: int,
    eps: float,
    power_iterations: int = 1,
) -> torch.Tensor:
    """Return the effective fp32 weight of one spectrally reparametrised matrix `[out, in]`."""
    weight = weight.float()
    u = u.float()
    v = v.float()
    for _ in range(power_iterations):
        u = F.normalize(weight @ v, dim=0, eps=eps)
        v = F.normalize(weight.T @ u, dim=0, eps=eps)
    sigma = torch.dot(u, weight @ v) + eps
    raw_scale = scale.float().reshape(-1)[0]
    factor = raw_scale if version == 1 else F.softplus(raw_scale) + SPECTRAL_ALPHA
    return weight * (factor / sigma)


def bake_parametrizations(
    state: dict[str, torch.Tensor], eps: float = 1e-6, power_iterations: int = 1
) -> dict[str, torch.Tensor]:
    """Return a copy of `state` with every parametrized Linear weight baked to `<linear>.weight`.

    Keys without parametrizations pass through unchanged. A parametrization entry that is
    neither `original` nor a spectral-norm buffer stays in place, so the strict key check
    reports it.
    """
    baked: dict[str, torch.Tensor] = {}
    # module -> parametrization index -> chunk (None for a whole matrix) -> name -> tensor
    spectral: dict[str, dict[int, dict[int | None, dict[str, torch.Tensor]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(dict))
    )
    originals: dict[str, torch.Tensor] = {}
    spectral_keys: dict[str, dict[str, torch.Tensor]] = defaultdict(dict)

    for key, value in state.items():
        match = _PARAM_KEY.match(key)
        if match is None:
            baked[key] = value
            continue
        module, rest = match["module"], match["rest"]
        if rest == "original":
            originals[module] = value
            continue
        entry = _SPECTRAL_ENTRY.match(rest)
        if entry is None:
            baked[key] = value
            continue
        part = None if entry["part"] is None else int(entry["part"])
        spectral[module][int(entry["index"])][part][entry["name"]] = value
        spectral_keys[module][key] = value

    for module, weight in originals.items():
        weight_out = weight.float() if module in spectral else weight
        for index in sorted(spectral.get(module, {})):
            chunks = spectral[module][index]
            weight_out = _apply_spectral(module, weight_out, chunks, eps, power_iterations)
        baked[f"{module}.weight"] = weight_out

    # Spectral buffers without an original weight stay as they are, so the key check reports them.
    for module in sorted(set(spectral) - set(originals)):
        baked.update(spectral_keys[module])
    return baked


def _apply_spectral(
    module: str,
    weight: torch.Tensor,
    chunks: dict[int | None, dict[str, torch.Tensor]],
    eps: float,
    power_iterations: int,
) -> torch.Tensor:
    if None in chunks:
        return _bake_entry(weight, chunks[None], eps, power_iterations)
    # A fused qkv weight has 3 chunks even when the value chunk is left unscaled, and a fused
    # SwiGLU w12 weight has 2.
    if module.endswith("qkv"):
        num_chunks = 3
    elif module.endswith("w12"):
        num_chunks = 2
    else:
        num_chunks = max(chunks) + 1
    if weight.shape[0] % num_chunks != 0:
        raise ValueError(
            f"Cannot split a weight with {weight.shape[0]} rows into {num_chunks} spectral chunks."
        )
    pieces = list(weight.split(weight.shape[0] // num_chunks, dim=0))
    for part, entry in chunks.items():
        pieces[part] = _bake_entry(pieces[part], entry, eps, power_iterations)
    return torch.cat(pieces, dim=0)


def _bake_entry(
    weight: torch.Tensor, entry: dict[str, torch.Tensor], eps: float, power_iterations: int
) -> torch.Tensor:
    missing = [name for name in ("scale", "_u", "_v") if name not in entry]
    if missing:
        raise ValueError(f"Spectral reparametrisation entry is missing {missing}.")
    version = int(entry["_sn_version"]) if "_sn_version" in entry else 1
    return bake_spectral_chunk(
        weight, entry["scale"], entry["_u"], entry["_v"], version, eps, power_iterations
    )
