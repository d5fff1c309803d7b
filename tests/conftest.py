import os
from pathlib import Path

import pytest

SHARED_DATA = Path(os.environ.get("SAM3_RADIO_SHARED_DATA", Path(__file__).parents[2] / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"shared test data not found at {SHARED_DATA}: set SAM3_RADIO_SHARED_DATA")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_pe_model():
    from sam3_radio.model.builder import build_sam3_image_model

    return build_sam3_image_model("tiny-pe", weights="random", device="cpu")


@pytest.fixture(scope="session")
def tiny_sam3_checkpoint(tmp_path_factory, tiny_pe_model):
    """A tiny SAM 3 checkpoint in the official sam3.pt layout (`model` -> detector/tracker keys)."""
    import torch

    from sam3_radio.model.weights import sam3_checkpoint_from_image_model

    path = tmp_path_factory.mktemp("sam3") / "sam3.pt"
    torch.save({"model": sam3_checkpoint_from_image_model(tiny_pe_model)}, path)
    return path


@pytest.fixture(scope="session")
def tiny_radio_checkpoint(tmp_path_factory):
    """A tiny C-RADIO checkpoint in the torch.hub `.pth.tar` layout, with a 64-channel sam3 head."""
    from sam3_radio.radio import RADIO_PRESETS, write_torchhub_checkpoint

    path = tmp_path_factory.mktemp("radio") / "tiny_half.pth.tar"
    return write_torchhub_checkpoint(RADIO_PRESETS["tiny"], path, seed=5)


@pytest.fixture(scope="session")
def sample_video_mp4(tmp_path_factory, shared_data) -> Path:
    """The 48 frames of video-0001 encoded as an mp4 (OpenCV mp4v, 24 fps)."""
    import cv2

    frames = sorted((shared_data / "video-0001").glob("*.jpg"))
    first = cv2.imread(str(frames[0]))
    path = tmp_path_factory.mktemp("video") / "video-0001.mp4"
    writer = cv2.VideoWriter(
        str(path), cv2.VideoWriter_fourcc(*"mp4v"), 24.0, (first.shape[1], first.shape[0])
    )
    for frame in frames:
        writer.write(cv2.imread(str(frame)))
    writer.release()
    return path
