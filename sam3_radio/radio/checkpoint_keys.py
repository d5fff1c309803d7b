"""Key mapping between C-RADIO checkpoint layouts and `RadioModel`, and the strict state load.

Three layouts are read:
- torch.hub `.pth.tar` ("hub"): `base_model.*`, `input_conditioner.*`, `_heads.<index|name>.*`,
  `_feature_projections.<index|name>.*`, `_feature_normalizer.*`,
  `_intermediate_feature_normalizer.*`.
- Hugging Face remote code ("remote"): the same tensors under `radio_model.model.*`,
  `radio_model.input_conditioner.*`, `radio_model.adaptors.<name>.{head_mlp,feat_mlp}.*`,
  `radio_model.feature_normalizer.*`, `radio_model.inter_feature_normalizer.*`.
- transformers' native `RadioModel` ("native", backbone only): on disk usually the remote-code
  backbone keys with `layer_scale{1,2}.lambda1`, or transformers' own in-memory names
  `embeddings.*`, `encoder.layer.<i>.*` (separate q/k/v projections), `input_conditioner.*`.

Remote keys are first renamed to hub keys, so the hub rules cover both.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence

import torch
from torch import nn

logger = logging.getLogger(__name__)

WRAPPER_PREFIXES = ("module.", "_orig_mod.")

_REMOTE_TO_HUB = (
    ("radio_model.model.", "base_model."),
    ("radio_model.input_conditioner.", "input_conditioner."),
    ("radio_model.feature_normalizer.", "_feature_normalizer."),
    ("radio_model.inter_feature_normalizer.", "_intermediate_feature_normalizer."),
)
_REMOTE_ADAPTOR = re.compile(
    r"^radio_model\.adaptors\.(?P<name>[^.]+)\.(?P<head>head_mlp|feat_mlp)\.(?P<rest>.+)$"
)
_HUB_HEAD = re.compile(r"^(?P<kind>_heads|_feature_projections)\.(?P<key>[^.]+)\.(?P<rest>.+)$")
_HUB_BACKBONE = (
    ("base_model.patch_generator.embedder.weight", "patch_generator.embedder.weight"),
    ("base_model.patch_generator.pos_embed", "patch_generator.pos_embed"),
    ("base_model.patch_generator.cls_token.token", "patch_generator.prefix_tokens"),
)
_HUB_PREFIXES = (
    ("base_model.blocks.", "blocks."),
    ("base_model.norm.", "norm."),
    ("input_conditioner.", "input_conditioner."),
    ("_feature_normalizer.", "feature_normalizer."),
    ("_intermediate_feature_normalizer.", "intermediate_feature_normalizer."),
)
_LAYER_SCALE = re.compile(r"\.ls(?P<index>[12])\.(?:gamma|grandma)$")

_NATIVE_BLOCK = re.compile(r"^encoder\.layer\.(?P<index>\d+)\.(?P<rest>.+)$")
_NATIVE_BLOCK_RENAMES = {
    "attention.o_proj.": "attn.proj.",
    "layer_scale1.lambda1": "ls1.gamma",
    "layer_scale2.lambda1": "ls2.gamma",
}
_NATIVE_EMBEDDINGS = {
    "embeddings.patch_projection.weight": "patch_generator.embedder.weight",
    "embeddings.position_embedding": "patch_generator.pos_embed",
    "embeddings.cls_register_token": "patch_generator.prefix_tokens",
}
# Keys of known layouts that image inference does not use.
_NATIVE_UNUSED = ("summary_idxs", "embeddings.video_patch_projection.weight")
REMOTE_UNUSED = ("radio_model.summary_idxs",)
_NATIVE_DISK_UNUSED = ("base_model.patch_generator.video_embedder.weight",)
_NATIVE_DISK_LAYER_SCALE = re.compile(r"\.layer_scale(?P<index>[12])\.lambda1$")


class CheckpointKeyError(ValueError):
    """Raised when checkpoint tensors do not match the model, listing every offending key."""


def strip_wrapper_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove DataParallel `module.` and torch.compile `_orig_mod.` prefixes from keys."""
    cleaned = {}
    for key, value in state.items():
        for prefix in WRAPPER_PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix) :]
        cleaned[key] = value
    return cleaned


