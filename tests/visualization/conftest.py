"""Explain runs on annotated test sets, shared by the writer and report tests."""
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.runner import Runner

from mmxai.apis import explain_config

#: Detection score threshold of the annotated runs.
SCORE_THR = 0.3
#: Network input side of the annotated detection runs: the shapes images are 256 px,
#: so boxes and maps must be brought back from 192 px.
TEST_SCALE = 192


def _explain(config: Config, checkpoint: str, out: str, algorithm: str,
             box_targets: tuple = ()) -> str:
    cfg = explain_config(config, checkpoint, out,
                         explain=dict(explainer=algorithm, explain_all_classes=True,
                                      score_thr=SCORE_THR, box_targets=box_targets),
                         write=dict(save_raw=True))
    cfg.work_dir = osp.join(out, 'logs')
    Runner.from_cfg(cfg).test()
    return out


@pytest.fixture(scope='session')
def annotated_detection_runs(trained_detector, shapes_detection, tmp_path_factory):
    """Runs of the trained ATSS on its annotated val set at 192 px (class maps and
    activation maps, every class, raw maps; the class maps also per predicted and
    per ground-truth box), and the COCO annotation file."""
    config_path, checkpoint = trained_detector
    cfg = Config.fromfile(config_path)
    for step in cfg.test_dataloader.dataset.pipeline:
        if step['type'] == 'Resize':
            step['scale'] = (TEST_SCALE, TEST_SCALE)
    root = str(tmp_path_factory.mktemp('annotated_detection'))
    boxes = dict(classwisesaliencymap=('predictions', 'ground_truth'), activationmap=())
    runs = [dict(task='detection', algorithm=algorithm,
                 output_dir=_explain(cfg, checkpoint, osp.join(root, algorithm), algorithm,
                                     boxes[algorithm]))
            for algorithm in ('classwisesaliencymap', 'activationmap')]
    return runs, osp.join(shapes_detection, 'val.json')


@pytest.fixture(scope='session')
def annotated_classification_run(trained_classifier, shapes_classification, tmp_path_factory):
    """A Recipro-CAM run of the trained ResNet on its annotated val set, and the data root."""
    config_path, checkpoint = trained_classifier
    out = str(tmp_path_factory.mktemp('annotated_classification'))
    _explain(Config.fromfile(config_path), checkpoint, out, 'classwisesaliencymap')
    return dict(task='classification', algorithm='classwisesaliencymap',
                output_dir=out), shapes_classification
