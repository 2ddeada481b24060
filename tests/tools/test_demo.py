"""`make demo`'s script at reduced size: data, training, every algorithm, maps of
ground-truth boxes, sanity checks, report."""
import base64
import glob
import json
import os
import os.path as osp
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest

from mmxai.explainers import algorithms_for
from tests.browser import Browser
from tests.helpers import REPO, report_data

TASKS = ['detection', 'instance_segmentation', 'classification']


@pytest.fixture(scope='module')
def demo_run(tmp_path_factory):
    out = str(tmp_path_factory.mktemp('demo'))
    result = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', 'demo.py'), '--output', out,
         '--train-images', '12', '--val-images', '3', '--max-iters', '2'],
        capture_output=True, env=dict(os.environ, PYTHONPATH=REPO), timeout=900)
    # Bytes decoded without newline translation: a bar's carriage returns stay in its line.
    stdout, stderr = result.stdout.decode(), result.stderr.decode()
    assert result.returncode == 0, stderr[-3000:]
    return out, stdout, stderr


@pytest.fixture(scope='module')
def demo_output(demo_run):
    return demo_run[0]


def test_console_is_a_line_per_stage_the_metrics_and_the_report_last(demo_run):
    out, stdout, stderr = demo_run
    lines = stdout.rstrip('\n').split('\n')  # a bar redraws its line with \r
    # A line per stage (per task: its line, training, each algorithm, the sanity checks),
    # bars, MMEngine's warnings and errors only (2 training iterations: empty results),
    # no pycocotools prints; the table and the report last; 100 lines at most.
    assert len(lines) + len(stderr.splitlines()) <= 100, stdout + stderr[-3000:]
    assert lines[-1] == f'demo report: {osp.join(out, "explain", "index.html")}'
    for task in TASKS:
        assert sum(line.startswith('[') and f' {task}: ' in line for line in lines) == 1
    for algorithm in {a for task in TASKS for a in algorithms_for(task, black_box=False)}:
        assert sum(line == f'  explaining with {algorithm}' for line in lines) == \
            sum(algorithm in algorithms_for(task, black_box=False) for task in TASKS)
    assert len(re.findall(r'\] \d+/\d+, ', stdout)) >= len(TASKS)  # progress bars
    assert ' - INFO - ' not in stdout + stderr
    assert 'loading annotations into memory' not in stdout  # pycocotools' prints: a log
    for task in TASKS:  # the full logs are in the work dirs
        training_log, = glob.glob(osp.join(out, task, '*', '*.log'))
        log = open(training_log).read()
        assert 'Config:' in log and 'Saving checkpoint at 2 iterations' in log
        for algorithm in algorithms_for(task, black_box=False):
            explain_log, = glob.glob(osp.join(out, 'explain', task, algorithm, 'logs', '*',
                                              '*.log'))
            assert 'rank 0: explaining 3 of 3 images' in open(explain_log).read()


def _manifests(out, task):
    return [json.loads(open(osp.join(out, 'explain', task, algorithm, 'manifest.json')).read())
            for algorithm in algorithms_for(task, black_box=False)]


def test_demo_writes_a_viewer_of_every_run(demo_output):
    report = osp.join(demo_output, 'explain')
    for name in ('index.html', 'viewer.js', 'viewer.css', 'data.js'):
        assert osp.isfile(osp.join(report, name))
    data = report_data(report)
    assert 'demo.py' in data['command']  # the command that made it
    assert [t['name'] for t in data['tasks']] == TASKS
    for task in data['tasks']:
        assert task['annotated'] and len(task['images']) == 3
        assert task['algorithms'] == list(algorithms_for(task['name'], black_box=False))
        for manifest in _manifests(demo_output, task['name']):
            assert manifest['num_images'] == 3 and 'demo.py' in manifest['command']
            per_box = manifest['algorithm'] == 'classwisesaliencymap' and \
                task['name'] != 'classification'
            for entry in manifest['images']:
                assert 'ground_truth' in entry
                assert len(entry['explanations']) in (1, 3)  # class-agnostic, or every class
                # The detectors' class maps also per ground-truth box, matched or missed.
                assert [(b['source'], b['index']) for b in entry.get('boxes', [])] == (
                    [('ground_truth', g) for g in range(len(entry['ground_truth']['labels']))]
                    if per_box else [])
        sanity = json.load(open(osp.join(demo_output, 'sanity', task['name'], 'sanity.json')))
        assert list(sanity['results']) == list(algorithms_for(task['name'], black_box=False))
        assert [a['name'] for a in task['sanity']['algorithms']] == list(sanity['results'])
        for root in task['roots']:
            assert not osp.isabs(root) and osp.isdir(osp.join(report, root))


def _all_loaded(browser):
    return browser.wait_for(
        "(s => s.images > 0 && +s.loaded + +s.failed === +s.images && {...s})"
        "(document.getElementById('report-status').dataset)")


def test_viewer_shows_every_map_in_a_real_browser(demo_output):
    index = osp.join(demo_output, 'explain', 'index.html')
    with Browser() as browser:
        for task in TASKS:
            manifests = _manifests(demo_output, task)
            for entry in manifests[0]['images']:
                browser.open('about:blank')
                browser.open(f'file://{index}#task={task}&view=image&img={entry["rel_path"]}')
                status = _all_loaded(browser)
                maps = sum(len(e['explanations']) + len(e.get('boxes', []))
                           for m in manifests for e in m['images']
                           if e['rel_path'] == entry['rel_path'])
                assert browser.evaluate("document.querySelectorAll('.maps img.map').length") == \
                    maps
                assert status['failed'] == '0' and int(status['images']) == 2 * maps + 1
            browser.open('about:blank')
            browser.open(f'file://{index}#task={task}&view=summary')
            browser.wait_for("document.body.dataset.ready === '1'")
            assert browser.evaluate(
                "document.querySelectorAll('.summary tr[data-class]').length") == 3
            browser.open('about:blank')
            browser.open(f'file://{index}#task={task}&view=sanity')
            browser.wait_for("document.body.dataset.ready === '1'")
            # A model trained for 2 iterations may predict nothing: a cascade without tiles.
            tiles = sum('file' in cell for cascade in json.load(open(osp.join(
                demo_output, 'sanity', task, 'sanity.json')))['page']['cascades'].values()
                for row in cascade['rows'] for cell in row)
            if tiles:
                assert _all_loaded(browser)['failed'] == '0'
            assert browser.evaluate("document.querySelectorAll('img.sanity-tile').length") == \
                tiles
            assert browser.evaluate(
                "document.querySelectorAll('.sanity-table tr[data-algorithm]').length") == \
                len(algorithms_for(task, black_box=False))
        browser.open('about:blank')
        browser.open(f'file://{index}#task=detection&view=image&alg=classwisesaliencymap')
        _all_loaded(browser)
        shot = browser.send('Page.captureScreenshot', {'format': 'png'})['data']
        image = cv2.imdecode(np.frombuffer(base64.b64decode(shot), np.uint8), cv2.IMREAD_COLOR)
        assert image.shape[1] >= 1000 and image.std() > 20  # something was drawn
        assert browser.errors() == []
