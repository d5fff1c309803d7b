"""Hub sources (short names, downloads, sharded weights, offline errors) with a fake downloader."""

from __future__ import annotations

import json
import shutil

import httpx
import pytest
from huggingface_hub.errors import LocalEntryNotFoundError, RemoteEntryNotFoundError

from sam3_radio.radio import (
    CheckpointNotFoundError,
    load_radio,
    loading,
    write_hf_checkpoint,
    write_torchhub_checkpoint,
)


class FakeHub:
    """Replacement for hf_hub_download that serves files from a local folder and records calls."""

    def __init__(self, folder, missing=()):
        self.folder = folder
        self.missing = set(missing)
        self.calls = []

    def __call__(self, repo_id, filename, revision=None, token=None, cache_dir=None):
        self.calls.append(
            dict(
                repo_id=repo_id,
                filename=filename,
                revision=revision,
                token=token,
                cache_dir=cache_dir,
            )
        )
        if filename in self.missing:
            # The response object is only constructed, so nothing is sent.
            request = httpx.Request(
                "GET", f"https://huggingface.co/{repo_id}/resolve/main/{filename}"
            )
            response = httpx.Response(404, request=request)
            raise RemoteEntryNotFoundError(f"{filename} not in {repo_id}", response=response)
        path = self.folder / filename
        if not path.exists():
            raise LocalEntryNotFoundError(
                "Cannot find the requested files in the disk cache and outgoing traffic has "
                "been disabled."
            )
        return str(path)


@pytest.fixture
def torchhub_cache(tmp_path, monkeypatch):
    """Empty torch.hub directory, so no real cached checkpoint is picked up."""
    hub_dir = tmp_path / "torch_hub"
    hub_dir.mkdir()
    monkeypatch.setattr(loading.torch.hub, "get_dir", lambda: str(hub_dir))
    return hub_dir


def install(monkeypatch, hub):
    monkeypatch.setattr(loading, "hf_hub_download", hub)
    return hub


@pytest.mark.parametrize("source", ["c-radio_v4-so400m", "nvidia/C-RADIOv4-SO400M"])
def test_official_repo_reads_torchhub_file(
    tmp_path, monkeypatch, tiny_model, source, torchhub_cache
):
    write_torchhub_checkpoint(tiny_model, tmp_path / "c-radio_v4-so400m_half.pth.tar")
    hub = install(monkeypatch, FakeHub(tmp_path))
    model = load_radio(source, revision="abc123", token="secret", cache_dir=tmp_path / "cache")
    assert model.feature_dim("sam3") == 64
    assert hub.calls == [
        dict(
            repo_id="nvidia/C-RADIOv4-SO400M",
            filename="c-radio_v4-so400m_half.pth.tar",
            revision="abc123",
            token="secret",
            cache_dir=tmp_path / "cache",
        )
    ]


def test_offline_error_names_file_and_fix(tmp_path, monkeypatch, torchhub_cache):
    install(monkeypatch, FakeHub(tmp_path))
    with pytest.raises(CheckpointNotFoundError) as error:
        load_radio("c-radio_v4-h")
    message = str(error.value)
    assert "c-radio_v4-h_half.pth.tar" in message
    assert "nvidia/C-RADIOv4-H" in message
    assert "HF_TOKEN" in message
    assert "hf download nvidia/C-RADIOv4-H c-radio_v4-h_half.pth.tar" in message
    assert "local path" in message


def test_offline_uses_torchhub_cache(tmp_path, monkeypatch, tiny_model, torchhub_cache):
    (torchhub_cache / "checkpoints").mkdir()
    write_torchhub_checkpoint(
        tiny_model, torchhub_cache / "checkpoints" / "c-radio_v4-h_half.pth.tar"
    )
    install(monkeypatch, FakeHub(tmp_path))
    assert load_radio("c-radio_v4-h").feature_dim("sam3") == 64


def test_other_repo_reads_safetensors(tmp_path, monkeypatch, tiny_model, torchhub_cache):
    write_hf_checkpoint(tiny_model, tmp_path, layout="remote")
    hub = install(monkeypatch, FakeHub(tmp_path))
    model = load_radio("someone/radio-copy", adaptor_names=("sam3", "dino_v3"))
    assert model.adaptor_names == ("sam3", "dino_v3")
    assert [call["filename"] for call in hub.calls] == ["config.json", "model.safetensors"]


def test_other_repo_sharded_safetensors(tmp_path, monkeypatch, tiny_model, torchhub_cache):
    write_hf_checkpoint(tiny_model, tmp_path, layout="remote")
    shutil.move(tmp_path / "model.safetensors", tmp_path / "model-00001-of-00001.safetensors")
    index = {"weight_map": {"radio_model.summary_idxs": "model-00001-of-00001.safetensors"}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    install(monkeypatch, FakeHub(tmp_path, missing={"model.safetensors"}))
    assert load_radio("someone/radio-copy").feature_dim("sam3") == 64


def test_other_repo_offline_error(tmp_path, monkeypatch, torchhub_cache):
    install(monkeypatch, FakeHub(tmp_path))
    with pytest.raises(
        CheckpointNotFoundError, match="config.json from Hugging Face repo someone/x"
    ):
        load_radio("someone/x")


def test_missing_local_path_error(tmp_path):
    with pytest.raises(CheckpointNotFoundError, match="not an existing file or folder"):
        load_radio(tmp_path / "absent.pth.tar")


def test_local_config_file_path_loads_folder(tmp_path, tiny_model):
    write_hf_checkpoint(tiny_model, tmp_path, layout="remote")
    assert load_radio(tmp_path / "config.json").feature_dim("sam3") == 64
