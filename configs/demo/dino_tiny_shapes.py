# A small DINO (ResNet-18 at 1/4 width, two encoder and three decoder layers,
# 512-wide feed-forwards, 30 queries) for the synthetic shapes data set that
# `mmxai.datasets.make_detection_split` writes. Only sizes, query counts, data
# and schedule differ from MMDetection's DINO config; DETR-style training is
# slow on CPU, so benchmarks/detector_quality.py trains it, not `make demo`.
_base_ = 'mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py'

data_root = 'work_dirs/shapes/detection/'
metainfo = dict(classes=('red_square', 'green_circle', 'blue_triangle'))
image_scale = (256, 256)
# MMDetection 3.3's DINO decoder encodes reference points with 128 features per
# coordinate whatever the width, so its embeddings stay 256-d.
embed_dims = 256
attention = dict(embed_dims=embed_dims)
ffn = dict(embed_dims=embed_dims, feedforward_channels=512)

model = dict(
    num_queries=30,
    backbone=dict(depth=18, stem_channels=16, base_channels=16, frozen_stages=-1,
                  norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False,
                  init_cfg=None),
    neck=dict(in_channels=[32, 64, 128], out_channels=embed_dims,
              norm_cfg=dict(type='GN', num_groups=8)),
    encoder=dict(num_layers=2, layer_cfg=dict(self_attn_cfg=attention, ffn_cfg=ffn)),
    decoder=dict(num_layers=3, layer_cfg=dict(self_attn_cfg=attention,
                                              cross_attn_cfg=attention, ffn_cfg=ffn)),
    positional_encoding=dict(num_feats=embed_dims // 2),
    bbox_head=dict(num_classes=3, embed_dims=embed_dims),
    dn_cfg=dict(group_cfg=dict(num_dn_queries=30)),
    test_cfg=dict(max_per_img=30))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=image_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=image_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=metainfo, ann_file='train.json',
                 data_prefix=dict(img='train/'), pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=metainfo, ann_file='val.json',
                 data_prefix=dict(img='val/'), pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'val.json')
test_evaluator = val_evaluator

train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=1000, val_interval=1000)
optim_wrapper = dict(_delete_=True, type='OptimWrapper',
                     optimizer=dict(type='AdamW', lr=4e-4, weight_decay=1e-4),
                     clip_grad=dict(max_norm=0.1, norm_type=2))
param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=50)]
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=1000, max_keep_ckpts=1),
                     logger=dict(interval=50))
log_processor = dict(by_epoch=False)
