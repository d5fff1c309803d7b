"""Load a C-RADIO checkpoint into `RadioModel`, from a local path or the Hugging Face Hub.

Accepted sources:
- a torch.hub `.pth.tar` file (pickled `args` Namespace plus `state_dict` or `state_dict_ema`),
- a Hugging Face folder with config.json and safetensors weights, in RADIO's remote-code layout
  or in transformers' native `RadioModel` layout (backbone only),
- a Hub repo id such as "nvidia/C-RADIOv4-SO400M", or a short name ("c-radio_v4-h",
  "c-radio_v4-so400m"). Official repos are read through their torch.hub `.pth.tar`, because it
  contains every teacher head. Other repos are read through config.json and safetensors.

Pickle safety: a `.pth.tar` is first read with `torch.load(weights_only=True)`, allowing only
`argparse.Namespace` beyond tensors and plain types. Full unpickling (`weights_only=False`),
which can run arbitrary code, is used only when that fails and the file is one the caller named
explicitly as a file path or one downloaded from an official NVIDIA repo. A `.pth.tar` found
inside a folder is never fully unpickled.
"""

from __future__ import annotations

import argparse
import json
import logging
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import hf_hub_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from safetensors.torch import load_file

from .checkpoint_config import args_to_dict, config_from_hub_args, config_from_native
from .checkpoint_keys import (
    hub_to_model,
    load_strict,
    native_disk_to_model,
    native_to_model,
    remote_to_hub,
    strip_wrapper_prefixes,
)
from .model import RadioModel
from .spectral import bake_parametrizations

logger = logging.getLogger(__name__)

# Official repos and the torch.hub checkpoint each one hosts.
OFFICIAL_CHECKPOINTS = {
    "nvidia/C-RADIOv4-H": "c-radio_v4-h_half.pth.tar",
    "nvidia/C-RADIOv4-SO400M": "c-radio_v4-so400m_half.pth.tar",
}
SHORT_NAMES = {
    "c-radio_v4-h": "nvidia/C-RADIOv4-H",
    "c-radio_v4-so400m": "nvidia/C-RADIOv4-SO400M",
}
TORCHHUB_SUFFIXES = (".pth.tar", ".pth", ".pt", ".tar")
SAFETENSORS_FILE = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
_HUB_ERRORS = (
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    EntryNotFoundError,
    RepositoryNotFoundError,
    GatedRepoError,
    RevisionNotFoundError,
    HfHubHTTPError,
    OSError,
)


class CheckpointNotFoundError(FileNotFoundError):
    """Raised when checkpoint files can be neither found locally nor downloaded."""


class UntrustedCheckpointError(RuntimeError):
    """Raised when a `.pth.tar` needs full unpickling but its origin was not confirmed."""


def load_radio(
    source: str | Path,
    adaptor_names: Sequence[str] = ("sam3",),
    window_size: int | None = None,
    revision: str | None = None,
    token: str | bool | None = None,
    cache_dir: str | Path | None = None,
    global_blocks: Sequence[int] | None = None,
) -> RadioModel:
    """Build a `RadioModel` from a checkpoint's own args and shapes and load its weights.

    Args:
        source: local `.pth.tar` file, local Hugging Face folder, Hub repo id or short name.
        adaptor_names: teacher heads to load, for example ("sam3",). Pass () for the backbone
            only, which transformers-native checkpoints require.
        window_size: ViTDet window side in tokens, or None for global attention.
        revision, token, cache_dir: passed to `huggingface_hub.hf_hub_download`.
        global_blocks: override of the ViTDet global block indices.

    Returns:
        The model in eval mode. Teacher heads are fp32 and the backbone has the checkpoint's
        `args.dtype` (fp32 when absent).

    Raises:
        CheckpointNotFoundError: the file is missing locally or cannot be downloaded.
        CheckpointKeyError: the tensors do not match the architecture they describe.
        UntrustedCheckpointError: see the module docstring.
    """
    adaptor_names = (adaptor_names,) if isinstance(adaptor_names, str) else tuple(adaptor_names)
    model_kwargs = dict(
        adaptor_names=adaptor_names, window_size=window_size, global_blocks=global_blocks
    )
    path = Path(source).expanduser()

    if path.is_file():
        if path.name == "config.json" or path.suffix == ".safetensors":
            return _load_hf_folder(path.parent, model_kwargs)
        return _load_torchhub_file(path, trusted=True, model_kwargs=model_kwargs)
    if path.is_dir():
        return _load_local_folder(path, model_kwargs)

    repo_id = SHORT_NAMES.get(str(source), str(source))
    if repo_id.count("/") != 1 or Path(str(source)).suffix in TORCHHUB_SUFFIXES:
        raise CheckpointNotFoundError(
            f"Checkpoint {source!s} is not an existing file or folder, a Hub repo id "
            f"(owner/name) or a short name ({', '.join(SHORT_NAMES)})."
        )
    download = dict(revision=revision, token=token, cache_dir=cache_dir)
    if repo_id in OFFICIAL_CHECKPOINTS:
        file = _download(repo_id, OFFICIAL_CHECKPOINTS[repo_id], download)
        return _load_torchhub_file(file, trusted=True, model_kwargs=model_kwargs)
    config_file = _download(repo_id, "config.json", download)
    weight_files = _download_safetensors(repo_id, download)
    return _load_hf_files(config_file, weight_files, model_kwargs)


