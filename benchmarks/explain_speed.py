"""Cost of explain mode against plain inference, in one process.

Detection (issues 3, 8): MMDetection's ATSS R-50 FPN (random weights) on the
same images in plain test mode and in explain mode (class maps, activation
map, Grad-CAM, LayerCAM), without and with writing maps and overlays, and
D-RISE per mask; Faster R-CNN R-50 FPN's RoI class maps (issue 22); DINO-4scale R-50's and
DETR R-18's query class maps at the demo size (issue 23);
MMDetection's Mask R-CNN R-50 FPN (3 classes, random weights, its 100
detections per image kept) plain vs its mask class maps.
Classification (issues 4, 8, 14): a ResNet-18 at 224 x 224 (``--cls-size``),
batch 16, plain vs Recipro-CAM, ActivationMap, EigenCAM, the five gradient
methods and RISE per mask, a ViT-Tiny (DeiT-Tiny) with ViT Recipro-CAM and a
ConvNeXt-Tiny with Recipro-CAM on the map inside its backbone (issue 21).

    python benchmarks/explain_speed.py [--task detection two_stage query
        instance_segmentation classification]
        [--repeats 3] [--cls-size 224] [--only eigencam ...]

``--only`` keeps the named algorithms (``classwisesaliencymap`` includes
Recipro-CAM and ViT Recipro-CAM; ``rise``, ``drise``).

Prints one line per measurement and the ratios; exits non-zero if explain
mode wrote no map.
"""
import argparse
import json
import logging
import os.path as osp
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from typing import Callable, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.config import Config
from mmengine.hub import get_config
from torch import nn

import mmxai  # noqa: F401
from mmxai.models import ExplainModel, build_model
from mmxai.visualization import SaliencyWriter


def timed(step: Callable[[], object], repeats: int) -> float:
    """Median seconds of ``repeats`` runs after one warm-up run."""
    step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def timed_pair(plain: Callable[[], object], explain: Callable[[], object],
               repeats: int) -> Tuple[float, float, float]:
    """Median seconds of plain and explain runs taken in turns, and the median of their ratios.

    Alternating the two keeps a busy machine's slow moments from landing on
    one side only.
    """
    plain(), explain()
    pairs = []
    for _ in range(repeats):
        start = time.perf_counter()
        plain()
        middle = time.perf_counter()
        explain()
        pairs.append((middle - start, time.perf_counter() - middle))
    return (statistics.median(p for p, _ in pairs), statistics.median(e for _, e in pairs),
            statistics.median(e / p for p, e in pairs))


def build(config: str, options: Optional[dict] = None) -> torch.nn.Module:
    """The config's model with random weights; ``options`` as ``--cfg-options``."""
    return build_with_config(config, options)[1]


def build_with_config(config: str, options: Optional[dict] = None) -> Tuple[Config, nn.Module]:
    """The config (options merged) and its model with random weights."""
    cfg = get_config(config)
    cfg.merge_from_dict(options or {})
    cfg.model.backbone.init_cfg = None
    if 'augments' in (cfg.model.get('train_cfg') or {}):
        cfg.model.pop('train_cfg')  # batch augments (Mixup) are for training only
    torch.manual_seed(0)
    model = build_model(cfg)
    logging.getLogger('mmengine').setLevel(logging.WARNING)  # no per-parameter init report
    model.init_weights()
    return cfg, model.eval()


def batch_of(images: List[np.ndarray], sample_type: type) -> dict:
    inputs, samples = [], []
    for index, image in enumerate(images):
        inputs.append(torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))))
        shape = image.shape[:2]
        samples.append(sample_type(metainfo=dict(
            img_id=index, sample_idx=index, img_path=f'{index}.png', ori_shape=shape,
            img_shape=shape, scale_factor=(1.0, 1.0))))
    return dict(inputs=inputs, data_samples=samples)


def explain_and_write(explain: ExplainModel, writer: SaliencyWriter, data: dict,
                      images: List[np.ndarray]) -> int:
    """Explain a batch and write every map and overlay; returns the map count."""
    samples = explain.test_step(data)
    return sum(len(writer.write(s, f'{i}.png', writer.render(s, images[i]))['explanations'])
               for i, s in enumerate(samples))


def selected(args: argparse.Namespace, algorithms: Sequence) -> list:
    """The algorithms (names or ``dict(algorithm=...)``) that ``--only`` keeps."""
    def name(algorithm: Union[str, dict]) -> str:
        return algorithm['algorithm'] if isinstance(algorithm, dict) else algorithm
    return [a for a in algorithms if not args.only or name(a) in args.only]


