"""Every config family of the installed MMDetection: maps or a one-line refusal, no traceback.

One config per family by rule (:func:`tests.detector_zoo.representative_config`),
random weights, one generated image and its mirror image through
:class:`mmxai.apis.SaliencyExplainer` with each zoo method. Any exception other
than mmxai's one-line ``UserInputError`` fails the family's test.
"""
import numpy as np
import pytest
import torch

from mmxai.adapters.builder import EXPLAINED_MODELS
from tests.detector_zoo import (
    ZOO_METHODS,
    explain_family,
    family_configs,
    representative_config,
    shrink_test_pipeline,
    zoo_config,
    zoo_images,
)

FAMILIES = family_configs()
#: Families whose representative is not a detector (trackers, re-identification,
#: video instance segmentation): refused for every method, naming what mmxai explains.
#: (strongsort's representative by the rule is its YOLOX detector config.)
NOT_DETECTORS = {'bytetrack', 'deepsort', 'mask2former_vis', 'masktrack_rcnn', 'ocsort',
                 'qdtrack', 'reid', 'sort'}
#: Families that must give maps with every zoo method (a regression guard: the
#: dense heads, two-stage, query-based and instance segmentation detectors mmxai
#: explains).
#: (Not RPN: its one objectness class is not a head of the table; its class map is refused.)
MUST_EXPLAIN = {'atss', 'cascade_rcnn', 'faster_rcnn', 'fcos', 'gfl', 'mask_rcnn', 'retinanet',
                'htc', 'double_heads', 'dynamic_rcnn', 'pafpn', 'yolox',
                'detr', 'conditional_detr', 'dab_detr', 'deformable_detr', 'dino', 'ddq',
                'sparse_rcnn', 'vfnet', 'ddod', 'yolof', 'autoassign', 'yolo', 'tood',
                'centernet', 'foveabox', 'reppoints', 'yolact', 'cornernet', 'centripetalnet',
                'solo', 'solov2', 'condinst', 'mask2former'}

#: Families refused for every method, and what the one-line refusal must name.
REFUSED_WITH = {
    'ssd': "SSDHead has no loss_cls",  # MMDetection 3.3's own bug, named
    'carafe': 'has no kernel for it',  # a CUDA-only MMCV op on the CPU
    'fast_rcnn': 'precomputed proposals',
    'glip': 'open-vocabulary',
    'panoptic_fpn': 'pred_panoptic_seg',
    'reid': 're-identification',
}


@pytest.fixture(scope='module')
def images():
    # One thread: these small single-image passes gain nothing from more, and on a
    # busy machine the idle threads' spinning costs more than the work.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield zoo_images()
    torch.set_num_threads(threads)


def test_families_are_read_from_the_installed_package():
    assert len(FAMILIES) > 80
    assert NOT_DETECTORS | MUST_EXPLAIN | set(REFUSED_WITH) <= set(FAMILIES)
    # The representative of a family is its shortest config that defines a model:
    # the TTA wrapper retinanet_tta.py (no model) is passed over.
    assert representative_config(FAMILIES['retinanet']).endswith('retinanet_r18_fpn_1x_coco.py')


def test_zoo_images_are_a_scene_and_its_mirror_image():
    first, mirrored = zoo_images(size=64)
    assert first.shape == (64, 64, 3) and first.std() > 0
    np.testing.assert_array_equal(mirrored, first[:, ::-1])


def test_test_resize_is_shrunk_everywhere():
    from mmengine.config import Config
    pipeline = [dict(type='LoadImageFromFile'),
                dict(type='TestTimeAug', transforms=[
                    [dict(type='Resize', scale=(1333, 800), keep_ratio=True),
                     dict(type='FixShapeResize', scale=(640, 640))],
                    [dict(type='Pad', size=(640, 640)), dict(type='Pad', size_divisor=32)]])]
    cfg = Config(dict(test_dataloader=dict(dataset=dict(type='Wrapper', dataset=dict(
        pipeline=pipeline)))))
    shrink_test_pipeline(cfg, 96)
    resize, fixed = cfg.test_dataloader.dataset.dataset.pipeline[1]['transforms'][0]
    sized, divisor = cfg.test_dataloader.dataset.dataset.pipeline[1]['transforms'][1]
    assert resize['scale'] == fixed['scale'] == sized['size'] == (96, 96)
    assert resize['keep_ratio'] and divisor == dict(type='Pad', size_divisor=32)
    # A real config: YOLOX's test resize.
    cfg = zoo_config(representative_config(FAMILIES['yolox']), size=96)
    assert [s['scale'] for s in cfg.test_dataloader.dataset.pipeline
            if 'Resize' in s['type']] == [(96, 96)]


@pytest.mark.zoo
@pytest.mark.parametrize('family', sorted(FAMILIES))
def test_family_gives_maps_or_a_one_line_refusal(family, images):
    path = representative_config(FAMILIES[family])
    if path is None:  # data set or schedule files only
        assert family not in NOT_DETECTORS | MUST_EXPLAIN | set(REFUSED_WITH)
        return
    outcomes = explain_family(family, zoo_config(path), path, ZOO_METHODS, images)
    statuses = {o.method: o.status for o in outcomes}
    if family in NOT_DETECTORS:
        assert all(o.status == 'refused' and EXPLAINED_MODELS in o.detail for o in outcomes), \
            outcomes
    if family in REFUSED_WITH:
        assert all(o.status == 'refused' and REFUSED_WITH[family] in o.detail
                   for o in outcomes), outcomes
    if family in MUST_EXPLAIN:
        assert set(statuses.values()) == {'maps'}, outcomes
