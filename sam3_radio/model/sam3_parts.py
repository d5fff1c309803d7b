"""Build every SAM 3 part except the trunk, from a table of sizes.

The `sam3` 0.1.4 builders hard-code their sizes in private helpers, so this
module builds the same `sam3` classes from a `Sam3Spec`. `SAM3_FULL` contains the
values of `sam3.model_builder` exactly: a test checks that a model built from it
has the same parameter names, shapes and outputs as `build_sam3_image_model`.
`SAM3_TINY` keeps every part and the 72x72 token grid but few layers and narrow
widths, so tests build and run it in seconds on a CPU.

The model width (`d_model` = 256) stays fixed: the tracker's mask encoder and
mask downsampler hard-code 256 channels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn as nn
from sam3.model.decoder import (
    TransformerDecoder,
    TransformerDecoderLayer,
    TransformerDecoderLayerv2,
    TransformerEncoderCrossAttention,
)
from sam3.model.encoder import TransformerEncoderFusion, TransformerEncoderLayer
from sam3.model.geometry_encoders import SequenceGeometryEncoder
from sam3.model.maskformer_segmentation import PixelDecoder, UniversalSegmentationHead
from sam3.model.memory import CXBlock, SimpleFuser, SimpleMaskDownSampler, SimpleMaskEncoder
from sam3.model.model_misc import MLP, DotProductScoring, TransformerWrapper
from sam3.model.model_misc import MultiheadAttentionWrapper as MultiheadAttention
from sam3.model.position_encoding import PositionEmbeddingSine
from sam3.model.sam3_tracking_predictor import Sam3TrackerPredictor
from sam3.model.text_encoder_ve import VETextEncoder
from sam3.model.tokenizer_ve import SimpleTokenizer
from sam3.model.vitdet import ViT
from sam3.sam.transformer import RoPEAttention

D_MODEL = 256
IMAGE_SIZE = 1008
PATCH_SIZE = 14
TOKEN_GRID = IMAGE_SIZE // PATCH_SIZE  # 72


@dataclass(frozen=True)
class PeTrunkSpec:
    """Sizes of SAM 3's Perception Encoder trunk (`sam3.model.vitdet.ViT`)."""

    embed_dim: int
    depth: int
    num_heads: int
    mlp_ratio: float
    global_att_blocks: tuple[int, ...]
    window_size: int = 24
    pretrain_img_size: int = 336


@dataclass(frozen=True)
class Sam3Spec:
    """Sizes of every SAM 3 part. The trunk output width is `trunk.embed_dim`."""

    trunk: PeTrunkSpec
    text_width: int
    text_heads: int
    text_layers: int
    fusion_layers: int
    decoder_layers: int
    num_queries: int
    ffn_dim: int
    num_heads: int
    geometry_layers: int
    scoring_hidden_dim: int
    memory_attention_layers: int
    memory_ffn_dim: int


SAM3_FULL = Sam3Spec(
    trunk=PeTrunkSpec(
        embed_dim=1024,
        depth=32,
        num_heads=16,
        mlp_ratio=4.625,
        global_att_blocks=(7, 15, 23, 31),
    ),
    text_width=1024,
    text_heads=16,
    text_layers=24,
    fusion_layers=6,
    decoder_layers=6,
    num_queries=200,
    ffn_dim=2048,
    num_heads=8,
    geometry_layers=3,
    scoring_hidden_dim=2048,
    memory_attention_layers=4,
    memory_ffn_dim=2048,
)

SAM3_TINY = Sam3Spec(
    trunk=PeTrunkSpec(
        embed_dim=64,
        depth=2,
        num_heads=4,
        mlp_ratio=2.0,
        global_att_blocks=(1,),
    ),
    text_width=64,
    text_heads=4,
    text_layers=1,
    fusion_layers=1,
    decoder_layers=1,
    num_queries=20,
    ffn_dim=128,
    num_heads=8,
    geometry_layers=1,
    scoring_hidden_dim=128,
    memory_attention_layers=1,
    memory_ffn_dim=128,
)


def _attention(spec: Sam3Spec, dropout: float, batch_first: bool | None = None):
    kwargs = {"num_heads": spec.num_heads, "dropout": dropout, "embed_dim": D_MODEL}
    if batch_first is not None:
        kwargs["batch_first"] = batch_first
    return MultiheadAttention(**kwargs)


def _sine_position_encoding(num_pos_feats: int = D_MODEL, precompute_resolution=None):
    return PositionEmbeddingSine(
        num_pos_feats=num_pos_feats,
        normalize=True,
        scale=None,
        temperature=10000,
        precompute_resolution=precompute_resolution,
    )