def compare(task: str, model: torch.nn.Module, images: List[np.ndarray], data: dict,
            algorithms: Sequence[str], classes: List[int], repeats: int) -> float:
    """Print explain mode's cost against plain inference; returns the plain time."""
    plain = timed(lambda: model.test_step(data), repeats)
    print(f'{task} plain inference: {plain:.3f} s / batch of {len(images)}')
    for algorithm in algorithms:
        explain = ExplainModel(model, explainer=algorithm, target_classes=classes)
        _, compute, ratio = timed_pair(lambda: model.test_step(data),
                                       partial(explain.test_step, data), repeats)
        with tempfile.TemporaryDirectory() as out:
            writer = SaliencyWriter(out)
            written = timed(partial(explain_and_write, explain, writer, data, images), repeats)
            maps = explain_and_write(explain, writer, data, images) / len(images)
        print(f'{task} {algorithm}: {compute:.3f} s ({ratio:.3f}x plain, paired) '
              f'without writing, {written:.3f} s ({written / plain:.3f}x plain) with '
              f'{maps:.0f} maps + overlays written per image')
        if maps == 0:
            sys.exit(f'{algorithm} wrote no map')
    return plain


def detection_batch(args: argparse.Namespace) -> tuple:
    from mmdet.structures import DetDataSample
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (args.det_size, args.det_size, 3), np.uint8)
              for _ in range(args.det_batch)]
    return images, batch_of(images, DetDataSample)


def detection(args: argparse.Namespace) -> None:
    model = build('mmdet::atss/atss_r50_fpn_1x_coco.py')
    images, data = detection_batch(args)
    with torch.no_grad():
        plain = compare('detection', model, images, data,
                        selected(args, ('classwisesaliencymap', 'activationmap', 'eigencam',
                                        'gradcam', 'layercam')),
                        list(range(args.det_classes)), args.repeats)
        if not selected(args, ['drise']):
            return
        masks = 64
        # Random weights score every box low: explain whatever is predicted.
        explain = ExplainModel(model, explainer=dict(algorithm='drise', num_masks=masks,
                                                     score_thr=0.0), score_thr=0.0)
        drise = timed(partial(explain.test_step, data), 1)
        print(f'detection drise ({masks} masks): {drise:.3f} s ({drise / plain:.1f}x plain, '
              f'{drise / plain / masks * 1000:.0f}x plain per 1000 masks)')


def two_stage(args: argparse.Namespace) -> None:
    """Faster R-CNN R-50 FPN (issue 22): its RoI class maps against plain inference."""
    model = build('mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py')
    images, data = detection_batch(args)
    with torch.no_grad():
        compare('two-stage (Faster R-CNN)', model, images, data,
                selected(args, ('classwisesaliencymap', 'activationmap')),
                list(range(args.det_classes)), args.repeats)


def query(args: argparse.Namespace) -> None:
    """DINO-4scale R-50 and DETR R-18 (issue 23): query class maps against plain inference.

    At the demo size (``--query-size``, 256 px): DINO's default maps (its
    encoder's token scores) and its attention maps (deformable attention
    splatted onto the tokens), DETR's attention maps.
    """
    size_args = argparse.Namespace(**{**vars(args), 'det_size': args.query_size})
    images, data = detection_batch(size_args)
    for name, config in (('DINO', 'mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py'),
                         ('DETR', 'mmdet::detr/detr_r18_8xb2-500e_coco.py')):
        model = build(config)
        algorithms = ['classwisesaliencymap', 'activationmap']
        if name == 'DINO':
            algorithms.insert(1, dict(algorithm='classwisesaliencymap', source='attention'))
        with torch.no_grad():
            compare(f'query-based ({name})', model, images, data, selected(args, algorithms),
                    list(range(args.det_classes)), args.repeats)


def instance_segmentation(args: argparse.Namespace) -> None:
    # Random weights score every box ~1/4: keep them all (100 per image, its
    # test_cfg's maximum), so that the mask head and the pasting see a full load.
    model = build('mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py', {
        'model.roi_head.bbox_head.num_classes': 3, 'model.roi_head.mask_head.num_classes': 3,
        'model.test_cfg.rcnn.score_thr': 0.0})
    images, data = detection_batch(args)
    with torch.no_grad():
        compare('instance segmentation', model, images, data,
                selected(args, [dict(algorithm='classwisesaliencymap', score_thr=0.0)]),
                list(range(args.det_classes)), args.repeats)


