"""How long the report viewer takes to write and to open as runs grow.

Makes annotated detection runs of N images (3 algorithms: a class map per
class in the ground truth or predicted, plus a class-agnostic one; two
objects and three predictions per image) as ``tools/explain.py`` lays out
their manifests, writes the report with ``write_report`` and opens it in
headless Chromium (``tests/browser.py``): the time from navigation start
until the first page is rendered (``window.mmxaiReadyMs``), and the time one
filter change takes to render. Only the first page's files are written (the
report reads manifests only; the other pages are never shown here).
``--per-box`` gives the class-map run per-box maps too (``--per-box`` and
``--explain-gt``: a map per prediction scoring at least 0.3 and per
ground-truth box), and the filter change shows the missed objects' maps.

    python benchmarks/report_viewer.py [--counts 1000 10000 30000] [--per-box] [--json results.json]

Goal (issue 16): a 10,000-image run opens within 2 s. Exits non-zero if not.
"""
import argparse
import json
import os
import os.path as osp
import sys
import tempfile
import time

import cv2
import numpy as np

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)

from mmxai.visualization import write_report  # noqa: E402
from tests.browser import Browser  # noqa: E402

CLASSES = ['red_square', 'green_circle', 'blue_triangle']
ALGORITHMS = ('classwisesaliencymap', 'gradcam', 'eigencam')
PAGE = 48


def _write(path: str, data: bytes) -> None:
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'wb') as file:
        file.write(data)


def _box_maps(entry: dict, folder: str) -> list:
    """Per-box records as ``tools/explain.py --per-box --explain-gt`` writes them."""
    predictions, truth = entry['predictions'], entry['ground_truth']
    boxes = [('predictions', i, b, lab) for i, (b, lab, s) in enumerate(zip(
        predictions['bboxes'], predictions['labels'], predictions['scores'])) if s >= 0.3]
    boxes += [('ground_truth', g, b, lab)
              for g, (b, lab) in enumerate(zip(truth['bboxes'], truth['labels']))]
    records = []
    for k, (source, index, bbox, label) in enumerate(boxes):
        stem = f'box_{k}_{label}_{CLASSES[label]}_saliency'
        record = dict(source=source, index=index, bbox=bbox, label=label,
                      class_name=CLASSES[label], evidence=0.5,
                      saliency_map=osp.join(folder, stem + '.png'),
                      overlay=osp.join(folder, stem.replace('saliency', 'overlay') + '.png'))
        if source == 'ground_truth':
            record.update(match=dict(prediction=0, iou=0.4, score=0.2), detected=False)
        records.append(record)
    return records


