"""The serving API: one image array in, the PyTorch explainer's predictions and maps out."""
import glob

import numpy as np
import pytest

from mmxai.apis import ExportedSaliencyExplainer, SaliencyExplainer
from mmxai.datasets.image_io import read_image
from mmxai.deploy import ExportedModelError, export_model


@pytest.mark.parametrize('fmt', ['onnx', 'openvino'])
def test_one_array_gives_the_pytorch_results(trained_detector, shapes_detection, tmp_path, fmt):
    config, checkpoint = trained_detector
    model_file = export_model(config, checkpoint, str(tmp_path), fmt)
    image = read_image(sorted(glob.glob(f'{shapes_detection}/val/*.png'))[0])
    # Twice the network size: the pipeline resizes it, the maps come back at 512 x 512.
    image = np.ascontiguousarray(np.repeat(np.repeat(image, 2, axis=0), 2, axis=1))
    expected = SaliencyExplainer(config, checkpoint)([image])[0]
    got = ExportedSaliencyExplainer(config, model_file).explain(image)
    assert got['class_names'] == expected['class_names'] and len(got['class_names']) > 0
    np.testing.assert_array_equal(got['classes'], expected['classes'])
    assert got['predictions']['labels'] == expected['predictions']['labels']
    np.testing.assert_allclose(got['predictions']['bboxes'], expected['predictions']['bboxes'],
                               atol=1e-3)
    assert got['maps'].shape == expected['maps'].shape == (len(got['classes']), 512, 512)
    assert np.abs(got['maps'] - expected['maps']).max() <= 1e-4


def test_a_file_mmxai_did_not_export_is_one_clear_error(trained_detector, tmp_path):
    import onnx
    from onnx import TensorProto, helper
    graph = helper.make_graph([helper.make_node('Identity', ['x'], ['y'])], 'g',
                              [helper.make_tensor_value_info('x', TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info('y', TensorProto.FLOAT, [1])])
    path = str(tmp_path / 'other.onnx')
    onnx.save(helper.make_model(graph), path)
    with pytest.raises(ExportedModelError, match='was not exported by mmxai'):
        ExportedSaliencyExplainer(trained_detector[0], path)
