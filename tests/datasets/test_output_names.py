"""Output names are distinct by construction: inputs, relative paths, output folders."""
import os
import os.path as osp
import random

import cv2
import numpy as np
import pytest

from mmxai.datasets import distinguishing_suffixes, find_images, output_stems, relative_names
from mmxai.utils import InputInsideOutputError


def _touch_image(path):
    os.makedirs(osp.dirname(str(path)), exist_ok=True)
    cv2.imwrite(str(path), np.zeros((8, 8, 3), np.uint8))


def _parts(path):
    return tuple(part.casefold() for part in path.split(os.sep))


def test_two_files_with_one_name_get_two_names_and_two_folders(tmp_path):
    for folder in ('a', 'b'):
        _touch_image(tmp_path / folder / 'x.jpg')
    found = find_images([str(tmp_path / 'a' / 'x.jpg'), str(tmp_path / 'b' / 'x.jpg')])
    assert [f['rel_path'] for f in found.images] == [osp.join('a', 'x.jpg'),
                                                     osp.join('b', 'x.jpg')]
    assert [f['output_stem'] for f in found.images] == [osp.join('a', 'x'), osp.join('b', 'x')]


def test_same_named_folders_are_told_apart_by_their_parents(tmp_path):
    for parent in ('p', 'q'):
        for name in ('one.png', 'two.png'):
            _touch_image(tmp_path / parent / 'imgs' / name)
    _touch_image(tmp_path / 'q' / 'other' / 'one.png')
    found = find_images([str(tmp_path / 'p' / 'imgs'), str(tmp_path / 'q' / 'imgs'),
                         str(tmp_path / 'q' / 'other')])
    assert [f['rel_path'] for f in found.images] == [
        osp.join('p', 'imgs', 'one.png'), osp.join('p', 'imgs', 'two.png'),
        osp.join('q', 'imgs', 'one.png'), osp.join('q', 'imgs', 'two.png'),
        osp.join('other', 'one.png')]  # a name no other input has stays short
    assert len({f['output_stem'] for f in found.images}) == 5


def test_every_image_is_listed_once_whatever_the_inputs_repeat(tmp_path):
    _touch_image(tmp_path / 'imgs' / 'a.png')
    _touch_image(tmp_path / 'imgs' / 'sub' / 'b.png')
    (tmp_path / 'alias').symlink_to(tmp_path / 'imgs')
    found = find_images([str(tmp_path / 'imgs'), str(tmp_path / 'imgs') + '/',
                         str(tmp_path / 'alias'), str(tmp_path / 'imgs' / 'sub'),
                         str(tmp_path / 'imgs' / 'a.png')])
    paths = [osp.abspath(f['img_path']) for f in found.images]
    assert sorted(paths) == sorted({str(tmp_path / 'imgs' / 'a.png'),
                                    str(tmp_path / 'imgs' / 'sub' / 'b.png')})


def test_the_output_folder_inside_an_input_is_not_searched(tmp_path):
    for name in ('a.png', 'b.png'):
        _touch_image(tmp_path / 'imgs' / name)
    _touch_image(tmp_path / 'imgs' / 'out' / 'a' / 'saliency.png')  # an earlier run's maps
    found = find_images(str(tmp_path / 'imgs'), exclude=[str(tmp_path / 'imgs' / 'out')])
    assert [f['rel_path'] for f in found.images] == ['a.png', 'b.png']
    # The same folder named another way (a symlink to it) is left out as well.
    (tmp_path / 'link').symlink_to(tmp_path / 'imgs' / 'out')
    found = find_images(str(tmp_path / 'imgs'), exclude=[str(tmp_path / 'link')])
    assert [f['rel_path'] for f in found.images] == ['a.png', 'b.png']


