"""Video frames that are decoded, resized and normalised only when indexed.

`sam3`'s loaders decode a whole video into one tensor of [T, 3, 1008, 1008]
(6 MB per frame in float16), and its OpenCV mp4 loader does not divide by
255, so mp4 frames reach the model in [-1, 509] instead of [-1, 1].
`VideoFrames` replaces that tensor in the `sam3` inference state: the model
only needs `len(frames)` and `frames[i]`, so a frame is read from disk when the
model asks for it, run through SAM 3's image transform, and kept in a small
LRU cache.

Inputs: an mp4 (or other OpenCV-readable video) file, a folder of frame images
named by frame number (00000.jpg, 00001.jpg, ...), or a list of PIL images or
uint8 [H, W, 3] RGB arrays. Every frame must have the same size.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torchvision.transforms import v2

from sam3_radio.predict.image import image_transform
from sam3_radio.predict.io import ImageReadError, load_image

VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")
FRAME_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


class VideoReadError(ValueError):
    """Raised when a video, frame folder or frame list cannot be read."""


class _FolderReader:
    """Frames stored as image files, ordered by the number in their names."""

    def __init__(self, folder: Path):
        paths = [p for p in folder.iterdir() if p.suffix.lower() in FRAME_EXTENSIONS]
        if not paths:
            raise VideoReadError(
                f"frame folder {str(folder)!r} contains no images: it must contain frames "
                f"named by number, e.g. 00000.jpg, with an extension in {FRAME_EXTENSIONS}"
            )
        if all(p.stem.isdigit() for p in paths):
            paths.sort(key=lambda p: int(p.stem))
        else:
            paths.sort()
        self.paths = paths
        self.name = folder.name
        self.size = _common_size([(p.name, _header_size(p)) for p in paths])

    def __len__(self) -> int:
        return len(self.paths)

    def read(self, index: int) -> np.ndarray:
        try:
            return np.asarray(load_image(self.paths[index]))
        except ImageReadError as error:
            raise VideoReadError(f"frame {index}: {error}") from error


class _VideoFileReader:
    """Frames decoded with OpenCV, sequentially when possible and by seeking otherwise."""

    def __init__(self, path: Path):
        self.path = path
        self.name = path.stem
        self._lock = threading.Lock()
        self._capture = cv2.VideoCapture(str(path))
        if not self._capture.isOpened():
            raise VideoReadError(
                f"cannot open video {str(path)!r}: OpenCV has no decoder for it or the file "
                "is damaged. Convert it to H.264 mp4 or extract its frames into a folder"
            )
        fps = self._capture.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and fps > 0 else None
        # CAP_PROP_FRAME_COUNT comes from the container header and can be wrong,
        # so the frames are counted by grabbing them once.
        count = 0
        while self._capture.grab():
            count += 1
        self._count = count
        self._next_index = count
        if count == 0:
            raise VideoReadError(
                f"video {str(path)!r} has no decodable frames: check the file with "
                "`ffprobe` or extract its frames into a folder"
            )
        first = self.read(0)
        self.size = (first.shape[1], first.shape[0])

    def __len__(self) -> int:
        return self._count

    def read(self, index: int) -> np.ndarray:
        with self._lock:
            if index != self._next_index:
                self._capture.set(cv2.CAP_PROP_POS_FRAMES, index)
            ok, bgr = self._capture.read()
            self._next_index = index + 1 if ok else -1
        if not ok:
            raise VideoReadError(f"failed to decode frame {index} of {str(self.path)!r}")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        with self._lock:
            self._capture.release()


class _ListReader:
    """Frames given in memory as PIL images or uint8 [H, W, 3] RGB arrays."""

    def __init__(self, frames: Sequence[Image.Image | np.ndarray]):
        if len(frames) == 0:
            raise VideoReadError("the frame list is empty: pass at least one frame")
        sizes = []
        for index, frame in enumerate(frames):
            if isinstance(frame, Image.Image):
                sizes.append((f"frame {index}", frame.size))
            elif isinstance(frame, np.ndarray):
                if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
                    raise VideoReadError(
                        f"frame {index} is a {frame.dtype} array of shape {frame.shape}: "
                        "frames must be uint8 [H, W, 3] RGB arrays or PIL images"
                    )
                sizes.append((f"frame {index}", (frame.shape[1], frame.shape[0])))
            else:
                raise VideoReadError(
                    f"frame {index} is a {type(frame).__name__}: frames must be PIL images "
                    "or uint8 [H, W, 3] RGB arrays"
                )
        self.frames = frames
        self.name = "frames"
        self.size = _common_size(sizes)

    def __len__(self) -> int:
        return len(self.frames)

    def read(self, index: int) -> np.ndarray:
        frame = self.frames[index]
        if isinstance(frame, Image.Image):
            return np.asarray(frame.convert("RGB"))
        return frame


def _header_size(path: Path) -> tuple[int, int]:
    try:
        with Image.open(path) as image:
            return image.size
    except (UnidentifiedImageError, OSError) as error:
        raise VideoReadError(f"cannot read frame {str(path)!r}: {error}") from error


def _common_size(named_sizes: list[tuple[str, tuple[int, int]]]) -> tuple[int, int]:
    """Return the (width, height) shared by all frames, or raise naming the first misfit."""
    first_name, first_size = named_sizes[0]
    for name, size in named_sizes[1:]:
        if size != first_size:
            raise VideoReadError(
                f"frames have mixed sizes: {first_name} is {first_size[0]}x{first_size[1]} "
                f"but {name} is {size[0]}x{size[1]}. Resize all frames to one size first"
            )
    return first_size


class VideoFrames:
    """A video whose frames are read and preprocessed on access.

    `frames[i]` returns frame i as a float32 [3, S, S] tensor in [-1, 1]: the
    RGB frame resized to S x S (aspect ratio not kept) and normalised with mean
    and std 0.5, the transform of SAM 3's image processor. `read_rgb(i)`
    returns the original uint8 [H, W, 3] RGB frame. The last `cache_size`
    preprocessed frames are kept; nothing else stays in memory.

    Args:
        source: an mp4 (or other video) path, a folder of numbered frame
            images, or a list of PIL images or uint8 [H, W, 3] RGB arrays.
        resolution: S, the side of the square model input in pixels.
        cache_size: number of preprocessed frames to keep.
    """

    def __init__(
        self,
        source: str | Path | Sequence[Image.Image | np.ndarray],
        resolution: int,
        cache_size: int = 2,
    ):
        if cache_size < 1:
            raise ValueError(f"cache_size={cache_size} must be at least 1")
        self._reader = _open_reader(source)
        self.resolution = resolution
        self.name = self._reader.name
        self._transform = image_transform(resolution)
        self._cache: OrderedDict[int, torch.Tensor] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._reader)

    @property
    def fps(self) -> float | None:
        """Frame rate stored in a video file; None for frame folders and lists."""
        return getattr(self._reader, "fps", None)

    @property
    def width(self) -> int:
        return self._reader.size[0]

    @property
    def height(self) -> int:
        return self._reader.size[1]

    def check_index(self, index: int) -> int:
        """Return `index` as an int, or raise if it is not a frame of this video."""
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"frame index must be an int, got {type(index).__name__}")
        if not 0 <= index < len(self):
            raise IndexError(
                f"frame index {index} is out of range: the video has {len(self)} frames "
                f"(0 to {len(self) - 1})"
            )
        return int(index)

    def read_rgb(self, index: int) -> np.ndarray:
        """Return frame `index` as decoded: uint8 [H, W, 3] RGB at the original size."""
        return self._reader.read(self.check_index(index))

    def __getitem__(self, index: int) -> torch.Tensor:
        index = self.check_index(index)
        with self._lock:
            cached = self._cache.get(index)
            if cached is not None:
                self._cache.move_to_end(index)
                return cached
        tensor = self._preprocess(self._reader.read(index))
        with self._lock:
            self._cache[index] = tensor
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return tensor

    def _preprocess(self, rgb: np.ndarray) -> torch.Tensor:
        if not rgb.flags.writeable or not rgb.flags.c_contiguous:
            rgb = np.array(rgb)
        image = v2.functional.to_image(rgb)
        return self._transform(image).as_subclass(torch.Tensor)

    def close(self) -> None:
        """Release the video file, if any."""
        close = getattr(self._reader, "close", None)
        if close is not None:
            close()
        self._cache.clear()



def open_video_frames(
    video: str | Path | Sequence[Image.Image | np.ndarray] | VideoFrames,
    resolution: int,
    cache_size: int = 2,
) -> VideoFrames:
    """Return `video` as `VideoFrames` at `resolution`, checking frames opened elsewhere.

    Raises:
        ValueError: `video` is a `VideoFrames` resized to another resolution.
    """
    if not isinstance(video, VideoFrames):
        return VideoFrames(video, resolution, cache_size)
    if video.resolution != resolution:
        raise ValueError(
            f"the frames are resized to {video.resolution} px but this model's "
            f"trunk takes {resolution} px: open them with "
            f"VideoFrames(source, {resolution})"
        )
    return video

def _open_reader(source):
    if isinstance(source, (str, Path)):
        path = Path(source).expanduser()
        if path.is_dir():
            return _FolderReader(path)
        if not path.exists():
            raise VideoReadError(
                f"video {str(path)!r} not found: pass an mp4 file or a folder of frames"
            )
        if path.suffix.lower() not in VIDEO_EXTENSIONS:
            raise VideoReadError(
                f"{str(path)!r} is not a video: pass a file ending in one of "
                f"{VIDEO_EXTENSIONS}, or a folder of frames"
            )
        return _VideoFileReader(path)
    if isinstance(source, Sequence) and not isinstance(source, (bytes, str)):
        return _ListReader(source)
    raise VideoReadError(
        f"unsupported video source of type {type(source).__name__}: pass a video path, "
        "a folder of frames, or a list of PIL images or uint8 RGB arrays"
    )
