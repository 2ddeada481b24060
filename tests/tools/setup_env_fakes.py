"""Stand-ins that let test_setup_env.py run tools/setup_env.sh end to end in seconds.

- ``make_find_links``: a folder of tiny wheels for every package the script
  installs (same names and versions as its pins, pure Python, no
  dependencies), a real ``packaging`` wheel (the script's ``has()`` imports it),
  and a stand-in ``mmcv-2.1.0.tar.gz`` sdist built by standin_backend.py, whose
  ``setup.py`` says ``-std=c++17`` as the real one does.
- ``make_fake_repo``: a copy of the unmodified set-up script in a checkout
  whose ``pip install -e`` builds a stand-in ``mmxai``.
- ``make_bin``: the only folder on the script's PATH: links to the real tools
  it uses, a fake ``id`` (root or not) and a fake ``apt-get`` that records its
  calls and "installs" a package by putting a stub command next to itself (or
  fails, with MMXAI_FAKE_APT_FAIL set).
"""
import base64
import hashlib
import importlib.metadata
import io
import json
import pathlib
import shutil
import tarfile
import zipfile

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]
BACKEND = HERE / 'standin_backend.py'

# What the script installs, as stand-ins: name -> (version, {path: text}).
STANDIN_WHEELS = {
    'torch': ('2.14.1', {
        'torch/__init__.py': "from . import version\n__version__ = '2.14.1'\n",
        'torch/version.py': "__version__ = '2.14.1'\ncuda = None\n"}),
    'torchvision': ('0.29.1', {'torchvision/__init__.py': "__version__ = '0.29.1'\n"}),
    'mmengine': ('0.10.7', {'mmengine/__init__.py': "__version__ = '0.10.7'\n"}),
    'mmdet': ('3.3.0', {'mmdet/__init__.py': "__version__ = '3.3.0'\n"}),
    'mmpretrain': ('1.2.0', {'mmpretrain/__init__.py': "__version__ = '1.2.0'\n"}),
    'pytest': ('8.3.0', {'pytest/__init__.py': "__version__ = '8.3.0'\n"}),
    'ruff': ('0.6.9', {'ruff/__init__.py': ''}),
    'setuptools': ('80.0.0', {'setuptools/__init__.py': "__version__ = '80.0.0'\n"}),
    'ninja': ('1.13.0', {'ninja/__init__.py': ''}),
    'wheel': ('0.45.1', {'wheel/__init__.py': "__version__ = '0.45.1'\n"}),
    'onnx': ('1.23.2', {'onnx/__init__.py': "__version__ = '1.23.2'\n"}),
    'onnxruntime': ('1.32.0', {'onnxruntime/__init__.py': "__version__ = '1.32.0'\n"}),
    'openvino': ('2026.4.1', {'openvino/__init__.py': "__version__ = '2026.4.1'\n"}),
}
MMCV_OBJECTS = ['nms', 'roi_align', 'deform_conv']
# The tools the set-up script runs (besides python, apt-get, id, chromium, shellcheck).
TOOLS = ['awk', 'bash', 'cat', 'df', 'dirname', 'find', 'grep', 'gzip', 'ls', 'mkdir', 'mktemp',
         'mv', 'nproc', 'rm', 'sed', 'sleep', 'tail', 'tar', 'wc']


def write_wheel(folder, name, version, files):
    """Writes a pure-Python wheel with a valid RECORD.

    Args:
        folder (pathlib.Path): where to write it.
        name (str): distribution name.
        version (str): its version.
        files (dict[str, bytes | str]): archive path -> content.

    Returns:
        pathlib.Path: the wheel.
    """
    dist = '{}-{}'.format(name, version)
    files = dict(files)
    files[dist + '.dist-info/METADATA'] = 'Metadata-Version: 2.1\nName: {}\nVersion: {}\n'.format(
        name, version)
    files[dist + '.dist-info/WHEEL'] = ('Wheel-Version: 1.0\nGenerator: mmxai-tests\n'
                                       'Root-Is-Purelib: true\nTag: py3-none-any\n')
    record = []
    for path, content in files.items():
        data = content.encode() if isinstance(content, str) else content
        files[path] = data
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()
        record.append('{},sha256={},{}'.format(path, digest, len(data)))
    record.append(dist + '.dist-info/RECORD,,')
    files[dist + '.dist-info/RECORD'] = ('\n'.join(record) + '\n').encode()
    wheel = folder / (dist + '-py3-none-any.whl')
    with zipfile.ZipFile(wheel, 'w') as archive:
        for path, data in files.items():
            archive.writestr(path, data)
    return wheel


def _packaging_files():
    """The installed ``packaging`` sources, for a real wheel of it."""
    dist = importlib.metadata.distribution('packaging')
    files = {}
    for path in dist.files:
        if path.parts[0] == 'packaging' and path.suffix == '.py':
            files[path.as_posix()] = pathlib.Path(dist.locate_file(path)).read_bytes()
    assert 'packaging/requirements.py' in files, 'packaging sources not found'
    return dist.version, files


