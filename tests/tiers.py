"""Test tiers: which tests are slow, found from what they use.

``make test-fast`` runs ``pytest -m "not slow"``, the edit-run loop; ``make
test`` runs everything. A test is slow when it, a fixture it requests
(directly or through other fixtures) or a function or class of ``tests/``
they use

- trains a model: calls anything named ``train`` (``tests.helpers.train``,
  ``Runner.train``, the session's ``trained_*`` fixtures through it);
- runs a program: uses the ``subprocess`` module (the tools, torchrun,
  make, git);
- opens Chromium: uses ``tests.browser``.

The reasons are read from the code (the names its bytecode loads, resolved
in its module), so a new test lands in its tier without a mark written by
hand. :class:`FastTierGuard` checks at run time that a test of the fast tier
indeed steps no optimizer and starts no Python process or browser.
"""
import dis
import os
import os.path as osp
import shutil
import sys
import types
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence

from torch.optim.optimizer import Optimizer, register_optimizer_step_pre_hook

TESTS_DIR = osp.dirname(osp.abspath(__file__))
REPO = osp.dirname(TESTS_DIR)
#: Why a test that uses one of these modules is slow.
HEAVY_MODULES = {'subprocess': 'runs a program', 'tests.browser': 'opens Chromium'}
#: Why a test that calls something of this name is slow.
HEAVY_CALLS = {'train': 'trains a model'}


def _ours(path: str) -> bool:
    return osp.abspath(path).startswith(TESTS_DIR + os.sep)


def _code_objects(code: types.CodeType) -> Iterator[types.CodeType]:
    """``code`` and the code of the functions, lambdas and comprehensions defined in it."""
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_objects(const)


def _imported_names(code: types.CodeType) -> Iterator[Any]:
    """What the function-level ``import``/``from ... import`` statements of ``code`` bind."""
    module = None
    for instruction in dis.get_instructions(code):
        if instruction.opname == 'IMPORT_NAME':
            module = sys.modules.get(instruction.argval)
            yield module
        elif instruction.opname == 'IMPORT_FROM' and module is not None:
            yield getattr(module, instruction.argval, None)


class HeavyUseFinder:
    """Finds why a test is slow from its code and its fixtures' code.

    Results are cached per code object and class: one finder serves a session.

    Attributes:
        fixtures (Callable[[str], Sequence[Callable]]): The functions of a
            fixture by name, for ``request.getfixturevalue('name')``; set per
            test (fixtures are looked up from a test's place in the tree).
    """

    def __init__(self) -> None:
        self.fixtures: Callable[[str], Sequence[Any]] = lambda name: ()
        self._known: Dict[Any, Optional[str]] = {}

    def of_item(self, function: Any, cls: Optional[type],
                fixture_functions: Sequence[Any]) -> Optional[str]:
        """Why a test is slow, or None.

        Args:
            function (Callable): The test function (for a method, its plain function).
            cls (type, optional): The test's class, whose attributes its
                ``self.name`` lookups reach.
            fixture_functions (Sequence[Callable]): The functions of every
                fixture the test requests, directly or not.

        Returns:
            str or None: The reason, e.g. ``'trains a model (trained_detector)'``.
        """
        reason = self.of_function(function, vars(cls) if cls is not None else {})
        if reason:
            return reason
        for fixture in fixture_functions:
            reason = self.of_function(fixture)
            if reason:
                return f'{reason} ({fixture.__name__})'
        return None

    def of_function(self, function: Any, extra: Mapping[str, Any] = types.MappingProxyType({})
                    ) -> Optional[str]:
        """Why calling ``function`` (a function of ``tests/``) is slow, or None."""
        function = getattr(function, '__func__', function)  # bound methods
        code = getattr(function, '__code__', None)
        if code is None or not _ours(code.co_filename):
            return None
        if code in self._known:
            return self._known[code]
        self._known[code] = None  # a recursive call is not a reason
        namespace = dict(getattr(function, '__globals__', {}), **extra)
        self._known[code] = reason = self._of_code(code, namespace)
        return reason

    def _of_code(self, root: types.CodeType, namespace: Mapping[str, Any]) -> Optional[str]:
        for code in _code_objects(root):
            for name in code.co_names:
                if name in HEAVY_CALLS:
                    return HEAVY_CALLS[name]
                if name in HEAVY_MODULES:  # `import subprocess` in the function
                    return HEAVY_MODULES[name]
            used = [namespace.get(name) for name in code.co_names]
            if 'getfixturevalue' in code.co_names:  # fixtures requested by name
                used += [fixture for const in code.co_consts if isinstance(const, str)
                         for fixture in self.fixtures(const)]
            for value in used + list(_imported_names(code)):
                reason = self.of_value(value)
                if reason:
                    return reason
        return None

    def of_value(self, value: Any) -> Optional[str]:
        """Why using ``value`` (a module, function or class) is slow, or None."""
        if value is None or isinstance(value, (str, int, float, bool, tuple, dict, list)):
            return None
        module = value.__name__ if isinstance(value, types.ModuleType) else \
            getattr(value, '__module__', None)
        if isinstance(module, str) and module in HEAVY_MODULES:
            return HEAVY_MODULES[module]
        if isinstance(value, type):
            return self._of_class(value)
        if callable(value):
            return self.of_function(value)
        return None

    def _of_class(self, cls: type) -> Optional[str]:
        """Why using a class is slow: one of its methods of ``tests/`` is, or None."""
        if cls in self._known:
            return self._known[cls]
        self._known[cls] = None
        reason = None
        for attribute in vars(cls).values():
            attribute = getattr(attribute, 'fget', attribute)  # properties
            reason = self.of_function(getattr(attribute, '__func__', attribute), vars(cls))
            if reason:
                break
        self._known[cls] = reason
        return reason


