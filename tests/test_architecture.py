"""Imports point one way: a layer imports only its own package and the layers below.

The rules are those of docs/architecture.md. The test reads each module's
imports from its source (no import runs, no model is built).
"""
import ast
import os
import os.path as osp
import re
from typing import Dict, Iterator, Tuple

from tests.helpers import REPO

PACKAGE = osp.join(REPO, 'mmxai')
#: Lowest first. A module may import its own package and any lower layer.
LAYERS = (
    ('version', 'registry', 'utils'),
    ('boxes', 'checkpoint', 'geometry'),
    ('datasets', 'adapters'),
    ('explainers',),
    ('models',),
    ('evaluation', 'deploy'),
    ('visualization',),
    ('engine',),
    ('apis',),
)
LAYER_OF: Dict[str, int] = {part: level for level, parts in enumerate(LAYERS) for part in parts}
#: Pure tensor maths: neither images on disk nor drawing.
NO_DRAWING = ('geometry', 'adapters', 'explainers')


def _modules() -> Iterator[Tuple[str, str]]:
    for folder, _, files in os.walk(PACKAGE):
        for name in sorted(files):
            if name.endswith('.py'):
                path = osp.join(folder, name)
                parts = osp.relpath(path, REPO)[:-3].split(os.sep)
                if parts[-1] == '__init__':
                    parts = parts[:-1]
                yield '.'.join(parts), path


def _imports(module: str, path: str) -> Iterator[str]:
    """Absolute names of the modules ``module`` imports (relative imports resolved)."""
    is_package = path.endswith('__init__.py')
    tree = ast.parse(open(path, encoding='utf-8').read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split('.')
                base = base[:len(base) - node.level + (1 if is_package else 0)]
                prefix = '.'.join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module
            yield prefix
            yield from (f'{prefix}.{alias.name}' for alias in node.names)


def _part(name: str) -> str:
    """The first-level part of mmxai a module name belongs to ('' outside mmxai)."""
    parts = name.split('.')
    return parts[1] if parts[0] == 'mmxai' and len(parts) > 1 else ''


def test_every_part_of_the_package_has_a_layer():
    parts = {_part(module) for module, _ in _modules()} - {''}
    assert parts <= set(LAYER_OF), f'no layer for {sorted(parts - set(LAYER_OF))}'


def test_no_layer_imports_a_higher_layer_or_a_sibling():
    violations = []
    for module, path in _modules():
        own = _part(module)
        if not own:  # mmxai/__init__.py gathers everything
            continue
        for imported in set(_imports(module, path)):
            other = _part(imported)
            if other and other != own and other in LAYER_OF and \
                    LAYER_OF[other] >= LAYER_OF[own]:
                violations.append(f'{module} imports {imported}')
    assert not violations, '\n'.join(sorted(violations))


def _draws(imported):
    """Whether an import is image processing: OpenCV, MMCV but its model ops and layers
    (``mmcv.ops``, ``mmcv.cnn``), our visualisation."""
    return imported.split('.')[0] == 'cv2' or _part(imported) == 'visualization' or \
        (imported.split('.')[0] == 'mmcv' and not imported.startswith(('mmcv.ops', 'mmcv.cnn')))


def test_map_maths_does_not_draw():
    violations = [f'{module} imports {imported}' for module, path in _modules()
                  if _part(module) in NO_DRAWING for imported in _imports(module, path)
                  if _draws(imported)]
    assert not violations, '\n'.join(violations)


def test_the_checker_sees_relative_and_absolute_imports(tmp_path):
    # A lower layer importing a higher one, in both spellings, is reported.
    source = 'from ..visualization import writer\nimport mmxai.apis\nfrom . import base\n'
    path = tmp_path / 'fake.py'
    path.write_text(source)
    names = set(_imports('mmxai.explainers.fake', str(path)))
    assert {'mmxai.visualization', 'mmxai.apis', 'mmxai.explainers'} <= names
    assert LAYER_OF[_part('mmxai.visualization.writer')] > LAYER_OF['explainers']


def _error_classes(path: str) -> Iterator[str]:
    """Names of the classes a module defines over an ``...Error`` or ``Exception`` base."""
    for node in ast.walk(ast.parse(open(path, encoding='utf-8').read(), path)):
        if isinstance(node, ast.ClassDef):
            bases = [getattr(b, 'id', getattr(b, 'attr', '')) for b in node.bases]
            if any(b.endswith(('Error', 'Exception')) for b in bases):
                yield node.name


def test_every_error_type_lives_in_utils_errors():
    errors = osp.join(PACKAGE, 'utils', 'errors.py')
    elsewhere = [f'{module}.{name}' for module, path in _modules() if path != errors
                 for name in _error_classes(path)]
    assert not elsewhere, elsewhere
    assert {'UserInputError', 'CascadeError', 'UnreadableImageError',
            'ExportedModelError'} <= set(_error_classes(errors))


def _keys_read(path: str) -> Iterator[str]:
    """String keys a module reads: ``x['key']`` and ``x.get('key', ...)``."""
    for node in ast.walk(ast.parse(open(path, encoding='utf-8').read(), path)):
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) and \
                isinstance(node.slice.value, str):
            yield node.slice.value
        elif isinstance(node, ast.Call) and getattr(node.func, 'attr', '') == 'get' and \
                node.args and isinstance(node.args[0], ast.Constant):
            yield node.args[0].value


def test_geometry_reads_only_the_test_pipelines_metainfo():
    # What the maps are (input shape, cell grid, value range) comes in as arguments;
    # from the metainfo only the keys MMCV's and MMDetection's transforms write.
    pipeline_keys = {'ori_shape', 'img_shape', 'scale_factor', 'flip', 'flip_direction',
                     'crop_bbox', 'border'}
    keys = set(_keys_read(osp.join(PACKAGE, 'geometry.py')))
    assert keys and keys <= pipeline_keys, sorted(keys - pipeline_keys)


def _algorithm_names() -> set:
    """The ``algorithm = '...'`` names the explainer classes declare."""
    names = set()
    for module, path in _modules():
        if _part(module) != 'explainers':
            continue
        for node in ast.walk(ast.parse(open(path, encoding='utf-8').read(), path)):
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and \
                    [getattr(t, 'id', '') for t in node.targets] == ['algorithm'] and \
                    node.value.value:
                names.add(node.value.value)
    return names


def _message_strings(path: str) -> Iterator[str]:
    """The string literals of a module that are not docstrings (messages, keys)."""
    tree = ast.parse(open(path, encoding='utf-8').read(), path)
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                id(node) not in docstrings:
            yield node.value


def test_adapters_state_facts_and_never_name_methods():
    # Which methods explain a refused model is the explainers' business
    # (explainers.explainer_for lists them from the registry).
    names = _algorithm_names()
    assert {'classwisesaliencymap', 'activationmap', 'drise', 'gradcam'} <= names
    pattern = re.compile(r'\b(%s)\b' % '|'.join(sorted(names)))
    naming = [f'{module}: {text!r}' for module, path in _modules()
              if _part(module) == 'adapters' for text in _message_strings(path)
              if pattern.search(text)]
    assert not naming, '\n'.join(naming)
