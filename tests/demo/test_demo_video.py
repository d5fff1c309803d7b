from pathlib import Path

import cv2
import pytest

from sam3_radio.demo.video import VideoRunner, compare_video


@pytest.fixture(scope="module")
def two_frame_clip(tmp_path_factory, shared_data) -> Path:
    """The first two frames of video-0001, downscaled to 320x180."""
    folder = tmp_path_factory.mktemp("clip")
    for path in sorted((shared_data / "video-0001").glob("*.jpg"))[:2]:
        frame = cv2.imread(str(path))
        cv2.imwrite(str(folder / path.name), cv2.resize(frame, (320, 180)))
    return folder


def tiny_video_runner(name: str) -> VideoRunner:
    from sam3_radio.model.video_builder import build_sam3_video_model

    return VideoRunner(name, lambda: build_sam3_video_model(name, weights="random", device="cpu"))


def test_video_writes_clip_per_backbone(two_frame_clip):
    runners = [tiny_video_runner("tiny-pe"), tiny_video_runner("tiny-radio")]

    results = compare_video(runners, two_frame_clip, "person", max_frames=2)

    assert [result.label for result in results] == ["tiny-pe", "tiny-radio"]
    for result in results:
        assert result.num_frames == 2
        assert result.path.suffix == ".webm"
        reader = cv2.VideoCapture(str(result.path))
        assert int(reader.get(cv2.CAP_PROP_FRAME_COUNT)) == 2
        assert int(reader.get(cv2.CAP_PROP_FRAME_WIDTH)) == 320
        reader.release()


class UnusedRunner:
    label = "unused"

    def run(self, *args):
        raise AssertionError("a rejected request must not reach the tracker")


# (case, video, text, max_frames, fragment of the error message)
REJECTED_CASES = [
    ("no video", None, "person", 4, "no video"),
    ("empty text", "clip.mp4", "   ", 4, "no prompt"),
    ("zero frames", "clip.mp4", "person", 0, "max_frames=0"),
]


@pytest.mark.parametrize(
    "video, text, max_frames, message",
    [case[1:] for case in REJECTED_CASES],
    ids=[case[0] for case in REJECTED_CASES],
)
def test_video_rejects_bad_request(video, text, max_frames, message):
    with pytest.raises(ValueError, match=message):
        compare_video([UnusedRunner(), UnusedRunner()], video, text, max_frames)
