"""Sanity checks of the saliency methods on the demo models (issue 16, part 1).

Cascading parameter randomisation (top layer down) and the random-label
check, on the held-out images of the shapes data: per method and step the
mean Spearman rank correlation between the trained model's maps and the
randomised model's, the share of maps whose correlation reaches the
threshold, and the verdict under the default threshold
(``mmxai.evaluation.SPEARMAN_THRESHOLD``).

    python benchmarks/sanity_checks.py [--classifier CONFIG CHECKPOINT]
        [--detector CONFIG CHECKPOINT] [--seeds 0 1 2] [--json OUT.json]

Without ``--classifier`` / ``--detector`` the demo ResNet and ATSS are trained
here on generated shapes data exactly as the test session does
(tests/conftest.py; set ``MMXAI_TEST_MODEL_CACHE`` to reuse its models).
"""
import argparse
import json
import os
import os.path as osp
import sys
import tempfile
from typing import Any, Dict, List, Sequence

from mmengine.config import Config
from mmengine.runner import Runner

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmxai.evaluation import SanityChecker, format_sanity_table  # noqa: E402
from mmxai.models import build_model  # noqa: E402

CLASSIFIER_METHODS = ['classwisesaliencymap', 'gradcam', 'gradcampp', 'xgradcam', 'layercam',
                      'hirescam', 'activationmap', 'eigencam']
DETECTOR_METHODS = ['classwisesaliencymap', 'activationmap', 'eigencam', 'gradcam']


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--classifier', nargs=2, metavar=('CONFIG', 'CHECKPOINT'))
    parser.add_argument('--detector', nargs=2, metavar=('CONFIG', 'CHECKPOINT'))
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2],
                        help='randomisation seeds (one cascade each)')
    parser.add_argument('--num-images', type=int, default=30, help='held-out images')
    parser.add_argument('--json', help='write every report here')
    return parser.parse_args()


def demo_models(work_dir: str) -> Dict[str, Sequence[str]]:
    """Train (or take from MMXAI_TEST_MODEL_CACHE) the test session's demo models."""
    from mmxai.datasets import make_classification_split, make_detection_split
    from tests.conftest import _train_demo_model
    from tests.helpers import CLS_DEMO_CONFIG, DET_DEMO_CONFIG
    models = {}
    for task, make_split, config, seeds in (
            ('classifier', make_classification_split, CLS_DEMO_CONFIG, (3, 4)),
            ('detector', make_detection_split, DET_DEMO_CONFIG, (1, 2))):
        root = osp.join(work_dir, f'{task}_data')
        make_split(root, 'train', 150 if task == 'classifier' else 160, seed=seeds[0])
        make_split(root, 'val', 30, seed=seeds[1])
        os.makedirs(osp.join(work_dir, task))
        models[task] = _train_demo_model(config, root, osp.join(work_dir, task))
    return models


def check(config: str, checkpoint: str, methods: List[str], seed: int,
          num_images: int) -> Dict[str, Any]:
    """The sanity report of ``methods`` on the first ``num_images`` test images."""
    cfg = Config.fromfile(config)
    model = build_model(cfg, checkpoint)
    cfg.test_dataloader.dataset.indices = num_images
    cfg.test_dataloader.batch_size = 10
    checker = SanityChecker(model, methods, seed=seed)
    for data in Runner.build_dataloader(cfg.test_dataloader):
        checker.process(data)
    return checker.report()


def markdown(reports: List[Dict[str, Any]]) -> str:
    """Mean Spearman per method and step, mean (min..max) over the seeds' reports."""
    first = reports[0]
    steps = [('' if i == 0 else '+ ') + '+'.join(s) for i, s in enumerate(first['steps'])]
    lines = ['| method | ' + ' | '.join(steps) + ' | random label | verdict |',
             '|---' * (len(steps) + 3) + '|']

    def cell(values: List[Dict[str, Any]]) -> str:
        rho = [v['spearman'] for v in values if v and v['spearman'] is not None]
        kept = [v['kept'] for v in values if v and v['kept'] is not None]
        if not rho:
            return '-'
        flag = ' **F**' if any(v['flagged'] for v in values if v) else ''
        text = f'{sum(rho) / len(rho):.2f}'
        if len(rho) > 1:
            text += f' ({min(rho):.2f}..{max(rho):.2f})'
        return f'{text} / {sum(kept) / len(kept):.0%}{flag}'

    for label in first['results']:
        results = [r['results'][label] for r in reports]
        cells = [cell([r['cascade'][i] for r in results]) for i in range(len(steps))]
        cells.append(cell([r['random_label'] for r in results]))
        verdicts = sorted({r['verdict'] for r in results})
        lines.append(f'| {label} | ' + ' | '.join(cells) + f' | {"/".join(verdicts)} |')
    return '\n'.join(lines)


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix='mmxai-sanity-bench-') as work_dir:
        models = dict(classifier=args.classifier, detector=args.detector)
        if not args.classifier and not args.detector:
            models = demo_models(work_dir)
        everything = {}
        for task, methods in (('classifier', CLASSIFIER_METHODS),
                              ('detector', DETECTOR_METHODS)):
            if not models.get(task):
                continue
            reports = [check(*models[task], methods, seed, args.num_images)
                       for seed in args.seeds]
            print(f'## {task} ({reports[0]["num_images"]} images, seeds {args.seeds})')
            print(format_sanity_table(reports[0]))
            print()
            print(markdown(reports))
            print()
            everything[task] = reports
    if args.json:
        with open(args.json, 'w') as file:
            json.dump(everything, file, indent=1)


if __name__ == '__main__':
    main()
