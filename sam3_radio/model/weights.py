"""Locate and read SAM 3 checkpoints and the tokenizer vocabulary.

Resolution order for weights: an explicit local path, then the Hugging Face
cache, then a download. `facebook/sam3` is gated: a download needs an accepted
licence and a token (`hf auth login` or the `HF_TOKEN` variable).
"""

from __future__ import annotations

import hashlib
import logging
from importlib import resources
from pathlib import Path

import torch

logger = logging.getLogger(__name__)

SAM3_REPO_ID = "facebook/sam3"
SAM3_FILENAME = "sam3.pt"

# sha256 of the gzip CLIP BPE merges file that SAM 3's tokenizer reads. The
# `sam3` 0.1.4 wheel does not ship it; open_clip_torch ships the same file.
BPE_SHA256 = "924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a"
BPE_FILENAME = "bpe_simple_vocab_16e6.txt.gz"

# Every SAM 3 image-model key that the trunk owns starts with this prefix.
TRUNK_PREFIX = "backbone.vision_backbone.trunk."


class WeightsUnavailableError(RuntimeError):
    """Raised when a checkpoint cannot be found locally or downloaded."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def bpe_vocabulary_path() -> Path:
    """Return the verified path of SAM 3's BPE vocabulary (from open_clip_torch)."""
    try:
        path = Path(str(resources.files("open_clip") / BPE_FILENAME))
    except ModuleNotFoundError as error:
        raise WeightsUnavailableError(
            f"{BPE_FILENAME} not found because open_clip_torch is not installed: "
            "run `pip install open_clip_torch`"
        ) from error
    if not path.is_file():
        raise WeightsUnavailableError(
            f"{BPE_FILENAME} not found at {path}: reinstall open_clip_torch"
        )
    digest = _sha256(path)
    if digest != BPE_SHA256:
        raise WeightsUnavailableError(
            f"{path} has sha256 {digest}, expected {BPE_SHA256}: "
            "reinstall open_clip_torch==3.3.0"
        )
    return path


def hf_download(
    repo_id: str,
    filename: str,
    *,
    revision: str | None = None,
    token: str | None = None,
    cache_dir: str | None = None,
) -> Path:
    """Download `filename` from `repo_id` (or take it from the cache) and return its path."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
    )

    try:
        return Path(
            hf_hub_download(
                repo_id=repo_id,
                filename=filename,
                revision=revision,
                token=token,
                cache_dir=cache_dir,
            )
        )
    except GatedRepoError as error:
        raise WeightsUnavailableError(
            f"{repo_id}/{filename} is gated: accept the licence on the model page, "
            "then run `hf auth login` or set HF_TOKEN, or pass a local path"
        ) from error
    except LocalEntryNotFoundError as error:
        raise WeightsUnavailableError(
            f"{repo_id}/{filename} is not in the Hugging Face cache and could not be "
            f"downloaded (offline?): on a machine with network run "
            f"`hf download {repo_id} {filename}` and copy the file here, "
            "then pass its path"
        ) from error
    except (RepositoryNotFoundError, HfHubHTTPError, OSError) as error:
        raise WeightsUnavailableError(
            f"failed to download {repo_id}/{filename}: {error}. "
            "Check the repository name and your token, or pass a local path"
        ) from error


def resolve_sam3_checkpoint(
    weights: str | Path,
    *,
    revision: str | None = None,
    token: str | None = None,
    cache_dir: str | None = None,
) -> Path:
    """Return the local path of a SAM 3 checkpoint named by a path or 'hf'."""
    if str(weights) == "hf":
        return hf_download(
            SAM3_REPO_ID, SAM3_FILENAME, revision=revision, token=token, cache_dir=cache_dir
        )
    path = Path(weights).expanduser()
    if not path.is_file():
        raise WeightsUnavailableError(
            f"SAM 3 checkpoint {str(weights)!r} not found: pass the path of sam3.pt, "
            f"'hf' to download it from {SAM3_REPO_ID} (gated, needs a token), "
            "or 'random' for a smoke run with random weights"
        )
    return path


def read_sam3_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a SAM 3 checkpoint (`detector.*` and `tracker.*` keys) as a flat state dict."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise WeightsUnavailableError(
            f"failed to read SAM 3 checkpoint {path}: {error}"
        ) from error
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get("model"), dict):
        checkpoint = checkpoint["model"]
    if not isinstance(checkpoint, dict) or not all(
        isinstance(value, torch.Tensor) for value in checkpoint.values()
    ):
        raise WeightsUnavailableError(
            f"{path} is not a SAM 3 checkpoint: expected a dict of tensors, "
            "optionally under the key 'model'"
        )
    return checkpoint


def image_model_state(
    checkpoint: dict[str, torch.Tensor], interactive: bool
) -> dict[str, torch.Tensor]:
    """Map SAM 3 checkpoint keys to the keys of a `Sam3Image` model.

    `detector.X` becomes `X`. With the interactive predictor, `tracker.X`
    becomes `inst_interactive_predictor.model.X`, as the `sam3` image builder
    maps them.
    """
    state = {}
    for key, value in checkpoint.items():
        if key.startswith("detector."):
            state[key[len("detector.") :]] = value
        elif interactive and key.startswith("tracker."):
            state["inst_interactive_predictor.model." + key[len("tracker.") :]] = value
    return state


def sam3_checkpoint_from_image_model(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Write a `Sam3Image` model's weights in the layout of the official sam3.pt.

    The inverse of `image_model_state`, used to make official-layout files for
    tests and for models built with random weights.
    """
    checkpoint = {}
    interactive_prefix = "inst_interactive_predictor.model."
    for key, value in model.state_dict().items():
        if key.startswith(interactive_prefix):
            checkpoint["tracker." + key[len(interactive_prefix) :]] = value
        else:
            checkpoint["detector." + key] = value
    return checkpoint
