import json
import os
import os.path as osp

import cv2
import numpy as np
import pytest

from mmxai.datasets import SKIPPED, ImageFolderDataset, collate_skipping_unreadable, find_images
from mmxai.datasets.image_io import stat_signature
from mmxai.utils import record_path, write_record


def _touch_image(path):
    os.makedirs(osp.dirname(path), exist_ok=True)
    cv2.imwrite(str(path), np.zeros((8, 8, 3), np.uint8))


def test_folders_are_searched_recursively_keeping_subfolders(tmp_path):
    for rel in ('a.png', 'sub/a.png', 'sub/deeper/b.jpg'):
        _touch_image(tmp_path / 'in' / rel)
    (tmp_path / 'in' / 'notes.txt').write_text('x')
    found = find_images(str(tmp_path / 'in'))
    assert [f['rel_path'] for f in found.images] == ['a.png', osp.join('sub', 'a.png'),
                                              osp.join('sub', 'deeper', 'b.jpg')]


def test_several_inputs_never_collide(tmp_path):
    for folder in ('one', 'two'):
        _touch_image(tmp_path / folder / 'same.png')
    _touch_image(tmp_path / 'single.png')
    found = find_images([str(tmp_path / 'one'), str(tmp_path / 'two'),
                         str(tmp_path / 'single.png')])
    rel = [f['rel_path'] for f in found.images]
    assert rel == [osp.join('one', 'same.png'), osp.join('two', 'same.png'), 'single.png']
    # The reference tool's comma-separated form accepts every folder.
    found = find_images(f"{tmp_path / 'one'},{tmp_path / 'two'}")
    assert [f['rel_path'] for f in found.images] == rel[:2]


def test_missing_and_empty_inputs_are_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='nowhere'):
        find_images(str(tmp_path / 'nowhere'))
    (tmp_path / 'empty').mkdir()
    with pytest.raises(ValueError, match='no images'):
        ImageFolderDataset(str(tmp_path / 'empty'))


def test_dataset_items_carry_paths(tmp_path):
    _touch_image(tmp_path / 'x' / 'y.png')
    dataset = ImageFolderDataset(str(tmp_path / 'x'), metainfo=dict(classes=('a', 'b')))
    assert len(dataset) == 1
    item = dataset[0]
    assert item['rel_path'] == 'y.png' and item['img_path'].endswith('y.png')
    assert dataset.metainfo['classes'] == ('a', 'b')


def test_unusable_files_are_listed_with_reasons_and_loops_not_followed(tmp_path):
    root = tmp_path / 'in'
    _touch_image(root / 'good.png')
    _touch_image(root / 'real' / 'inside.png')
    (root / 'photo.heic').write_bytes(b'x')
    (root / 'self.jpg').symlink_to(root / 'self.jpg')
    (root / 'dangling.png').symlink_to(root / 'nowhere.png')
    (root / 'real' / 'back').symlink_to(root)  # a folder loop
    (root / 'linked').symlink_to(root / 'real')  # links to folders are followed once
    found = find_images(str(root))
    assert [f['rel_path'] for f in found.images] == [
        'good.png', osp.join('linked', 'inside.png'), osp.join('real', 'inside.png')]
    reasons = {osp.basename(s['image']): s['reason'] for s in found.skipped}
    assert reasons['photo.heic'].startswith('unsupported format .heic')
    assert reasons['self.jpg'] == 'symlink loop'
    assert 'No such file' in reasons['dangling.png']
    assert 'loop' in reasons['back']


def test_images_differing_only_by_extension_get_separate_output_folders(tmp_path):
    for name in ('cat.jpg', 'cat.png', 'dog.png'):
        _touch_image(tmp_path / name)
    stems = [f['output_stem'] for f in find_images(str(tmp_path)).images]
    assert stems == ['cat_jpg', 'cat_png', 'dog']


