"""Measure explanation quality on a config's annotated test set.

Example::

    python tools/evaluate_explanations.py CONFIG CHECKPOINT \
        --explain-algorithm classwisesaliencymap activationmap eigencam --output quality.json

Prints pointing game, insertion/deletion AUC and ADCC (with its parts) per
algorithm, beside a random and a centre-blob baseline, and writes them as JSON.
"""
import argparse
import tempfile

from mmengine.config import DictAction
from mmengine.runner import Runner, load_checkpoint

from mmxai.apis import (
    check_checkpoint,
    check_files_exist,
    exit_on_user_error,
    load_tool_config,
    process_batches,
)
from mmxai.checkpoint import register_safe_loaders
from mmxai.evaluation import ExplanationEvaluator, format_table
from mmxai.utils import atomic_write_json


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint', help='checkpoint file or URL (https://, '
                        'open-mmlab://, ...; loaded weights-only)')
    parser.add_argument('--explain-algorithm', nargs='+',
                        default=['classwisesaliencymap', 'activationmap', 'eigencam'])
    parser.add_argument('--output', help='JSON file for the results')
    parser.add_argument('--steps', type=int, default=16, help='insertion/deletion steps')
    parser.add_argument('--tolerance', type=float, default=0.0,
                        help='pointing-game tolerance in pixels (TorchRay uses 15)')
    parser.add_argument('--insertion-canvas', choices=['blur', 'black'], default='blur')
    parser.add_argument('--device', default=None, help="'cpu' or 'cuda'")
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args()
    check_files_exist(parser, config=args.config)
    check_checkpoint(parser, args.checkpoint)
    args.parser = parser
    return args


def evaluate(args: argparse.Namespace) -> dict:
    cfg = load_tool_config(args.config, args.cfg_options, args.device)
    cfg.log_level = 'WARNING'
    with tempfile.TemporaryDirectory(prefix='mmxai-evaluate-') as work_dir:
        cfg.work_dir = work_dir  # the Runner's logs; the results are printed and --output
        runner = Runner.from_cfg(cfg)
        load_checkpoint(runner.model, args.checkpoint, map_location='cpu', strict=True)
        evaluator = ExplanationEvaluator(runner.model.eval(), args.explain_algorithm, args.steps,
                                         args.tolerance, insertion_canvas=args.insertion_canvas)
        dataloader = runner.build_dataloader(cfg.test_dataloader)
        process_batches(dataloader, evaluator.process, 'evaluated')
    return evaluator.summary()


def main() -> None:
    args = parse_args()
    register_safe_loaders()  # load_checkpoint goes through MMEngine's CheckpointLoader
    summary = exit_on_user_error(args.parser, lambda: evaluate(args))
    print(format_table(summary))
    if args.output:
        atomic_write_json(args.output, dict(config=args.config, checkpoint=args.checkpoint,
                                            steps=args.steps, tolerance=args.tolerance,
                                            insertion_canvas=args.insertion_canvas,
                                            results=summary))


if __name__ == '__main__':
    main()
