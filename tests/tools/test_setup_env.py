"""tools/setup_env.sh, every branch, on stand-ins (no network, seconds).

The unmodified script runs in a fake checkout against a local folder of tiny
stand-in wheels and a stand-in mmcv sdist (setup_env_fakes.py), with a PATH of
only the tools it uses plus a fake ``id`` and a recording ``apt-get``, so every
branch runs for real: venv created or reused, torch missing or present, mmcv
built (pip download, the C++17 -> C++20 sed, ``pip wheel``, move into the
cache, install) or installed from the cache, a failed and an interrupted build,
chromium/shellcheck present, missing as root (apt-get, which may fail) and
missing as a user, and a second run that installs nothing. Paths have spaces; the first run gives
relative MMXAI_VENV/MMXAI_CACHE from another working directory, as the
Makefile does. Only the real mmcv compile (a quarter of an hour) is left out.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest

from tests.tools.setup_env_fakes import (
    MMCV_OBJECTS,
    STANDIN_WHEELS,
    make_bin,
    make_fake_repo,
    make_find_links,
)

CHANGE = re.compile(r'^\[setup\] (creating|installing|building)', re.M)
PROGRESS = re.compile(r'^\[setup\] mmcv build: \d+ min \d+ s elapsed, (.*)$', re.M)


class Sandbox:
    """Paths shared by the runs of this module (the base folder has a space)."""

    def __init__(self, factory):
        self.find_links = factory.mktemp('standin_wheels')  # pip splits it at spaces
        make_find_links(self.find_links)
        self.base = factory.mktemp('setup') / 'set up'
        self.script = make_fake_repo(self.base / 'fake repo')
        self.repo = self.script.parents[1]
        self.tmp = self.base / 'tmp'
        self.tmp.mkdir()

    def env(self, bin_dir, **overrides):
        env = {'PATH': str(bin_dir), 'HOME': str(self.base / 'home'), 'TMPDIR': str(self.tmp),
               'LANG': 'C.UTF-8', 'PIP_CONFIG_FILE': os.devnull, 'PIP_NO_INDEX': '1',
               'PIP_FIND_LINKS': str(self.find_links), 'PIP_DISABLE_PIP_VERSION_CHECK': '1',
               'MMXAI_PYTHON': sys.executable, 'MMXAI_PROGRESS_SECONDS': '1'}
        env.update(overrides)
        return env

    def run(self, cwd, bin_dir, **overrides):
        """Runs the set-up script; returns (exit status, stdout and stderr together)."""
        result = subprocess.run([str(self.script)], cwd=cwd, env=self.env(bin_dir, **overrides),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                timeout=300)
        return result.returncode, result.stdout


def venv_python(venv, code, cwd):
    """What a venv's python prints for ``code`` (without this process's PYTHONPATH)."""
    return subprocess.run([str(venv / 'bin' / 'python'), '-c', code], check=True, cwd=cwd,
                          env={'LANG': 'C.UTF-8'}, capture_output=True, text=True).stdout


def installed(venv):
    """Name -> version of every distribution in a venv, asked of its own python."""
    code = ('import importlib.metadata as md, json; print(json.dumps('
            '{d.metadata["Name"].lower(): d.version for d in md.distributions()}))')
    return json.loads(venv_python(venv, code, venv))


def cached_wheels(cache):
    return sorted(p.relative_to(cache).as_posix() for p in cache.rglob('*.whl'))


def snapshot(venv):
    """Every file of a venv with its modification time."""
    return {p: p.stat().st_mtime_ns for p in venv.rglob('*') if '__pycache__' not in p.parts}


@pytest.fixture(scope='module')
def sandbox(tmp_path_factory):
    return Sandbox(tmp_path_factory)


@pytest.fixture(scope='module')
def first_run(sandbox):
    """A fresh machine as root: no venv, no cache, no chromium, no shellcheck; the
    relative venv and cache of the Makefile, called from another directory."""
    cwd = sandbox.base / 'elsewhere'
    cwd.mkdir()
    bin_dir = make_bin(sandbox.base / 'bin root', 0, sandbox.base / 'apt root.log')
    status, out = sandbox.run(cwd, bin_dir, MMXAI_VENV='rel venv', MMXAI_CACHE='rel cache')
    return dict(status=status, out=out, cwd=cwd, bin=bin_dir, venv=cwd / 'rel venv',
                cache=cwd / 'rel cache', apt=sandbox.base / 'apt root.log')


def test_first_run_builds_mmcv_and_installs_everything(first_run, sandbox):
    out = first_run['out']
    assert first_run['status'] == 0, out
    venv, cache = first_run['venv'], first_run['cache']
    for line in ('creating virtual environment ' + str(venv), 'installing build tools',
                 'installing torch==2.14.1 torchvision==0.29.1',
                 'building mmcv 2.1.0 with its C++ ops for torch2.14.1-',
                 'installing mmcv from ' + str(cache / 'mmcv-2.1.0'),
                 'installing mmengine==0.10.7 mmdet==3.3.0 mmpretrain==1.2.0 and test tools',
                 'installing the deploy runtimes onnx==1.23.2 onnxruntime==1.32.0 '
                 'openvino==2026.4.1',
                 'installing mmxai (editable)', 'environment ready: ' + str(venv)):
        assert '[setup] ' + line in out, out
    versions = installed(venv)
    for name, (version, _) in STANDIN_WHEELS.items():
        assert versions[name] == version, (name, versions)
    assert versions['mmcv'] == '2.1.0' and versions['mmxai'] == '0.0.0'
    assert 'packaging' in versions
    # The editable mmxai is the checkout's, and the built mmcv has its ops.
    code = ('import mmxai, mmcv.ops; '
            'print(mmxai.__file__, mmcv.__version__, mmcv.ops.compiled, sep=chr(10))')
    printed = venv_python(venv, code, sandbox.tmp).splitlines()
    assert printed == [str(sandbox.repo / 'mmxai' / '__init__.py'), '2.1.0', 'True']


def test_first_run_keeps_relative_paths_relative_to_the_caller(first_run, sandbox):
    assert first_run['status'] == 0, first_run['out']
    assert (first_run['venv'] / 'bin' / 'python').is_file()
    assert not (sandbox.repo / 'rel venv').exists() and not (sandbox.repo / '.venv').exists()
    wheels = cached_wheels(first_run['cache'])
    assert len(wheels) == 1 and re.fullmatch(
        r'mmcv-2\.1\.0/torch2\.14\.1-cucpu-py\d+/mmcv-2\.1\.0-py3-none-any\.whl', wheels[0]), wheels


def test_first_run_shows_build_progress_and_keeps_the_log(first_run):
    assert first_run['status'] == 0, first_run['out']
    progress = PROGRESS.findall(first_run['out'])
    total = len(MMCV_OBJECTS)
    counted = [line for line in progress
               if re.match(r'\d of {} files compiled'.format(total), line)]
    assert counted, progress
    assert all(line == 'preparing' or line in counted for line in progress), progress
    log_file = next(first_run['cache'].glob('mmcv-2.1.0/*/build.log'))
    assert "pip's output goes to " + str(log_file) in first_run['out']
    assert 'Successfully built mmcv' in log_file.read_text()


def test_first_run_installs_debian_packages_as_root(first_run):
    assert first_run['status'] == 0, first_run['out']
    assert first_run['apt'].read_text().splitlines() == [
        'DEBIAN_FRONTEND= update -qq',
        'DEBIAN_FRONTEND=noninteractive install -y -qq chromium shellcheck']
    assert '[setup] installing chromium shellcheck (apt-get)' in first_run['out']


def test_first_run_leaves_no_build_folder(first_run, sandbox):
    assert first_run['status'] == 0, first_run['out']
    assert list(sandbox.tmp.iterdir()) == []


@pytest.fixture(scope='module')
def second_run(first_run, sandbox):
    before = snapshot(first_run['venv'])
    cache = cached_wheels(first_run['cache'])
    status, out = sandbox.run(first_run['cwd'], first_run['bin'], MMXAI_VENV='rel venv',
                              MMXAI_CACHE='rel cache')
    return dict(status=status, out=out, before=before, cache=cache)


def test_second_run_installs_nothing(second_run, first_run):
    assert second_run['status'] == 0, second_run['out']
    assert second_run['out'] == '[setup] environment ready: {}\n'.format(first_run['venv'])
    assert not CHANGE.search(second_run['out'])
    assert snapshot(first_run['venv']) == second_run['before']
    assert cached_wheels(first_run['cache']) == second_run['cache']
    assert len(first_run['apt'].read_text().splitlines()) == 2  # chromium is there now


def test_apt_get_failure_is_reported_and_not_fatal(first_run, sandbox):
    assert first_run['status'] == 0, first_run['out']
    record = sandbox.base / 'apt fails.log'
    bin_dir = make_bin(sandbox.base / 'bin apt fails', 0, record)
    status, out = sandbox.run(first_run['cwd'], bin_dir, MMXAI_VENV='rel venv',
                              MMXAI_CACHE='rel cache', MMXAI_FAKE_APT_FAIL='1')
    assert status == 0, out
    assert out.splitlines() == [
        '[setup] installing chromium shellcheck (apt-get) (chromium: the report test; '
        'shellcheck: make lint)',
        'E: Unable to locate package chromium',
        '[setup] apt-get could not install chromium shellcheck; install them yourself for the '
        'tests',
        '[setup] environment ready: {}'.format(first_run['venv'])]
    assert len(record.read_text().splitlines()) == 2


def test_too_little_disk_for_torch_is_refused_in_one_line_before_pip(sandbox):
    bin_dir = make_bin(sandbox.base / 'bin small disk', 1000, sandbox.base / 'apt small.log')
    venv = sandbox.base / 'small disk venv'
    free_gb = shutil.disk_usage(sandbox.base).free // 1024 ** 3
    status, out = sandbox.run(sandbox.base, bin_dir, MMXAI_VENV=str(venv),
                              MMXAI_CACHE=str(sandbox.base / 'small cache'),
                              MMXAI_MIN_FREE_GB=str(free_gb + 1000))
    assert status == 1, out
    refusal = out.splitlines()[-1]
    assert refusal.startswith(f'setup_env.sh: installing torch needs about {free_gb + 1000} GB '
                              f'free on the disk of {venv}; '), out
    reported = int(refusal.split('; ')[1].split(' GB free')[0])
    assert abs(reported - free_gb) <= 1, out
    assert '[setup] installing torch' not in out
    assert 'torch' not in installed(venv)
    status, out = sandbox.run(sandbox.base, bin_dir, MMXAI_VENV=str(venv), MMXAI_MIN_FREE_GB='8GB')
    assert (status, out.strip()) == (
        2, "setup_env.sh: MMXAI_MIN_FREE_GB must be a whole number of GB, not '8GB'")


@pytest.fixture(scope='module')
def user(sandbox):
    """A user (not root) whose venv already has torch, with an empty cache of its own."""
    venv = sandbox.base / 'user venv'
    env = sandbox.env(os.path.dirname(sys.executable))
    subprocess.run([sys.executable, '-m', 'venv', str(venv)], check=True, env=env)
    subprocess.run([str(venv / 'bin' / 'python'), '-m', 'pip', 'install', '-q', 'torch',
                    'torchvision'], check=True, env=env)
    bin_dir = make_bin(sandbox.base / 'bin user', 1000, sandbox.base / 'apt user.log')
    return dict(venv=venv, bin=bin_dir, cache=sandbox.base / 'user cache',
                apt=sandbox.base / 'apt user.log')


def _process_gone(pid):
    try:
        with open('/proc/{}/stat'.format(pid)) as stat:
            return stat.read().split(') ')[-1].startswith('Z')
    except FileNotFoundError:
        return True


def test_interrupted_build_stops_the_compilers_and_caches_nothing(user, sandbox):
    pid_file = sandbox.base / 'backend.pid'
    env = sandbox.env(user['bin'], MMXAI_VENV=str(user['venv']), MMXAI_CACHE=str(user['cache']),
                      MMXAI_STANDIN_SECONDS_PER_OBJECT='60', MMXAI_STANDIN_PID_FILE=str(pid_file))
    # Its own session, as a terminal's: Ctrl-C signals the whole foreground process group.
    # A job started in the background (CI, `make test &`) inherits SIGINT ignored, and
    # bash cannot trap a signal ignored on entry: start it with SIGINT as a terminal has it.
    process = subprocess.Popen([str(sandbox.script)], cwd=sandbox.base, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    # Without progress lines the loop below would wait for the whole build.
    watchdog = threading.Timer(60, os.killpg, (process.pid, signal.SIGKILL))
    watchdog.start()
    lines = []
    for line in process.stdout:
        lines.append(line)
        if PROGRESS.match(line) and 'files compiled' in line:
            break
    watchdog.cancel()
    assert pid_file.exists(), ''.join(lines)
    os.killpg(process.pid, signal.SIGINT)
    status = process.wait(timeout=30)
    lines.extend(process.stdout)
    assert status == 130, ''.join(lines)
    deadline = time.monotonic() + 10
    while not _process_gone(int(pid_file.read_text())) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _process_gone(int(pid_file.read_text())), 'the build kept running'
    assert cached_wheels(user['cache']) == []
    assert list(sandbox.tmp.iterdir()) == []


@pytest.fixture(scope='module')
def failed_build(user, sandbox):
    status, out = sandbox.run(sandbox.base, user['bin'], MMXAI_VENV=str(user['venv']),
                              MMXAI_CACHE=str(user['cache']), MMXAI_STANDIN_BUILD_FAIL='1')
    return dict(status=status, out=out)


def test_failed_build_shows_the_log_and_propagates_its_status(failed_build, user, sandbox):
    out = failed_build['out']
    match = re.search(r'^\[setup\] the mmcv build failed \(exit status (\d+)\); '
                      r'the end of its log (.*):$', out, re.M)
    assert match, out
    assert int(match.group(1)) == failed_build['status'] != 0
    log_file = user['cache'] / 'mmcv-2.1.0' / match.group(2).split('/mmcv-2.1.0/')[1]
    assert str(log_file) == match.group(2)
    error = 'stand-in compiler error: ops/csrc/pytorch/nms.cpp:1: expected declaration'
    assert error in log_file.read_text()
    assert error in out[match.end():]  # the tail is printed
    assert cached_wheels(user['cache']) == []
    assert 'environment ready' not in out
    assert list(sandbox.tmp.iterdir()) == []


@pytest.fixture(scope='module')
def user_run(failed_build, first_run, user, sandbox):
    """The user's venv (torch present) set up with the first run's cache, by absolute path."""
    status, out = sandbox.run(sandbox.base, user['bin'], MMXAI_VENV=str(user['venv']),
                              MMXAI_CACHE=str(first_run['cache']))
    return dict(status=status, out=out)


def test_cached_mmcv_installs_without_building(user_run, user, first_run):
    out = user_run['out']
    assert user_run['status'] == 0, out
    assert '[setup] installing mmcv from ' + str(first_run['cache'] / 'mmcv-2.1.0') in out
    for absent in ('creating virtual environment', 'installing torch', 'building mmcv',
                   'mmcv build:'):
        assert absent not in out, out
    assert installed(user['venv'])['mmcv'] == '2.1.0'
    assert len(cached_wheels(first_run['cache'])) == 1


def test_user_is_told_how_to_install_debian_packages(user_run, user):
    assert user_run['status'] == 0, user_run['out']
    assert ('[setup] chromium shellcheck missing (chromium: the report test; shellcheck: make '
            'lint); install: sudo apt-get install chromium shellcheck') in user_run['out']
    assert not user['apt'].exists()
