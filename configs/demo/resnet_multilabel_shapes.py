# The demo ResNet (./resnet_tiny_shapes.py) as a multi-label classifier: two objects
# of distinct classes per image (`mmxai.datasets.make_multilabel_split`), one sigmoid
# per class. Only the head, the data set and the metric differ.
_base_ = './resnet_tiny_shapes.py'

data_root = 'work_dirs/shapes/multilabel/'

model = dict(head=dict(_delete_=True, type='MultiLabelLinearClsHead', num_classes=3,
                       in_channels=128))
train_dataloader = dict(dataset=dict(type='MultiLabelDataset', data_root=data_root,
                                     data_prefix='', ann_file='train.json'))
val_dataloader = dict(dataset=dict(type='MultiLabelDataset', data_root=data_root,
                                   data_prefix='', ann_file='val.json'))
test_dataloader = val_dataloader
val_evaluator = dict(_delete_=True, type='MultiLabelMetric', items=['precision', 'recall',
                                                                   'f1-score'])
test_evaluator = val_evaluator