def build_pe_trunk(spec: Sam3Spec, compile_mode: str | None = None) -> ViT:
    """Build the Perception Encoder trunk: [B, 3, 1008, 1008] -> [[B, C, 72, 72]]."""
    trunk = spec.trunk
    return ViT(
        img_size=IMAGE_SIZE,
        pretrain_img_size=trunk.pretrain_img_size,
        patch_size=PATCH_SIZE,
        embed_dim=trunk.embed_dim,
        depth=trunk.depth,
        num_heads=trunk.num_heads,
        mlp_ratio=trunk.mlp_ratio,
        norm_layer="LayerNorm",
        drop_path_rate=0.1,
        qkv_bias=True,
        use_abs_pos=True,
        tile_abs_pos=True,
        global_att_blocks=trunk.global_att_blocks,
        rel_pos_blocks=(),
        use_rope=True,
        use_interp_rope=True,
        window_size=trunk.window_size,
        pretrain_use_cls_token=True,
        retain_cls_token=False,
        ln_pre=True,
        ln_post=False,
        return_interm_layers=False,
        bias_patch_embed=False,
        compile_mode=compile_mode,
    )


def build_text_encoder(spec: Sam3Spec, bpe_path: str) -> VETextEncoder:
    """Build the text encoder; `bpe_path` is the gzip CLIP BPE vocabulary."""
    return VETextEncoder(
        tokenizer=SimpleTokenizer(bpe_path=bpe_path),
        d_model=D_MODEL,
        width=spec.text_width,
        heads=spec.text_heads,
        layers=spec.text_layers,
    )


def build_fusion_encoder(spec: Sam3Spec) -> TransformerEncoderFusion:
    """Build the encoder that fuses the 72x72 image tokens with the prompt tokens."""
    layer = TransformerEncoderLayer(
        activation="relu",
        d_model=D_MODEL,
        dim_feedforward=spec.ffn_dim,
        dropout=0.1,
        pos_enc_at_attn=True,
        pos_enc_at_cross_attn_keys=False,
        pos_enc_at_cross_attn_queries=False,
        pre_norm=True,
        self_attention=_attention(spec, 0.1, batch_first=True),
        cross_attention=_attention(spec, 0.1, batch_first=True),
    )
    return TransformerEncoderFusion(
        layer=layer,
        num_layers=spec.fusion_layers,
        d_model=D_MODEL,
        num_feature_levels=1,
        frozen=False,
        use_act_checkpoint=True,
        add_pooled_text_to_img_feat=False,
        pool_text_with_mask=True,
    )


def build_detr_decoder(spec: Sam3Spec) -> TransformerDecoder:
    """Build the DETR decoder with the presence token and box refinement."""
    layer = TransformerDecoderLayer(
        activation="relu",
        d_model=D_MODEL,
        dim_feedforward=spec.ffn_dim,
        dropout=0.1,
        cross_attention=_attention(spec, 0.1),
        n_heads=spec.num_heads,
        use_text_cross_attention=True,
    )
    return TransformerDecoder(
        layer=layer,
        num_layers=spec.decoder_layers,
        num_queries=spec.num_queries,
        return_intermediate=True,
        box_refine=True,
        num_o2m_queries=0,
        dac=True,
        boxRPB="log",
        d_model=D_MODEL,
        frozen=False,
        interaction_layer=None,
        dac_use_selfatt_ln=True,
        resolution=IMAGE_SIZE,
        stride=PATCH_SIZE,
        use_act_checkpoint=True,
        presence_token=True,
    )


def build_transformer(spec: Sam3Spec) -> TransformerWrapper:
    """Build the fusion encoder and DETR decoder pair."""
    return TransformerWrapper(
        encoder=build_fusion_encoder(spec),
        decoder=build_detr_decoder(spec),
        d_model=D_MODEL,
    )


def build_dot_product_scoring(spec: Sam3Spec) -> DotProductScoring:
    """Build the query-to-prompt scoring head."""
    prompt_mlp = MLP(
        input_dim=D_MODEL,
        hidden_dim=spec.scoring_hidden_dim,
        output_dim=D_MODEL,
        num_layers=2,
        dropout=0.1,
        residual=True,
        out_norm=nn.LayerNorm(D_MODEL),
    )
    return DotProductScoring(d_model=D_MODEL, d_proj=D_MODEL, prompt_mlp=prompt_mlp)


def build_segmentation_head(compile_mode: str | None = None) -> UniversalSegmentationHead:
    """Build the mask head; its sizes follow `d_model` only."""
    pixel_decoder = PixelDecoder(
        num_upsampling_stages=3,
        interpolation_mode="nearest",
        hidden_dim=D_MODEL,
        compile_mode=compile_mode,
    )
    return UniversalSegmentationHead(
        hidden_dim=D_MODEL,
        upsampling_stages=3,
        aux_masks=False,
        presence_head=False,
        dot_product_scorer=None,
        act_ckpt=True,
        cross_attend_prompt=MultiheadAttention(num_heads=8, dropout=0, embed_dim=D_MODEL),
        pixel_decoder=pixel_decoder,
    )


