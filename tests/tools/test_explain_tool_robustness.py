"""tools/explain.py on the files real folders hold, and on bad arguments."""
import json
import os
import os.path as osp
import shutil
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from tests.helpers import build_model, drop_pretrained, load_config, write_config
from tests.tools.test_explain_tool import _run

BROKEN = {  # file name -> the words its one-line reason must contain
    'empty.jpg': 'empty file',
    'truncated.jpg': 'truncated JPEG',
    'text.jpg': 'not an image',
    'clip.heic': 'unsupported format',
    'loop.jpg': 'symlink loop',
}


def _messy_folder(source_png: str, root: str) -> dict:
    """Good images in every odd form beside broken files; returns upright shapes."""
    os.makedirs(osp.join(root, 'unterordner mit leerzeichen'))
    rgb = cv2.imread(source_png)[..., ::-1]
    image = Image.fromarray(rgb)
    shapes = {}

    def save(name, img, **kwargs):
        img.save(osp.join(root, name), **kwargs)
        shapes[name] = img.size[::-1]

    shutil.copy(source_png, osp.join(root, 'plain.png'))
    shapes['plain.png'] = rgb.shape[:2]
    save('gray.png', image.convert('L'))
    save('rgba.png', image.convert('RGBA'))
    save('palette.png', image.convert('P'))
    save('cmyk.jpg', image.convert('CMYK'), quality=95)
    save(osp.join('unterordner mit leerzeichen', 'grün bild.jpg'), image, quality=95)
    cv2.imwrite(osp.join(root, 'deep16.png'), rgb[..., ::-1].astype(np.uint16) * 257)
    shapes['deep16.png'] = rgb.shape[:2]
    sideways = Image.fromarray(np.ascontiguousarray(np.rot90(rgb[:, :200], k=1)))
    exif = sideways.getexif()
    exif[0x0112] = 6  # displayed rotated 90 degrees clockwise: upright again
    sideways.save(osp.join(root, 'exif_rotated.jpg'), quality=95, exif=exif)
    shapes['exif_rotated.jpg'] = (rgb.shape[0], 200)
    cv2.imwrite(osp.join(root, 'tiny.png'), cv2.resize(rgb[..., ::-1], (8, 8)))
    shapes['tiny.png'] = (8, 8)
    huge = np.full((10000, 10000, 3), 40, np.uint8)
    huge[4000:6000, 4000:6000] = (0, 0, 230)
    cv2.imwrite(osp.join(root, 'huge.jpg'), huge)
    shapes['huge.jpg'] = (10000, 10000)
    open(osp.join(root, 'empty.jpg'), 'wb').close()
    jpeg = open(osp.join(root, 'cmyk.jpg'), 'rb').read()
    open(osp.join(root, 'truncated.jpg'), 'wb').write(jpeg[:-100])
    open(osp.join(root, 'text.jpg'), 'w').write('not a picture')
    open(osp.join(root, 'clip.heic'), 'wb').write(b'\x00\x00\x00\x18ftypheic')
    os.symlink('loop.jpg', osp.join(root, 'loop.jpg'))
    os.symlink('..', osp.join(root, 'unterordner mit leerzeichen', 'up'))
    open(osp.join(root, 'notes.txt'), 'w').write('ignored: not an image name')
    return shapes


@pytest.fixture(scope='module')
def messy_run(trained_detector, shapes_detection, tmp_path_factory):
    config, checkpoint = trained_detector
    source = osp.join(shapes_detection, 'val', sorted(os.listdir(
        osp.join(shapes_detection, 'val')))[0])
    root = str(tmp_path_factory.mktemp('messy') / 'in')
    shapes = _messy_folder(source, root)
    out = str(tmp_path_factory.mktemp('messy_out') / 'out')
    result = _run(config, checkpoint, '--input', root, '--output', out, '--device', 'cpu',
                  '--explain-all-classes')
    return result, shapes, root, out


def test_good_images_are_all_explained_in_their_own_orientation(messy_run):
    result, shapes, root, out = messy_run
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = json.load(open(osp.join(out, 'manifest.json')))
    explained = {osp.relpath(e['image'], root): e for e in manifest['images']}
    assert set(explained) == set(shapes)
    for name, entry in explained.items():
        assert tuple(entry['ori_shape']) == tuple(shapes[name]), name
        for explanation in entry['explanations']:
            for key in ('saliency_map', 'overlay'):
                written = cv2.imread(osp.join(out, explanation[key]))
                assert written.shape[:2] == tuple(shapes[name]), (name, key)
    # Boxes of the EXIF-rotated image are in its upright frame, like its map.
    boxes = np.array(explained['exif_rotated.jpg']['predictions']['bboxes'])
    assert len(boxes) and boxes[:, 2].max() <= 200 + 1


