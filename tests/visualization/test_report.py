"""The HTML report shows each image of a run with its own predictions and maps."""
import json
import os.path as osp
import re

import cv2
import numpy as np

from mmxai.visualization.report import write_report


def test_images_whose_names_flatten_alike_keep_their_own_pictures(tmp_path):
    out = tmp_path / 'out'
    entries = []
    # 'a/x.png' and 'a_x.png' flatten to one name; so do 'cat.jpg' and 'cat.png'.
    for index, rel in enumerate(['a/x.png', 'a_x.png', 'cat.jpg', 'cat.png']):
        image = tmp_path / 'in' / rel
        image.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(image), np.full((8, 8, 3), 40 * index, np.uint8))
        overlay = f'map{index}/overlay.png'
        (out / overlay).parent.mkdir(parents=True)
        cv2.imwrite(str(out / overlay), np.zeros((8, 8, 3), np.uint8))
        entries.append(dict(image=str(image), rel_path=rel, predictions={},
                            explanations=[dict(class_index=None, class_name=None,
                                               saliency_map=overlay, overlay=overlay)]))
    (out / 'manifest.json').write_text(json.dumps(dict(classes=None, images=entries)))
    page = open(write_report(str(tmp_path / 'report'),
                             [dict(task='t', algorithm='m', output_dir=str(out))])).read()
    predictions = re.findall(r'<img src="([^"]+)" alt="predictions">', page)
    assert len(predictions) == 4 and len(set(predictions)) == 4
    for source, index in zip(predictions, range(4)):  # each shows its own image
        shown = cv2.imread(osp.join(tmp_path / 'report', source))
        assert (shown == 40 * index).all()
    maps = re.findall(r'<img src="([^"]+)" alt="overlay">', page)
    assert [osp.basename(osp.dirname(source)) for source in maps] == [
        'map0', 'map1', 'map2', 'map3']
