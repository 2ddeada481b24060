"""Test tiers (tests/tiers.py): what trains, runs a program or opens Chromium is slow."""
import inspect
import os.path as osp
import re
import subprocess
import sys

import torch

from tests.tiers import TESTS_DIR, FastTierGuard, HeavyUseFinder

#: The session fixtures that train a model (tests/conftest.py).
TRAINING_FIXTURES = {'trained_detector', 'trained_classifier', 'trained_mask_rcnn'}
#: What a test's own source says when it trains, runs a program or opens Chromium.
HEAVY_SOURCE = re.compile(r'\btrain\(|\.train\(\)|\bsubprocess\.|\bBrowser\(|\bdump_dom\(')

SAMPLES = '''
import subprocess

def run_tool():
    return subprocess.run(['python', 'tools/explain.py'])

def calls_the_helper():
    return run_tool()

class Sandbox:
    def start(self):
        return run_tool()

def sandbox_fixture():
    return Sandbox()

def imports_train_inside():
    from tests.helpers import train
    return train

def runs_a_browser():
    from tests.browser import Browser
    with Browser() as browser:
        return browser

def light():
    return sorted([3, 1, 2])

def by_name(request):
    return request.getfixturevalue('trained_detector')

def calls_light_in_a_lambda():
    return (lambda: light())()
'''


def _samples() -> dict:
    """Functions compiled as if in a file of tests/, kept out of this module's names."""
    namespace: dict = {}
    exec(compile(SAMPLES, osp.join(TESTS_DIR, 'tier_samples.py'), 'exec'), namespace)
    return namespace


def test_finder_follows_helpers_classes_function_imports_and_fixtures_by_name():
    samples, finder = _samples(), HeavyUseFinder()
    assert finder.of_function(samples['calls_the_helper']) == 'runs a program'
    assert finder.of_function(samples['sandbox_fixture']) == 'runs a program'
    assert finder.of_function(samples['imports_train_inside']) == 'trains a model'
    assert finder.of_function(samples['runs_a_browser']) == 'opens Chromium'
    assert finder.of_function(samples['light']) is None
    assert finder.of_function(samples['calls_light_in_a_lambda']) is None
    assert finder.of_item(samples['light'], None, [samples['sandbox_fixture']]) == \
        'runs a program (sandbox_fixture)'
    assert finder.of_function(samples['by_name']) is None  # no fixture of that name yet
    finder = HeavyUseFinder()
    finder.fixtures = lambda name: [samples['imports_train_inside']] \
        if name == 'trained_detector' else []
    assert finder.of_function(samples['by_name']) == 'trains a model'


def test_every_test_of_a_trained_model_is_slow(request):
    """In a full run: each such test is marked; under `-m "not slow"`: none was collected."""
    items = request.session.items
    assert request.node in items
    heavy = [item for item in items if TRAINING_FIXTURES & set(item.fixturenames)]
    unmarked = [item.nodeid for item in heavy if not item.get_closest_marker('slow')]
    assert not unmarked, unmarked


def test_every_test_whose_own_code_trains_or_runs_a_program_is_slow(request):
    """The source text of each test, read apart from the bytecode tests/tiers.py reads."""
    unmarked = [item.nodeid for item in request.session.items
                if HEAVY_SOURCE.search(inspect.getsource(item.function))
                and not item.get_closest_marker('slow')]
    assert not unmarked, unmarked


def test_guard_records_an_optimizer_step_and_a_python_process():
    weight = torch.nn.Parameter(torch.ones(1))
    with FastTierGuard() as guard:
        subprocess.run(['true'], check=True)  # not Python: libraries may start programs
        weight.sum().backward()
        torch.optim.SGD([weight], lr=0.1).step()
        subprocess.run([sys.executable, '-c', 'pass'], check=True)
    assert guard.uses == ['trains a model (SGD.step)', f'runs a program ({sys.executable} -c pass)']
