"""Export a trained model to ONNX or OpenVINO IR with a saliency map output.

Example::

    python tools/export.py CONFIG CHECKPOINT --output export/ --format openvino \
        --explain-algorithm classwisesaliencymap [--input-shape 256 256]

The exported model has the model's own outputs (classifier logits; a dense
detector's per-level head outputs) plus ``saliency_map`` (per class, at
feature resolution, the method's raw values). Explain with it::

    python tools/explain.py CONFIG export/MODEL.xml --input IMAGES/ --output OUT/
"""
import argparse

from mmxai.apis import check_checkpoint, check_files_exist, exit_on_user_error, load_tool_config
from mmxai.checkpoint import register_safe_loaders
from mmxai.deploy import FORMATS, export_model, read_metadata
from mmxai.explainers import ALGORITHMS


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='training or test config file')
    parser.add_argument('checkpoint', help='checkpoint file or URL (https://, '
                        'open-mmlab://, ...; loaded weights-only)')
    parser.add_argument('--output', required=True, help='output folder')
    parser.add_argument('--format', default='onnx', choices=FORMATS,
                        help='onnx (ONNX Runtime, OpenVINO) or openvino (IR .xml + .bin)')
    parser.add_argument('--explain-algorithm', default='classwisesaliencymap',
                        choices=list(ALGORITHMS))
    parser.add_argument('--input-shape', type=int, nargs=2, metavar=('H', 'W'),
                        help='network input size (default: from the test pipeline); the '
                        'batch size stays dynamic')
    args = parser.parse_args()
    check_files_exist(parser, config=args.config)
    check_checkpoint(parser, args.checkpoint)
    if args.input_shape and min(args.input_shape) < 1:
        parser.error(f'--input-shape must be positive, got {args.input_shape}')
    args.parser = parser
    return args


def main() -> None:
    args = parse_args()
    register_safe_loaders()
    cfg = load_tool_config(args.config, device='cpu')
    path = exit_on_user_error(args.parser, lambda: export_model(
        cfg, args.checkpoint, args.output, args.format, args.explain_algorithm,
        args.input_shape, name=args.config))
    meta = read_metadata(path)
    print(f'wrote {path}: {meta.task}, {meta.algorithm}, input (batch, 3, '
          f'{meta.input_shape[0]}, {meta.input_shape[1]}), outputs {", ".join(meta.outputs)}')


if __name__ == '__main__':
    main()
