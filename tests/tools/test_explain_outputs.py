"""tools/explain.py keeps every input's output apart, durable and resumable."""
import filecmp
import json
import os
import os.path as osp
import shutil
import stat

from mmxai.utils import RECORD_NAME
from tests.tools.test_explain_resume import _files
from tests.tools.test_explain_tool import _run


def _val_images(shapes_classification, count):
    folder = osp.join(shapes_classification, 'val', 'red_square')
    return [osp.join(folder, name) for name in sorted(os.listdir(folder))
            if name.endswith('.png')][:count]


def _manifest(out):
    return json.load(open(osp.join(out, 'manifest.json')))


def _records(out):
    return [f for f in _files(out) if osp.basename(f) == RECORD_NAME]


def test_inputs_with_one_name_get_one_output_each_and_resume_apart(trained_classifier,
                                                                  shapes_classification,
                                                                  tmp_path):
    config, checkpoint = trained_classifier
    sources = _val_images(shapes_classification, 4)
    inputs = []
    for folder, source in zip(('a', 'b'), sources):  # two files named x.png
        os.makedirs(tmp_path / folder)
        inputs.append(shutil.copy(source, str(tmp_path / folder / 'x.png')))
    for parent, pair in zip(('p', 'q'), (sources[:2], sources[2:])):  # two folders named imgs
        os.makedirs(tmp_path / parent / 'imgs')
        for name, source in zip(('one.png', 'two.png'), pair):
            shutil.copy(source, str(tmp_path / parent / 'imgs' / name))
        inputs.append(str(tmp_path / parent / 'imgs'))
    out, reference = str(tmp_path / 'out'), str(tmp_path / 'reference')
    args = [config, checkpoint, '--input', *inputs, '--output', out, '--save-raw',
            '--batch-size', '1', '--device', 'cpu', '--work-dir', str(tmp_path / 'logs')]

    first = _run(*args, umask=0o027)
    assert first.returncode == 0, first.stderr[-3000:]
    manifest = _manifest(out)
    by_image = {entry['image']: entry for entry in manifest['images']}
    expected = sorted(inputs[:2] + [str(tmp_path / p / 'imgs' / n) for p in ('p', 'q')
                                    for n in ('one.png', 'two.png')])
    assert manifest['num_images'] == 6 and sorted(by_image) == expected
    assert len(_records(out)) == 6  # one output folder per input image
    folders = {osp.dirname(e['overlay']) for entry in manifest['images']
               for e in entry['explanations']}
    assert len(folders) == 6
    # Every written file has the permissions the user's umask gives (0o640 under 027).
    modes = {f: stat.S_IMODE(os.stat(osp.join(out, f)).st_mode) for f in _files(out)}
    assert set(modes.values()) == {0o640}, modes

    # A power loss after the records were flushed: one map missing, one empty. Only those
    # two images are explained again, not the images of the same name.
    shutil.copytree(out, reference)
    deleted = by_image[inputs[0]]['explanations'][0]['overlay']
    emptied = by_image[str(tmp_path / 'p' / 'imgs' / 'one.png')]['explanations'][0]['raw']
    os.unlink(osp.join(out, deleted))
    open(osp.join(out, emptied), 'wb').close()
    kept = [f for f in _records(out) if osp.dirname(f) not in (osp.dirname(deleted),
                                                                osp.dirname(emptied))]
    times = {f: os.stat(osp.join(out, f)).st_mtime_ns for f in kept}

    again = _run(*args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert '2 explained now, 4 before' in again.stdout + again.stderr
    assert {f: os.stat(osp.join(out, f)).st_mtime_ns for f in kept} == times
    assert _files(out) == _files(reference)
    match, mismatch, errors = filecmp.cmpfiles(out, reference, [deleted, emptied],
                                               shallow=False)
    assert match == [deleted, emptied], (mismatch, errors)
    assert _manifest(out)['images'] == manifest['images']


def test_output_inside_the_input_is_left_out_of_the_search(trained_classifier,
                                                          shapes_classification, tmp_path):
    config, checkpoint = trained_classifier
    images = tmp_path / 'imgs'
    os.makedirs(images)
    for source in _val_images(shapes_classification, 3):
        shutil.copy(source, str(images))
    out = str(images / 'out')
    args = [config, checkpoint, '--input', str(images), '--output', out, '--device', 'cpu']
    first = _run(*args)
    assert first.returncode == 0, first.stderr[-3000:]
    assert _manifest(out)['num_images'] == 3
    user_file = images / 'out' / '.tmp-my-notes.txt'  # the user's, whatever its name
    user_file.write_text('keep me')

    again = _run(*args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert '0 explained now, 3 before' in again.stdout + again.stderr
    assert _manifest(out)['num_images'] == 3 and len(_records(out)) == 3
    assert user_file.read_text() == 'keep me'

    inside = _run(config, checkpoint, '--input', str(images), '--output', str(tmp_path))
    assert inside.returncode == 2
    assert inside.stderr.strip().splitlines()[-1].endswith(
        'choose an output folder outside the input')
    assert f'input folder {images} is inside the output folder' in inside.stderr
