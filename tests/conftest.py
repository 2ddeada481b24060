"""Session fixtures: generated data and models trained here with the Runner."""
import hashlib
import os
import os.path as osp
import shutil
from typing import Optional

import pytest

from mmxai.datasets import make_classification_split, make_detection_split
from tests.helpers import (
    CLS_DEMO_CONFIG,
    DET_DEMO_CONFIG,
    MASK_DEMO_CONFIG,
    load_config,
    set_data_root,
    train,
    write_config,
)


@pytest.fixture(scope='session')
def shapes_detection(tmp_path_factory) -> str:
    """COCO-format shapes data (boxes and outlines): 160 train, 30 val images of 256 px,
    2 objects each."""
    root = str(tmp_path_factory.mktemp('shapes_det'))
    make_detection_split(root, 'train', 160, seed=1)
    make_detection_split(root, 'val', 30, seed=2)
    return root


@pytest.fixture(scope='session')
def shapes_classification(tmp_path_factory) -> str:
    """Folder-format shapes data with a box json beside every image."""
    root = str(tmp_path_factory.mktemp('shapes_cls'))
    make_classification_split(root, 'train', 150, seed=3)
    make_classification_split(root, 'val', 30, seed=4)
    return root


#: Development only: a folder where the session's trained models are kept and
#: reused by later sessions (CI and a plain `make test` train them: `.ci/run` unsets
#: it). The key covers the config, the schedule, the seed, the data generator, this
#: file and versions.
MODEL_CACHE = os.environ.get('MMXAI_TEST_MODEL_CACHE')
#: The seed of every model the suite trains (0; ``benchmarks/quality_floors.py``
#: sets others to measure the quality floors' spread).
TRAINING_SEED = int(os.environ.get('MMXAI_TEST_SEED', '0'))


def _cache_key(config: str, max_iters: Optional[int]) -> str:
    import mmdet
    import mmpretrain
    import torch

    from mmxai.datasets import synthetic
    parts = [open(path).read() for path in (config, synthetic.__file__, __file__)]
    parts += [str(max_iters), str(TRAINING_SEED), torch.__version__, mmdet.__version__,
              mmpretrain.__version__]
    return hashlib.sha256('\0'.join(parts).encode()).hexdigest()[:16]


def _train_demo_model(config: str, data_root: str, work_dir: str,
                      max_iters: Optional[int] = None):
    cfg = load_config(config)
    name = f'iter_{max_iters or cfg.train_cfg.max_iters}.pth'
    cached = osp.join(MODEL_CACHE, f'{_cache_key(config, max_iters)}.pth') if MODEL_CACHE else None
    if cached and osp.isfile(cached):
        checkpoint = osp.join(work_dir, name)
        shutil.copy(cached, checkpoint)
    else:
        checkpoint = train(cfg, work_dir, data_root, max_iters, seed=TRAINING_SEED)
        if cached:
            os.makedirs(MODEL_CACHE, exist_ok=True)
            shutil.copy(checkpoint, f'{cached}.{os.getpid()}.part')
            os.replace(f'{cached}.{os.getpid()}.part', cached)
    config_path = write_config(set_data_root(cfg.copy(), data_root), osp.join(work_dir, 'cfg.py'))
    return config_path, checkpoint


@pytest.fixture(scope='session')
def trained_detector(shapes_detection, tmp_path_factory):
    """(config path, checkpoint) of the demo ATSS trained briefly on shapes."""
    return _train_demo_model(DET_DEMO_CONFIG, shapes_detection,
                             str(tmp_path_factory.mktemp('atss')))


@pytest.fixture(scope='session')
def trained_classifier(shapes_classification, tmp_path_factory):
    """(config path, checkpoint) of the demo ResNet trained briefly on shapes."""
    return _train_demo_model(CLS_DEMO_CONFIG, shapes_classification,
                             str(tmp_path_factory.mktemp('resnet')))


@pytest.fixture(scope='session')
def trained_mask_rcnn(shapes_detection, tmp_path_factory):
    """(config path, checkpoint) of the demo Mask R-CNN trained on shapes for a third of
    its schedule (100 iterations, ~55 s: held-out segm mAP 0.82)."""
    return _train_demo_model(MASK_DEMO_CONFIG, shapes_detection,
                             str(tmp_path_factory.mktemp('mask_rcnn')), max_iters=100)


# Test tiers (tests/tiers.py): `make test-fast` runs `pytest -m "not slow"`.
# (Imported here to keep this section apart from the fixtures above.)
from tests.tiers import FastTierGuard, HeavyUseFinder  # noqa: E402


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects
def pytest_collection_modifyitems(session, config, items):
    """Mark slow every test that trains, runs a program or opens Chromium (tests/tiers.py)."""
    finder = HeavyUseFinder()
    for item in items:
        def functions(name, item=item):
            definitions = session._fixturemanager.getfixturedefs(name, item)
            return [definition.func for definition in definitions or ()]

        finder.fixtures = functions  # for `request.getfixturevalue('name')`
        fixtures = [definition.func
                    for definitions in item._fixtureinfo.name2fixturedefs.values()
                    for definition in definitions]
        # Parameters that name a fixture, for `request.getfixturevalue(param)`.
        callspec = getattr(item, 'callspec', None)
        fixtures += [function for value in (callspec.params.values() if callspec else ())
                     if isinstance(value, str) for function in functions(value)]
        reason = finder.of_item(item.function, getattr(item, 'cls', None), fixtures)
        if reason:
            item.add_marker(pytest.mark.slow(reason=reason))


def _fast_tier_guarded(item):
    """Run a test phase (its fixtures' set-up and tear-down included, whatever their
    scope) under tests/tiers.py's guard unless the test is slow."""
    if item.get_closest_marker('slow'):
        return (yield)
    with FastTierGuard() as guard:
        result = yield
    if guard.uses:
        pytest.fail(f'{item.nodeid} is in the fast tier but {"; ".join(guard.uses)}: '
                    'reach it through a fixture or function of tests/ (see tests/tiers.py)',
                    pytrace=False)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    return (yield from _fast_tier_guarded(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    return (yield from _fast_tier_guarded(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    return (yield from _fast_tier_guarded(item))
