"""A static HTML viewer of explain runs that opens from disk (no server, no CDN)."""
import json
import os
import os.path as osp
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..utils import ReportInputError, atomic_write_bytes
from .report_data import sanity_data, task_data

#: The viewer's page, script and style, copied next to ``data.js``.
ASSETS_DIR = osp.join(osp.dirname(osp.abspath(__file__)), 'report_assets')
ASSETS = ('viewer.js', 'viewer.css', 'index.html')  # index.html last: the rest is there


def _read_json(path: str) -> dict:
    try:
        with open(path, encoding='utf-8') as file:
            return json.load(file)
    except (OSError, ValueError) as error:
        reason = getattr(error, 'strerror', None) or error
        raise ReportInputError(f'{path}: cannot be read ({reason})') from error


def _config_name(result: Dict[str, Any]) -> str:
    """The stem of the config a run or check says it was made with, else ``''``."""
    return osp.splitext(osp.basename(result['config']))[0] if result.get('config') else ''


def explain_run(output_dir: str, task: str = '') -> Dict[str, Any]:
    """A run of :func:`write_report` from an explain output folder (its manifest read once).

    Args:
        output_dir (str): The ``--output`` of a ``tools/explain.py`` run.
        task (str): The task it belongs to; default the stem of the run's config
            (runs of one config are one task), else ``'detection'`` or
            ``'classification'`` by its predictions.

    Returns:
        dict: ``task``, ``algorithm`` (the manifest's, else the folder name),
        ``output_dir`` and ``manifest``.
    """
    manifest = _read_json(osp.join(output_dir, 'manifest.json'))
    detection = any('bboxes' in e['predictions'] for e in manifest.get('images', []))
    return dict(task=task or _config_name(manifest) or
                ('detection' if detection else 'classification'),
                algorithm=manifest.get('algorithm') or osp.basename(osp.normpath(output_dir)),
                output_dir=output_dir, manifest=manifest)


def sanity_run(output_dir: str, task: str = '', tasks: Sequence[str] = ()) -> Dict[str, Any]:
    """Sanity checks for :func:`write_report` from a ``tools/sanity_check.py`` folder.

    Args:
        output_dir (str): The folder holding ``sanity.json``.
        task (str): The task they belong to; default the stem of their config,
            else the only one of ``tasks``.
        tasks (Sequence[str]): The report's tasks.

    Returns:
        dict: ``task``, ``output_dir`` and ``results`` (``sanity.json``).

    Raises:
        ReportInputError: The file is unreadable or the task cannot be told.
    """
    results = _read_json(osp.join(output_dir, 'sanity.json'))
    task = task or _config_name(results) or (next(iter(set(tasks))) if len(set(tasks)) == 1
                                             else '')
    if not task:
        raise ReportInputError(f'{output_dir}: which task are these sanity checks of? Name it: '
                               f'TASK={output_dir}, TASK one of {", ".join(sorted(set(tasks)))}')
    return dict(task=task, output_dir=output_dir, results=results)


def write_report(report_dir: str, runs: Sequence[Dict[str, str]], title: str = 'mmxai',
                 command: Optional[str] = None, score_thr: Optional[float] = None,
                 high_score_thr: Optional[float] = None,
                 sanity: Sequence[Dict[str, str]] = ()) -> str:
    """Write a viewer of explain runs: ``report_dir/index.html`` and its files.

    The viewer shows one task at a time, as a paged grid or one image at a
    time with every algorithm's maps side by side (over the image, with an
    adjustable weight), filtered by class, algorithm and, for runs on an
    annotated test set (``ground_truth`` in the manifests), by error-analysis
    group (true positives of high / low score, false positives, false
    negatives), with a per-class table of counts, pointing game and relevance
    mass. Per-box maps (``--per-box``, ``--explain-gt``, ``--target-boxes``)
    show beside the class maps, and a false negative's tile shows the map of
    its ground-truth box. A task with sanity checks
    (``tools/sanity_check.py``) has a view of their table and cascades of
    maps. Its state is in the URL after ``#``. ``data.js`` holds the data
    (see :mod:`mmxai.visualization.report_data`); every path in it is
    relative to ``report_dir``, and nothing but the run and sanity-check
    folders is read.

    Args:
        report_dir (str): Folder of the report.
        runs (Sequence[dict]): ``task``, ``algorithm`` and ``output_dir`` (the
            ``--output`` of a ``tools/explain.py`` run) of each run.
        title (str): Page title.
        command (str, optional): The command that made the report.
        score_thr (float, optional): Score from which a detection counts
            (shown, matched); default the runs' own ``--score-thr``.
        high_score_thr (float, optional): Score splitting high- from
            low-score true positives; default halfway between ``score_thr``
            and 1.
        sanity (Sequence[dict]): ``task`` and ``output_dir`` (the
            ``--output`` of a ``tools/sanity_check.py`` run, holding
            ``sanity.json``) of each task's sanity checks; a task may have
            sanity checks and no run.

    A run or check may hold what its folder's JSON file holds (``manifest``,
    ``results``: :func:`explain_run`, :func:`sanity_run`); else it is read.

    Returns:
        str: Path of ``index.html``.

    Raises:
        ReportInputError: For an unreadable manifest or ``sanity.json``, two runs
            of one algorithm in a task, or runs of a task that hold different
            images under one relative path.
    """
    by_task: Dict[str, List[Tuple[str, str, dict]]] = {}
    for run in runs:
        manifest = run.get('manifest') or _read_json(
            osp.join(run['output_dir'], 'manifest.json'))
        by_task.setdefault(run['task'], []).append((run['algorithm'], run['output_dir'],
                                                    manifest))
    checks: Dict[str, Tuple[str, dict]] = {}
    for check in sanity:
        if check['task'] in checks:
            raise ReportInputError(f"two sanity checks for task {check['task']!r}: "
                                   f"{checks[check['task']][0]} and {check['output_dir']}")
        checks[check['task']] = (check['output_dir'], check.get('results') or _read_json(
            osp.join(check['output_dir'], 'sanity.json')))
    tasks = []
    for task in list(by_task) + [t for t in checks if t not in by_task]:
        entry = task_data(task, by_task.get(task, []), report_dir, score_thr, high_score_thr)
        if task in checks:
            entry['sanity'] = sanity_data(*checks[task], report_dir)
            if not entry['classes'] and checks[task][1].get('classes'):
                entry['classes'] = list(checks[task][1]['classes'])
        tasks.append(entry)
    data: Dict[str, Any] = dict(
        title=title, command=command, created=time.strftime('%Y-%m-%d %H:%M:%S'), tasks=tasks)
    os.makedirs(report_dir, exist_ok=True)
    text = json.dumps(data, separators=(',', ':'), ensure_ascii=False, allow_nan=False)
    # JSON.parse of a string is parsed 2-3x faster than the same object as a JS literal.
    atomic_write_bytes(osp.join(report_dir, 'data.js'),
                       f'window.MMXAI_REPORT = JSON.parse({json.dumps(text)});\n'.encode('utf-8'))
    for name in ASSETS:
        with open(osp.join(ASSETS_DIR, name), 'rb') as file:
            atomic_write_bytes(osp.join(report_dir, name), file.read())
    return osp.join(report_dir, 'index.html')
