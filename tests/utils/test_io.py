"""Atomic writes: the user's permissions, flushed before the rename, leftovers told apart."""
import os
import os.path as osp
import stat
import subprocess
import sys

import pytest

from mmxai.utils import atomic_write_bytes, finished_entry, write_record
from mmxai.utils.records import record_path
from mmxai.visualization.explain_output import remove_temporary_files
from tests.helpers import REPO


@pytest.mark.parametrize('umask', [0o022, 0o027, 0o077])
def test_written_files_get_the_users_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        atomic_write_bytes(str(tmp_path / 'sub' / 'map.png'), b'data')
        with open(tmp_path / 'plain.png', 'wb') as file:  # what any program would create
            file.write(b'data')
    finally:
        os.umask(old)
    mode = stat.S_IMODE(os.stat(tmp_path / 'sub' / 'map.png').st_mode)
    assert mode == stat.S_IMODE(os.stat(tmp_path / 'plain.png').st_mode) == 0o666 & ~umask
    assert os.listdir(tmp_path / 'sub') == ['map.png']


class _DiskLog:
    """Records os.fsync and os.replace calls by inode, in order."""

    def __init__(self, monkeypatch):
        self.events = []
        fsync, replace = os.fsync, os.replace

        def logged_fsync(handle):
            self.events.append(('fsync', os.fstat(handle).st_ino))
            return fsync(handle)

        def logged_replace(source, target, **kwargs):
            self.events.append(('replace', os.stat(source).st_ino, osp.abspath(target)))
            return replace(source, target, **kwargs)

        monkeypatch.setattr(os, 'fsync', logged_fsync)
        monkeypatch.setattr(os, 'replace', logged_replace)

    def flushed_before_rename(self, path):
        """Whether the content renamed to ``path`` was fsynced before the rename."""
        renames = [i for i, e in enumerate(self.events)
                   if e[0] == 'replace' and e[2] == osp.abspath(path)]
        assert renames, f'{path} was not written through a rename'
        inode = self.events[renames[-1]][1]
        return ('fsync', inode) in self.events[:renames[-1]]

    def folder_flushed_after_rename(self, path):
        renames = [i for i, e in enumerate(self.events)
                   if e[0] == 'replace' and e[2] == osp.abspath(path)]
        folder = os.stat(osp.dirname(osp.abspath(path))).st_ino
        return ('fsync', folder) in self.events[renames[-1] + 1:]


def test_a_record_is_on_the_disk_before_it_has_its_name(tmp_path, monkeypatch):
    log = _DiskLog(monkeypatch)
    path = record_path(str(tmp_path), 'img')
    write_record(path, 'run', dict(size=1), dict(rel_path='img.png', explanations=[]))
    assert log.flushed_before_rename(path)
    atomic_write_bytes(str(tmp_path / 'map.png'), b'x')  # maps are not flushed one by one
    assert not log.flushed_before_rename(str(tmp_path / 'map.png'))
    atomic_write_bytes(str(tmp_path / 'manifest.json'), b'{}', fsync=True, fsync_folder=True)
    assert log.flushed_before_rename(str(tmp_path / 'manifest.json'))
    assert log.folder_flushed_after_rename(str(tmp_path / 'manifest.json'))


def test_a_record_whose_files_are_missing_or_empty_is_not_trusted(tmp_path):
    out = str(tmp_path)
    files = dict(saliency_map='img/0_a_saliency.png', overlay='img/0_a_overlay.png',
                 raw='img/0_a_saliency.npy')
    entry = dict(rel_path='img.png', explanations=[dict(class_index=0, **files)])
    for name in files.values():
        atomic_write_bytes(osp.join(out, name), b'content')
    write_record(record_path(out, 'img'), 'run', dict(size=1), entry)
    assert finished_entry(out, 'img', 'run', dict(size=1)) == entry
    assert finished_entry(out, 'img', 'other run', dict(size=1)) is None
    assert finished_entry(out, 'img', 'run', dict(size=2)) is None
    open(osp.join(out, files['raw']), 'wb').close()  # what a power loss can leave
    assert finished_entry(out, 'img', 'run', dict(size=1)) is None
    os.unlink(osp.join(out, files['raw']))
    assert finished_entry(out, 'img', 'run', dict(size=1)) is None


KILLED_WRITE = '''
import os, sys
import mmxai.utils.io as io
os.replace = lambda *args: os._exit(9)  # the process dies between writing and renaming
io.atomic_write_bytes(sys.argv[1], b'half')
'''


def test_only_what_a_killed_write_left_is_cleaned_up(tmp_path):
    out = tmp_path / 'out'
    result = subprocess.run([sys.executable, '-c', KILLED_WRITE, str(out / 'img' / 'overlay.png')],
                            env=dict(os.environ, PYTHONPATH=REPO), capture_output=True, text=True)
    assert result.returncode == 9, result.stderr[-2000:]
    (leftover,) = os.listdir(out / 'img')
    assert leftover.startswith('.tmp-mmxai-')
    users = ['.tmp-notes.txt', '.tmp-mmxai-notes.txt', '.tmp-1234overlay.png', 'keep.png']
    for name in users:
        (out / 'img' / name).write_bytes(b'mine')
    remove_temporary_files(str(out))
    assert sorted(os.listdir(out / 'img')) == sorted(users)
