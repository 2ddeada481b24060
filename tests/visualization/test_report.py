"""The report viewer in headless Chromium, on manifests made here (no model).

What the viewer shows is read from its DOM and compared with what the
manifests say, computed here from the manifests by the page's stated rules.
"""
import json
import os
import os.path as osp
import re
import time

import cv2
import numpy as np
import pytest

from mmxai.visualization import write_report
from tests.browser import Browser
from tests.helpers import relevance_mass

CLASSES = ['cat', 'dog', 'bird']
SCORE_THR = 0.3


def _png(height, width, seed):
    rng = np.random.default_rng(seed)
    ok, data = cv2.imencode('.png', rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    return data.tobytes()


def _write(path, data):
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'wb') as file:
        file.write(data)


def make_runs(root, num_images, algorithms=('classmap', 'agnostic'), seed=0, skip=(),
              files_of=None):
    """Images and explain runs as ``tools/explain.py`` lays them out: tiny PNGs.

    ``classmap`` explains each class with a box scoring at least SCORE_THR,
    ``agnostic`` has one class-agnostic map per image; ``skip`` holds
    (algorithm, image index) pairs a run lacks. Only the images in
    ``files_of`` (default: all) have their files written.
    """
    rng = np.random.default_rng(seed)
    image_png, map_png = _png(12, 16, seed), _png(12, 16, seed + 1)
    entries = []
    for i in range(num_images):
        # Spaces, '#', '%', '&', '+', non-ASCII: paths must be URL-encoded.
        rel_path = f'sub{i % 3}/img {i:05d}.png' if i != 1 else 'sub1/odd #%&+é 1.png'
        image = osp.join(root, 'images', rel_path)
        if files_of is None or i in files_of:
            _write(image, image_png)
        count = int(rng.integers(0, 4))
        xy = rng.uniform(0, 10, (count, 2))
        predictions = dict(bboxes=np.concatenate([xy, xy + 4], 1).round(2).tolist(),
                           labels=rng.integers(0, 3, count).tolist(),
                           scores=rng.uniform(0.05, 1, count).round(3).tolist())
        entries.append(dict(image=image, rel_path=rel_path, ori_shape=[12, 16],
                            predictions=predictions))
    runs = []
    for algorithm in algorithms:
        out = osp.join(root, 'runs', algorithm)
        images = []
        for i, entry in enumerate(entries):
            if (algorithm, i) in skip:
                continue
            folder = osp.splitext(entry['rel_path'])[0]
            if algorithm == 'agnostic':
                classes = [None]
            else:
                p = entry['predictions']
                classes = sorted({c for c, s in zip(p['labels'], p['scores']) if s >= SCORE_THR})
            explanations = []
            for c in classes:
                stem = 'saliency' if c is None else f'{c}_{CLASSES[c]}_saliency'
                files = dict(saliency_map=osp.join(folder, stem + '.png'),
                             overlay=osp.join(folder, stem.replace('saliency', 'overlay') + '.png'))
                if files_of is None or i in files_of:
                    _write(osp.join(out, files['saliency_map']), map_png)
                explanations.append(dict(class_index=c, class_name=None if c is None
                                         else CLASSES[c], **files))
            images.append(dict(entry, algorithm=algorithm, explanations=explanations))
        manifest = dict(command='made by a test', algorithm=algorithm, classes=CLASSES,
                        score_thr=SCORE_THR, num_images=len(images), num_skipped=0,
                        images=images, skipped=[])
        _write(osp.join(out, 'manifest.json'), json.dumps(manifest).encode())
        runs.append(dict(task='detection', algorithm=algorithm, output_dir=out))
    return runs, entries


@pytest.fixture(scope='module')
def browser():
    with Browser() as chromium:
        yield chromium


@pytest.fixture(scope='module')
def report(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('viewer'))
    runs, entries = make_runs(root, 30, skip={('agnostic', 4)})
    index = write_report(osp.join(root, 'report'), runs, title='viewer test',
                         command='pytest')
    return index, runs, entries


def show(browser, index, hash_=''):
    """Open the report afresh in a given state and wait for it to render."""
    browser.open('about:blank')  # a new document, not a same-document hash change
    browser.open(f'file://{index}#{hash_}')
    browser.wait_for("document.body.dataset.ready === '1'")


