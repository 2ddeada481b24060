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
from typing import Dict

from mmengine.config import DictAction

from mmxai.apis import (
    check_checkpoint,
    check_files_exist,
    check_output_dir,
    exit_on_user_error,
    load_tool_config,
    run_sanity_checks,
)
from mmxai.checkpoint import register_safe_loaders
from mmxai.evaluation import SPEARMAN_THRESHOLD, format_sanity_table
from mmxai.explainers import ALGORITHMS, BLACK_BOX_ALGORITHMS
from mmxai.utils import UnknownAlgorithmError
from mmxai.utils.defaults import DEFAULT_SCORE_THR


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='training or test config file')
    parser.add_argument('checkpoint', help='checkpoint file or URL (https://, '
                        'open-mmlab://, ...; loaded weights-only)')
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
    parser.add_argument('--score-thr', type=float, default=DEFAULT_SCORE_THR,
                        help='detection: explain classes with a box scoring at least this')
    parser.add_argument('--spearman-threshold', type=float, default=SPEARMAN_THRESHOLD,
                        help='flag a step whose mean Spearman correlation with the trained '
                        "model's maps is at least this")
    parser.add_argument('--batch-size', type=int, help='images per batch')
    parser.add_argument('--device', default=None, help="'cpu' or 'cuda'")
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, as in mmdet tools/test.py')
    args = parser.parse_args()
    check_files_exist(parser, config=args.config)
    check_checkpoint(parser, args.checkpoint)
    if args.num_images is not None and args.num_images < 1:
        parser.error(f'--num-images must be at least 1, got {args.num_images}')
    check_output_dir(parser, args.output)
    args.parser = parser
    return args


def options_per_algorithm(options: dict) -> Dict[str, dict]:
    """``{'ALGORITHM.OPTION': VALUE}`` as ``{ALGORITHM: {OPTION: VALUE}}``."""
    per_algorithm: Dict[str, dict] = defaultdict(dict)
    for key, value in options.items():
        algorithm, _, option = key.partition('.')
        if not option:
            raise UnknownAlgorithmError(f'--explainer-options {key}={value}: write '
                                        'ALGORITHM.OPTION=VALUE')
        per_algorithm[algorithm][option] = value
    return dict(per_algorithm)


def check(args: argparse.Namespace) -> None:
    cfg = load_tool_config(args.config, args.cfg_options, args.device)
    if args.num_images:
        cfg.test_dataloader.dataset.indices = args.num_images
    if args.batch_size:
        cfg.test_dataloader.batch_size = args.batch_size
    results = run_sanity_checks(
        cfg, args.checkpoint, args.output, args.explain_algorithm,
        options=options_per_algorithm(args.explainer_options), cascade=args.cascade,
        seed=args.seed, score_thr=args.score_thr, spearman_threshold=args.spearman_threshold,
        page_images=args.page_images, device=args.device,
        command=shlex.join([sys.executable, *sys.argv]))
    print(format_sanity_table(results))
    print(f'wrote {osp.join(args.output, "sanity.json")} and '
          f'{osp.join(args.output, "sanity.html")}')


def main() -> None:
    args = parse_args()
    register_safe_loaders()
    exit_on_user_error(args.parser, lambda: check(args))


if __name__ == '__main__':
    main()
