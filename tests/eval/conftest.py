"""Small evaluation datasets built from the shared images and video frames.

- COCO: the three shared images, downscaled, with hand-drawn polygons in two
  categories.
- SA-Co/Gold: the same images as (image, noun phrase) pairs, two annotators.
- SA-Co/VEval: two frames of video-0001 with one masklet and one negative pair,
  and the same without the negative pair.
- SA-V: three frames of video-0001 with two objects annotated on every frame.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from sam3_radio.predict.export import encode_rle

IMAGE_SIZES = {"truck.jpg": (300, 200), "groceries.jpg": (300, 200), "test_image.jpg": (320, 180)}
FRAME_SIZE = (160, 90)

# Polygons (pixel x, y pairs) per image, drawn by hand on the downscaled images.
POLYGONS = {
    "truck.jpg": [
        (1, [40, 60, 260, 60, 270, 150, 30, 150]),
        (2, [120, 150, 160, 150, 160, 185, 120, 185]),
    ],
    "groceries.jpg": [
        (2, [20, 30, 120, 30, 130, 180, 10, 180]),
        (2, [150, 40, 280, 40, 280, 170, 150, 170]),
    ],
    "test_image.jpg": [(1, [100, 60, 220, 50, 230, 140, 90, 150])],
}
CATEGORIES = [{"id": 1, "name": "truck"}, {"id": 2, "name": "bag"}]


def rectangle(height: int, width: int, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    mask = np.zeros((height, width), dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


def write_images(folder: Path, shared_data: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, size in IMAGE_SIZES.items():
        Image.open(shared_data / "images" / name).convert("RGB").resize(size).save(folder / name)
    return folder


def coco_dataset() -> dict:
    images, annotations = [], []
    for image_id, (name, (width, height)) in enumerate(IMAGE_SIZES.items(), start=1):
        images.append({"id": image_id, "file_name": name, "width": width, "height": height})
        for category_id, polygon in POLYGONS[name]:
            rle = mask_utils.merge(mask_utils.frPyObjects([polygon], height, width))
            x, y, w, h = mask_utils.toBbox(rle).tolist()
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": category_id,
                    "segmentation": [polygon],
                    "area": float(mask_utils.area(rle)),
                    "bbox": [x, y, w, h],
                    "iscrowd": 0,
                }
            )
    return {"images": images, "annotations": annotations, "categories": CATEGORIES}


def gold_datasets() -> list[dict]:
    """Two annotators over five pairs; pair 5 is not instance-exhaustive."""
    pairs = [
        (1, "truck.jpg", "truck", 1),
        (2, "truck.jpg", "zebra", 1),
        (3, "groceries.jpg", "bag", 1),
        (4, "test_image.jpg", "truck", 1),
        (5, "test_image.jpg", "bag", 0),
    ]
    datasets = []
    for annotator in range(2):
        images = []
        for pair_id, name, text, exhaustive in pairs:
            width, height = IMAGE_SIZES[name]
            images.append(
                {
                    "id": pair_id,
                    "file_name": name,
                    "text_input": text,
                    "width": width,
                    "height": height,
                    "is_instance_exhaustive": exhaustive,
                    "is_pixel_exhaustive": exhaustive,
                    "queried_category": text,
                }
            )
        annotations = []
        masks = {
            1: [(40, 60, 260, 150)],
            3: [(20, 30, 120, 180), (150, 40, 280, 170)] if annotator == 0 else [(20, 30, 125, 180)],
            4: [(100, 50, 230, 150)],
        }
        for pair_id, boxes in masks.items():
            width, height = IMAGE_SIZES[pairs[pair_id - 1][1]]
            for x0, y0, x1, y1 in boxes:
                mask = rectangle(height, width, x0, y0, x1, y1)
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": pair_id,
                        "category_id": 1,
                        "segmentation": encode_rle(mask),
                        "bbox": [x0 / width, y0 / height, (x1 - x0) / width, (y1 - y0) / height],
                        "area": float(mask.sum()) / (width * height),
                        "iscrowd": 0,
                    }
                )
        datasets.append(
            {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "object"}]}
        )
    return datasets


def veval_dataset(num_frames: int, width: int, height: int) -> dict:
    """One video, one 'car' masklet moving right, one negative 'zebra' pair."""
    file_names = [f"vid0/{index:05d}.jpg" for index in range(num_frames)]
    masks = [rectangle(height, width, 20 + 5 * index, 20, 80 + 5 * index, 70) for index in range(num_frames)]
    annotation = {
        "id": 1,
        "video_id": 0,
        "category_id": 1,
        "noun_phrase": "car",
        "segmentations": [encode_rle(mask) for mask in masks],
        "bboxes": [[20.0 + 5 * index, 20.0, 60.0, 50.0] for index in range(num_frames)],
        "areas": [float(mask.sum()) for mask in masks],
        "iscrowd": 0,
        "height": height,
        "width": width,
    }
    return {
        "info": {},
        "videos": [
            {
                "id": 0,
                "video_name": "vid0",
                "file_names": file_names,
                "height": height,
                "width": width,
                "length": num_frames,
            }
        ],
        "annotations": [annotation],
        "categories": [{"id": 1, "name": "car"}, {"id": 2, "name": "zebra"}],
        "video_np_pairs": [
            {"id": 1, "video_id": 0, "category_id": 1, "noun_phrase": "car", "num_masklets": 1},
            {"id": 2, "video_id": 0, "category_id": 2, "noun_phrase": "zebra", "num_masklets": 0},
        ],
    }


def sav_masks(num_frames: int, width: int, height: int) -> dict[str, dict[int, np.ndarray]]:
    return {
        "000": {i: rectangle(height, width, 10 + 4 * i, 10, 60 + 4 * i, 60) for i in range(num_frames)},
        "001": {i: rectangle(height, width, 100, 30 + 3 * i, 150, 80) for i in range(num_frames)},
    }


@pytest.fixture(scope="session")
def eval_images(tmp_path_factory, shared_data) -> Path:
    return write_images(tmp_path_factory.mktemp("eval_images"), shared_data)


@pytest.fixture(scope="session")
def coco_files(tmp_path_factory, eval_images) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("coco")
    annotations = folder / "instances.json"
    annotations.write_text(json.dumps(coco_dataset()))
    return {"annotations": annotations, "images": eval_images}


@pytest.fixture(scope="session")
def gold_files(tmp_path_factory, eval_images) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("gold")
    for annotator, dataset in zip("ab", gold_datasets()):
        (folder / f"gold_tiny_merged_{annotator}_release_test.json").write_text(json.dumps(dataset))
    return {"root": folder, "images": eval_images}


@pytest.fixture(scope="session")
def veval_files(tmp_path_factory, shared_data) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("veval")
    width, height = FRAME_SIZE
    num_frames = 2
    media = folder / "media"
    (media / "vid0").mkdir(parents=True)
    for index in range(num_frames):
        frame = Image.open(shared_data / "video-0001" / f"{index:05d}.jpg").convert("RGB")
        frame.resize(FRAME_SIZE).save(media / "vid0" / f"{index:05d}.jpg")
    dataset = veval_dataset(num_frames, width, height)
    gt_file = folder / "tiny_veval_gt.json"
    gt_file.write_text(json.dumps(dataset))
    dataset["video_np_pairs"] = dataset["video_np_pairs"][:1]
    positive_gt_file = folder / "tiny_veval_positive_gt.json"
    positive_gt_file.write_text(json.dumps(dataset))
    return {"gt_file": gt_file, "positive_gt_file": positive_gt_file, "media_dir": media}


@pytest.fixture(scope="session")
def sav_root(tmp_path_factory, shared_data) -> Path:
    root = tmp_path_factory.mktemp("sav")
    width, height = FRAME_SIZE
    num_frames = 3
    frames = root / "JPEGImages_24fps" / "vid0"
    frames.mkdir(parents=True)
    for index in range(num_frames):
        frame = Image.open(shared_data / "video-0001" / f"{index:05d}.jpg").convert("RGB")
        frame.resize(FRAME_SIZE).save(frames / f"{index:05d}.jpg")
    for object_id, masks in sav_masks(num_frames, width, height).items():
        folder = root / "Annotations_6fps" / "vid0" / object_id
        folder.mkdir(parents=True)
        for index, mask in masks.items():
            Image.fromarray(mask.astype(np.uint8) * 255).save(folder / f"{index:05d}.png")
    return root