def tiles(browser):
    return browser.evaluate(
        "[...document.querySelectorAll('.tile')].map(t => t.dataset.path)")


def tiles_become(browser, expected):
    """Wait until the grid shows ``expected`` (a hash change renders after the event)."""
    as_js = json.dumps(expected, separators=(',', ':'))  # as JSON.stringify writes it
    try:
        browser.wait_for("JSON.stringify([...document.querySelectorAll('.tile')]"
                         f".map(t => t.dataset.path)) === {json.dumps(as_js)}")
    except TimeoutError:
        pass  # the assertion below shows the difference
    assert tiles(browser) == expected


def all_tiles(browser, index, hash_):
    show(browser, index, hash_ + '&n=1000')
    return tiles(browser)


def no_errors(browser):
    errors = browser.errors()
    browser.events.clear()
    assert errors == []


def test_filters_show_what_the_manifest_says(browser, report):
    index, runs, entries = report
    paths = [e['rel_path'] for e in entries]
    assert all_tiles(browser, index, 'view=grid') == paths
    for label in range(3):  # images with a box of the class scoring at least SCORE_THR
        expected = [e['rel_path'] for e in entries
                    if any(lab == label and s >= SCORE_THR for lab, s in
                           zip(e['predictions']['labels'], e['predictions']['scores']))]
        assert expected and all_tiles(browser, index, f'cls={label}') == expected
    # The algorithm filter keeps the images its run explained and shows its maps.
    assert all_tiles(browser, index, 'alg=agnostic') == [p for i, p in enumerate(paths) if i != 4]
    sources = browser.evaluate(
        "[...document.querySelectorAll('.tile img.map')].map(i => decodeURI(i.src))")
    assert len(sources) == 29
    assert all(s.endswith('/saliency.png') and '/runs/agnostic/' in s for s in sources)
    # Class and algorithm: the map of that class.
    show(browser, index, 'alg=classmap&cls=1&n=1000')
    sources = browser.evaluate(
        "[...document.querySelectorAll('.tile img.map')].map(i => decodeURI(i.src))")
    assert sources and all(s.endswith('/1_dog_saliency.png') for s in sources)
    browser.wait_for("document.getElementById('report-status').dataset.loaded == "
                     "document.getElementById('report-status').dataset.images")
    no_errors(browser)


def test_paging_and_keys_in_the_grid(browser, report):
    index, runs, entries = report
    paths = [e['rel_path'] for e in entries]
    show(browser, index, 'n=12')
    assert tiles(browser) == paths[:12]
    assert browser.evaluate("document.querySelector('.page-info').textContent") == \
        'page 1 of 3 · 30 images'
    browser.evaluate("document.querySelectorAll('.pager button')[1].click()")  # next
    browser.wait_for("location.hash.includes('page=2')")
    tiles_become(browser, paths[12:24])
    browser.press('ArrowRight')
    browser.wait_for("location.hash.includes('page=3')")
    tiles_become(browser, paths[24:])
    browser.press('ArrowRight')  # the last page stays
    time.sleep(0.1)
    assert tiles(browser) == paths[24:]
    browser.press('k')
    browser.wait_for("location.hash.includes('page=2')")
    tiles_become(browser, paths[12:24])
    no_errors(browser)


