import numpy as np
import pytest
import torch
from PIL import Image

from sam3_radio.predict.video_frames import VideoFrames, VideoReadError

RESOLUTION = 1008


@pytest.fixture(scope="module")
def folder_frames(shared_data):
    return VideoFrames(shared_data / "video-0001", RESOLUTION)


@pytest.fixture(scope="module")
def mp4_frames(sample_video_mp4):
    frames = VideoFrames(sample_video_mp4, RESOLUTION)
    yield frames
    frames.close()


def test_folder_counts_and_sizes_frames(folder_frames):
    assert len(folder_frames) == 48
    assert (folder_frames.width, folder_frames.height) == (1280, 720)


def test_folder_orders_frames_by_number(tmp_path, shared_data):
    source = sorted((shared_data / "video-0001").glob("*.jpg"))
    for index, name in [(0, "2.jpg"), (1, "10.jpg"), (2, "1.jpg")]:
        (tmp_path / name).write_bytes(source[index].read_bytes())
    frames = VideoFrames(tmp_path, RESOLUTION)
    expected = np.asarray(Image.open(source[2]).convert("RGB"))
    np.testing.assert_array_equal(frames.read_rgb(0), expected)


def test_frame_tensor_shape_and_range(folder_frames):
    tensor = folder_frames[0]
    assert tensor.shape == (3, RESOLUTION, RESOLUTION)
    assert tensor.dtype == torch.float32
    assert tensor.min() >= -1.0
    assert tensor.max() <= 1.0


def test_mp4_counts_frames_and_reads_fps(mp4_frames):
    assert len(mp4_frames) == 48
    assert (mp4_frames.width, mp4_frames.height) == (1280, 720)
    assert mp4_frames.fps == pytest.approx(24.0)


def test_mp4_pixels_in_model_range(mp4_frames):
    # The upstream OpenCV loader skips the division by 255, giving [-1, 509].
    for index in (0, 47):
        tensor = mp4_frames[index]
        assert tensor.min() >= -1.0
        assert tensor.max() <= 1.0
        assert tensor.max() > 0.5


def test_mp4_frames_match_jpeg_frames(mp4_frames, folder_frames):
    for index in (0, 20, 47):
        difference = (mp4_frames[index] - folder_frames[index]).abs().mean()
        assert difference < 0.05, index


def test_mp4_random_access_matches_sequential(sample_video_mp4):
    frames = VideoFrames(sample_video_mp4, RESOLUTION)
    sequential = [frames.read_rgb(index) for index in range(6)]
    np.testing.assert_array_equal(frames.read_rgb(3), sequential[3])
    np.testing.assert_array_equal(frames.read_rgb(1), sequential[1])
    frames.close()


def test_frame_cache_is_bounded(shared_data):
    frames = VideoFrames(shared_data / "video-0001", RESOLUTION, cache_size=2)
    for index in range(5):
        frames[index]
    assert sorted(frames._cache) == [3, 4]


def test_list_of_pil_and_arrays(shared_data):
    image = Image.open(shared_data / "video-0001" / "00000.jpg").convert("RGB")
    frames = VideoFrames([image, np.asarray(image)], RESOLUTION)
    assert len(frames) == 2
    assert torch.equal(frames[0], frames[1])


def test_index_out_of_range_names_length(folder_frames):
    with pytest.raises(IndexError, match="frame index 48 is out of range: the video has 48"):
        folder_frames[48]


def test_unreadable_video_raises(tmp_path):
    path = tmp_path / "broken.mp4"
    path.write_bytes(b"not a video at all" * 100)
    with pytest.raises(VideoReadError, match="broken.mp4"):
        VideoFrames(path, RESOLUTION)


def test_missing_video_raises(tmp_path):
    with pytest.raises(VideoReadError, match="not found"):
        VideoFrames(tmp_path / "missing.mp4", RESOLUTION)


def test_empty_folder_raises(tmp_path):
    with pytest.raises(VideoReadError, match="contains no images"):
        VideoFrames(tmp_path, RESOLUTION)


def test_empty_list_raises():
    with pytest.raises(VideoReadError, match="empty"):
        VideoFrames([], RESOLUTION)


def test_mixed_frame_sizes_raise(tmp_path):
    Image.new("RGB", (64, 48)).save(tmp_path / "00000.jpg")
    Image.new("RGB", (32, 48)).save(tmp_path / "00001.jpg")
    with pytest.raises(VideoReadError, match="mixed sizes: 00000.jpg is 64x48 but 00001.jpg is 32x48"):
        VideoFrames(tmp_path, RESOLUTION)


def test_mixed_sizes_in_list_raise():
    frames = [np.zeros((48, 64, 3), np.uint8), np.zeros((48, 32, 3), np.uint8)]
    with pytest.raises(VideoReadError, match="frame 1 is 32x48"):
        VideoFrames(frames, RESOLUTION)


def test_float_array_frame_raises():
    with pytest.raises(VideoReadError, match="uint8"):
        VideoFrames([np.zeros((48, 64, 3), np.float32)], RESOLUTION)


def test_non_video_file_raises(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(VideoReadError, match="is not a video"):
        VideoFrames(path, RESOLUTION)