def read_torchhub_checkpoint(path: Path, trusted: bool) -> dict[str, Any]:
    """Read a torch.hub `.pth.tar` dict, preferring the restricted unpickler."""
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if not trusted:
            raise UntrustedCheckpointError(
                f"{path} contains pickled objects beyond tensors and an argparse Namespace, and "
                f"loading them with torch.load(weights_only=False) can run arbitrary code. "
                f"Pass the file path itself to load_radio if you trust the file. Details: {error}"
            ) from error
        logger.warning(
            "%s needs full unpickling (weights_only=False). Loading it because its origin is "
            "trusted. Restricted unpickler error: %s",
            path,
            error,
        )
        return torch.load(path, map_location="cpu", weights_only=False)


def _load_torchhub_file(path: Path, trusted: bool, model_kwargs: dict) -> RadioModel:
    checkpoint = read_torchhub_checkpoint(path, trusted)
    if not isinstance(checkpoint, dict) or "args" not in checkpoint:
        raise ValueError(f"{path} is not a C-RADIO torch.hub checkpoint: it has no 'args' entry.")
    args = args_to_dict(checkpoint["args"])
    key = "state_dict_ema" if "state_dict_ema" in checkpoint else "state_dict"
    if key not in checkpoint:
        raise ValueError(f"{path} has neither 'state_dict' nor 'state_dict_ema'.")
    logger.info("Loading %s from %s.", key, path)
    raw_state = strip_wrapper_prefixes(checkpoint[key])
    state = bake_parametrizations(raw_state, **_spectral_settings(args))
    return _build_from_hub_state(args, state, str(path), model_kwargs, raw_state)


def _build_from_hub_state(
    args: dict[str, Any],
    state: dict[str, torch.Tensor],
    source: str,
    model_kwargs: dict,
    raw_state: dict[str, torch.Tensor],
    token_slots: dict[str, int] | None = None,
    summary_idxs: tuple[int, ...] | None = None,
) -> RadioModel:
    config = config_from_hub_args(args, state, token_slots, summary_idxs)
    model = RadioModel(config, **model_kwargs)
    teacher_names = [teacher["name"] for teacher in args.get("teachers") or []]
    mapped = hub_to_model(state, teacher_names, model.adaptor_names)
    load_strict(model, mapped, source, raw_state)
    return _cast_backbone(model)


def _load_local_folder(folder: Path, model_kwargs: dict) -> RadioModel:
    if (folder / "config.json").is_file():
        return _load_hf_folder(folder, model_kwargs)
    candidates = sorted(p for p in folder.iterdir() if p.name.endswith(TORCHHUB_SUFFIXES))
    if len(candidates) == 1:
        return _load_torchhub_file(candidates[0], trusted=False, model_kwargs=model_kwargs)
    raise CheckpointNotFoundError(
        f"Folder {folder} has no config.json and {len(candidates)} torch.hub checkpoint files "
        f"({[p.name for p in candidates]}). Pass the checkpoint file path instead."
    )


def _load_hf_folder(folder: Path, model_kwargs: dict) -> RadioModel:
    index = folder / SAFETENSORS_INDEX
    if index.is_file():
        weight_files = [folder / name for name in _index_files(index)]
    else:
        weight_files = sorted(folder.glob("*.safetensors"))
    if not weight_files:
        raise CheckpointNotFoundError(
            f"Folder {folder} has config.json but no .safetensors weights."
        )
    return _load_hf_files(folder / "config.json", weight_files, model_kwargs)


def _load_hf_files(
    config_file: Path, weight_files: Sequence[Path], model_kwargs: dict
) -> RadioModel:
    config_json = json.loads(Path(config_file).read_text())
    state: dict[str, torch.Tensor] = {}
    for file in weight_files:
        state.update(load_file(str(file)))
    state = strip_wrapper_prefixes(state)
    source = str(Path(config_file).parent)

    if "args" in config_json:
        return _build_remote(config_json, state, source, model_kwargs)
    if config_json.get("model_type") == "radio":
        return _build_native(config_json, state, source, model_kwargs)
    raise ValueError(
        f"{config_file} is neither a RADIO remote-code config (no 'args') nor a transformers "
        f"RadioModel config (model_type is {config_json.get('model_type')!r}, expected 'radio')."
    )


