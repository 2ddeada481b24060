"""ExplainHook in real Runners: one output per image, flushed records, validation images
stepped by iteration and written once across processes."""
import json
import os
import os.path as osp
import re
import socket
import subprocess
import sys

from mmengine.runner import Runner

from mmxai.datasets import make_classification_split
from tests.helpers import (
    CLS_DEMO_CONFIG,
    REPO,
    drop_pretrained,
    load_config,
    set_data_root,
    write_config,
)
from tests.utils.test_io import _DiskLog


def _explain_hooks(**explain):
    return [dict(type='mmxai.PrepareExplainHook', explainer='activationmap'),
            dict(type='mmxai.ExplainHook', **explain)]


def test_test_set_from_two_roots_lists_every_image_once_and_flushes_what_it_writes(
        trained_classifier, tmp_path, monkeypatch):
    """A ConcatDataset has no image folder: equal file names of its parts stay apart."""
    config, checkpoint = trained_classifier
    cfg = load_config(config)
    parts = []
    for name, seed in (('first', 11), ('second', 12)):
        make_classification_split(str(tmp_path / name), 'val', 3, seed=seed)  # same file names
        parts.append(dict(cfg.test_dataloader.dataset, data_root=str(tmp_path / name)))
    cfg.test_dataloader.dataset = dict(type='ConcatDataset', datasets=parts)
    cfg.custom_imports = dict(imports=['mmxai'], allow_failed_imports=False)
    cfg.custom_hooks = _explain_hooks(output_dir=str(tmp_path / 'maps'))
    cfg.load_from, cfg.work_dir = checkpoint, str(tmp_path / 'work')
    log = _DiskLog(monkeypatch)
    Runner.from_cfg(cfg).test()

    manifest = json.loads((tmp_path / 'maps' / 'manifest.json').read_text())
    images = sorted(entry['image'] for entry in manifest['images'])
    assert manifest['num_images'] == 6 and len(set(images)) == 6, images
    folders = {osp.dirname(e['overlay']) for entry in manifest['images']
               for e in entry['explanations']}
    assert len(folders) == 6
    records = [osp.join(tmp_path / 'maps', folder, 'explanation.json') for folder in folders]
    assert all(log.flushed_before_rename(record) for record in records)
    manifest_path = str(tmp_path / 'maps' / 'manifest.json')
    assert log.flushed_before_rename(manifest_path)
    assert log.folder_flushed_after_rename(manifest_path)


def _classifier_cfg(shapes_classification, tmp_path, val_images):
    cfg = set_data_root(drop_pretrained(load_config(CLS_DEMO_CONFIG)), shapes_classification)
    cfg.custom_imports = dict(imports=['mmxai'], allow_failed_imports=False)
    cfg.val_dataloader.dataset.indices = val_images
    cfg.work_dir = str(tmp_path / 'work')
    return cfg


def test_validation_images_are_stepped_by_iteration(shapes_classification, tmp_path):
    cfg = _classifier_cfg(shapes_classification, tmp_path, val_images=2)
    cfg.custom_hooks = _explain_hooks(val_max_images=1)
    cfg.visualizer = dict(type='UniversalVisualizer', vis_backends=[dict(type='LocalVisBackend')],
                          name=f'explain-step-{tmp_path.name}')  # a fresh visualizer instance
    cfg.train_cfg.max_iters, cfg.train_cfg.val_interval = 2, 1
    cfg.train_dataloader.batch_size = 2
    Runner.from_cfg(cfg).train()

    folders = sorted(os.listdir(tmp_path / 'work' / 'explain'))
    assert folders == ['val_iter_1', 'val_iter_2']
    names = [p.name for p in (tmp_path / 'work').rglob('vis_data/vis_image/*.png')]
    steps = sorted(int(re.search(r'_(\d+)\.png$', name).group(1)) for name in names)
    assert steps == [1, 2], names  # one image per validation, at its iteration


VALIDATE = '''
import sys
from mmengine.config import Config
from mmengine.runner import Runner
from mmxai.apis import setup_distributed, teardown_distributed

cfg = Config.fromfile(sys.argv[1])
setup_distributed(cfg, 'pytorch')
Runner.from_cfg(cfg).val()
teardown_distributed()
'''


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def test_distributed_validation_writes_val_max_images_in_total(trained_classifier,
                                                                shapes_classification, tmp_path):
    _, checkpoint = trained_classifier
    cfg = _classifier_cfg(shapes_classification, tmp_path, val_images=4)
    cfg.custom_hooks = _explain_hooks(val_max_images=2)
    cfg.load_from = checkpoint
    config = write_config(cfg, str(tmp_path / 'validate.py'))
    (tmp_path / 'validate_script.py').write_text(VALIDATE)
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1')
    result = subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2',
         f'--master_port={_free_port()}', str(tmp_path / 'validate_script.py'), config],
        capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    overlays = list((tmp_path / 'work' / 'explain' / 'val_iter_0').rglob('overlay.png'))
    assert len(overlays) == 2, overlays
