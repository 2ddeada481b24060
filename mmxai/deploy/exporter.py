"""Export an explain-mode model to ONNX or OpenVINO IR, with a ``saliency_map`` output."""
import os
import os.path as osp
import tempfile
import warnings
from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.config import Config

from ..models import build_model
from ..utils import TEMPORARY_PREFIX
from ..utils.config import test_pipeline_of
from ..utils.errors import UnsupportedExportError
from .export_wrapper import ExplainExportWrapper
from .metadata import INPUT_NAME, METADATA_KEY, ExportMetadata
from .runtime import open_session

FORMATS = ('onnx', 'openvino')
#: ONNX opset: GridSample (level merging) needs 16, Einsum (ViT masks) 12.
OPSET = 17
#: Batch the graph is traced with; any batch runs (the axis is dynamic).
TRACE_BATCH = 2


def _round_up(value: int, divisor: int) -> int:
    return -(-value // divisor) * divisor if divisor > 1 else value


def default_input_shape(cfg: Config) -> Tuple[int, int]:
    """(H, W) of the network input that the config's test pipeline produces.

    The last fixed size in the pipeline wins: a crop (``CenterCrop``
    ``crop_size``), else a resize ``scale`` (MMDetection's ``(w, h)``, an
    int for a square), rounded up to the data preprocessor's
    ``pad_size_divisor``. With ``keep_ratio`` the image fits inside that
    size, so it is the largest input the pipeline makes for landscape images.

    Raises:
        UnsupportedExportError: If the pipeline has no fixed size (give one).
    """
    size = None
    for step in test_pipeline_of(cfg):
        kind = str(step.get('type', '')).split('.')[-1]
        value = step.get('crop_size') if 'Crop' in kind else \
            step.get('scale') if kind.startswith('Resize') else None
        if value is not None:
            size = (value, value) if isinstance(value, int) else (value[1], value[0])
    if size is None:
        raise UnsupportedExportError('the test pipeline has no fixed input size (no Resize '
                                     'scale or CenterCrop); give --input-shape H W')
    divisor = int(cfg.model.get('data_preprocessor', {}).get('pad_size_divisor', 1))
    return _round_up(int(size[0]), divisor), _round_up(int(size[1]), divisor)


def export_model(config: Union[str, Config], checkpoint: str, output_dir: str,
                 fmt: str = 'onnx', algorithm: Union[str, dict] = 'classwisesaliencymap',
                 input_shape: Optional[Sequence[int]] = None,
                 verify: bool = True, name: Optional[str] = None) -> str:
    """Export a trained model with its saliency output; returns the written file.

    Loads the checkpoint (it must fit the config's model) and calls
    :func:`export_explain_model`.

    Args:
        config (str | Config): The model's config.
        checkpoint (str): Its weights, by path or URL (loaded weights-only).
        output_dir (str): Output folder.
        fmt (str): ``'onnx'`` or ``'openvino'``.
        algorithm (str | dict): Explain algorithm of the saliency output.
        input_shape (Sequence[int], optional): (H, W) of the network input;
            by default from the test pipeline (:func:`default_input_shape`).
        verify (bool): Check the exported model against PyTorch.
        name (str, optional): File name stem (a path's file name counts); by
            default the config file's name, or ``model``.

    Returns:
        str: Path of the ``.onnx`` or ``.xml`` file.
    """
    if fmt not in FORMATS:
        raise UnsupportedExportError(f'unknown format {fmt!r}; choose from: {", ".join(FORMATS)}')
    cfg = Config.fromfile(config) if isinstance(config, str) else config
    shape = tuple(input_shape) if input_shape else default_input_shape(cfg)
    model = build_model(cfg, checkpoint)
    classes = model.dataset_meta.get('classes')
    name = name or (config if isinstance(config, str) else 'model')
    return export_explain_model(model, output_dir, fmt, algorithm, shape, classes,
                                osp.splitext(osp.basename(name))[0], verify)


def export_explain_model(model: torch.nn.Module, output_dir: str, fmt: str = 'onnx',
                         algorithm: Union[str, dict] = 'classwisesaliencymap',
                         input_shape: Sequence[int] = (224, 224),
                         class_names: Optional[Sequence[str]] = None, name: str = 'model',
                         verify: bool = True, saliency: bool = True) -> str:
    """Export a model (already holding its weights) with its saliency output.

    The :class:`~mmxai.deploy.ExplainExportWrapper` is traced
    (``torch.onnx.export``, TorchScript exporter) with a dynamic batch axis
    and a fixed (H, W); OpenVINO IR is converted from that ONNX graph with
    ``openvino.convert_model`` and saved in float32. The
    :class:`~mmxai.deploy.ExportMetadata` is stored inside the file. With
    ``verify`` the exported model runs once at another batch size than traced
    and is compared with PyTorch, so a wrong export is an error, not a
    silently wrong model. Files appear complete or not at all.

    Args:
        model (nn.Module): An MMDetection detector or MMPretrain classifier.
        output_dir (str): Folder for ``<name>.onnx`` or ``<name>.xml`` + ``.bin``.
        fmt (str): ``'onnx'`` or ``'openvino'``.
        algorithm (str | dict): Explain algorithm of the saliency output.
        input_shape (Sequence[int]): (H, W) of the network input.
        class_names (Sequence[str], optional): Stored for the explain tools.
        name (str): File name stem.
        verify (bool): Check the exported model against PyTorch.
        saliency (bool): False exports the plain model (no ``saliency_map``;
            a baseline for measuring, which the explain tools do not run).

    Returns:
        str: Path of the ``.onnx`` or ``.xml`` file.

    Raises:
        UnsupportedExportError: For a model/algorithm pair that cannot be
            exported, or an export that does not reproduce PyTorch.
    """
    if fmt not in FORMATS:
        raise UnsupportedExportError(f'unknown format {fmt!r}; choose from: {", ".join(FORMATS)}')
    wrapper = ExplainExportWrapper(model.eval(), algorithm, saliency).eval()
    shape = (int(input_shape[0]), int(input_shape[1]))
    dummy = torch.randn(TRACE_BATCH, 3, *shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        wrapper(dummy)
    metadata = wrapper.metadata(shape, None if class_names is None else list(class_names))
    os.makedirs(output_dir, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=TEMPORARY_PREFIX, dir=output_dir) as work:
        onnx_path = osp.join(work, name + '.onnx')
        _export_onnx(wrapper, dummy, metadata, onnx_path)
        if fmt == 'onnx':
            written = [onnx_path]
        else:
            written = _convert_to_openvino(onnx_path, metadata, osp.join(work, name + '.xml'))
        if verify:
            _verify(wrapper, written[0], shape)
        targets = [osp.join(output_dir, osp.basename(path)) for path in written]
        for source, target in zip(written[::-1], targets[::-1]):  # .bin before .xml
            os.replace(source, target)
    return targets[0]


def _export_onnx(wrapper: ExplainExportWrapper, dummy: torch.Tensor, metadata: ExportMetadata,
                 path: str) -> None:
    import onnx
    dynamic = {name: {0: 'batch'} for name in [INPUT_NAME, *metadata.outputs]}
    with warnings.catch_warnings(), torch.no_grad():
        # The TorchScript exporter warns that it is deprecated and that
        # shapes become constants; H and W are meant to be constants here.
        warnings.simplefilter('ignore')
        torch.onnx.export(wrapper, (dummy,), path, dynamo=False, opset_version=OPSET,
                          input_names=[INPUT_NAME], output_names=metadata.outputs,
                          dynamic_axes=dynamic)
    proto = onnx.load(path)
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, metadata.to_json()
    onnx.save(proto, path)


def _convert_to_openvino(onnx_path: str, metadata: ExportMetadata, xml_path: str) -> list:
    import openvino as ov
    model = ov.convert_model(onnx_path)
    model.set_rt_info(metadata.to_json(), [METADATA_KEY])
    # save_model compresses weights to float16 unless told not to.
    ov.save_model(model, xml_path, compress_to_fp16=False)
    return [xml_path, osp.splitext(xml_path)[0] + '.bin']


def _verify(wrapper: ExplainExportWrapper, path: str, shape: Tuple[int, int]) -> None:
    inputs = torch.randn(TRACE_BATCH + 1, 3, *shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = [t.numpy() for t in wrapper(inputs)]
    session = open_session(path)
    got: Dict[str, np.ndarray] = session(inputs.numpy())
    for name, reference in zip(session.metadata.outputs, expected):
        scale = max(float(np.abs(reference).max()), 1.0)
        error = float(np.abs(got[name] - reference).max()) if got[name].shape == reference.shape \
            else float('inf')
        if error > 1e-3 * scale:
            raise UnsupportedExportError(
                f'the exported {osp.basename(path)} does not reproduce PyTorch: output {name} '
                f'differs by {error:.3g} at batch {len(inputs)} (shape {got[name].shape} vs '
                f'{reference.shape})')
