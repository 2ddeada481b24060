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
import os.path as osp
import shlex
import sys
from typing import Tuple

from mmxai.apis import check_output_dir, exit_on_user_error
from mmxai.visualization import explain_run, sanity_run, write_report


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


def task_and_folder(argument: str) -> Tuple[str, str]:
    """``[TASK=]FOLDER`` as (task or ``''``, folder); a folder whose name holds '=' is one."""
    if osp.isdir(argument):
        return '', argument
    task, _, folder = argument.rpartition('=')
    return task, folder


def report(args: argparse.Namespace) -> str:
    runs = [explain_run(folder, task) for task, folder in map(task_and_folder, args.runs)]
    tasks = [run['task'] for run in runs]
    sanity = [sanity_run(folder, task, tasks)
              for task, folder in map(task_and_folder, args.sanity)]
    return write_report(args.output, runs, title=args.title,
                        command=shlex.join([sys.executable, *sys.argv]),
                        score_thr=args.score_thr, high_score_thr=args.high_score_thr,
                        sanity=sanity)


def main() -> None:
    args = parse_args()
    print(f'report: {exit_on_user_error(args.parser, lambda: report(args))}')


if __name__ == '__main__':
    main()
