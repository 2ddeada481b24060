# The demo ResNet (./resnet_tiny_shapes.py) as a multi-label classifier: two objects
# of distinct classes per image (`mmxai.datasets.make_multilabel_split`), one sigmoid
# per class. The head, the data set, the metric and the pooling differ.
_base_ = './resnet_tiny_shapes.py'

data_root = 'work_dirs/shapes/multilabel/'

# MMPretrain's generalized-mean pooling (GeM, p = 3, learnt) instead of the average:
# every last-stage cell of this ResNet sees the whole 256 px image, and an average lets
# each cell carry a label seen anywhere (its class maps peaked in their own object for
# 23-26 % of labels), while GeM weighs the cells that respond most (99-100 %; see
# docs/evaluation.md, "Multi-label classification").
model = dict(neck=dict(_delete_=True, type='GeneralizedMeanPooling'),
             head=dict(_delete_=True, type='MultiLabelLinearClsHead', num_classes=3,
                       in_channels=128))
train_dataloader = dict(dataset=dict(type='MultiLabelDataset', data_root=data_root,
                                     data_prefix='', ann_file='train.json'))
val_dataloader = dict(dataset=dict(type='MultiLabelDataset', data_root=data_root,
                                   data_prefix='', ann_file='val.json'))
test_dataloader = val_dataloader
val_evaluator = dict(_delete_=True, type='MultiLabelMetric', items=['precision', 'recall',
                                                                   'f1-score'])
test_evaluator = val_evaluator
