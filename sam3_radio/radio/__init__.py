"""Clean-room C-RADIO (v3/v4) encoder with CPE position embedding, ViTDet windows and teacher heads.

Typical use::

    from sam3_radio.radio import load_radio

    model = load_radio("nvidia/C-RADIOv4-SO400M", adaptor_names=("sam3",), window_size=12)
    outputs = model(images, feature_fmt="NCHW")  # images: [B, 3, 1152, 1152] RGB in [0, 1]
    sam3_features = outputs["sam3"].features     # [B, C, 72, 72], fp32
"""

from .checkpoint_keys import CheckpointKeyError
from .config import RADIO_PRESETS, HeadConfig, RadioConfig, TeacherConfig
from .heads import RadioOutput
from .loading import CheckpointNotFoundError, UntrustedCheckpointError, load_radio
from .model import RadioModel, nearest_supported_resolution
from .vitdet import default_global_blocks, valid_window_sizes
from .writers import write_hf_checkpoint, write_torchhub_checkpoint

__all__ = [
    "CheckpointKeyError",
    "CheckpointNotFoundError",
    "HeadConfig",
    "RADIO_PRESETS",
    "RadioConfig",
    "RadioModel",
    "RadioOutput",
    "TeacherConfig",
    "UntrustedCheckpointError",
    "default_global_blocks",
    "load_radio",
    "nearest_supported_resolution",
    "valid_window_sizes",
    "write_hf_checkpoint",
    "write_torchhub_checkpoint",
]
