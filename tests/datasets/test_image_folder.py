import os.path as osp

import cv2
import numpy as np
import pytest

from mmxai.datasets import ImageFolderDataset, find_images


def _touch_image(path):
    import os
    os.makedirs(osp.dirname(path), exist_ok=True)
    cv2.imwrite(str(path), np.zeros((8, 8, 3), np.uint8))


def test_folders_are_searched_recursively_keeping_subfolders(tmp_path):
    for rel in ('a.png', 'sub/a.png', 'sub/deeper/b.jpg'):
        _touch_image(tmp_path / 'in' / rel)
    (tmp_path / 'in' / 'notes.txt').write_text('x')
    found = find_images(str(tmp_path / 'in'))
    assert [f['rel_path'] for f in found] == ['a.png', osp.join('sub', 'a.png'),
                                              osp.join('sub', 'deeper', 'b.jpg')]


def test_several_inputs_never_collide(tmp_path):
    for folder in ('one', 'two'):
        _touch_image(tmp_path / folder / 'same.png')
    _touch_image(tmp_path / 'single.png')
    found = find_images([str(tmp_path / 'one'), str(tmp_path / 'two'),
                         str(tmp_path / 'single.png')])
    rel = [f['rel_path'] for f in found]
    assert rel == [osp.join('one', 'same.png'), osp.join('two', 'same.png'), 'single.png']
    # The reference tool's comma-separated form accepts every folder.
    found = find_images(f"{tmp_path / 'one'},{tmp_path / 'two'}")
    assert [f['rel_path'] for f in found] == rel[:2]


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
