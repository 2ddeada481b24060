"""Sanity checks of saliency methods: cascading parameter randomisation and random labels.

Example::

    python tools/sanity_check.py CONFIG CHECKPOINT \
        --explain-algorithm classwisesaliencymap activationmap gradcam --output OUT/

Runs on the config's test set; prints per algorithm and randomisation step the
mean Spearman rank correlation and SSIM between the trained model's maps and
the randomised model's, with a verdict, and writes ``OUT/sanity.json`` and
``OUT/sanity.html`` (the cascade of maps for a few images, opens from disk).
"""
import argparse
import os.path as osp
import shlex
import sys
from collections import defaultdict
from typing import List, Union

import torch
from mmengine.config import DictAction
from mmengine.runner import Runner

from mmxai.adapters import build_adapter
from mmxai.apis import (
    check_files_exist,
    check_output_dir,
    exit_on_user_error,
    load_tool_config,
    process_batches,
)
from mmxai.evaluation import (
    SPEARMAN_THRESHOLD,
    SanityChecker,
    format_sanity_table,
)
from mmxai.explainers import ALGORITHMS, BLACK_BOX_ALGORITHMS, algorithms_for
from mmxai.models import build_model
from mmxai.utils import UnknownAlgorithmError, atomic_write_json
from mmxai.visualization.sanity_page import write_sanity_page


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='training or test config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--output', required=True, help='output folder')
    parser.add_argument('--explain-algorithm', nargs='+', choices=list(ALGORITHMS),
                        help='algorithms to check (default: every one the model supports that '
                        f'is not black-box, i.e. not {" or ".join(BLACK_BOX_ALGORITHMS)})')
    parser.add_argument('--explainer-options', nargs='+', action=DictAction, default={},
                        help='ALGORITHM.OPTION=VALUE, e.g. drise.num_masks=64 '
                        'gradcam.target_layer=backbone.layer3')
    parser.add_argument('--cascade', nargs='+',
                        help='modules randomised per step, top layer first; a step may join '
                        'modules with commas (default: head(s), neck, backbone stages from the '
                        'last)')
    parser.add_argument('--num-images', type=int, help='the first N images of the test set')
    parser.add_argument('--page-images', type=int, default=4,
                        help='images whose cascade of maps sanity.html shows')
    parser.add_argument('--seed', type=int, default=0, help='seed of the randomisation')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='detection: explain classes with a box scoring at least this')
    parser.add_argument('--spearman-threshold', type=float, default=SPEARMAN_THRESHOLD,
                        help='flag a step whose mean Spearman correlation with the trained '
                        "model's maps is at least this")
    parser.add_argument('--batch-size', type=int, help='images per batch')
    parser.add_argument('--device', default=None, help="'cpu' or 'cuda'")
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, as in mmdet tools/test.py')
    args = parser.parse_args()
    check_files_exist(parser, config=args.config, checkpoint=args.checkpoint)
    if args.num_images is not None and args.num_images < 1:
        parser.error(f'--num-images must be at least 1, got {args.num_images}')
    check_output_dir(parser, args.output)
    args.parser = parser
    return args


def algorithms_with_options(names: List[str], options: dict) -> List[Union[str, dict]]:
    """Names, with ``ALGORITHM.OPTION=VALUE`` options turned into config dicts."""
    per_algorithm: dict = defaultdict(dict)
    for key, value in options.items():
        algorithm, _, option = key.partition('.')
        if not option or algorithm not in names:
            raise UnknownAlgorithmError(f'--explainer-options {key}={value}: write '
                                        f'ALGORITHM.OPTION=VALUE for one of {", ".join(names)}')
        per_algorithm[algorithm][option] = value
    return [dict(algorithm=name, **per_algorithm[name]) if name in per_algorithm else name
            for name in names]


def check(args: argparse.Namespace) -> None:
    cfg = load_tool_config(args.config, args.cfg_options, args.device)
    if args.num_images:
        cfg.test_dataloader.dataset.indices = args.num_images
    if args.batch_size:
        cfg.test_dataloader.batch_size = args.batch_size
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    model = build_model(cfg, args.checkpoint, device)
    names = args.explain_algorithm or algorithms_for(build_adapter(model).family,
                                                     black_box=False)
    checker = SanityChecker(model, algorithms_with_options(names, args.explainer_options),
                            cascade=args.cascade, seed=args.seed, score_thr=args.score_thr,
                            spearman_threshold=args.spearman_threshold,
                            page_images=args.page_images)
    dataloader = Runner.build_dataloader(cfg.test_dataloader)
    process_batches(dataloader, checker.process, 'checked')
    report = checker.report()
    print(format_sanity_table(report))
    command = shlex.join([sys.executable, *sys.argv])
    atomic_write_json(osp.join(args.output, 'sanity.json'),
                      dict(command=command, config=args.config, checkpoint=args.checkpoint,
                           **report))
    page = write_sanity_page(args.output, report, checker.examples,
                             class_names=model.dataset_meta.get('classes'), command=command)
    print(f'wrote {osp.join(args.output, "sanity.json")} and {page}')


def main() -> None:
    args = parse_args()
    exit_on_user_error(args.parser, lambda: check(args))


if __name__ == '__main__':
    main()
