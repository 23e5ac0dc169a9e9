"""The paper's COCO / ADE20K tables (paper-readme.md), per project config:
params (M), FLOPs (G) and FPS (RTX 3090), as published (rounded)."""

PAPER_TABLES = {
    'retinanet_litv2_s_w2': (38, 242, 18.7),
    'retinanet_litv2_s_w4': (38, 230, 20.4),
    'retinanet_litv2_m_w2': (59, 348, 12.2),
    'retinanet_litv2_m_w4': (59, 312, 14.8),
    'retinanet_litv2_b_w2': (97, 481, 9.5),
    'retinanet_litv2_b_w4': (97, 430, 11.8),
    'mask_rcnn_litv2_s_w2': (47, 261, 18.7),
    'mask_rcnn_litv2_s_w4': (47, 249, 21.9),
    'mask_rcnn_litv2_m_w2': (68, 367, 12.6),
    'mask_rcnn_litv2_m_w4': (68, 315, 16.0),
    'mask_rcnn_litv2_b_w2': (106, 500, 9.3),
    'mask_rcnn_litv2_b_w4': (106, 449, 11.5),
    'semantic_fpn_litv2_s_ade20k': (31, 41, 42.6),
    'semantic_fpn_litv2_m_ade20k': (52, 63, 28.5),
    'semantic_fpn_litv2_b_ade20k': (90, 93, 27.5),
}