def test_one_image_with_every_map_and_keyboard_navigation(browser, report):
    index, runs, entries = report
    paths = [e['rel_path'] for e in entries]
    show(browser, index, f'view=image&img={paths[5]}')
    assert browser.evaluate("document.querySelector('.single').dataset.path") == paths[5]
    # Every map of the image, of every run, side by side; the image itself once more.
    manifests = [json.load(open(osp.join(r['output_dir'], 'manifest.json'))) for r in runs]
    expected = sorted(osp.join(r['output_dir'], x['saliency_map']) for r, m in zip(runs, manifests)
                      for e in m['images'] if e['rel_path'] == paths[5] for x in e['explanations'])
    shown = browser.evaluate(
        "[...document.querySelectorAll('.maps img.map')].map(i => decodeURI(i.src))")
    assert sorted(s[len('file://'):] for s in shown) == expected
    browser.wait_for("document.getElementById('report-status').dataset.loaded == "
                     "document.getElementById('report-status').dataset.images")
    for key, expected_path in (('ArrowRight', 6), ('ArrowRight', 7), ('ArrowLeft', 6),
                               ('j', 7), ('k', 6)):
        browser.press(key)
        browser.wait_for(f"document.querySelector('.single').dataset.path === "
                         f"{json.dumps(paths[expected_path])}")
    assert browser.evaluate("document.querySelector('.position').textContent") == '7 of 30'
    show(browser, index, f'view=image&img={paths[-1]}')
    browser.press('ArrowRight')  # the last image stays
    time.sleep(0.1)
    assert browser.evaluate("document.querySelector('.single').dataset.path") == paths[-1]
    browser.press('Escape')
    browser.wait_for("document.getElementById('view').dataset.view === 'grid'")
    no_errors(browser)


def test_the_slider_sets_the_weight_of_every_map(browser, report):
    index, _, _ = report
    show(browser, index, 'alg=agnostic&w=0.3')
    opacity = "getComputedStyle(document.querySelector('.tile img.map')).opacity"
    assert float(browser.evaluate(opacity)) == pytest.approx(0.3)
    browser.evaluate("const s = document.getElementById('weight'); s.value = '0.8';"
                     "s.dispatchEvent(new Event('input'))")
    assert float(browser.evaluate(opacity)) == pytest.approx(0.8)
    assert 'w=0.8' in browser.evaluate('location.hash')  # shareable
    no_errors(browser)


def test_ten_thousand_images_open_within_two_seconds(browser, tmp_path):
    root = str(tmp_path)
    start = time.perf_counter()
    shown = set(range(48)) | set(range(199 * 48, 200 * 48))  # the pages opened below
    runs, entries = make_runs(root, 10_000, algorithms=('agnostic',), files_of=shown)
    made = time.perf_counter() - start
    start = time.perf_counter()
    index = write_report(osp.join(root, 'report'), runs, title='large')
    written = time.perf_counter() - start
    data_size = osp.getsize(osp.join(root, 'report', 'data.js'))
    show(browser, index, 'alg=agnostic')
    ready_ms = browser.evaluate('window.mmxaiReadyMs')  # since the navigation started
    print(f'10,000 images: made {made:.1f} s, report written {written:.2f} s, '
          f'data.js {data_size / 1e6:.2f} MB, viewer ready {ready_ms:.0f} ms')
    assert ready_ms < 2000
    assert browser.evaluate("document.getElementById('view').dataset.matches") == '10000'
    assert browser.evaluate("document.querySelectorAll('img').length") == 2 * 48  # one page
    assert browser.evaluate("document.querySelector('.tile img').loading") == 'lazy'
    show(browser, index, 'alg=agnostic&page=200')
    assert tiles(browser) == [e['rel_path'] for e in entries[199 * 48:200 * 48]]
    no_errors(browser)


# ---------------------------------------------------------------- annotated runs
KINDS = ('tp_high', 'tp_low', 'fp', 'fn')
HIGH = 0.6  # score splitting high- from low-score true positives of the classifier


