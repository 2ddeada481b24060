"""The settings id that decides what a rerun keeps."""
import pytest

from mmxai import version
from mmxai.apis import explain_config
from mmxai.utils import UserInputError
from tests.helpers import CLS_DEMO_CONFIG, DET_DEMO_CONFIG, load_config

#: Explain every annotated object too.
GROUND_TRUTH = dict(box_targets=['ground_truth'])


def _run_id(cfg, checkpoint, **kwargs):
    explain = explain_config(cfg, checkpoint, 'out', inputs=['images'], **kwargs)
    (hook,) = [h for h in explain.custom_hooks if h['type'] == 'mmxai.ExplainHook']
    return hook['run_id']


def test_resume_id_changes_with_class_names_and_mmxai_version(tmp_path, monkeypatch):
    checkpoint = tmp_path / 'model.pth'
    checkpoint.write_bytes(b'weights')
    cfg = load_config(CLS_DEMO_CONFIG)
    first = _run_id(cfg, str(checkpoint))
    assert first == _run_id(load_config(CLS_DEMO_CONFIG), str(checkpoint))  # stable
    assert first != _run_id(cfg, str(checkpoint), write=dict(overlay_weight=0.3))
    assert first != _run_id(cfg, str(checkpoint), explain=dict(explainer='eigencam'))
    # A default given explicitly, the manifest header and the writer threads draw the same.
    assert first == _run_id(cfg, str(checkpoint), explain=dict(score_thr=None),
                            write=dict(normalize='per_map', write_workers=2,
                                       manifest_meta=dict(command='again')))

    renamed = load_config(CLS_DEMO_CONFIG)
    renamed.test_dataloader.dataset.metainfo = dict(classes=('square', 'circle', 'triangle'))
    assert _run_id(renamed, str(checkpoint)) != first  # file names and manifest would differ

    monkeypatch.setattr(version, '__version__', '99.0.0')
    assert _run_id(cfg, str(checkpoint)) != first  # another version may draw other maps


def test_an_unknown_setting_is_refused_naming_the_hook():
    cfg = load_config(CLS_DEMO_CONFIG)
    with pytest.raises(UserInputError, match='ExplainHook has no setting overlay here; it takes: '):
        explain_config(cfg, 'x.pth', 'out', write=dict(overlay=0.3))
    with pytest.raises(UserInputError, match='PrepareExplainHook has no setting algorithm'):
        explain_config(cfg, 'x.pth', 'out', explain=dict(algorithm='gradcam'))
    with pytest.raises(UserInputError, match='ExplainHook has no setting output_dir'):
        explain_config(cfg, 'x.pth', 'out', write=dict(output_dir='elsewhere'))


def test_ground_truth_boxes_must_be_loaded_after_the_resize(tmp_path):
    # MMDetection's test pipelines load annotations after Resize, so boxes stay in
    # original pixels; loaded before, Resize would scale them and every box map
    # and match would be read in the wrong place.
    cfg = load_config(DET_DEMO_CONFIG)
    explain_config(cfg, 'x.pth', str(tmp_path / 'ok'), explain=GROUND_TRUTH)
    steps = cfg.test_dataloader.dataset.pipeline
    load = next(s for s in steps if s['type'] == 'LoadAnnotations')
    steps.remove(load)
    steps.insert(1, load)  # right after loading the image, before Resize
    with pytest.raises(UserInputError, match='loads annotations before Resize'):
        explain_config(cfg, 'x.pth', str(tmp_path / 'bad'), explain=GROUND_TRUTH)
    # Any transform after the annotations is refused, not only the resizes mmxai knows of.
    steps.remove(load)
    steps.insert(-1, load)  # back in place, before packing
    steps.insert(-1, dict(type='RandomResize', scale=(192, 192), keep_ratio=True))
    with pytest.raises(UserInputError, match='loads annotations before RandomResize'):
        explain_config(cfg, 'x.pth', str(tmp_path / 'bad2'), explain=GROUND_TRUTH)
    steps.pop(-2)
    steps.insert(-1, dict(type='mmdet.Expand', mean=(0, 0, 0)))
    with pytest.raises(UserInputError, match='loads annotations before mmdet.Expand'):
        explain_config(cfg, 'x.pth', str(tmp_path / 'bad3'), explain=GROUND_TRUTH)
    steps.pop(-2)
    explain_config(cfg, 'x.pth', str(tmp_path / 'ok2'), explain=GROUND_TRUTH)
