"""mmxai end to end on models trained here, with no download.

Generates shapes data, trains a small ATSS detector, a small Mask R-CNN and a
small ResNet classifier with MMEngine's Runner, explains held-out images with
every algorithm that is not black-box (RISE and D-RISE need minutes) on the
annotated held-out set (detectors' class maps also per ground-truth box, matched
or missed), runs the sanity checks of every model and writes
``OUTPUT/explain/index.html``, a viewer with an error analysis and the sanity
checks to open in a browser (from disk, no server).

The console shows one line per stage (training and explaining with a progress
bar), the held-out metrics and, on its last line, the report. Each run's full
MMEngine log is in its work dir (``--verbose`` shows it on the console too).

    python tools/demo.py --output work_dirs/demo
"""
import argparse
import logging
import os
import os.path as osp
import shlex
import sys
from collections import Counter
from typing import Dict, List, TextIO, Type

from mmengine.config import Config
from mmengine.runner import Runner

import mmxai  # noqa: F401
from mmxai.apis import explain_config, run_sanity_checks, set_data_root
from mmxai.datasets import make_classification_split, make_detection_split
from mmxai.engine import QuietRunner
from mmxai.explainers import algorithms_for
from mmxai.visualization import write_report

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TASKS = {
    'detection': (osp.join(REPO, 'configs', 'demo', 'atss_tiny_shapes.py'), make_detection_split),
    'instance_segmentation': (osp.join(REPO, 'configs', 'demo', 'mask_rcnn_tiny_shapes.py'),
                              make_detection_split),
    'classification': (osp.join(REPO, 'configs', 'demo', 'resnet_tiny_shapes.py'),
                       make_classification_split),
}
#: The held-out metrics of the table, as MMDetection's and MMPretrain's evaluators name them.
METRICS = ('coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/segm_mAP', 'accuracy/top1')


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--output', default='work_dirs/demo')
    parser.add_argument('--train-images', type=int, default=160)
    parser.add_argument('--val-images', type=int, default=30)
    parser.add_argument('--max-iters', type=int, help='override the configs\' training length')
    parser.add_argument('--sanity-images', type=int, default=12,
                        help='held-out images of the sanity checks (0: none)')
    parser.add_argument('--verbose', action='store_true',
                        help='show MMEngine\'s full logs on the console (the work dirs have '
                        'them anyway)')
    return parser.parse_args()


def configure(cfg: Config, data_root: str, work_dir: str) -> Config:
    cfg.work_dir = work_dir
    return set_data_root(cfg, data_root)


def held_out_metrics(runner: Runner) -> Dict[str, float]:
    """The :data:`METRICS` of the runner's last validation."""
    scalars = runner.message_hub.log_scalars
    return {name: scalars[f'val/{name}'].current() for name in METRICS
            if f'val/{name}' in scalars}


def metrics_table(rows: List[dict]) -> str:
    """Per model: its held-out metrics and the sanity checks' verdicts."""
    lines = [f'{"model":<24} {"held-out metrics":<44} sanity checks']
    for row in rows:
        metrics = ', '.join(f'{name.split("/")[-1]} {value:.3f}'
                            for name, value in row['metrics'].items())
        verdicts = ', '.join(f'{count} {verdict}' for verdict, count in
                             Counter(row['verdicts']).most_common()) or '-'
        lines.append(f'{row["model"]:<24} {metrics:<44} {verdicts}')
    return '\n'.join(lines)


class ConsoleWithoutCocoPrints:
    r"""Standard output minus pycocotools' progress lines, which go to a log file instead.

    pycocotools' ``COCO`` and ``COCOeval`` ``print()`` their progress (a dozen
    lines per data set load and per evaluation), which no logger level
    reaches. Whole lines that start with one of their messages go to ``log``;
    everything else, progress bars (``\r`` redraws) included, goes on to
    ``console`` at once.
    """

    MESSAGES = ('loading annotations into memory', 'Done (t=', 'creating index',
                'index created', 'Loading and preparing results', 'DONE (t=',
                'Running per image evaluation', 'Evaluate annotation type',
                'Accumulating evaluation results', ' Average Precision', ' Average Recall')

    def __init__(self, console: TextIO, log: TextIO) -> None:
        self.console, self.log, self.pending = console, log, ''

    def write(self, text: str) -> int:
        self.pending += text
        while '\n' in self.pending:
            line, self.pending = self.pending.split('\n', 1)
            target = self.log if line.startswith(self.MESSAGES) else self.console
            target.write(line + '\n')
        if '\r' in self.pending:  # a bar redrawing its line: now, not at the next newline
            self.console.write(self.pending)
            self.pending = ''
        return len(text)

    def flush(self) -> None:
        self.console.flush()
        self.log.flush()

    def isatty(self) -> bool:
        return self.console.isatty()


