"""The data of the report viewer: the runs of a task merged per image, compact.

The viewer (``report_assets/viewer.js``) reads one object, ``window.MMXAI_REPORT``
(``title``, ``command``, ``created``, ``tasks``), from ``data.js``, a file the
page loads with a ``<script>`` tag (browsers refuse ``fetch()`` of a JSON file
opened from disk). Per task it holds:

- ``name``, ``classes``, ``annotated`` (every image has ``ground_truth``),
  ``detection``, ``score_thr`` (the report's), ``run_score_thr`` (the runs'),
  ``high_score_thr``, ``iou_thr``, ``algorithms``, ``roots``
  (each run's output folder relative to the report, ending in ``/``),
  ``image_root`` (the images' common folder relative to the report),
  ``files`` (file names shared by many images) and, annotated, ``summary``
  (:func:`mmxai.evaluation.error_analysis.class_summary`).
- ``images``: per image ``p`` (relative path), ``s`` ([height, width]),
  ``b`` (predictions: [label, score] plus the box for detection; detection
  keeps the boxes scoring at least ``score_thr``), ``m`` (per algorithm its
  maps: [class (-1: class-agnostic), file, class score or null, peak or 0,
  relevance mass per class or 0]; a file is an index in ``files`` under the
  image's folder or a path under the run's root) and, only where they differ
  from what ``p`` gives, ``i`` (image path) and ``d`` (the maps' folder).
  Annotated: ``g`` (ground truth: [label] plus the box if any) and ``e``
  (events: [kind index in ``KINDS``, label, index in ``b`` or -1, index in
  ``g`` or -1]). Runs with per-box maps (``--per-box``, ``--explain-gt``,
  ``--target-boxes``): ``x``, per algorithm its box maps: [source index in
  ``BOX_SOURCES``, index (predictions: in ``b``, -1 below ``score_thr``;
  ground truth: in ``g``; given: in the run's target boxes), label, x1, y1,
  x2, y2, evidence, file, best prediction of the class (index in ``b`` or
  -1), its IoU, its score, detected (1 / 0 / null for predictions)].
- ``sanity`` (tasks with sanity checks): see :func:`sanity_data`.
"""
import filecmp
import os.path as osp
import posixpath
import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..boxes import IOU_THR
from ..evaluation.error_analysis import KINDS, class_summary, error_events
from ..models.saliency_targets import BOX_SOURCES
from ..utils import ReportInputError
from ..utils.defaults import DEFAULT_SCORE_THR
from .sanity_page import TABLE_TEXT

#: The path without its extension, as ``viewer.js`` takes it.
_STEM = re.compile(r'\.[^./]*$')


def _relative(path: str, start: str) -> str:
    return osp.relpath(osp.abspath(path), osp.abspath(start)).replace(osp.sep, '/')


def _same_file(path: str, other: str) -> bool:
    """Whether two image paths of manifests name the same image (or a copy of it)."""
    if osp.normpath(path) == osp.normpath(other):
        return True
    try:
        return osp.samefile(path, other) or filecmp.cmp(path, other, shallow=False)
    except OSError:  # one is gone: only the names can say
        return False


def _round(values: Sequence[float], digits: int) -> List[float]:
    return [round(float(v), digits) for v in values]


class _FileTable:
    """File names shared by many images (``0_cat_saliency.png``), stored once."""

    def __init__(self) -> None:
        self.names: List[str] = []
        self._index: Dict[str, int] = {}

    def ref(self, path: str, folder: str) -> Any:
        """An index in the table for ``folder/<name>``, else the path itself."""
        head, name = posixpath.split(path.replace(osp.sep, '/'))
        if head != folder:
            return path.replace(osp.sep, '/')
        if name not in self._index:
            self._index[name] = len(self.names)
            self.names.append(name)
        return self._index[name]


def _class_score(predictions: Dict[str, list], label: int) -> Optional[float]:
    """Detection: the best box score of the class (any score); classification: its score."""
    scores = predictions.get('scores') or []
    if 'bboxes' in predictions:
        own = [s for s, lab in zip(scores, predictions['labels']) if lab == label]
        return round(max(own), 3) if own else None
    return round(scores[label], 3) if 0 <= label < len(scores) else None


