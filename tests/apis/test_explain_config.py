"""The settings id that decides what a rerun keeps."""
from mmxai import version
from mmxai.apis import explain_config
from tests.helpers import CLS_DEMO_CONFIG, load_config


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
    assert first != _run_id(cfg, str(checkpoint), overlay_weight=0.3)

    renamed = load_config(CLS_DEMO_CONFIG)
    renamed.test_dataloader.dataset.metainfo = dict(classes=('square', 'circle', 'triangle'))
    assert _run_id(renamed, str(checkpoint)) != first  # file names and manifest would differ

    monkeypatch.setattr(version, '__version__', '99.0.0')
    assert _run_id(cfg, str(checkpoint)) != first  # another version may draw other maps