def _build_remote(config_json: dict, state: dict, source: str, model_kwargs: dict) -> RadioModel:
    args = dict(config_json["args"])
    if config_json.get("vitdet_window_size"):
        logger.info(
            "Ignoring vitdet_window_size=%s from config.json. Pass window_size to load_radio.",
            config_json["vitdet_window_size"],
        )
    adaptor_configs = config_json.get("adaptor_configs") or {}
    token_slots = {
        name: int(entry["head_idx"])
        for name, entry in adaptor_configs.items()
        if "head_idx" in entry
    }
    stored = state.get("radio_model.summary_idxs")
    if stored is not None:
        summary_idxs = tuple(int(i) for i in stored.tolist())
    else:
        # The remote-code model takes every teacher with use_summary, duplicates included.
        teachers = args.get("teachers") or []
        summary_idxs = tuple(i for i, t in enumerate(teachers) if t.get("use_summary", True))
        if not args.get("cls_token_per_teacher", False):
            summary_idxs = (0,)
    hub_state = bake_parametrizations(remote_to_hub(state), **_spectral_settings(args))
    return _build_from_hub_state(
        args, hub_state, source, model_kwargs, state, token_slots, summary_idxs
    )


def _build_native(config_json: dict, state: dict, source: str, model_kwargs: dict) -> RadioModel:
    if model_kwargs["adaptor_names"]:
        raise ValueError(
            f"{source} is a transformers RadioModel checkpoint, which stores no teacher heads, "
            f"but adaptor_names={list(model_kwargs['adaptor_names'])} were requested. Pass "
            f"adaptor_names=() for the backbone, or load the torch.hub or remote-code checkpoint."
        )
    if any(key.startswith("radio_model.") for key in state):
        mapped = native_disk_to_model(state)
    else:
        mapped = native_to_model(state)
    layer_scale_value = float(config_json.get("layerscale_value", 1.0))
    config = config_from_native(config_json, mapped)
    if not config.layer_scale and layer_scale_value != 1.0:
        raise ValueError(
            f"{source} sets layerscale_value={layer_scale_value} but stores no LayerScale tensors. "
            f"Without LayerScale tensors this loader supports only the C-RADIO default of 1.0."
        )
    model = RadioModel(config, **model_kwargs)
    load_strict(model, mapped, source, state)
    return _cast_backbone(model)


def _spectral_settings(args: dict[str, Any]) -> dict[str, Any]:
    # RADIO uses eps 1e-6 when spectral_reparam is True and the dict's values (default eps
    # 1e-12, one power iteration) when it is a dict.
    setting = args.get("spectral_reparam")
    if isinstance(setting, dict):
        return dict(
            eps=float(setting.get("eps", 1e-12)),
            power_iterations=int(setting.get("n_power_iterations", 1)),
        )
    return dict(eps=1e-6, power_iterations=1)


def _cast_backbone(model: RadioModel) -> RadioModel:
    dtype = getattr(torch, model.config.backbone_dtype, None)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(
            f"Invalid backbone dtype {model.config.backbone_dtype!r} in checkpoint args."
        )
    if dtype != torch.float32:
        for module in (model.patch_generator, model.blocks, model.norm):
            module.to(dtype)
    return model


def _download(repo_id: str, filename: str, options: dict) -> Path:
    try:
        return Path(hf_hub_download(repo_id, filename, **options))
    except _HUB_ERRORS as error:
        cached = _torchhub_cache_file(filename)
        if cached is None:
            raise _download_error(repo_id, filename, options, error) from error
        logger.warning(
            "Download of %s failed (%s). Using torch.hub cache %s.", filename, error, cached
        )
        return cached


def _download_safetensors(repo_id: str, options: dict) -> list[Path]:
    try:
        return [Path(hf_hub_download(repo_id, SAFETENSORS_FILE, **options))]
    except RemoteEntryNotFoundError:
        logger.info("%s has no %s. Reading the sharded index.", repo_id, SAFETENSORS_FILE)
    except _HUB_ERRORS as error:
        raise _download_error(repo_id, SAFETENSORS_FILE, options, error) from error
    index = _download(repo_id, SAFETENSORS_INDEX, options)
    return [_download(repo_id, name, options) for name in _index_files(index)]


def _download_error(repo_id: str, filename: str, options: dict, error: Exception) -> Exception:
    revision = options.get("revision") or "main"
    return CheckpointNotFoundError(
        f"Could not get {filename} from Hugging Face repo {repo_id} (revision {revision}): "
        f"{type(error).__name__}: {error}. Fixes: check the network and, for a gated or private "
        f"repo, log in with `hf auth login` or set HF_TOKEN. Or download the file once with "
        f"`hf download {repo_id} {filename} --local-dir DIR` and pass the local path "
        f"DIR/{filename} to load_radio."
    )


def _index_files(index: Path) -> list[str]:
    weight_map = json.loads(index.read_text())["weight_map"]
    return sorted(set(weight_map.values()))


def _torchhub_cache_file(filename: str) -> Path | None:
    # torch.hub.load stores official RADIO checkpoints under <hub dir>/checkpoints/<file name>.
    if not filename.endswith(".pth.tar"):
        return None
    path = Path(torch.hub.get_dir()) / "checkpoints" / filename
    return path if path.is_file() else None