def classification(args: argparse.Namespace) -> None:
    from mmpretrain.structures import DataSample
    model = build('mmpretrain::resnet/resnet18_8xb32_in1k.py')
    rng = np.random.default_rng(0)
    size = args.cls_size
    images = [rng.integers(0, 256, (size, size, 3), np.uint8) for _ in range(args.cls_batch)]
    data = batch_of(images, DataSample)
    with torch.no_grad():
        plain = timed(lambda: model.test_step(data), args.repeats)
        print(f'classification plain ResNet-18 {size}px batch {len(images)}: {plain:.3f} s')
        for algorithm in selected(args, ('classwisesaliencymap', 'activationmap', 'eigencam',
                                         'gradcam', 'gradcampp', 'xgradcam', 'layercam',
                                         'hirescam')):
            explain = ExplainModel(model, explainer=algorithm)
            seconds = timed(partial(explain.test_step, data), args.repeats)
            print(f'classification {algorithm} (predicted class): {seconds:.3f} s '
                  f'({seconds / plain:.3f}x plain)')
        masks = 64
        if selected(args, ['rise']):
            explain = ExplainModel(model, explainer=dict(algorithm='rise', num_masks=masks))
            rise = timed(partial(explain.test_step, data), 1)
            print(f'classification rise ({masks} masks): {rise:.3f} s ({rise / plain:.1f}x '
                  f'plain, {rise / plain / masks * 1000:.0f}x plain per 1000 masks)')
    if not selected(args, ['classwisesaliencymap']):
        return
    for name, config in (('ViT-Tiny (DeiT-Tiny)', 'mmpretrain::deit/deit-tiny_4xb256_in1k.py'),
                         ('ConvNeXt-Tiny', 'mmpretrain::convnext/convnext-tiny_32xb128_in1k.py')):
        other = build(config)
        explain = ExplainModel(other, explainer='classwisesaliencymap')
        with torch.no_grad():
            plain, recipro, ratio = timed_pair(partial(other.test_step, data),
                                               partial(explain.test_step, data), args.repeats)
        print(f'classification plain {name} {size}px batch {len(images)}: {plain:.3f} s')
        print(f'classification {type(explain.explainer).__name__} on {name}: {recipro:.3f} s '
              f'({ratio:.3f}x plain, median of paired runs)')


#: openvino-xai 1.1's Recipro-CAM on the plain ONNX graph, run in its own venv (numpy 1.x,
#: OpenVINO 2024.4): prints its ms per batch-1 call, plain and with its XAI branch, and its map.
OPENVINO_XAI_SCRIPT = r"""
import json, statistics, sys, time
import numpy as np, openvino as ov, openvino_xai as xai
path, size, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
core = ov.Core()
plain = core.read_model(path)
explained = xai.insert_xai(core.read_model(path), task=xai.Task.CLASSIFICATION,
                           explain_method=xai.Method.RECIPROCAM, embed_scaling=False)
image = np.load(sys.argv[4])
def run(model):
    compiled = core.compile_model(model, 'CPU', {'INFERENCE_PRECISION_HINT': 'f32'})
    request = compiled.create_infer_request()
    request.infer({0: image})
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        request.infer({0: image})
        times.append(time.perf_counter() - start)
    return statistics.median(times), request
plain_s, _ = run(plain)
xai_s, request = run(explained)
saliency = request.get_tensor('saliency_map').data
print(json.dumps(dict(openvino=ov.__version__, plain=plain_s, xai=xai_s, map=saliency.tolist())))
"""


def deployed_cases(args: argparse.Namespace) -> list:
    """(name, config, model, algorithm, input size, batch) of the exported-model measurements."""
    cases = []
    if 'classification' in args.task:
        cases += [('ResNet-18', 'mmpretrain::resnet/resnet18_8xb32_in1k.py', 224, args.cls_batch),
                  ('ViT-Tiny (DeiT-Tiny)', 'mmpretrain::deit/deit-tiny_4xb256_in1k.py', 224,
                   args.cls_batch)]
    if 'detection' in args.task:
        cases += [('ATSS R-50 FPN', 'mmdet::atss/atss_r50_fpn_1x_coco.py', args.det_size,
                   args.det_batch)]
    return [(name, *build_with_config(config), 'classwisesaliencymap', size, batch)
            for name, config, size, batch in cases]