def remote_to_hub(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename Hugging Face remote-code keys to torch.hub keys. Unknown keys keep their names."""
    renamed = {}
    for key, value in state.items():
        if key in REMOTE_UNUSED:
            continue
        match = _REMOTE_ADAPTOR.match(key)
        if match:
            kind = "_heads" if match["head"] == "head_mlp" else "_feature_projections"
            renamed[f"{kind}.{match['name']}.{match['rest']}"] = value
            continue
        for old, new in _REMOTE_TO_HUB:
            if key.startswith(old):
                key = new + key[len(old) :]
                break
        renamed[key] = value
    return renamed


def teacher_head_state(
    state: dict[str, torch.Tensor], kind: str, index: int, name: str
) -> dict[str, torch.Tensor]:
    """Return the hub-layout tensors of one head, keyed relative to the head.

    `kind` is "_heads" (summary) or "_feature_projections" (features). NVlabs/RADIO accepts
    both the teacher's list index and its name as the key.
    """
    head = {}
    for key, value in state.items():
        match = _HUB_HEAD.match(key)
        if match and match["kind"] == kind and match["key"] in (str(index), name):
            head[_rename_layer_scale(match["rest"])] = value
    return head


def hub_to_model(
    state: dict[str, torch.Tensor], teacher_names: Sequence[str], adaptor_names: Sequence[str]
) -> dict[str, torch.Tensor]:
    """Map hub-layout keys (parametrizations already baked) to `RadioModel` keys.

    Args:
        teacher_names: every teacher name from the checkpoint args, in list order.
        adaptor_names: teachers whose heads the model has.

    Heads of teachers that exist but were not requested are dropped. Keys that match no rule
    keep their names, so the strict load reports them.
    """
    teacher_index = {}
    for index, name in enumerate(teacher_names):
        teacher_index.setdefault(str(index), name)
        teacher_index.setdefault(name, name)

    mapped: dict[str, torch.Tensor] = {}
    exact = dict(_HUB_BACKBONE)
    for key, value in state.items():
        if key in exact:
            mapped[exact[key]] = value
            continue
        head = _HUB_HEAD.match(key)
        if head and head["key"] in teacher_index:
            name = teacher_index[head["key"]]
            if name in adaptor_names:
                part = "summary_head" if head["kind"] == "_heads" else "feature_head"
                mapped[f"adaptors.{name}.{part}.{_rename_layer_scale(head['rest'])}"] = value
            continue
        for old, new in _HUB_PREFIXES:
            if key.startswith(old):
                key = _rename_layer_scale(new + key[len(old) :])
                break
        mapped[key] = value
    return mapped


def native_to_model(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map transformers `RadioModel` keys to `RadioModel` keys, fusing q, k, v into qkv."""
    mapped: dict[str, torch.Tensor] = {}
    qkv_parts: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        if key in _NATIVE_UNUSED:
            logger.debug("Skipping %s, which image inference does not use.", key)
            continue
        if key in _NATIVE_EMBEDDINGS:
            mapped[_NATIVE_EMBEDDINGS[key]] = value
            continue
        if key.startswith("input_conditioner."):
            mapped[key] = value
            continue
        match = _NATIVE_BLOCK.match(key)
        if match is None:
            mapped[key] = value
            continue
        prefix, rest = f"blocks.{match['index']}.", match["rest"]
        projection = re.match(r"^attention\.(?P<qkv>[qkv])_proj\.(?P<param>weight|bias)$", rest)
        if projection:
            parts = qkv_parts.setdefault(f"{prefix}attn.qkv.{projection['param']}", {})
            parts[projection["qkv"]] = value
            continue
        for old, new in _NATIVE_BLOCK_RENAMES.items():
            if rest.startswith(old):
                rest = new + rest[len(old) :]
                break
        mapped[prefix + rest] = value

    for key, parts in qkv_parts.items():
        if set(parts) != {"q", "k", "v"}:
            missing = sorted({"q", "k", "v"} - set(parts))
            raise CheckpointKeyError(f"Checkpoint is missing the {missing} projections for {key}.")
        mapped[key] = torch.cat([parts["q"], parts["k"], parts["v"]], dim=0)
    return mapped


def native_disk_to_model(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map a transformers `RadioModel` file saved with RADIO's `radio_model.*` key names.

    transformers 5.x renames these keys to its own on load and back on save, so files written
    by `save_pretrained` use them. LayerScale appears as `layer_scale{1,2}.lambda1`. Teacher
    heads, which transformers does not model, are dropped.
    """
    hub_state = {}
    for key, value in remote_to_hub(state).items():
        if key.startswith(("_heads.", "_feature_projections.")) or key in _NATIVE_DISK_UNUSED:
            logger.info("Skipping %s, which the transformers RadioModel layout does not use.", key)
            continue
        hub_state[_NATIVE_DISK_LAYER_SCALE.sub(r".ls\g<index>.gamma", key)] = value
    return hub_to_model(hub_state, teacher_names=(), adaptor_names=())


def load_strict(
    model: nn.Module,
    state: dict[str, torch.Tensor],
    source: str,
    checkpoint_state: Mapping[str, torch.Tensor] | None = None,
) -> None:
    """Copy `state` into `model`, raising one CheckpointKeyError for every key problem.

    `checkpoint_state` is the state as read from the file. Unknown and mismatched tensors are
    reported under their names in that file when the renaming kept the tensor object.
    Tensors are cast to the dtype of the model's parameters, so half checkpoints are upcast.
    """
    file_names = {id(value): key for key, value in (checkpoint_state or {}).items()}

    def describe(key: str) -> str:
        name = file_names.get(id(state[key]), key)
        return name if name == key else f"{name} (model key {key})"

    expected = model.state_dict()
    unexpected = sorted(describe(key) for key in state if key not in expected)
    missing = sorted(key for key in expected if key not in state)
    mismatched = sorted(
        f"{describe(key)}: checkpoint {list(state[key].shape)}, model {list(expected[key].shape)}"
        for key in state
        if key in expected and state[key].shape != expected[key].shape
    )
    if unexpected or missing or mismatched:
        lines = [f"Checkpoint {source} does not match the model built from its own config."]
        if unexpected:
            lines.append(f"Unknown keys ({len(unexpected)}): " + ", ".join(unexpected))
        if missing:
            lines.append(f"Missing model keys ({len(missing)}): " + ", ".join(missing))
        if mismatched:
            lines.append(f"Shape mismatches ({len(mismatched)}): " + "; ".join(mismatched))
        lines.append(
            "The file may be corrupt, from another model family, or use a layout this loader "
            "does not know (for example patch normalisation or SwiGLU blocks)."
        )
        raise CheckpointKeyError("\n".join(lines))
    model.load_state_dict(state, strict=True)


def _rename_layer_scale(key: str) -> str:
    # RADIO renamed LayerScale's `gamma` to `grandma`, and both load into timm's `gamma`.
    return _LAYER_SCALE.sub(lambda m: f".ls{m['index']}.gamma", key)
