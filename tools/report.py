"""Make the report viewer of explain runs and sanity checks.

Example::

    python tools/report.py OUT_classwise/ OUT_gradcam/ --sanity SANITY_OUT/ --output report/

Each run folder is the ``--output`` of a ``tools/explain.py`` run; runs of the
same config are one task of the viewer, named after the config (name it
yourself with ``TASK=FOLDER``). ``--sanity`` takes the ``--output`` of
``tools/sanity_check.py``, shown in the viewer's "sanity checks" view of the
task of the same config.
Writes ``report/index.html`` (static files; open it from disk).
"""
import argparse
import json
import os.path as osp
import shlex
import sys
from typing import Dict, Tuple

from mmxai.apis import check_output_dir, exit_on_user_error
from mmxai.utils import UserInputError
from mmxai.visualization import write_report


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('runs', nargs='*', metavar='[TASK=]FOLDER',
                        help='output folders of tools/explain.py runs')
    parser.add_argument('--sanity', nargs='+', default=[], metavar='[TASK=]FOLDER',
                        help='output folders of tools/sanity_check.py runs')
    parser.add_argument('--output', required=True, help='folder of the report')
    parser.add_argument('--title', default='mmxai report', help='title of the page')
    parser.add_argument('--score-thr', type=float,
                        help="detection: score from which a box counts (default: the runs')")
    parser.add_argument('--high-score-thr', type=float,
                        help='score splitting high from low true positives '
                        '(default: halfway between --score-thr and 1)')
    args = parser.parse_args()
    if not args.runs and not args.sanity:
        parser.error('give at least one explain run folder or --sanity folder')
    check_output_dir(parser, args.output)
    args.parser = parser
    return args


def read_folder(argument: str, result_file: str) -> Tuple[str, str, Dict]:
    """The task given (``''`` if none), the folder and the JSON result of ``[TASK=]FOLDER``."""
    task, _, folder = argument.rpartition('=') if not osp.isdir(argument) else ('', '', argument)
    path = osp.join(folder, result_file)
    try:
        with open(path, encoding='utf-8') as file:
            return task, folder, json.load(file)
    except (OSError, ValueError) as error:
        raise UserInputError(f'{path}: cannot be read ({getattr(error, "strerror", None) or error})'
                             ) from error


def config_name(result: Dict) -> str:
    """The stem of the config a run or check was made with, ``''`` if it does not say."""
    return osp.splitext(osp.basename(result['config']))[0] if result.get('config') else ''


def report(args: argparse.Namespace) -> str:
    runs = []
    for argument in args.runs:
        task, folder, manifest = read_folder(argument, 'manifest.json')
        detection = any('bboxes' in e['predictions'] for e in manifest.get('images', []))
        runs.append(dict(task=task or config_name(manifest) or
                         ('detection' if detection else 'classification'),
                         algorithm=manifest.get('algorithm') or osp.basename(osp.normpath(folder)),
                         output_dir=folder))
    tasks = {run['task'] for run in runs}
    sanity = []
    for argument in args.sanity:
        task, folder, result = read_folder(argument, 'sanity.json')
        task = task or config_name(result) or (next(iter(tasks)) if len(tasks) == 1 else '')
        if not task:
            raise UserInputError(f'{folder}: which task are these sanity checks of? '
                                 f'Write TASK={folder} with TASK one of {", ".join(sorted(tasks))}')
        sanity.append(dict(task=task, output_dir=folder))
    try:
        return write_report(args.output, runs, title=args.title,
                            command=shlex.join([sys.executable, *sys.argv]),
                            score_thr=args.score_thr, high_score_thr=args.high_score_thr,
                            sanity=sanity)
    except ValueError as error:
        raise UserInputError(str(error)) from error


def main() -> None:
    args = parse_args()
    print(f'report: {exit_on_user_error(args.parser, lambda: report(args))}')


if __name__ == '__main__':
    main()
