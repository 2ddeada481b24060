"""A static HTML gallery of explain runs, browsable from the file system."""
import html
import json
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence

import cv2
import mmcv
import numpy as np

from ..datasets.output_names import output_stems
from ..utils import atomic_write_bytes

STATUS_SCRIPT = '''<script>
window.addEventListener('load', () => {
  const images = Array.from(document.querySelectorAll('img'));
  const loaded = images.filter(img => img.complete && img.naturalWidth > 0).length;
  const status = document.getElementById('report-status');
  status.dataset.images = images.length;
  status.dataset.loaded = loaded;
  status.textContent = `${loaded} of ${images.length} images loaded`;
});
</script>'''

STYLE = '''<style>
body { font-family: sans-serif; margin: 1em; }
.row { display: flex; flex-wrap: wrap; gap: 8px; align-items: flex-start; margin-bottom: 1.5em; }
figure { margin: 0; text-align: center; font-size: 12px; }
figure img { width: 160px; height: auto; display: block; image-rendering: pixelated; }
code { background: #eee; padding: 2px 4px; }
</style>'''


def _predictions_image(entry: dict, classes: Optional[Sequence[str]], path: str,
                       score_thr: float) -> None:
    image = mmcv.imread(entry['image'])
    predictions = entry['predictions']
    names = list(classes) if classes else None
    if 'bboxes' in predictions:
        for box, label, score in zip(predictions['bboxes'], predictions['labels'],
                                     predictions['scores']):
            if score < score_thr:
                continue
            x1, y1, x2, y2 = (int(round(v)) for v in box)
            cv2.rectangle(image, (x1, y1), (x2, y2), (255, 255, 255), 2)
            text = f'{names[label] if names else label} {score:.2f}'
            cv2.putText(image, text, (x1 + 2, max(y1 + 12, 12)), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                        (255, 255, 255), 1, cv2.LINE_AA)
    elif predictions.get('labels'):
        label = predictions['labels'][0]
        text = f'{names[label] if names else label} {max(predictions["scores"]):.2f}'
        cv2.putText(image, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1,
                    cv2.LINE_AA)
    ok, buffer = cv2.imencode('.png', np.ascontiguousarray(image))
    atomic_write_bytes(path, buffer.tobytes())


def _class_score(entry: dict, class_index: Optional[int]) -> Optional[float]:
    predictions = entry['predictions']
    if class_index is None or not predictions:
        return None
    if 'bboxes' in predictions:
        scores = [s for s, label in zip(predictions['scores'], predictions['labels'])
                  if label == class_index]
        return max(scores) if scores else 0.0
    scores = predictions.get('scores') or []
    return scores[class_index] if class_index < len(scores) else None


def write_report(report_dir: str, runs: Sequence[Dict[str, str]], title: str = 'mmxai',
                 command: Optional[str] = None, score_thr: float = 0.3) -> str:
    """Write ``report_dir/index.html`` comparing explain runs image by image.

    Args:
        report_dir (str): Folder of the report; every link in it is relative.
        runs (Sequence[dict]): ``task``, ``algorithm`` and ``output_dir`` (the
            ``--output`` of a ``tools/explain.py`` run) of each run.
        title (str): Page title.
        command (str, optional): The command that made the report.
        score_thr (float): Boxes drawn on the predictions image score at least this.

    Returns:
        str: Path of ``index.html``.
    """
    manifests: Dict[str, Dict[str, dict]] = {}
    for run in runs:
        with open(osp.join(run['output_dir'], 'manifest.json')) as file:
            manifests.setdefault(run['task'], {})[run['algorithm']] = dict(
                json.load(file), output_dir=run['output_dir'])

    def link(path: str) -> str:
        return html.escape(osp.relpath(osp.abspath(path), osp.abspath(report_dir)))

    parts: List[str] = [f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>'
                        f'{html.escape(title)}</title>{STYLE}</head><body>',
                        f'<h1>{html.escape(title)}</h1>', '<div id="report-status"></div>']
    if command:
        parts.append(f'<p>Made by <code>{html.escape(command)}</code></p>')
    for task, by_algorithm in manifests.items():
        parts.append(f'<h2>{html.escape(task.replace("_", " "))}</h2>')
        first = next(iter(by_algorithm.values()))
        classes = first.get('classes')
        by_path = {algorithm: {e['rel_path']: e for e in manifest['images']}
                   for algorithm, manifest in by_algorithm.items()}
        stems = output_stems([entry['rel_path'] for entry in first['images']])
        for entry, stem in zip(first['images'], stems):
            rel = entry['rel_path']  # distinct per image (mmxai.datasets.output_names)
            predicted = osp.join(report_dir, task, 'predictions', stem + '.png')
            _predictions_image(entry, classes, predicted, score_thr)
            parts.append(f'<h3>{html.escape(rel)}</h3><div class="row"><figure>'
                         f'<img src="{link(predicted)}" alt="predictions">'
                         f'<figcaption>predictions</figcaption></figure>')
            for algorithm, manifest in by_algorithm.items():
                match = by_path[algorithm].get(rel)
                for explanation in (match or {}).get('explanations', []):
                    score = _class_score(match, explanation['class_index'])
                    caption = algorithm + (f' · {explanation["class_name"]}'
                                           if explanation['class_name'] else '')
                    caption += f' · score {score:.2f}' if score is not None else ''
                    for kind in ('saliency_map', 'overlay'):
                        source = osp.join(manifest['output_dir'], explanation[kind])
                        parts.append(f'<figure><img src="{link(source)}" alt="{kind}">'
                                     f'<figcaption>{html.escape(caption)}<br>{kind}'
                                     '</figcaption></figure>')
            parts.append('</div>')
    parts += [STATUS_SCRIPT, '</body></html>']
    os.makedirs(report_dir, exist_ok=True)
    path = osp.join(report_dir, 'index.html')
    atomic_write_bytes(path, '\n'.join(parts).encode('utf-8'))
    return path