def main() -> None:
    args = parse_args()
    if not args.verbose:
        os.makedirs(args.output, exist_ok=True)
        sys.stdout = ConsoleWithoutCocoPrints(
            sys.stdout, open(osp.join(args.output, 'pycocotools.log'), 'a', encoding='utf-8'))
        # Python warnings (deprecations of the libraries) go to a file, not the console.
        logging.captureWarnings(True)
        warnings_log = logging.getLogger('py.warnings')
        warnings_log.addHandler(logging.FileHandler(osp.join(args.output, 'warnings.log')))
        warnings_log.propagate = False
    command = shlex.join([sys.executable, *sys.argv])
    runner_type: Type[Runner] = Runner if args.verbose else QuietRunner
    print(f'mmxai demo: {len(TASKS)} models trained here, explained and checked; each run\'s '
          f'full log is in its folder under {args.output}')
    runs, sanity, rows = [], [], []
    for number, (task, (config_path, make_split)) in enumerate(TASKS.items(), 1):
        model = osp.splitext(osp.basename(config_path))[0]
        print(f'[{number}/{len(TASKS)}] {task}: {model}, {args.train_images} training and '
              f'{args.val_images} held-out images')
        data_root = osp.join(args.output, 'data', task) + '/'
        make_split(data_root, 'train', args.train_images, seed=1)
        make_split(data_root, 'val', args.val_images, seed=2)
        cfg = configure(Config.fromfile(config_path), data_root, osp.join(args.output, task))
        if args.max_iters:
            cfg.train_cfg.max_iters = cfg.train_cfg.val_interval = args.max_iters
            cfg.default_hooks.checkpoint.interval = args.max_iters
        print(f'  training, {cfg.train_cfg.max_iters} iterations')
        runner = runner_type.from_cfg(cfg)
        runner.train()
        row = dict(model=model, metrics=held_out_metrics(runner), verdicts=[])
        checkpoint = osp.join(cfg.work_dir, f'iter_{cfg.train_cfg.max_iters}.pth')
        # RISE / D-RISE run the model hundreds of times per image: not in the demo.
        # The annotated test set (no inputs) gives the report its error analysis; every
        # class is explained, so missed objects have maps too, and the detectors' class
        # maps are also read per ground-truth box.
        for algorithm in algorithms_for(task, black_box=False):
            print(f'  explaining with {algorithm}')
            out = osp.join(args.output, 'explain', task, algorithm)
            per_box = task != 'classification' and algorithm == 'classwisesaliencymap'
            explain_cfg = explain_config(configure(Config.fromfile(config_path), data_root,
                                                   osp.join(out, 'logs')),
                                         checkpoint, out, explain=dict(
                                             explainer=algorithm, explain_all_classes=True,
                                             box_targets=('ground_truth',) if per_box else ()),
                                         write=dict(manifest_meta=dict(command=command,
                                                                       algorithm=algorithm)))
            runner_type.from_cfg(explain_cfg).test()
            runs.append(dict(task=task, algorithm=algorithm, output_dir=out))
        if args.sanity_images:
            print(f'  sanity checks on {args.sanity_images} images')
            out = osp.join(args.output, 'sanity', task)
            sanity_cfg = configure(Config.fromfile(config_path), data_root, out)
            sanity_cfg.test_dataloader.dataset.indices = args.sanity_images
            results = run_sanity_checks(sanity_cfg, checkpoint, out, command=command)
            row['verdicts'] = [result['verdict'] for result in results['results'].values()]
            sanity.append(dict(task=task, output_dir=out))
        rows.append(row)
    report = write_report(osp.join(args.output, 'explain'), runs, title='mmxai demo',
                          command=command, sanity=sanity)
    print(metrics_table(rows))
    print(f'demo report: {report}')


if __name__ == '__main__':
    main()
