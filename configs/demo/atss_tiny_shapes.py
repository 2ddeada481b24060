# A small ATSS (ResNet-18 at 1/4 width, one head conv) for the synthetic shapes
# data set that `mmxai.datasets.make_detection_split` writes; trains on CPU in
# minutes. Only sizes, data and schedule differ from MMDetection's ATSS config.
_base_ = 'mmdet::atss/atss_r50_fpn_1x_coco.py'

data_root = 'work_dirs/shapes/detection/'
metainfo = dict(classes=('red_square', 'green_circle', 'blue_triangle'))
image_scale = (256, 256)

model = dict(
    backbone=dict(depth=18, stem_channels=16, base_channels=16, frozen_stages=-1,
                  norm_eval=False, init_cfg=None),
    neck=dict(in_channels=[16, 32, 64, 128], out_channels=32),
    bbox_head=dict(num_classes=3, in_channels=32, feat_channels=32, stacked_convs=1,
                   norm_cfg=dict(type='GN', num_groups=8, requires_grad=True)))

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

train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=400, val_interval=400)
optim_wrapper = dict(_delete_=True, type='OptimWrapper',
                     optimizer=dict(type='AdamW', lr=2e-3, weight_decay=1e-4),
                     clip_grad=dict(max_norm=10.0))
param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=40)]
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=400, max_keep_ckpts=1),
                     logger=dict(interval=25))
log_processor = dict(by_epoch=False)