def _predictions(predictions: Dict[str, list], score_thr: float) -> Tuple[List[list], List[int]]:
    """Compact predictions and the manifest index of each."""
    if 'bboxes' in predictions:
        keep = [i for i, s in enumerate(predictions['scores']) if s >= score_thr]
        return ([[predictions['labels'][i], round(predictions['scores'][i], 3),
                  *_round(predictions['bboxes'][i], 1)] for i in keep], keep)
    labels, scores = predictions.get('labels') or [], predictions.get('scores') or []
    return ([[label, round(scores[label], 3) if label < len(scores) else None]
             for label in labels], list(labels))


def _box_maps(boxes: Sequence[dict], kept: List[int], files: _FileTable,
               folder: str) -> List[list]:
    """Compact records of one run's per-box maps of one image."""
    def in_view(index: Optional[int]) -> int:
        return kept.index(index) if index in kept else -1

    rows = []
    for box in boxes:
        match = box.get('match') or {}
        index = in_view(box['index']) if box['source'] == 'predictions' else box['index']
        rows.append([BOX_SOURCES.index(box['source']), index, box['label'],
                     *_round(box['bbox'], 1), round(box['evidence'], 3),
                     files.ref(box['saliency_map'], folder),
                     in_view(match.get('prediction')),
                     round(match['iou'], 3) if match else None,
                     round(match['score'], 3) if match else None,
                     None if 'detected' not in box else int(box['detected'])])
    return rows


def sanity_data(output_dir: str, results: Dict[str, Any], report_dir: str) -> Dict[str, Any]:
    """The viewer's data of one task's sanity checks.

    Args:
        output_dir (str): Folder of the ``tools/sanity_check.py`` run.
        results (dict): Its ``sanity.json``.
        report_dir (str): The report's folder (paths are relative to it).

    Returns:
        dict: ``root`` (the run's folder relative to the report, ending in
        ``/``), ``num_images``, ``steps``, ``thresholds``, ``text`` (what a
        cell of the table says) and ``algorithms``:
        per algorithm ``name``, ``verdict``, ``reasons``, ``cascade`` (per
        step) and ``random_label``, each [mean Spearman, share kept, mean
        SSIM, flagged] or null, and the cascade of maps, ``header`` and
        ``rows`` (cells ``{file, caption}`` or ``{text}``, files under ``root``).

    Raises:
        ReportInputError: ``sanity.json`` has no page layout (an older mmxai made it).
    """
    if 'page' not in results:
        raise ReportInputError(f'{osp.join(output_dir, "sanity.json")}: no cascade of maps in it '
                         '(made by an older mmxai): run tools/sanity_check.py again')

    def numbers(values: Optional[Dict[str, Any]]) -> Optional[list]:
        if not values or values.get('spearman') is None:
            return None
        return [values['spearman'], values['kept'], values['ssim'], int(values['flagged'])]

    algorithms = [dict(name=name, verdict=result['verdict'], reasons=result['reasons'],
                       cascade=[numbers(step) for step in result['cascade']],
                       random_label=numbers(result['random_label']),
                       **results['page']['cascades'][name])
                  for name, result in results['results'].items()]
    return dict(root=_relative(output_dir, report_dir) + '/', num_images=results['num_images'],
                steps=results['page']['steps'], thresholds=results['thresholds'],
                text=TABLE_TEXT, algorithms=algorithms)


