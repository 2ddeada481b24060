"""Peak memory and speed of tools/explain.py as the number of images grows.

Explains N generated images (256 px shape scenes, every class explained, so
every image writes 3 maps and 3 overlays) with the demo model's config and
random weights, in a fresh process per run, and reports the peak resident
memory of that process (``wait4``'s ``ru_maxrss``), wall time (with start-up)
and the tool's own images per second (without), for every image count and
number of write threads (``--write-workers``).

    python benchmarks/explain_memory.py [--task classification|detection] \
        [--counts 100 1000] [--write-workers 0 1] [--json results.json]

Goal (issue 7): the peak for 1,000 images within 10% of the peak for 100.
Exits non-zero if a run failed or the goal is missed.
"""
import argparse
import json
import logging
import os
import os.path as osp
import re
import subprocess
import sys
import tempfile
import time

import cv2
import numpy as np
import torch
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)

from mmxai.datasets.synthetic import SHAPE_CLASSES, scene  # noqa: E402

CONFIGS = dict(classification=osp.join(REPO, 'configs', 'demo', 'resnet_tiny_shapes.py'),
               detection=osp.join(REPO, 'configs', 'demo', 'atss_tiny_shapes.py'))


def random_checkpoint(config: str, path: str) -> str:
    """Save the config's model with random weights, as training would."""
    cfg = Config.fromfile(config)
    init_default_scope(cfg.default_scope)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    logging.getLogger('mmengine').setLevel(logging.WARNING)  # no per-parameter init report
    model.init_weights()
    torch.save(dict(state_dict=model.state_dict(),
                    meta=dict(dataset_meta=dict(classes=list(SHAPE_CLASSES)))), path)
    return path


def make_images(folder: str, count: int, seed: int = 0) -> None:
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    for index in range(count):
        names = [str(n) for n in rng.choice(list(SHAPE_CLASSES), size=2, replace=False)]
        image, _ = scene(rng, 256, names, min_side=64, max_side=96)
        cv2.imwrite(osp.join(folder, f'{index:05d}.png'), image)


def explain_run(config: str, checkpoint: str, images: str, out: str, workers: int) -> dict:
    command = [sys.executable, osp.join(REPO, 'tools', 'explain.py'), config, checkpoint,
               '--input', images, '--output', out, '--work-dir', out + '_logs',
               '--device', 'cpu', '--no-resume', '--write-workers', str(workers),
               '--explain-all-classes']  # every image writes a map and overlay per class
    env = dict(os.environ, PYTHONPATH=REPO)
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               env=env)
    log = process.stdout.read().decode()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f'explain failed: {log[-2000:]}')
    count = json.load(open(osp.join(out, 'manifest.json')))['num_images']
    # The tool's own rate: from the first batch to the last write, without start-up.
    rate = float(re.findall(r'explained \d+/\d+ images \(([\d.]+) images/s\)', log)[-1])
    return dict(images=count, seconds=round(seconds, 1), loop_images_per_s=rate,
                peak_rss_mb=round(usage.ru_maxrss / 1024, 1), write_workers=workers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--task', choices=sorted(CONFIGS), default='classification')
    parser.add_argument('--counts', type=int, nargs='+', default=[100, 1000])
    parser.add_argument('--write-workers', type=int, nargs='+', default=[0, 1])
    parser.add_argument('--json', help='also write the results here')
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = random_checkpoint(CONFIGS[args.task], osp.join(tmp, 'random.pth'))
        make_images(osp.join(tmp, 'all'), max(args.counts))
        names = sorted(os.listdir(osp.join(tmp, 'all')))
        for count in args.counts:
            folder = osp.join(tmp, f'images_{count}')
            os.makedirs(folder)
            for name in names[:count]:
                os.link(osp.join(tmp, 'all', name), osp.join(folder, name))
            for workers in args.write_workers:
                result = explain_run(CONFIGS[args.task], checkpoint, folder,
                                     osp.join(tmp, f'out_{count}_{workers}'), workers)
                results.append(dict(task=args.task, **result))
                print(json.dumps(results[-1]), flush=True)
    ok = True
    for workers in args.write_workers:
        peaks = {r['images']: r['peak_rss_mb'] for r in results if r['write_workers'] == workers}
        low, high = peaks[min(peaks)], peaks[max(peaks)]
        ratio = high / low
        ok &= ratio <= 1.10
        print(f'write_workers={workers}: peak RSS {low:.0f} MB for {min(peaks)} images, '
              f'{high:.0f} MB for {max(peaks)} images: x{ratio:.3f} (goal <= 1.10)')
    if args.json:
        with open(args.json, 'w') as file:
            json.dump(results, file, indent=2)
    sys.exit(0 if ok else 1)


if __name__ == '__main__':
    main()