def deployed(args: argparse.Namespace) -> None:
    """Exported model with vs without the saliency output, same runtime and batch."""
    from mmxai.deploy import ExportedExplainModel, export_explain_model, open_session
    fmt = 'onnx' if args.runtime == 'onnxruntime' else 'openvino'
    for name, cfg, model, algorithm, size, batch in deployed_cases(args):
        rng = np.random.default_rng(0)
        images = [rng.integers(0, 256, (size, size, 3), np.uint8) for _ in range(batch)]
        if hasattr(model, 'bbox_head'):
            from mmdet.structures import DetDataSample as Sample
        else:
            from mmpretrain.structures import DataSample as Sample
        data = batch_of(images, Sample)
        with tempfile.TemporaryDirectory() as out, torch.no_grad():
            files = {kind: export_explain_model(model, out, fmt, algorithm, (size, size),
                                                name=kind, saliency=kind == 'explain')
                     for kind in ('plain', 'explain')}
            inputs = model.data_preprocessor(data, False)['inputs'].numpy()
            sessions = {kind: open_session(path) for kind, path in files.items()}
            graph = {kind: timed(partial(session, inputs), args.repeats)
                     for kind, session in sessions.items()}
            exported = ExportedExplainModel(files['explain'], cfg.model)
            full = timed(partial(exported.test_step, data), args.repeats)
            torch_plain = timed(partial(model.test_step, data), args.repeats)
            torch_explain = timed(partial(ExplainModel(model, explainer=algorithm).test_step,
                                          data), args.repeats)
            print(f'{args.runtime} {name} {size}px batch {batch}: graph plain '
                  f'{graph["plain"] / batch * 1e3:.1f} ms/img, with saliency_map '
                  f'{graph["explain"] / batch * 1e3:.1f} ms/img '
                  f'({graph["explain"] / graph["plain"]:.3f}x plain); explain test_step '
                  f'{full / batch * 1e3:.1f} ms/img vs PyTorch explain mode '
                  f'{torch_explain / batch * 1e3:.1f} ms/img (PyTorch plain '
                  f'{torch_plain / batch * 1e3:.1f} ms/img)', flush=True)
            if args.openvino_xai_python and name == 'ResNet-18':
                openvino_xai(args, model, size, inputs[:1], sessions)


def openvino_xai(args: argparse.Namespace, model: nn.Module, size: int, image: np.ndarray,
                 sessions: dict) -> None:
    """openvino-xai 1.1's Recipro-CAM beside mmxai's, on the same plain graph and image."""
    from mmxai.deploy import export_explain_model
    with tempfile.TemporaryDirectory() as out:
        plain = export_explain_model(model, out, 'onnx', 'classwisesaliencymap', (size, size),
                                     name='plain', saliency=False)
        np.save(osp.join(out, 'image.npy'), image)
        result = subprocess.run([args.openvino_xai_python, '-c', OPENVINO_XAI_SCRIPT, plain,
                                 str(size), str(args.repeats), osp.join(out, 'image.npy')],
                                capture_output=True, text=True)
    if result.returncode:
        print(f'openvino-xai failed: {result.stderr.strip().splitlines()[-1]}')
        return
    theirs = json.loads(result.stdout.strip().splitlines()[-1])
    ours = {kind: timed(partial(session, image), args.repeats)
            for kind, session in sessions.items()}
    # Their branch ends at the graph's logits (no softmax in it): softmax over classes.
    their_map = torch.tensor(theirs['map'][0]).softmax(0)
    our_map = torch.from_numpy(sessions['explain'](image)['saliency_map'][0])
    print(f'openvino-xai 1.1 (OpenVINO {theirs["openvino"].split("-")[0]}) Recipro-CAM, '
          f'ResNet-18 batch 1: plain {theirs["plain"] * 1e3:.1f} ms, with its XAI branch '
          f'{theirs["xai"] * 1e3:.1f} ms ({theirs["xai"] / theirs["plain"]:.2f}x); mmxai '
          f'{args.runtime} batch 1: plain {ours["plain"] * 1e3:.1f} ms, with saliency_map '
          f'{ours["explain"] * 1e3:.1f} ms ({ours["explain"] / ours["plain"]:.2f}x); maps '
          f'differ by {float((their_map - our_map).abs().max()):.2e} (softmax of theirs)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--task', nargs='+',
                        default=['detection', 'two_stage', 'query', 'instance_segmentation',
                                 'classification'])
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--det-size', type=int, default=512, help='detection image side')
    parser.add_argument('--det-batch', type=int, default=2)
    parser.add_argument('--query-size', type=int, default=256,
                        help='image side of the query-based detectors (the demo size)')
    parser.add_argument('--det-classes', type=int, default=3,
                        help='explained classes per image')
    parser.add_argument('--cls-batch', type=int, default=16)
    parser.add_argument('--cls-size', type=int, default=224, help='classification image side')
    parser.add_argument('--only', nargs='+', help='measure only these algorithms')
    parser.add_argument('--runtime', default='torch', choices=['torch', 'onnxruntime', 'openvino'],
                        help='torch: explain mode vs plain inference in PyTorch; onnxruntime, '
                        'openvino: the exported model with vs without its saliency output')
    parser.add_argument('--openvino-xai-python',
                        help='python of a venv with openvino-xai 1.1: its Recipro-CAM beside '
                        "mmxai's on the exported ResNet-18")
    args = parser.parse_args()
    if args.runtime != 'torch':
        deployed(args)
        return
    if 'detection' in args.task:
        detection(args)
    if 'two_stage' in args.task:
        two_stage(args)
    if 'query' in args.task:
        query(args)
    if 'instance_segmentation' in args.task:
        instance_segmentation(args)
    if 'classification' in args.task:
        classification(args)


if __name__ == '__main__':
    main()
