"""Each label's map on its own object: a multi-label classifier on two-object images (issue 21).

``configs/demo/resnet_multilabel_shapes.py`` (the demo ResNet with
MMPretrain's ``MultiLabelLinearClsHead``, one sigmoid per class, after a
generalized-mean pooling neck) is trained
here on :func:`mmxai.datasets.make_multilabel_split` images (two objects of
distinct classes each) with each seed, then explained on held-out images:
every ground-truth label of an image is a target, and the pointing game
counts the maps whose peak is inside that label's own object, exactly
(tolerance 0) and within 15 pixels (the published pointing game's
tolerance, Zhang et al. 2016). A class-agnostic map (``activationmap``) can
point at one of the two objects only, so about half its targets miss: it
shows what "per label" adds::

    python benchmarks/multilabel_quality.py [--seeds 0 1 2] [--val-images 60] \
        [--tolerances 0 15] [--output work_dirs/multilabel_quality]

Goal (issue 21): Recipro-CAM's pointing game at least 0.80.
"""
import argparse
import json
import os
import os.path as osp
from typing import Sequence

from classifier_quality import train_seeded  # this folder: run as a script

from mmxai.apis import process_batches
from mmxai.checkpoint import register_safe_loaders
from mmxai.datasets import make_multilabel_split
from mmxai.evaluation import ExplanationEvaluator

CONFIG = 'configs/demo/resnet_multilabel_shapes.py'
ALGORITHMS = ('classwisesaliencymap', 'gradcam', 'activationmap')


def train_and_evaluate(data_root: str, work_dir: str, seed: int,
                       tolerances: Sequence[float]) -> dict:
    """Train the multi-label ResNet with ``seed``; its F1 and each method's pointing game.

    The pointing game is given per tolerance (pixels), as ``{tolerance: {method: value}}``.
    """
    runner, cfg, seconds = train_seeded(CONFIG, data_root, work_dir, seed)
    f1_score = runner.message_hub.log_scalars['val/multi-label/f1-score'].current()
    pointing_game, targets = {}, 0
    for tolerance in tolerances:
        # Few insertion/deletion steps: the pointing game is the measure here.
        evaluator = ExplanationEvaluator(runner.model.eval(), ALGORITHMS, tolerance=tolerance,
                                         steps=4)
        process_batches(runner.build_dataloader(cfg.test_dataloader), evaluator.process,
                        f'evaluated (tolerance {tolerance:g} px)')
        targets = len(evaluator.values['classwisesaliencymap']['pointing_game'])
        pointing_game[f'{tolerance:g}'] = {name: round(values['pointing_game'], 3)
                                           for name, values in evaluator.summary().items()}
    return dict(f1_score=float(f1_score), training_s=round(seconds, 1), targets=targets,
                pointing_game=pointing_game)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--train-images', type=int, default=160)
    parser.add_argument('--val-images', type=int, default=60)
    parser.add_argument('--tolerances', type=float, nargs='+', default=[0, 15])
    parser.add_argument('--output', default='work_dirs/multilabel_quality')
    args = parser.parse_args()
    register_safe_loaders()
    data_root = osp.join(args.output, 'data') + '/'
    if not osp.exists(osp.join(data_root, 'val.json')):
        make_multilabel_split(data_root, 'train', args.train_images, seed=1)
        make_multilabel_split(data_root, 'val', args.val_images, seed=2)
    results = {}
    for seed in args.seeds:
        work_dir = osp.join(args.output, f'seed{seed}')
        results[seed] = train_and_evaluate(data_root, work_dir, seed, args.tolerances)
        print(f'seed {seed}: {results[seed]}', flush=True)
        os.makedirs(args.output, exist_ok=True)
        with open(osp.join(args.output, 'results.json'), 'w') as file:
            json.dump(dict(val_images=args.val_images, results=results), file, indent=1)
    first = results[args.seeds[0]]['pointing_game']
    names = list(first[next(iter(first))])
    print('| seed | F1 | targets | tolerance | ' + ' | '.join(names) + ' |')
    print('|---|---|---|---|' + '---|' * len(names))
    for seed, result in results.items():
        for tolerance, values in result['pointing_game'].items():
            print(f"| {seed} | {result['f1_score']:.1f} | {result['targets']} | {tolerance} px | "
                  + ' | '.join(f'{values[n]:.3f}' for n in names) + ' |')

if __name__ == '__main__':
    main()
