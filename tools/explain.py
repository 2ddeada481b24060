"""Explain a trained MMDetection or MMPretrain model: saliency maps and overlays.

Example::

    python tools/explain.py CONFIG CHECKPOINT --input IMAGES/ --output OUT/ \
        --explain-algorithm classwisesaliencymap

Broken input files are reported and skipped; the exit status is 1 only if
nothing could be explained (or, with ``--strict``, if anything was skipped).
Running the same command again after an interruption finishes the job.
The console shows a progress bar and a summary; MMEngine's full log is in the
work dir (``--verbose`` shows it on the console too).
"""
import argparse
import json
import os
import shlex
import sys

from mmengine.config import DictAction
from mmengine.runner import Runner

from mmxai.apis import (
    check_checkpoint,
    check_files_exist,
    check_inputs,
    check_output_dir,
    exit_on_user_error,
    explain_config,
    load_tool_config,
    log_every_rank,
    setup_distributed,
    teardown_distributed,
)
from mmxai.checkpoint import register_safe_loaders
from mmxai.deploy import default_algorithm
from mmxai.engine import ExplainHook, QuietRunner
from mmxai.explainers import ALGORITHMS
from mmxai.utils.defaults import DEFAULT_SCORE_THR
from mmxai.visualization import summary_line


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='training or test config file')
    parser.add_argument('checkpoint', nargs='?', help='checkpoint file or URL (https://, '
                        'open-mmlab://, ...; loaded weights-only), or a model exported by '
                        'tools/export.py (.onnx: ONNX Runtime, .xml: OpenVINO)')
    parser.add_argument('--load-weights', help='checkpoint file or URL (name used by OTX)')
    parser.add_argument('--input', nargs='+', help='image folders (searched recursively) or '
                        'files; without it, the config\'s test set')
    parser.add_argument('--output', required=True, help='output folder')
    parser.add_argument('--explain-algorithm', choices=list(ALGORITHMS),
                        help='default: classwisesaliencymap (an exported model: its own)')
    parser.add_argument('--explainer-options', nargs='+', action=DictAction, default={},
                        help='arguments of the algorithm, e.g. num_masks=500 seed=1 (rise, '
                        'drise) or target_layer=backbone.layer3 (gradient methods)')
    parser.add_argument('--explain-all-classes', action='store_true',
                        help='explain every class, not only the predicted ones')
    parser.add_argument('--target-classes', nargs='+', help='classes to explain (names or indices)')
    parser.add_argument('--score-thr', type=float,
                        help='detection: explain classes with a box scoring at least this '
                        '(default 0.3); the methods that threshold boxes themselves (drise, '
                        'mask class maps, gradient methods) use the same value')
    parser.add_argument('--per-box', action='store_true',
                        help='detection: also one map per predicted box (scoring at least '
                        '--score-thr): the evidence for that box alone')
    parser.add_argument('--explain-gt', action='store_true',
                        help='detection, on the config\'s annotated test set (no --input): '
                        'explain every ground-truth object, matched or missed')
    parser.add_argument('--target-boxes', metavar='FILE.json',
                        help='detection, with --input: explain the boxes this file gives per '
                        'image ({"image.jpg": [{"bbox": [x1, y1, x2, y2], "label": "cat"}]})')
    parser.add_argument('--overlay-weight', type=float, default=0.5,
                        help='weight of the map in the overlay, 0..1')
    parser.add_argument('--save-raw', action='store_true',
                        help='also write the maps as .npy: *_saliency.npy as drawn ([0, 1]), '
                        '*_values.npy the method\'s own values')
    parser.add_argument('--normalize', choices=['per_map', 'absolute'], default='per_map',
                        help='colour scale: per_map stretches each map to its own range; '
                        'absolute keeps the method\'s scale (class probabilities), so an '
                        'absent class stays cold')
    parser.add_argument('--batch-size', type=int, help='images per batch')
    parser.add_argument('--strict', action='store_true',
                        help='exit with status 1 if any input was skipped')
    parser.add_argument('--no-resume', action='store_true',
                        help='explain every image again, even those an earlier run with the '
                        'same settings finished in OUTPUT')
    parser.add_argument('--write-workers', type=int, default=0,
                        help='threads that encode and write files while the next batch is '
                        'inferred (0: write in the main thread)')
    parser.add_argument('--device', default=None, help="'cpu' or 'cuda' (default: cuda if any)")
    parser.add_argument('--work-dir', help='folder for logs (default: OUTPUT/logs)')
    parser.add_argument('--verbose', action='store_true',
                        help='show MMEngine\'s full log (config, progress every 50 batches) on '
                        'the console instead of a progress bar; the log file has it anyway')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, as in mmdet tools/test.py')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    args.checkpoint = args.checkpoint or args.load_weights
    if args.score_thr is None:  # one threshold: --score-thr, or the algorithm's option
        args.score_thr = args.explainer_options.pop('score_thr', DEFAULT_SCORE_THR)
    if not args.checkpoint:
        parser.error('give the checkpoint as CHECKPOINT or --load-weights')
    if not 0.0 <= args.overlay_weight <= 1.0:
        parser.error(f'--overlay-weight must be in [0, 1], got {args.overlay_weight}')
    check_files_exist(parser, config=args.config)
    check_checkpoint(parser, args.checkpoint)
    if args.target_boxes:
        check_files_exist(parser, **{'target boxes': args.target_boxes})
    if args.input:
        check_inputs(parser, args.input, args.output)
    check_output_dir(parser, args.output)
    if not args.explain_algorithm:
        args.explain_algorithm = exit_on_user_error(parser, lambda: default_algorithm(
            args.checkpoint))
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    args.parser = parser
    return args