def build_geometry_encoder(spec: Sam3Spec) -> SequenceGeometryEncoder:
    """Build the encoder of box and point prompts (normalised cxcywh boxes)."""
    layer = TransformerEncoderLayer(
        activation="relu",
        d_model=D_MODEL,
        dim_feedforward=spec.ffn_dim,
        dropout=0.1,
        pos_enc_at_attn=False,
        pre_norm=True,
        self_attention=_attention(spec, 0.1, batch_first=False),
        pos_enc_at_cross_attn_queries=False,
        pos_enc_at_cross_attn_keys=True,
        cross_attention=_attention(spec, 0.1, batch_first=False),
    )
    return SequenceGeometryEncoder(
        pos_enc=_sine_position_encoding(),
        encode_boxes_as_points=False,
        points_direct_project=True,
        points_pool=True,
        points_pos_enc=True,
        boxes_direct_project=True,
        boxes_pool=True,
        boxes_pos_enc=True,
        d_model=D_MODEL,
        num_layers=spec.geometry_layers,
        layer=layer,
        use_act_ckpt=True,
        add_cls=True,
        add_post_encode_proj=True,
    )


def _build_memory_encoder() -> SimpleMaskEncoder:
    cx_block = CXBlock(
        dim=D_MODEL, kernel_size=7, padding=3, layer_scale_init_value=1.0e-06, use_dwconv=True
    )
    return SimpleMaskEncoder(
        out_dim=64,
        position_encoding=_sine_position_encoding(64, precompute_resolution=IMAGE_SIZE),
        mask_downsampler=SimpleMaskDownSampler(
            kernel_size=3, stride=2, padding=1, interpol_size=[1152, 1152]
        ),
        fuser=SimpleFuser(layer=cx_block, num_layers=2),
    )


def _build_memory_attention(spec: Sam3Spec) -> TransformerWrapper:
    rope = {
        "embedding_dim": D_MODEL,
        "num_heads": 1,
        "downsample_rate": 1,
        "dropout": 0.1,
        "rope_theta": 10000.0,
        "feat_sizes": [TOKEN_GRID, TOKEN_GRID],
        "use_fa3": False,
        "use_rope_real": False,
    }
    layer = TransformerDecoderLayerv2(
        cross_attention_first=False,
        activation="relu",
        dim_feedforward=spec.memory_ffn_dim,
        dropout=0.1,
        pos_enc_at_attn=False,
        pre_norm=True,
        self_attention=RoPEAttention(**rope),
        d_model=D_MODEL,
        pos_enc_at_cross_attn_keys=True,
        pos_enc_at_cross_attn_queries=False,
        cross_attention=RoPEAttention(**rope, kv_in_dim=64, rope_k_repeat=True),
    )
    encoder = TransformerEncoderCrossAttention(
        remove_cross_attention_layers=[],
        batch_first=True,
        d_model=D_MODEL,
        frozen=False,
        pos_enc_at_input=True,
        layer=layer,
        num_layers=spec.memory_attention_layers,
        use_act_checkpoint=False,
    )
    return TransformerWrapper(encoder=encoder, decoder=None, d_model=D_MODEL)


def build_tracker(spec: Sam3Spec, apply_temporal_disambiguation: bool) -> Sam3TrackerPredictor:
    """Build the SAM 3 tracker (memory attention, memory encoder, SAM mask decoder).

    It has no backbone: it reads the trunk's features through the tracker neck.
    The `sam3` constructor enters a bf16 CUDA autocast in the calling thread and
    never leaves it. This function leaves it again, because every call in this
    package enters its own autocast (see `device.inference_context`).
    """
    tracker = Sam3TrackerPredictor(
        image_size=IMAGE_SIZE,
        num_maskmem=7,
        backbone=None,
        backbone_stride=PATCH_SIZE,
        transformer=_build_memory_attention(spec),
        maskmem_backbone=_build_memory_encoder(),
        multimask_output_in_sam=True,
        forward_backbone_per_frame_for_eval=True,
        trim_past_non_cond_mem_for_eval=False,
        multimask_output_for_tracking=True,
        multimask_min_pt_num=0,
        multimask_max_pt_num=1,
        always_start_from_first_ann_frame=False,
        non_overlap_masks_for_mem_enc=False,
        non_overlap_masks_for_output=False,
        max_cond_frames_in_attn=4,
        offload_output_to_cpu_for_eval=False,
        sam_mask_decoder_extra_args={
            "dynamic_multimask_via_stability": True,
            "dynamic_multimask_stability_delta": 0.05,
            "dynamic_multimask_stability_thresh": 0.98,
        },
        clear_non_cond_mem_around_input=True,
        fill_hole_area=0,
        use_memory_selection=apply_temporal_disambiguation,
    )
    tracker.bf16_context.__exit__(None, None, None)
    return tracker