def _python_or_browser(program: str) -> bool:
    """Whether a program is a Python interpreter, a browser or a file of this repository."""
    name = osp.basename(program)
    path = osp.realpath(program if os.sep in program else shutil.which(program) or program)
    return name.startswith(('python', 'chromium', 'chrome')) or \
        path == osp.realpath(sys.executable) or path.startswith(REPO + os.sep)


class FastTierGuard:
    """Records, while active, what a fast test must not do.

    That is: step an optimizer (train) or start a Python process, Chromium
    or a script of this repository. Libraries may still start other
    programs (MMEngine asks ``gcc --version`` when a Runner is built).
    Python's audit hooks cannot be removed, so one is installed per process
    and reports to the active guard.
    """

    _active: Optional['FastTierGuard'] = None
    _audit_hook_installed = False

    def __init__(self) -> None:
        self.uses: List[str] = []
        self._step_hook: Any = None
        self._outer: Optional['FastTierGuard'] = None

    def __enter__(self) -> 'FastTierGuard':
        if not FastTierGuard._audit_hook_installed:
            sys.addaudithook(FastTierGuard._audit)
            FastTierGuard._audit_hook_installed = True
        self._step_hook = register_optimizer_step_pre_hook(self._step)
        self._outer, FastTierGuard._active = FastTierGuard._active, self
        return self

    def __exit__(self, *exc_info: Any) -> None:
        FastTierGuard._active = self._outer
        self._step_hook.remove()

    def _step(self, optimizer: Optimizer, args: Any, kwargs: Any) -> None:
        self.uses.append(f'trains a model ({type(optimizer).__name__}.step)')

    @staticmethod
    def _audit(event: str, args: tuple) -> None:
        guard = FastTierGuard._active
        if guard is None or event != 'subprocess.Popen':
            return
        executable, argv = args[0], args[1]
        argv = [argv] if isinstance(argv, (str, bytes, os.PathLike)) else list(argv or ())
        program = os.fsdecode(executable or (argv[0] if argv else ''))
        if _python_or_browser(program):
            shown = ' '.join(os.fsdecode(part) for part in argv[:3])
            guard.uses.append(f'runs a program ({shown})')