#: Skipped inputs the summary names; the manifest lists them all.
SKIPPED_SHOWN = 10


def explain(args: argparse.Namespace) -> Runner:
    cfg = explain_config(
        load_tool_config(args.config, args.cfg_options, args.device), args.checkpoint,
        args.output, inputs=args.input, target_boxes=args.target_boxes,
        batch_size=args.batch_size, resume=not args.no_resume,
        explain=dict(
            explainer=dict(algorithm=args.explain_algorithm, **args.explainer_options)
            if args.explainer_options else args.explain_algorithm,
            explain_all_classes=args.explain_all_classes, target_classes=args.target_classes,
            score_thr=args.score_thr,
            box_targets=[source for flag, source in ((args.per_box, 'predictions'),
                                                     (args.explain_gt, 'ground_truth')) if flag]),
        write=dict(
            overlay_weight=args.overlay_weight, save_raw=args.save_raw, normalize=args.normalize,
            write_workers=args.write_workers,
            manifest_meta=dict(command=shlex.join([sys.executable, *sys.argv]),
                               config=args.config, checkpoint=args.checkpoint,
                               algorithm=args.explain_algorithm)))
    cfg.work_dir = args.work_dir or os.path.join(args.output, 'logs')
    setup_distributed(cfg, args.launcher)
    runner = (Runner if args.verbose else QuietRunner).from_cfg(cfg)
    log_every_rank(runner)
    runner.test()
    teardown_distributed()
    return runner


def print_summary(output: str, summary: dict, log_file: str) -> None:
    """What was explained, what was skipped and why, and where the files are."""
    with open(os.path.join(output, 'manifest.json'), encoding='utf-8') as file:
        skipped = json.load(file)['skipped']
    print(summary_line(output, summary))
    for item in skipped[:SKIPPED_SHOWN]:
        print(f'  skipped {item["image"]}: {item["reason"]}')
    if len(skipped) > SKIPPED_SHOWN:
        print(f'  ... and {len(skipped) - SKIPPED_SHOWN} more (manifest.json lists them)')
    print(f'full log: {log_file}')


def main() -> None:
    args = parse_args()
    register_safe_loaders()
    runner = exit_on_user_error(args.parser, lambda: explain(args))
    summary = next(hook for hook in runner.hooks if isinstance(hook, ExplainHook)).summary
    if runner.rank == 0:
        print_summary(args.output, summary, runner.logger.log_file)
    if summary['explained'] == 0:
        args.parser.exit(1, f'{args.parser.prog}: error: no image could be explained '
                         f'({summary["skipped"]} skipped; see {args.output}/manifest.json)\n')
    if args.strict and summary['skipped']:
        args.parser.exit(1, f'{args.parser.prog}: error: --strict: {summary["skipped"]} '
                         f'inputs skipped (listed in {args.output}/manifest.json)\n')


if __name__ == '__main__':
    main()