def make_runs(root: str, count: int, seed: int = 0, per_box: bool = False) -> list:
    rng = np.random.default_rng(seed)
    png = cv2.imencode('.png', rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))[1].tobytes()
    entries = []
    for i in range(count):
        rel_path = f'part{i // 1000:03d}/image_{i:06d}.png'
        xy = rng.uniform(0, 400, (2, 2))
        gt = np.concatenate([xy, xy + 60], 1)
        boxes = np.concatenate([gt + rng.normal(0, 8, gt.shape), [[10, 10, 50, 50]]])
        entry = dict(image=osp.join(root, 'images', rel_path), rel_path=rel_path,
                     ori_shape=[480, 480],
                     predictions=dict(bboxes=boxes.round(2).tolist(),
                                      labels=rng.integers(0, 3, 3).tolist(),
                                      scores=rng.uniform(0.05, 1, 3).round(4).tolist()),
                     ground_truth=dict(bboxes=gt.round(2).tolist(),
                                       labels=rng.integers(0, 3, 2).tolist()))
        entries.append(entry)
        if i < PAGE:
            _write(entry['image'], png)
    runs = []
    for algorithm in ALGORITHMS:
        out = osp.join(root, algorithm)
        images = []
        for i, entry in enumerate(entries):
            folder = osp.splitext(entry['rel_path'])[0]
            classes = sorted(set(entry['ground_truth']['labels']) |
                             set(entry['predictions']['labels']))
            classes = [None] if algorithm == 'eigencam' else classes
            explanations = []
            for c in classes:
                stem = 'saliency' if c is None else f'{c}_{CLASSES[c]}_saliency'
                files = dict(saliency_map=osp.join(folder, stem + '.png'),
                             overlay=osp.join(folder, stem.replace('saliency', 'overlay') + '.png'))
                if i < PAGE:
                    _write(osp.join(out, files['saliency_map']), png)
                about = entry['ground_truth']['labels'] if c is None else \
                    [c] if c in entry['ground_truth']['labels'] else []
                explanations.append(dict(
                    class_index=c, class_name=None if c is None else CLASSES[c], **files,
                    peak=rng.integers(0, 480, 2).tolist(),
                    relevance_mass={str(k): float(rng.random()) for k in about}))
            image = dict(entry, algorithm=algorithm, explanations=explanations)
            if per_box and algorithm == 'classwisesaliencymap':
                image['boxes'] = _box_maps(entry, folder)
                if i < PAGE:
                    for record in image['boxes']:
                        _write(osp.join(out, record['saliency_map']), png)
            images.append(image)
        manifest = dict(command='benchmark', algorithm=algorithm, classes=CLASSES,
                        score_thr=0.3, num_images=count, num_skipped=0, images=images,
                        skipped=[])
        _write(osp.join(out, 'manifest.json'), json.dumps(manifest).encode())
        runs.append(dict(task='detection', algorithm=algorithm, output_dir=out))
    return runs


FILTER_CHANGE = '''new Promise(resolve => {
  const start = performance.now();
  addEventListener('hashchange', () => resolve(performance.now() - start), {once: true});
  location.hash = '#alg=ALGORITHM&cls=1&grp=fn';
})'''


def measure(count: int, browser: Browser, per_box: bool = False) -> dict:
    with tempfile.TemporaryDirectory(prefix='mmxai-report-bench-') as root:
        start = time.perf_counter()
        runs = make_runs(root, count, per_box=per_box)
        made = time.perf_counter() - start
        start = time.perf_counter()
        index = write_report(osp.join(root, 'report'), runs, title=f'{count} images')
        written = time.perf_counter() - start
        size = osp.getsize(osp.join(root, 'report', 'data.js'))
        browser.open('about:blank')
        start = time.perf_counter()
        browser.open(f'file://{index}#alg=classwisesaliencymap')
        browser.wait_for("document.body.dataset.ready === '1'", timeout=120)
        wall = time.perf_counter() - start
        ready = browser.evaluate('window.mmxaiReadyMs')
        filter_ms = browser.evaluate(FILTER_CHANGE.replace(
            'ALGORITHM', 'classwisesaliencymap' if per_box else 'gradcam'))
        matches = int(browser.evaluate("document.getElementById('view').dataset.matches"))
    return dict(images=count, per_box=per_box, runs_made_s=round(made, 1),
                report_written_s=round(written, 2),
                data_js_mb=round(size / 1e6, 2), viewer_ready_ms=round(ready),
                load_wall_s=round(wall, 2), filter_change_ms=round(filter_ms),
                filter_matches=matches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--counts', type=int, nargs='+', default=[1000, 10000, 30000])
    parser.add_argument('--per-box', action='store_true',
                        help='the class-map run has per-box maps too')
    parser.add_argument('--json', help='write the results here too')
    args = parser.parse_args()
    results = []
    with Browser() as browser:
        for count in args.counts:
            results.append(measure(count, browser, args.per_box))
            print(json.dumps(results[-1]), flush=True)
    if args.json:
        with open(args.json, 'w') as file:
            json.dump(results, file, indent=1)
    slow = [r for r in results if r['images'] <= 10000 and r['viewer_ready_ms'] >= 2000]
    sys.exit(1 if slow else 0)


if __name__ == '__main__':
    main()