def _add_text(archive, path, text, mode=0o644):
    data = text.encode()
    info = tarfile.TarInfo(path)
    info.size, info.mode = len(data), mode
    archive.addfile(info, io.BytesIO(data))


def write_mmcv_sdist(folder):
    """A stand-in mmcv 2.1.0 sdist: its build fails unless setup.py was patched to C++20.

    Args:
        folder (pathlib.Path): where to write ``mmcv-2.1.0.tar.gz``.

    Returns:
        pathlib.Path: the sdist.
    """
    root = 'mmcv-2.1.0/'
    sdist = folder / 'mmcv-2.1.0.tar.gz'
    with tarfile.open(sdist, 'w:gz') as archive:
        _add_text(archive, root + 'PKG-INFO', 'Metadata-Version: 2.1\nName: mmcv\nVersion: 2.1.0\n')
        _add_text(archive, root + 'pyproject.toml', '[build-system]\nrequires = []\n'
                  'build-backend = "standin_backend"\nbackend-path = ["."]\n')
        _add_text(archive, root + 'standin_backend.py', BACKEND.read_text())
        _add_text(archive, root + 'standin.json', json.dumps(
            {'name': 'mmcv', 'version': '2.1.0', 'packages': ['mmcv'], 'objects': MMCV_OBJECTS}))
        # The line the set-up script's sed rewrites (the real one is in get_extensions()).
        _add_text(archive, root + 'setup.py', "extra_compile_args = {'cxx': ['-std=c++17']}\n")
        _add_text(archive, root + 'mmcv/__init__.py', "__version__ = '2.1.0'\n")
        _add_text(archive, root + 'mmcv/ops/__init__.py', "compiled = True\n")
    return sdist


def make_find_links(folder):
    """Fills ``folder`` with every distribution the script installs, as stand-ins.

    Args:
        folder (pathlib.Path): an existing folder (pip splits PIP_FIND_LINKS at
            white space, so its path must have none).
    """
    for name, (version, files) in STANDIN_WHEELS.items():
        write_wheel(folder, name, version, files)
    write_wheel(folder, 'packaging', *_packaging_files())
    write_mmcv_sdist(folder)


def make_fake_repo(folder):
    """A checkout with the unmodified set-up script and a stand-in mmxai project.

    Args:
        folder (pathlib.Path): the checkout's root (created).

    Returns:
        pathlib.Path: the copied ``tools/setup_env.sh``.
    """
    (folder / 'tools').mkdir(parents=True)
    (folder / 'mmxai').mkdir()
    script = folder / 'tools' / 'setup_env.sh'
    shutil.copy2(REPO / 'tools' / 'setup_env.sh', script)
    shutil.copy2(BACKEND, folder / 'standin_backend.py')
    (folder / 'standin.json').write_text(json.dumps(
        {'name': 'mmxai', 'version': '0.0.0', 'packages': ['mmxai']}))
    (folder / 'pyproject.toml').write_text('[build-system]\nrequires = []\n'
                                           'build-backend = "standin_backend"\n'
                                           'backend-path = ["."]\n')
    (folder / 'mmxai' / '__init__.py').write_text("__version__ = '0.0.0'\n")
    return script


def _write_script(path, text):
    path.write_text(text)
    path.chmod(0o755)


def make_bin(folder, uid, apt_record):
    """The PATH of a set-up run: real tools, a fake ``id`` and a recording ``apt-get``.

    Args:
        folder (pathlib.Path): the folder to make.
        uid (int): what ``id -u`` prints (0: root, so the script uses apt-get).
        apt_record (pathlib.Path): where apt-get appends one line per call.

    Returns:
        pathlib.Path: ``folder``.
    """
    folder.mkdir(parents=True)
    for tool in TOOLS:
        real = shutil.which(tool)
        assert real, 'the set-up script needs {} on this machine'.format(tool)
        (folder / tool).symlink_to(real)
    _write_script(folder / 'id', '#!/bin/sh\necho {}\n'.format(uid))
    chmod = shutil.which('chmod')
    _write_script(folder / 'apt-get', f"""#!/bin/sh
echo "DEBIAN_FRONTEND=$DEBIAN_FRONTEND $*" >> '{apt_record}'
if [ "$1" = install ] && [ -n "$MMXAI_FAKE_APT_FAIL" ]; then
  echo "E: Unable to locate package $4" >&2
  exit 100
fi
if [ "$1" = install ]; then
  for package in "$@"; do
    case "$package" in
      install|-*) ;;
      *) stub="$(dirname "$0")/$package"; printf '#!/bin/sh\\n' > "$stub"; {chmod} +x "$stub" ;;
    esac
  done
fi
""")
    return folder
