"""Image predictor: encode an image once, then answer many prompts on it.

Two prompt paths share one encoded image:
- `predict` is SAM 3's concept path: a noun phrase and/or example boxes
  (positive or negative) find every matching instance.
- `predict_boxes` is the SAM 1-style interactive path: one mask per box.
Boxes are pixel xyxy in the original image. Results are `supervision.Detections`
with masks at the original image size.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import supervision as sv
import torch
import torch.nn.functional as F
from PIL import Image
from sam3.model.data_misc import FindStage
from torchvision.transforms import v2

from sam3_radio.model.device import inference_context, resolve_dtype
from sam3_radio.predict.boxes import (
    normalized_cxcywh_to_xyxy,
    validate_boxes_xyxy,
    xyxy_to_normalized_cxcywh,
)

logger = logging.getLogger(__name__)

# `sam3` uses this text when a concept prompt has boxes but no noun phrase.
VISUAL_PROMPT_TEXT = "visual"
PE_INPUT_SIZE = 1008
# Masks are upsampled this many detections at a time to bound memory on large images.
MASK_CHUNK = 8


def image_transform(resolution: int) -> v2.Compose:
    """Return SAM 3's image transform: square resize, then scale to [-1, 1].

    The aspect ratio is not kept, as in `sam3.model.sam3_image_processor`.
    """
    return v2.Compose(
        [
            v2.ToDtype(torch.uint8, scale=True),
            v2.Resize(size=(resolution, resolution)),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5]),
        ]
    )


def _check_text(text: str | None) -> str | None:
    if text is None:
        return None
    if not isinstance(text, str) or not text.strip():
        raise ValueError(
            f"text prompt {text!r} is empty: pass a noun phrase such as 'truck', "
            "or prompt with boxes only"
        )
    return text.strip()


@dataclass(frozen=True)
class EncodedImage:
    """Features of one image from `set_image`, and its size (width, height) in pixels."""

    features: dict[str, Any]
    image_size: tuple[int, int]


class Sam3ImagePredictor:
    """Run SAM 3 prompts on one image at a time.

    Args:
        model: a `Sam3Image` from `build_sam3_image_model`.
        dtype: 'fp32' or 'bf16' (autocast on the model's device).
        threshold: keep concept detections whose score (query probability x
            presence probability) exceeds this value.

    Example:
        >>> predictor = Sam3ImagePredictor(model, dtype="bf16")
        >>> predictor.set_image(load_image("truck.jpg"))
        >>> detections = predictor.predict(text="truck")
    """

    def __init__(self, model, dtype: str | torch.dtype = "fp32", threshold: float = 0.5):
        self.model = model
        self.dtype = resolve_dtype(dtype)
        self.threshold = _check_threshold(threshold)
        self.device = next(model.parameters()).device
        trunk = model.backbone.vision_backbone.trunk
        self.resolution = getattr(trunk, "input_size", PE_INPUT_SIZE)
        self.transform = image_transform(self.resolution)
        self._backbone_out: dict | None = None
        self._image_size: tuple[int, int] | None = None

    @property
    def image_size(self) -> tuple[int, int]:
        """(width, height) of the current image in pixels."""
        if self._image_size is None:
            raise RuntimeError("no image is set: call set_image(image) first")
        return self._image_size

    def set_image(self, image: Image.Image | np.ndarray) -> None:
        """Encode `image` (PIL RGB, or uint8 HWC RGB array) and keep its features."""
        if isinstance(image, np.ndarray):
            if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                raise ValueError(
                    f"image array must be uint8 [H, W, 3] RGB, got {image.dtype} {image.shape}"
                )
            image = Image.fromarray(image)
        if not isinstance(image, Image.Image):
            raise TypeError(f"image must be a PIL image or numpy array, got {type(image)}")
        if image.mode != "RGB":
            raise ValueError(f"image mode is {image.mode}: convert it to RGB first")
        width, height = image.size
        tensor = v2.functional.to_image(image).to(self.device)
        batch = self.transform(tensor).unsqueeze(0)
        with inference_context(self.device, self.dtype):
            backbone_out = self.model.backbone.forward_image(batch)
            interactive = self.model.inst_interactive_predictor
            if interactive is not None and backbone_out.get("sam2_backbone_out") is not None:
                decoder = interactive.model.sam_mask_decoder
                fpn = backbone_out["sam2_backbone_out"]["backbone_fpn"]
                fpn[0] = decoder.conv_s0(fpn[0])
                fpn[1] = decoder.conv_s1(fpn[1])
        self._backbone_out = backbone_out
        self._image_size = (width, height)

    def encoded_image(self) -> EncodedImage:
        """Return the current image's features, to cache and restore later."""
        return EncodedImage(self._backbone_out, self.image_size)

    def restore_encoded_image(self, encoded: EncodedImage) -> None:
        """Make `encoded` the current image without running the encoder again.

        The features must come from this predictor's model.
        """
        self._backbone_out = encoded.features
        self._image_size = encoded.image_size

    def predict(
        self,
        text: str | None = None,
        boxes: Sequence[Sequence[float]] | np.ndarray | None = None,
        negative_boxes: Sequence[Sequence[float]] | np.ndarray | None = None,
        threshold: float | None = None,
    ) -> sv.Detections:
        """Find every instance of a concept given by a noun phrase and/or example boxes.

        Args:
            text: noun phrase, e.g. "truck". None means boxes only.
            boxes: positive example boxes, pixel xyxy [N, 4].
            negative_boxes: negative example boxes, pixel xyxy [M, 4].
            threshold: score threshold for this call; defaults to `self.threshold`.

        Returns:
            Detections with xyxy pixel boxes, bool masks [N, H, W] at the
            original size, confidence, class_id 0 and data["class_name"].
        """
        if text is None:
            width, height = self.image_size
            if len(validate_boxes_xyxy(boxes, width, height)) == 0:
                raise ValueError("no prompt: pass a text prompt and/or at least one positive box")
        texts = [VISUAL_PROMPT_TEXT if text is None else text]
        return self.predict_texts(
            texts, boxes=boxes, negative_boxes=negative_boxes, threshold=threshold
        )[0]

    def predict_texts(
        self,
        texts: Sequence[str],
        boxes: Sequence[Sequence[float]] | np.ndarray | None = None,
        negative_boxes: Sequence[Sequence[float]] | np.ndarray | None = None,
        threshold: float | None = None,
    ) -> list[sv.Detections]:
        """Run several noun phrases on the current image as one decoder batch.

        The image is encoded once by `set_image`. Each text becomes one query
        of the batch, with the same example boxes, so N prompts cost one
        fusion-encoder and decoder pass of batch N instead of N passes.

        Returns:
            One `Detections` per text, in order, each with class_id equal to
            the text's index and data["class_name"] equal to the text.
        """
        if isinstance(texts, str):
            raise TypeError("texts must be a list of strings; use predict(text=...) for one")
        texts = [_check_text(text) for text in texts]
        if not texts:
            raise ValueError("texts is empty: pass at least one noun phrase")
        width, height = self.image_size
        positives = validate_boxes_xyxy(boxes, width, height)
        negatives = validate_boxes_xyxy(negative_boxes, width, height)
        threshold = self.threshold if threshold is None else _check_threshold(threshold)
        with inference_context(self.device, self.dtype):
            outputs = self._forward_grounding(texts, positives, negatives)
        return [
            self._to_detections(outputs, index, threshold, text) for index, text in enumerate(texts)
        ]

    def predict_boxes(self, boxes: Sequence[Sequence[float]] | np.ndarray) -> sv.Detections:
        """Segment one object per box with the interactive predictor.

        Args:
            boxes: pixel xyxy [N, 4], N >= 1.

        Returns:
            Detections in box order: xyxy are the input boxes (clipped to the
            image), masks [N, H, W] bool, confidence the predicted mask IoU.
        """
        if self.model.inst_interactive_predictor is None:
            raise RuntimeError(
                "this model has no interactive predictor: build it with interactive=True"
            )
        width, height = self.image_size
        boxes = validate_boxes_xyxy(boxes, width, height)
        if len(boxes) == 0:
            raise ValueError("predict_boxes needs at least one box")
        state = {
            "original_height": height,
            "original_width": width,
            "backbone_out": self._backbone_out,
        }
        with inference_context(self.device, self.dtype):
            masks, iou_scores, _ = self.model.predict_inst(
                state, box=boxes, multimask_output=False, normalize_coords=True
            )
        masks = np.asarray(masks).reshape(len(boxes), -1, height, width)[:, 0] > 0
        scores = np.asarray(iou_scores, dtype=np.float32).reshape(len(boxes), -1)[:, 0]
        return sv.Detections(
            xyxy=boxes.astype(np.float32),
            mask=masks,
            confidence=scores,
            class_id=np.zeros(len(boxes), dtype=int),
            data={"class_name": np.array(["box"] * len(boxes))},
        )

    def _forward_grounding(self, texts: list[str], positives: np.ndarray, negatives: np.ndarray):
        width, height = self.image_size
        num_queries = len(texts)
        backbone_out = dict(self._backbone_out)
        backbone_out.update(self.model.backbone.forward_text(texts, device=self.device))
        prompt = self.model._get_dummy_prompt(num_prompts=num_queries)
        all_boxes = np.concatenate([positives, negatives])
        if len(all_boxes):
            normalized = xyxy_to_normalized_cxcywh(all_boxes, width, height)
            box_tensor = torch.from_numpy(normalized).to(self.device)
            box_tensor = box_tensor.view(-1, 1, 4).expand(-1, num_queries, 4).contiguous()
            labels = torch.tensor(
                [True] * len(positives) + [False] * len(negatives), device=self.device
            )
            prompt.append_boxes(box_tensor, labels.view(-1, 1).expand(-1, num_queries).contiguous())
        find_stage = FindStage(
            img_ids=torch.zeros(num_queries, device=self.device, dtype=torch.long),
            text_ids=torch.arange(num_queries, device=self.device, dtype=torch.long),
            input_boxes=None,
            input_boxes_mask=None,
            input_boxes_label=None,
            input_points=None,
            input_points_mask=None,
        )
        return self.model.forward_grounding(
            backbone_out=backbone_out,
            find_input=find_stage,
            geometric_prompt=prompt,
            find_target=None,
        )

    def _to_detections(
        self, outputs: dict, query: int, threshold: float, class_name: str
    ) -> sv.Detections:
        width, height = self.image_size
        probs = outputs["pred_logits"][query].float().sigmoid()
        presence = outputs["presence_logit_dec"][query].float().sigmoid()
        scores = (probs * presence).squeeze(-1)
        keep = scores > threshold
        scores = scores[keep]
        order = torch.argsort(scores, descending=True)
        scores = scores[order]
        boxes = outputs["pred_boxes"][query][keep][order].float().cpu().numpy()
        low_res = outputs["pred_masks"][query][keep][order].float()
        masks = np.zeros((len(scores), height, width), dtype=bool)
        for start in range(0, len(scores), MASK_CHUNK):
            chunk = low_res[start : start + MASK_CHUNK].unsqueeze(1)
            upsampled = F.interpolate(chunk, (height, width), mode="bilinear", align_corners=False)
            # Thresholding the probability (not the logit at 0) matches `sam3`'s
            # processor bit for bit where the sigmoid rounds to exactly 0.5.
            masks[start : start + MASK_CHUNK] = (upsampled[:, 0].sigmoid() > 0.5).cpu().numpy()
        xyxy = normalized_cxcywh_to_xyxy(boxes, width, height)
        xyxy[:, [0, 2]] = xyxy[:, [0, 2]].clip(0, width)
        xyxy[:, [1, 3]] = xyxy[:, [1, 3]].clip(0, height)
        return sv.Detections(
            xyxy=xyxy,
            mask=masks,
            confidence=scores.cpu().numpy().astype(np.float32),
            class_id=np.full(len(scores), query, dtype=int),
            data={"class_name": np.array([class_name] * len(scores))},
        )


def _check_threshold(threshold: float) -> float:
    threshold = float(threshold)
    if not 0.0 <= threshold < 1.0:
        raise ValueError(f"threshold {threshold} is outside [0, 1): use e.g. 0.5")
    return threshold