def _coco_groups(ann_file, manifest, score_thr, high):
    """Per (class, kind), the images and boxes COCO's own evaluation puts there.

    The manifest's predictions scoring at least ``score_thr`` are evaluated by
    pycocotools at IoU 0.5 (one threshold, every area, every detection); a
    matched detection is a true positive (high from ``high``), an unmatched one
    a false positive, an unmatched annotation a false negative.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    coco = COCO()
    with open(ann_file) as file:
        coco.dataset = json.load(file)
    for ann in coco.dataset['annotations']:
        ann['id'] += 1  # pycocotools reads a match to annotation id 0 as no match
    coco.createIndex()
    ids = {image['file_name']: image['id'] for image in coco.dataset['images']}
    names = {v: k for k, v in ids.items()}
    detections = [dict(image_id=ids[entry['rel_path']], category_id=label + 1, score=score,
                       bbox=[x1, y1, x2 - x1, y2 - y1])
                  for entry in manifest['images']
                  for (x1, y1, x2, y2), label, score in zip(entry['predictions']['bboxes'],
                                                            entry['predictions']['labels'],
                                                            entry['predictions']['scores'])
                  if score >= score_thr]
    evaluation = COCOeval(coco, coco.loadRes(detections), 'bbox')
    evaluation.params.iouThrs = np.array([0.5])
    evaluation.params.areaRng, evaluation.params.areaRngLbl = [[0, 1e10]], ['all']
    evaluation.params.maxDets = [1000]
    evaluation.evaluate()
    groups = {}  # (label, kind) -> {file name: [(GT box x1 y1 x2 y2, detection score)]}

    def add(label, kind, name, ann_id, score=None):
        x, y, w, h = coco.anns[ann_id]['bbox'] if ann_id else (0, 0, 0, 0)
        groups.setdefault((label, kind), {}).setdefault(name, []).append(
            ([x, y, x + w, y + h], score))

    for image in evaluation.evalImgs:
        if image is None:
            continue
        label, name = image['category_id'] - 1, names[image['image_id']]
        for matched, score in zip(image['dtMatches'][0].astype(int), image['dtScores']):
            kind = 'fp' if not matched else 'tp_high' if score >= high else 'tp_low'
            add(label, kind, name, matched, score)
        for gt_id, matched in zip(image['gtIds'], image['gtMatches'][0]):
            if not matched:
                add(label, 'fn', name, gt_id)
    return groups


def _pointing(saliency, boxes):
    row, column = np.unravel_index(saliency.argmax(), saliency.shape)
    return any(x1 <= column + 0.5 <= x2 and y1 <= row + 0.5 <= y2 for x1, y1, x2, y2 in boxes)


def _check_groups(browser, index, groups):
    """Each (class, group) filter shows the images ``groups`` has, with their boxes drawn."""
    box_kind = dict(tp_high='tp', tp_low='tp', fp='fp', fn='fn')
    for label in range(3):
        for kind in KINDS:
            expected = groups.get((label, kind), {})
            show(browser, index, f'cls={label}&grp={kind}&alg=classwisesaliencymap&n=1000')
            assert tiles(browser) == sorted(expected)
            # Each tile draws the boxes of its events: predicted (TP, FP) and missed (FN).
            drawn = browser.evaluate(
                f"[...document.querySelectorAll('.tile')].map(t => "
                f"t.querySelectorAll('.box.{box_kind[kind]}').length)")
            assert drawn == [len(expected[name]) for name in sorted(expected)]
            if kind.startswith('tp'):  # with the ground-truth box each matched
                assert browser.evaluate(
                    "[...document.querySelectorAll('.tile')].map(t => "
                    "t.querySelectorAll('.box.gt').length)") == drawn


def _check_summary(browser, index, groups, runs, manifests):
    """The per-class table: counts, pointing game on TP and FN, relevance mass, as the
    raw maps and the annotation boxes give them."""
    show(browser, index, 'view=summary')
    rows = browser.evaluate(
        "Object.fromEntries([...document.querySelectorAll('.summary tr[data-class]')].map("
        "r => [r.dataset.class, [...r.cells].map(c => c.textContent)]))")
    truth = {entry['rel_path']: entry['ground_truth'] for entry in manifests[0]['images']}
    for label in range(3):
        cells = rows[str(label)]
        assert cells[2:6] == [str(sum(map(len, groups.get((label, k), {}).values())))
                              for k in KINDS]
        tp_boxes = {}
        for kind in ('tp_high', 'tp_low'):
            for name, boxes in groups.get((label, kind), {}).items():
                tp_boxes.setdefault(name, []).extend(boxes)
        for a, (run, manifest) in enumerate(zip(runs, manifests)):
            raw = {entry['rel_path']: np.load(osp.join(run['output_dir'], x['raw']))
                   for entry in manifest['images'] for x in entry['explanations']
                   if x['class_index'] in (label, None)}
            for column, by_image in ((6, tp_boxes), (7, groups.get((label, 'fn'), {}))):
                hits = sum(_pointing(raw[name], boxes) for name, boxes in by_image.items())
                expected = f'{hits / len(by_image):.2f} ({hits}/{len(by_image)})' \
                    if by_image else '–'
                assert cells[column + 3 * a] == expected
            masses = [relevance_mass(raw[name], [b for b, lab in zip(t['bboxes'], t['labels'])
                                        if lab == label])
                      for name, t in truth.items() if label in t['labels']]
            assert cells[8 + 3 * a] == f'{np.mean(masses):.3f} ({len(masses)})'


def test_error_analysis_groups_and_numbers(browser, annotated_detection_runs, tmp_path):
    runs, ann_file = annotated_detection_runs
    manifests = [json.load(open(osp.join(r['output_dir'], 'manifest.json'))) for r in runs]
    # Thresholds from the model's own scores, so that every group has images whatever
    # the trained model's quality: a low score threshold (ATSS's own test threshold: false
    # positives) split at the median true positive; a high one (false negatives) split by
    # the default rule, halfway between the score threshold and 1.
    matched = _coco_groups(ann_file, manifests[0], 0.05, 2.0)
    tp_scores = [score for (_, kind), by_image in matched.items() if kind == 'tp_low'
                 for items in by_image.values() for _, score in items]
    settings = [(0.05, float(np.median(tp_scores))),
                (round(float(np.percentile(tp_scores, 75)), 2), None)]
    seen = set()
    for score_thr, high in settings:
        index = write_report(str(tmp_path / f'report_{score_thr}'), runs, score_thr=score_thr,
                             high_score_thr=high)
        high = (score_thr + 1) / 2 if high is None else high
        groups = _coco_groups(ann_file, manifests[0], score_thr, high)
        groups = {key: {name: [box for box, _ in items] for name, items in by_image.items()}
                  for key, by_image in groups.items()}
        seen |= {kind for (_, kind), by_image in groups.items() if by_image}
        _check_groups(browser, index, groups)
        _check_summary(browser, index, groups, runs, manifests)
        help_text = browser.evaluate("document.getElementById('help-text').textContent")
        stated = re.search(r'boxes scoring at least ([0-9.]+) .*True positives scoring at least '
                           r'([0-9.]+) are', help_text)
        assert [float(x) for x in stated.groups()] == pytest.approx([score_thr, high], abs=1e-4)
    assert seen == set(KINDS)
    no_errors(browser)


def test_classification_error_analysis(browser, annotated_classification_run, tmp_path):
    run, data_root = annotated_classification_run
    labels = dict(line.split() for line in open(osp.join(data_root, 'val.txt')))
    manifest = json.load(open(osp.join(run['output_dir'], 'manifest.json')))
    index = write_report(str(tmp_path / 'report'), [run], high_score_thr=HIGH)
    predicted = {e['rel_path']: (e['predictions']['labels'][0],
                                 e['predictions']['scores'][e['predictions']['labels'][0]])
                 for e in manifest['images']}
    for label in range(3):
        expected = dict(
            tp_high=[p for p, (c, s) in predicted.items() if c == label == int(labels[p])
                     and s >= HIGH],
            tp_low=[p for p, (c, s) in predicted.items() if c == label == int(labels[p])
                    and s < HIGH],
            fp=[p for p, (c, s) in predicted.items() if c == label != int(labels[p])],
            fn=[p for p, (c, s) in predicted.items() if c != label == int(labels[p])])
        for kind, paths in expected.items():
            show(browser, index, f'task=classification&cls={label}&grp={kind}&n=1000')
            assert tiles(browser) == sorted(paths)
    show(browser, index, 'task=classification&view=image&alg=classwisesaliencymap')
    assert browser.evaluate("document.querySelectorAll('.maps img.map').length") == 3
    browser.wait_for("document.getElementById('report-status').dataset.loaded == "
                     "document.getElementById('report-status').dataset.images")
    no_errors(browser)


def _map_sources(browser, selector):
    return browser.evaluate(
        f"[...document.querySelectorAll('{selector}')].map(f => "
        "decodeURIComponent(f.querySelector('img.map').getAttribute('src')))")


def test_maps_per_box_and_of_missed_objects(browser, annotated_detection_runs, tmp_path):
    """One image: a map per box of the run, in the manifest's order, missed ground truth
    said so; the false-negative grid: each tile is the map of a missed object's box."""
    runs, ann_file = annotated_detection_runs
    run = runs[0]
    assert run['algorithm'] == 'classwisesaliencymap'
    manifest = json.load(open(osp.join(run['output_dir'], 'manifest.json')))
    scores = [s for e in manifest['images'] for s in e['predictions']['scores'] if s >= 0.05]
    score_thr = round(float(np.percentile(scores, 60)), 2)  # high enough to miss objects
    report_dir = str(tmp_path / 'report')
    index = write_report(report_dir, runs, score_thr=score_thr)
    groups = _coco_groups(ann_file, manifest, score_thr, 2.0)
    missed = {(name, label): [box for box, _ in items]
              for (label, kind), by_image in groups.items() if kind == 'fn'
              for name, items in by_image.items()}
    assert missed, 'the threshold should make the detector miss objects'

    def source(record):
        return osp.relpath(osp.join(run['output_dir'], record['saliency_map']), report_dir)

    def is_missed(entry, record):
        return any(np.allclose(record['bbox'], box, atol=0.5)
                   for box in missed.get((entry['rel_path'], record['label']), []))

    with_boxes = [e for e in manifest['images'] if e.get('boxes')]
    assert any(r['source'] == 'ground_truth' for e in with_boxes for r in e['boxes'])
    for entry in with_boxes[:8]:
        show(browser, index, f"view=image&img={entry['rel_path']}")
        shown = browser.evaluate(
            "[...document.querySelectorAll('.box-maps figure')].map(f => "
            "[f.dataset.source, +f.dataset.index, f.querySelector('figcaption').textContent])")
        kept = [i for i, s in enumerate(entry['predictions']['scores']) if s >= score_thr]
        expected = [[r['source'], kept.index(r['index']) if r['index'] in kept else -1]
                    if r['source'] == 'predictions' else [r['source'], r['index']]
                    for r in entry['boxes']]
        assert [row[:2] for row in shown] == expected
        assert _map_sources(browser, '.box-maps figure') == [source(r) for r in entry['boxes']]
        for (kind, _, caption), record in zip(shown, entry['boxes']):
            if kind == 'ground_truth':
                assert ('missed' in caption) == is_missed(entry, record), caption
                assert ('detected' in caption) != ('missed' in caption)
        browser.wait_for("document.getElementById('report-status').dataset.loaded == "
                         "document.getElementById('report-status').dataset.images")
    for label in range(3):
        show(browser, index, f'cls={label}&grp=fn&alg=classwisesaliencymap&n=1000')
        names = tiles(browser)
        assert names == sorted(name for name, lab in missed if lab == label)
        sources = _map_sources(browser, '.tile')
        for name, src in zip(names, sources):
            entry = next(e for e in manifest['images'] if e['rel_path'] == name)
            assert src in [source(r) for r in entry['boxes']
                           if r['source'] == 'ground_truth' and is_missed(entry, r)]
    no_errors(browser)


def test_runs_that_cannot_share_a_viewer_are_refused(tmp_path):
    """Two runs of one algorithm in a task, or two different images under one relative
    path, would show a map that is not the image's: refused, saying which."""
    runs, _ = make_runs(str(tmp_path / 'a'), 3, algorithms=('classmap',))
    with pytest.raises(ValueError, match="task 'detection' has two runs of classmap"):
        write_report(str(tmp_path / 'r1'), runs + runs)
    others, _ = make_runs(str(tmp_path / 'b'), 3, algorithms=('agnostic',), seed=5)
    with pytest.raises(ValueError, match=r"task 'detection': sub0/img 00000.png is .*a/images/"
                       r"sub0/img 00000.png in one run and .*b/images/sub0/img 00000.png in "):
        write_report(str(tmp_path / 'r2'), runs + others)
    assert not osp.exists(tmp_path / 'r2' / 'index.html')
    # A copy of the same images is the same image.
    copies, _ = make_runs(str(tmp_path / 'c'), 3, algorithms=('agnostic',))
    write_report(str(tmp_path / 'r3'), runs + copies)
    assert osp.isfile(tmp_path / 'r3' / 'index.html')