def task_data(name: str, runs: Sequence[Tuple[str, str, dict]], report_dir: str,
              score_thr: Optional[float] = None,
              high_score_thr: Optional[float] = None) -> Dict[str, Any]:
    """The viewer's data of one task.

    Args:
        name (str): Task name.
        runs (Sequence[tuple]): (algorithm, output folder, manifest) of each
            run of the task; images are merged by ``rel_path``, predictions and
            ground truth are read from the first run that has the image.
        report_dir (str): The report's folder (paths are relative to it).
        score_thr (float, optional): Score of a detection; default the
            runs' ``score_thr`` (the first run's), else 0.3.
        high_score_thr (float, optional): Score splitting high from low true
            positives; default halfway between ``score_thr`` and 1.

    Returns:
        dict: The task's entry of ``window.MMXAI_REPORT``.
    """
    # Imported here: mmxai.evaluation imports the explainers, which import this package.
    run_score_thr = next((m['score_thr'] for _, _, m in runs if m.get('score_thr') is not None),
                         None)
    if score_thr is None:
        score_thr = DEFAULT_SCORE_THR if run_score_thr is None else run_score_thr
    if high_score_thr is None:
        high_score_thr = round((score_thr + 1) / 2, 4)
    algorithms = [algorithm for algorithm, _, _ in runs]
    twice = sorted({a for a in algorithms if algorithms.count(a) > 1})
    if twice:
        raise ReportInputError(f'task {name!r} has two runs of {", ".join(twice)}: the viewer '
                               'could show only one; give the runs different tasks')
    entries: Dict[str, List[Optional[dict]]] = {}
    for a, (_, output_dir, manifest) in enumerate(runs):
        for entry in manifest['images']:
            per_run = entries.setdefault(entry['rel_path'], [None] * len(runs))
            first = next((e for e in per_run if e is not None), None)
            if first is not None and not _same_file(first['image'], entry['image']):
                raise ReportInputError(
                    f"task {name!r}: {entry['rel_path']} is {first['image']} in one run and "
                    f"{entry['image']} in {output_dir}: maps of one image would lie over the "
                    'other; give the runs different tasks')
            per_run[a] = entry
    firsts = [next(e for e in per_run if e is not None) for per_run in entries.values()]
    annotated = bool(firsts) and all('ground_truth' in e for e in firsts)
    classes = next((m.get('classes') for _, _, m in runs if m.get('classes')), None)
    if classes is None:
        labels = [lab for e in firsts for lab in e['predictions'].get('labels') or []]
        classes = [str(i) for i in range(max(labels, default=-1) + 1)]
    # The images' folder as the manifests spell it: most images are ``prefix + rel_path``.
    prefix: Optional[str] = None
    if firsts and firsts[0]['image'].endswith(firsts[0]['rel_path']):
        prefix = firsts[0]['image'][:-len(firsts[0]['rel_path'])]
        prefix = prefix if not prefix or prefix.endswith(osp.sep) else None
    image_root = _relative(prefix or '.', report_dir) + '/' if prefix is not None else ''
    files = _FileTable()
    images: List[Dict[str, Any]] = []
    analysed: List[Dict[str, Any]] = []
    for (rel_path, per_run), first in zip(entries.items(), firsts):
        record: Dict[str, Any] = dict(p=rel_path)
        if prefix is None or first['image'] != prefix + rel_path:
            record['i'] = _relative(first['image'], report_dir)
        record['s'] = list(first['ori_shape'][:2])
        record['b'], kept = _predictions(first['predictions'], score_thr)
        saliency = [x['saliency_map'] for e in per_run if e for x in e['explanations']]
        folder = posixpath.dirname(saliency[0].replace(osp.sep, '/')) if saliency else ''
        if folder != _STEM.sub('', rel_path.replace(osp.sep, '/')):  # as viewer.js derives it
            record['d'] = folder
        record['m'] = []
        maps: Dict[str, Dict[int, dict]] = {}
        for a, (algorithm, entry) in enumerate(zip(algorithms, per_run)):
            rows = []
            for x in (entry or {}).get('explanations', []):
                label = -1 if x['class_index'] is None else x['class_index']
                mass = {k: None if v is None else round(v, 3)
                        for k, v in (x.get('relevance_mass') or {}).items()}
                rows.append([label, files.ref(x['saliency_map'], folder),
                             None if label < 0 else _class_score(first['predictions'], label),
                             x.get('peak') or 0, mass or 0])
                maps.setdefault(algorithm, {})[label] = x
            record['m'].append(rows)
            if entry and 'boxes' in entry:
                record.setdefault('x', [[] for _ in runs])[a] = \
                    _box_maps(entry['boxes'], kept, files, folder)
        if annotated:
            truth = first['ground_truth']
            boxes = truth.get('bboxes') or []
            record['g'] = [[label, *(_round(boxes[g], 1) if g < len(boxes) else [])]
                           for g, label in enumerate(truth.get('labels', []))]
            events = error_events(first['predictions'], truth, score_thr, high_score_thr)
            record['e'] = [[KINDS.index(e['kind']), e['label'],
                            -1 if e['pred'] is None else kept.index(e['pred']),
                            -1 if e['gt'] is None else e['gt']] for e in events]
            analysed.append(dict(ground_truth=truth, events=events, maps=maps))
        images.append(record)
    data: Dict[str, Any] = dict(
        name=name, classes=list(classes), annotated=annotated,
        detection='bboxes' in (firsts[0]['predictions'] if firsts else {}),
        score_thr=score_thr, run_score_thr=run_score_thr, high_score_thr=high_score_thr,
        iou_thr=IOU_THR,
        algorithms=algorithms, roots=[_relative(out, report_dir) + '/' for _, out, _ in runs],
        image_root=image_root, files=files.names, images=images)
    if annotated:
        data['summary'] = class_summary(analysed, algorithms, len(classes))
    return data
