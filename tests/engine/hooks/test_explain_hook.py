import json

import cv2
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from mmxai.engine.hooks import ExplainHook


@pytest.mark.parametrize('model, metric', [('trained_detector', 'coco/bbox_mAP'),
                                           ('trained_mask_rcnn', 'coco/segm_mAP')])
def test_config_diff_makes_runner_test_write_maps_and_evaluate(model, metric, request,
                                                               tmp_path):
    """The three-line diff of configs/detection (and instance_segmentation)
    applied to another config."""
    config_path, checkpoint = request.getfixturevalue(model)
    cfg = Config.fromfile(config_path)
    cfg.custom_imports = dict(imports=['mmxai'], allow_failed_imports=False)
    cfg.custom_hooks = [dict(type='mmxai.PrepareExplainHook', explainer='classwisesaliencymap'),
                        dict(type='mmxai.ExplainHook', output_dir=str(tmp_path / 'maps'))]
    cfg.load_from = checkpoint
    cfg.work_dir = str(tmp_path / 'work')
    metrics = Runner.from_cfg(cfg).test()
    assert metric in metrics
    manifest = json.loads((tmp_path / 'maps' / 'manifest.json').read_text())
    assert manifest['num_images'] == 30 == len(manifest['images'])
    written = [e for entry in manifest['images'] for e in entry['explanations']]
    assert written, 'no class was explained'
    for explanation in written[:5]:
        image = cv2.imread(str(tmp_path / 'maps' / explanation['overlay']))
        assert image.shape == (256, 256, 3)
        assert explanation['class_name'] in ('red_square', 'green_circle', 'blue_triangle')


def test_validation_during_training_writes_and_visualizes(shapes_detection, tmp_path):
    from tests.helpers import DET_DEMO_CONFIG, load_config, train
    cfg = load_config(DET_DEMO_CONFIG)
    cfg.custom_imports = dict(imports=['mmxai'], allow_failed_imports=False)
    cfg.custom_hooks = [dict(type='mmxai.PrepareExplainHook', explainer='activationmap'),
                        dict(type='mmxai.ExplainHook', val_max_images=2)]
    cfg.visualizer = dict(type='DetLocalVisualizer',
                          vis_backends=[dict(type='LocalVisBackend')],
                          name=f'explain-hook-{tmp_path.name}')  # a fresh visualizer instance
    checkpoint = train(cfg, str(tmp_path / 'work'), shapes_detection, max_iters=2)
    folder = tmp_path / 'work' / 'explain' / 'val_iter_2'
    assert len(list(folder.rglob('overlay.png'))) == 2
    backend_images = list((tmp_path / 'work').rglob('vis_data/vis_image/*.png'))
    assert len(backend_images) == 2
    # The checkpoint saved after validation holds the plain model's keys.
    state = torch.load(checkpoint, weights_only=False)['state_dict']
    assert not any(key.startswith('module.') for key in state)


def test_background_writes_are_bounded_and_their_errors_surface(tmp_path):
    hook = ExplainHook(write_workers=1)
    started = []

    def write(index):
        started.append(index)
        if index == 3:
            raise OSError(f'disk full at {index}')

    for index in range(3):
        hook.writes.submit(write, index)
        assert len(hook.writes) <= 2  # 2 * write_workers images wait at most
    hook.writes.submit(write, 3)
    with pytest.raises(OSError, match='disk full at 3'):
        hook.writes.drain()
    assert started == [0, 1, 2, 3]
