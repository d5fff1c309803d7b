"""The RADIO trunk adapter: C-RADIOv4 plus its `sam3` head behind SAM 3's trunk contract.

SAM 3's neck calls `trunk(images)` with images of shape [B, 3, H, W] normalised
to [-1, 1], reads only the last item of the returned list, a channels-first
[B, C, 72, 72] tensor, and sizes its convolutions from `trunk.channel_list[-1]`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from sam3_radio.radio import RadioModel

SAM3_HEAD = "sam3"


class RadioTrunk(nn.Module):
    """Expose a `RadioModel` and its `sam3` head as a SAM 3 trunk.

    Args:
        radio: the encoder, built with the `sam3` adaptor head.
        input_size: side in pixels of the square image fed to RADIO; 1152 px
            with 16 px patches gives SAM 3's 72x72 token grid.

    The forward pass:
    1. maps [-1, 1] back to [0, 1], because RADIO normalises inside the model
       with the mean and std stored in its checkpoint;
    2. resizes bilinearly to `input_size` when the input has another size;
    3. runs the encoder, with ViTDet windows if the model was built with them;
    4. applies the `sam3` head to the patch tokens (cls and register tokens are
       not part of the dense features);
    5. returns `[features]` with features of shape [B, C, G, G], C = 1024 for the
       official heads and G = input_size / patch_size.
    """

    def __init__(self, radio: "RadioModel", input_size: int = 1152):
        super().__init__()
        if SAM3_HEAD not in radio.adaptor_names:
            raise ValueError(
                f"the RADIO model has no {SAM3_HEAD!r} head (heads: "
                f"{list(radio.adaptor_names)}): build or load it with "
                f"adaptor_names=('{SAM3_HEAD}',)"
            )
        if input_size % radio.min_resolution_step != 0:
            raise ValueError(
                f"input_size {input_size} is not a multiple of {radio.min_resolution_step} "
                f"(patch size {radio.patch_size} x window size {radio.window_size or 1})"
            )
        self.radio = radio
        self.input_size = input_size
        self.channel_list = [radio.feature_dim(SAM3_HEAD)]

    @property
    def token_grid(self) -> int:
        return self.input_size // self.radio.patch_size

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Map [B, 3, H, W] images in [-1, 1] to `[Tensor[B, C, G, G]]` float32 features."""
        images = images * 0.5 + 0.5
        if images.shape[-2:] != (self.input_size, self.input_size):
            images = F.interpolate(
                images,
                size=(self.input_size, self.input_size),
                mode="bilinear",
                align_corners=False,
            )
        outputs = self.radio(images, feature_fmt="NCHW")
        return [outputs[SAM3_HEAD].features.float()]