def test_unreadable_files_become_skipped_samples_and_leave_the_batch(tmp_path):
    _touch_image(tmp_path / 'a.png')
    (tmp_path / 'b.png').write_bytes(b'')
    dataset = ImageFolderDataset(str(tmp_path), pipeline=[
        dict(type='mmxai.LoadImageChecked'), dict(type='mmpretrain.PackInputs')])
    good, bad = dataset[0], dataset[1]
    assert SKIPPED not in good and good['inputs'].shape == (3, 8, 8)
    assert bad == {SKIPPED: dict(image=str(tmp_path / 'b.png'), rel_path='b.png',
                                 reason='empty file (0 bytes)')}
    batch = collate_skipping_unreadable([good, bad, bad])
    assert len(batch['inputs']) == 1 and len(batch['data_samples']) == 1
    assert batch[SKIPPED] == [bad[SKIPPED]] * 2
    stacked = collate_skipping_unreadable([good, bad], dict(type='default_collate'))
    assert stacked['inputs'].shape == (1, 3, 8, 8)
    empty = collate_skipping_unreadable([bad])
    assert empty['inputs'] == [] and empty['data_samples'] == [] and len(empty[SKIPPED]) == 1


def test_resume_leaves_out_images_finished_with_the_same_settings(tmp_path):
    for name in ('a.png', 'b.png', 'c.png'):
        _touch_image(tmp_path / 'in' / name)
    out = str(tmp_path / 'out')
    entry = dict(rel_path='a.png', explanations=[])
    source = stat_signature(str(tmp_path / 'in' / 'a.png'))
    write_record(record_path(out, 'a'), 'run1', source, entry)
    write_record(record_path(out, 'b'), 'other settings', source, dict(rel_path='b.png'))
    os.makedirs(osp.join(out, 'c'))
    with open(record_path(out, 'c'), 'w') as file:
        file.write('{"run_id": "run1", "sour')  # a torn record (not by mmxai) is no record
    dataset = ImageFolderDataset(str(tmp_path / 'in'), resume_dir=out, run_id='run1')
    assert [dataset[i]['rel_path'] for i in range(len(dataset))] == ['b.png', 'c.png']
    assert dataset.finished == [entry]
    # A changed input file is explained again.
    os.utime(tmp_path / 'in' / 'a.png', ns=(1, 1))
    assert len(ImageFolderDataset(str(tmp_path / 'in'), resume_dir=out, run_id='run1')) == 3
    # Without a run id nothing counts as finished.
    assert len(ImageFolderDataset(str(tmp_path / 'in'), resume_dir=out)) == 3


def test_target_boxes_keyed_by_a_shared_file_name_are_refused(tmp_path):
    """Boxes keyed 'cat.png' when a/cat.png and b/cat.png are inputs: which image they are
    on is unknown, so they are refused; the relative path says it."""
    from mmxai.datasets.image_folder import load_target_boxes
    from mmxai.utils import UserInputError
    for name in ('a/cat.png', 'b/cat.png', 'c/dog.png'):
        _touch_image(str(tmp_path / 'in' / name))
    images, _ = find_images(str(tmp_path / 'in'))
    box = dict(bbox=[1, 2, 5, 6], label=0)
    path = tmp_path / 'boxes.json'
    path.write_text(json.dumps({'cat.png': [box]}))
    with pytest.raises(UserInputError, match=r"'cat.png' names 2 input images \(a/cat.png, "
                                             r'b/cat.png\); key them by relative path'):
        load_target_boxes(str(path), images)
    path.write_text(json.dumps({'b/cat.png': [box], 'dog.png': [box]}))
    found = load_target_boxes(str(path), images)
    expected = dict(bbox=[1.0, 2.0, 5.0, 6.0], label=0)
    assert {image['rel_path']: boxes for image, boxes in zip(images, found)} == {
        'a/cat.png': [], 'b/cat.png': [expected], 'c/dog.png': [expected]}