def test_an_input_folder_inside_the_output_is_refused(tmp_path):
    _touch_image(tmp_path / 'out' / 'imgs' / 'a.png')
    for folder in (tmp_path / 'out', tmp_path / 'out' / 'imgs'):
        with pytest.raises(InputInsideOutputError, match='inside the output folder'):
            find_images(str(folder), exclude=[str(tmp_path / 'out')])
    # A file there is named explicitly: it is the input, not a map.
    found = find_images(str(tmp_path / 'out' / 'imgs' / 'a.png'), exclude=[str(tmp_path / 'out')])
    assert [f['rel_path'] for f in found.images] == ['a.png']


def test_folders_never_take_the_name_of_a_written_file_or_of_each_other():
    rel = ['cat.jpg', 'cat.png', 'cat_jpg.png', osp.join('x', 'saliency.png.jpg'),
           'manifest.json.png', 'Dog.png', 'dog.jpg']
    stems = output_stems(rel)
    assert stems[:2] == ['cat_jpg', 'cat_png']
    assert len({stem.casefold() for stem in stems}) == len(rel)
    written = ('.png', '.npy', '.json')
    assert not [stem for stem in stems if stem.lower().endswith(written)]


def _random_tree(rng, count):
    names = ['a', 'b', 'imgs', 'x.png', 'X.png', 'x.jpg', 'sub']
    return sorted({osp.join(os.sep, *rng.choices(names, k=rng.randint(1, 5)))
                   for _ in range(count)})


@pytest.mark.parametrize('seed', range(20))
def test_suffixes_are_distinct_and_no_one_is_a_folder_of_another(seed):
    paths = _random_tree(random.Random(seed), 12)
    suffixes = distinguishing_suffixes(paths)
    for path, suffix in zip(paths, suffixes):
        assert _parts(path)[-len(_parts(suffix)):] == _parts(suffix)  # a tail of the path
    keys = [_parts(suffix) for suffix in suffixes]
    for i, key in enumerate(keys):
        for j, other in enumerate(keys):
            if i != j and other[:len(key)] == key:
                # Only a path inside another may keep the other's name as its start.
                assert _parts(paths[j])[:len(_parts(paths[i]))] == _parts(paths[i]), \
                    (paths[i], paths[j], suffixes[i], suffixes[j])


@pytest.mark.parametrize('seed', range(20))
def test_output_folders_are_distinct_for_any_distinct_relative_paths(seed):
    rng = random.Random(seed)
    rel = sorted({osp.join(*rng.choices(['a', 'A', 'cat', 'cat_jpg', 'saliency.png'],
                                        k=rng.randint(0, 2)),
                           rng.choice(['cat', 'Cat', 'cat_jpg', 'cat_jpg_2', 'x.json'])
                           + rng.choice(['.jpg', '.png', '.JPG']))
                  for _ in range(15)})
    stems = output_stems(rel)
    assert len({stem.casefold() for stem in stems}) == len(rel)


def test_annotated_images_outside_one_root_are_named_by_their_parents(tmp_path):
    paths = [str(tmp_path / 'p' / 'val' / '0.png'), str(tmp_path / 'q' / 'val' / '0.png'),
             str(tmp_path / 'q' / 'val' / '1.png')]
    assert relative_names(paths, str(tmp_path / 'q')) == [osp.join('p', 'val', '0.png'),
                                                          osp.join('q', 'val', '0.png'),
                                                          '1.png']
    assert relative_names(paths[1:], str(tmp_path / 'q')) == [osp.join('val', '0.png'),
                                                              osp.join('val', '1.png')]


def test_relative_path_keeps_subfolders():
    from mmxai.datasets import ImageOutputNames
    names = ImageOutputNames()
    names.input_root = '/data/images'
    assert names.relative_path(dict(img_path='/data/images/a/b/c.jpg')) == \
        osp.join('a', 'b', 'c.jpg')
    assert names.output_stem(dict(img_path='/data/images/a/b/c.jpg')) == osp.join('a', 'b', 'c')
    assert names.relative_path(dict(img_path='/elsewhere/c.jpg')) == 'c.jpg'
