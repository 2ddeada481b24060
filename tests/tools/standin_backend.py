"""In-tree PEP 517 build backend of the stand-in projects of test_setup_env.py.

The set-up tests copy this file into a stand-in mmcv sdist and into a stand-in
mmxai checkout (``backend-path = ["."]``), so that ``tools/setup_env.sh`` runs
its real pip commands on them in seconds. It reads ``standin.json`` from the
project root (pip calls a backend with the project root as working directory):

- ``name``, ``version``, ``packages``: what the wheel holds;
- ``objects`` (mmcv): stand-ins for the C++ sources. ``build_wheel`` fails like
  the real build does unless ``setup.py`` asks for C++20 (the set-up script's
  ``sed``) and ``MMCV_WITH_OPS=1`` is set, then "compiles" each object the way
  torch's extension builder lays them out (``build/temp.*/build.ninja`` listing
  ``build X.o: compile X.cpp``, then the ``.o`` files one by one) so that the
  set-up's progress lines have something to count.

Environment knobs of a test run: ``MMXAI_STANDIN_SECONDS_PER_OBJECT`` (default
1.2), ``MMXAI_STANDIN_BUILD_FAIL`` (fail like a compiler error),
``MMXAI_STANDIN_PID_FILE`` (where the building process writes its pid).
"""
import base64
import hashlib
import json
import os
import pathlib
import sys
import time
import zipfile

CONFIG = json.loads(pathlib.Path('standin.json').read_text())
DIST = '{}-{}'.format(CONFIG['name'], CONFIG['version'])


def _metadata_files():
    return {
        DIST + '.dist-info/METADATA': 'Metadata-Version: 2.1\nName: {}\nVersion: {}\n'.format(
            CONFIG['name'], CONFIG['version']),
        DIST + '.dist-info/WHEEL': ('Wheel-Version: 1.0\nGenerator: standin_backend\n'
                                    'Root-Is-Purelib: true\nTag: py3-none-any\n'),
    }


def _write_wheel(wheel_directory, files):
    """Writes a py3-none-any wheel holding ``files`` (archive path -> text) and its RECORD."""
    files = dict(files, **_metadata_files())
    record = []
    for path, text in files.items():
        data = text.encode()
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()
        record.append('{},sha256={},{}'.format(path, digest, len(data)))
    record.append(DIST + '.dist-info/RECORD,,')
    files[DIST + '.dist-info/RECORD'] = '\n'.join(record) + '\n'
    name = DIST + '-py3-none-any.whl'
    with zipfile.ZipFile(os.path.join(wheel_directory, name), 'w') as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return name


def _package_files():
    files = {}
    for package in CONFIG['packages']:
        for path in sorted(pathlib.Path(package).rglob('*.py')):
            files[path.as_posix()] = path.read_text()
    return files


def _fail(message):
    print('stand-in compiler error: ' + message, file=sys.stderr)
    raise SystemExit(1)


def _compile():
    """Fails unless the set-up patched setup.py and asked for the ops, then lays
    out object files one by one, as torch's ninja build does."""
    if os.environ.get('MMXAI_STANDIN_PID_FILE'):
        pathlib.Path(os.environ['MMXAI_STANDIN_PID_FILE']).write_text(str(os.getpid()))
    setup_py = pathlib.Path('setup.py').read_text()
    if '-std=c++20' not in setup_py or '-std=c++17' in setup_py:
        _fail('torch 2.14 headers need C++20; setup.py asks for ' + setup_py.strip())
    if os.environ.get('MMCV_WITH_OPS') != '1':
        _fail('MMCV_WITH_OPS=1 is not set: this wheel would have no compiled ops')
    if os.environ.get('MMXAI_STANDIN_BUILD_FAIL'):
        _fail('ops/csrc/pytorch/nms.cpp:1: expected declaration (MMXAI_STANDIN_BUILD_FAIL)')
    temp = pathlib.Path('build', 'temp.standin')
    temp.mkdir(parents=True, exist_ok=True)
    objects = [temp / (name + '.o') for name in CONFIG['objects']]
    (temp / 'build.ninja').write_text(''.join(
        'build {}: compile {}.cpp\n'.format(obj, name)
        for obj, name in zip(objects, CONFIG['objects'])))
    seconds = float(os.environ.get('MMXAI_STANDIN_SECONDS_PER_OBJECT', '1.2'))
    for obj in objects:
        time.sleep(seconds)
        obj.write_bytes(b'\x7fELF')


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_editable(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    for path, text in _metadata_files().items():
        target = pathlib.Path(metadata_directory, path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return DIST + '.dist-info'


prepare_metadata_for_build_editable = prepare_metadata_for_build_wheel


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    if CONFIG.get('objects'):
        _compile()
    return _write_wheel(wheel_directory, _package_files())


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    return _write_wheel(wheel_directory, {CONFIG['name'] + '.pth': os.getcwd() + '\n'})
