# A small ResNet-18 classifier (1/4 width) for the synthetic shapes data set
# that `mmxai.datasets.make_classification_split` writes (annotation files). Only sizes, data and
# schedule differ from MMPretrain's ResNet-18 config.
_base_ = 'mmpretrain::resnet/resnet18_8xb32_in1k.py'

data_root = 'work_dirs/shapes/classification/'
metainfo = dict(classes=('red_square', 'green_circle', 'blue_triangle'))

model = dict(
    backbone=dict(stem_channels=16, base_channels=16),
    head=dict(num_classes=3, in_channels=128, topk=(1, )))
data_preprocessor = dict(num_classes=3)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=16, num_workers=0, persistent_workers=False,
    dataset=dict(_delete_=True, type='CustomDataset', data_root=data_root,
                 data_prefix='train', ann_file='train.txt', metainfo=metainfo,
                 pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True))
val_dataloader = dict(
    batch_size=16, num_workers=0, persistent_workers=False,
    dataset=dict(_delete_=True, type='CustomDataset', data_root=data_root,
                 data_prefix='val', ann_file='val.txt', metainfo=metainfo,
                 pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator

train_cfg = dict(_delete_=True, by_epoch=False, max_iters=200, val_interval=200)
optim_wrapper = dict(optimizer=dict(_delete_=True, type='AdamW', lr=2e-3, weight_decay=1e-4))
param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=30)]
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=200, max_keep_ckpts=1),
                     logger=dict(interval=25))
log_processor = dict(by_epoch=False)
