"""Tracker features of a SAM 3 video model, computed without its detector.

In the video model one trunk call per frame feeds two necks: the detector
neck and the tracker neck (`sam2_convs` of `Sam3DualViTDetNeck`). The tracker
reads the tracker neck's levels after its mask decoder's `conv_s0` and
`conv_s1`. Running the tracker alone needs only that branch.
"""

from __future__ import annotations

from collections import OrderedDict

import torch

from sam3_radio.predict.video_frames import VideoFrames


def tracker_neck_features(model, images: torch.Tensor) -> dict[str, list[torch.Tensor]]:
    """Run the trunk and the tracker neck of a video model on [B, 3, S, S] images.

    Returns `{"backbone_fpn", "vision_pos_enc"}`, each a list of three
    [B, 256, h, w] tensors at 4x, 2x and 1x the token grid: the
    `sam2_backbone_out` levels of `SAM3VLBackbone.forward_image`. The detector
    neck and the level that the backbone's `scalp` drops are not computed.
    """
    vl_backbone = model.detector.backbone
    neck = vl_backbone.vision_backbone
    if neck.sam2_convs is None:
        raise ValueError(
            "the model's neck has no tracker branch (sam2_convs): build it with "
            "build_sam3_video_model"
        )
    levels = len(neck.sam2_convs) - vl_backbone.scalp
    tokens = neck.trunk(images)[-1]
    fpn, position_encodings = [], []
    for conv in neck.sam2_convs[:levels]:
        feature = conv(tokens)
        fpn.append(feature)
        position_encodings.append(neck.position_encoding(feature).to(feature.dtype))
    return {"backbone_fpn": fpn, "vision_pos_enc": position_encodings}


class TrackerFeatures:
    """Tracker features of video frames, computed when the tracker looks them up.

    `Sam3TrackerPredictor` reads `inference_state["cached_features"].get(frame_index)`
    and expects `(image [1, 3, S, S], {"backbone_fpn", "vision_pos_enc"})`, where
    the first two feature levels have already passed through its mask decoder's
    `conv_s0` and `conv_s1`. The last `cache_size` frames are kept, so that
    several tracker states stepping through the same frame share one trunk call.
    """

    def __init__(self, model, frames: VideoFrames, device: torch.device, cache_size: int = 2):
        self.model = model
        self.frames = frames
        self.device = device
        self.cache_size = cache_size
        self.computed_frames: list[int] = []
        self._cache: OrderedDict[int, tuple[torch.Tensor, dict]] = OrderedDict()

    def get(self, frame_index: int, default=None) -> tuple[torch.Tensor, dict]:
        cached = self._cache.get(frame_index)
        if cached is not None:
            self._cache.move_to_end(frame_index)
            return cached
        image = self.frames[frame_index].unsqueeze(0).to(self.device)
        features = tracker_neck_features(self.model, image)
        mask_decoder = self.model.tracker.sam_mask_decoder
        fpn = features["backbone_fpn"]
        fpn[0] = mask_decoder.conv_s0(fpn[0])
        fpn[1] = mask_decoder.conv_s1(fpn[1])
        features["vision_features"] = fpn[-1]
        self._cache[frame_index] = (image, features)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        self.computed_frames.append(frame_index)
        return image, features