def test_each_broken_input_is_one_line_and_counted(messy_run):
    result, shapes, root, out = messy_run
    manifest = json.load(open(osp.join(out, 'manifest.json')))
    assert manifest['num_images'] == len(shapes)
    skipped = {osp.relpath(s['image'], root): s['reason'] for s in manifest['skipped']}
    assert manifest['num_skipped'] == len(skipped) == len(BROKEN) + 1  # + the folder loop
    for name, words in BROKEN.items():
        assert words in skipped[name], (name, skipped[name])
        lines = [line for line in result.stdout.splitlines() + result.stderr.splitlines()
                 if f'skipped {osp.join(root, name)}: ' in line]
        assert len(lines) == 1, (name, lines)  # logged once, when met
    assert 'loop' in skipped[osp.join('unterordner mit leerzeichen', 'up')]
    assert f'{len(skipped)} inputs skipped' in result.stdout + result.stderr
    assert not [n for n in os.listdir(out) if n.startswith('.tmp-')]


def test_strict_fails_and_nothing_explainable_fails(trained_detector, tmp_path):
    config, checkpoint = trained_detector
    root = tmp_path / 'in'
    root.mkdir()
    (root / 'empty.jpg').write_bytes(b'')
    (root / 'text.png').write_text('no')
    result = _run(config, checkpoint, '--input', str(root), '--output', str(tmp_path / 'o'))
    assert result.returncode == 1
    assert 'no image could be explained (2 skipped' in result.stderr.splitlines()[-1]
    cv2.imwrite(str(root / 'good.png'), np.zeros((64, 64, 3), np.uint8))
    result = _run(config, checkpoint, '--input', str(root), '--output', str(tmp_path / 'o'),
                  '--strict')
    assert result.returncode == 1 and '--strict: 2 inputs skipped' in result.stderr
    assert json.load(open(tmp_path / 'o' / 'manifest.json'))['num_images'] == 1


def _one_line_error(result, *words):
    assert result.returncode == 2, result.stderr[-2000:]
    assert 'Traceback' not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith('explain.py: error: '), last
    for word in words:
        assert word in last, (word, last)


def test_errors_before_the_run_are_one_line(trained_detector, trained_classifier, tmp_path):
    config, checkpoint = trained_detector
    image_dir = tmp_path / 'in'
    image_dir.mkdir()
    cv2.imwrite(str(image_dir / 'a.png'), np.zeros((64, 64, 3), np.uint8))
    out = str(tmp_path / 'out')
    (tmp_path / 'empty').mkdir()
    (tmp_path / 'a_file').write_text('x')
    # A model the algorithm does not support (Grad-CAM on a two-stage detector).
    faster = drop_pretrained(load_config('mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'))
    faster.model.backbone.update(depth=18, norm_eval=False)
    faster.model.neck.in_channels = [64, 128, 256, 512]
    faster_checkpoint = str(tmp_path / 'faster.pth')
    torch.save(dict(state_dict=build_model(faster).state_dict()), faster_checkpoint)
    good = ['--input', str(image_dir), '--output', out]
    cases = [  # (tool arguments, words its one-line error must hold)
        ((str(tmp_path / 'nope.py'), checkpoint, '--output', out), ('config', 'nope.py')),
        ((config, checkpoint, '--input', str(tmp_path / 'nothing'), '--output', out),
         ('nothing', 'does not exist')),
        ((config, checkpoint, '--input', str(tmp_path / 'empty'), '--output', out),
         ('no images found',)),
        ((config, checkpoint, '--input', str(image_dir), '--output', str(tmp_path / 'a_file')),
         ('is a file, not a folder',)),
        ((config, checkpoint, '--input', str(image_dir),
          '--output', str(tmp_path / 'a_file' / 'sub')), ('cannot be written',)),
        # A checkpoint of another model: an error, not random weights.
        ((config, trained_classifier[1], *good), ('does not fit ATSS', 'missing keys')),
        ((config, checkpoint, *good, '--target-classes', 'unicorn'), ('unknown target class',)),
        ((write_config(faster, str(tmp_path / 'faster.py')), faster_checkpoint, *good,
          '--explain-algorithm', 'gradcam'), ('gradcam does not support two_stage_detection',)),
    ]
    # Independent processes that mostly import: two at a time halves the wait.
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda case: _run(*case[0]), cases))
    for result, (_, words) in zip(results, cases):
        _one_line_error(result, *words)
