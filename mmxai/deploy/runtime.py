"""Run an exported model with ONNX Runtime or OpenVINO: numpy in, named numpy arrays out."""
import os.path as osp
from typing import Any, Dict, List, Optional

import numpy as np

from ..utils.errors import ExportedModelError
from .metadata import INPUT_NAME, METADATA_KEY, ExportMetadata

#: Runtimes by name; ``None`` picks by file: ``.onnx`` ONNX Runtime, ``.xml`` OpenVINO.
RUNTIMES = ('onnxruntime', 'openvino')
EXPORTED_SUFFIXES = ('.onnx', '.xml')


def is_exported_model(path: str) -> bool:
    """Whether a path names an exported model (``.onnx`` or OpenVINO ``.xml``)."""
    return str(path).lower().endswith(EXPORTED_SUFFIXES)


def _missing(package: str, error: ImportError) -> ExportedModelError:
    return ExportedModelError(f'running exported models needs {package}: pip install '
                              f'"mmxai[deploy]" ({error})')


class RuntimeSession:
    """Base of the runtime sessions: ``session(inputs)`` -> ``{output name: array}``.

    Args:
        path (str): The exported model file.
        num_threads (int, optional): CPU threads; None lets the runtime decide.
    """

    name = ''

    def __init__(self, path: str, num_threads: Optional[int] = None) -> None:
        if not osp.isfile(path):
            raise ExportedModelError(f'exported model {path} does not exist')
        self.path = path
        self.num_threads = num_threads
        self.metadata = ExportMetadata.from_json(self._read_metadata(), path)

    def _read_metadata(self) -> str:
        raise NotImplementedError

    def __call__(self, inputs: np.ndarray, outputs: Optional[List[str]] = None
                 ) -> Dict[str, np.ndarray]:
        """Run the model on a (B, 3, H, W) float32 batch.

        Args:
            inputs (np.ndarray): The preprocessed network input.
            outputs (list[str], optional): Output names to compute; all by default.
        """
        raise NotImplementedError


class OnnxRuntimeSession(RuntimeSession):
    """An ONNX Runtime ``InferenceSession`` on the CPU."""

    name = 'onnxruntime'

    def __init__(self, path: str, num_threads: Optional[int] = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError as error:
            raise _missing('onnxruntime', error) from error
        options = ort.SessionOptions()
        if num_threads:
            options.intra_op_num_threads = num_threads
        try:
            self.session = ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])
        except Exception as error:  # noqa: B902 (ORT raises its own types)
            raise ExportedModelError(f'{path} is not an ONNX model ONNX Runtime can load: '
                                     f'{str(error).splitlines()[0]}') from error
        super().__init__(path, num_threads)

    def _read_metadata(self) -> str:
        text = self.session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
        if text is None:
            raise ExportedModelError(f'{self.path} was not exported by mmxai (no {METADATA_KEY!r} '
                                     'metadata); export it with tools/export.py')
        return text

    def __call__(self, inputs: np.ndarray, outputs: Optional[List[str]] = None
                 ) -> Dict[str, np.ndarray]:
        names = outputs or self.metadata.outputs
        return dict(zip(names, self.session.run(names, {INPUT_NAME: inputs})))


class OpenVINOSession(RuntimeSession):
    """An OpenVINO compiled model on the CPU, in float32.

    OpenVINO's CPU plugin computes in bfloat16 by default on processors that
    have it (logits then differ by ~1e-3); ``INFERENCE_PRECISION_HINT=f32``
    keeps the exported model's float32 results.
    """

    name = 'openvino'

    def __init__(self, path: str, num_threads: Optional[int] = None) -> None:
        try:
            import openvino as ov
        except ImportError as error:
            raise _missing('openvino', error) from error
        core = ov.Core()
        try:
            self.model = core.read_model(path)
        except Exception as error:  # noqa: B902 (OpenVINO raises RuntimeError subclasses)
            raise ExportedModelError(f'{path} is not a model OpenVINO can read: '
                                     f'{str(error).splitlines()[0]}') from error
        config = {'INFERENCE_PRECISION_HINT': 'f32'}
        if num_threads:
            config['INFERENCE_NUM_THREADS'] = num_threads
        super().__init__(path, num_threads)
        self.compiled = core.compile_model(self.model, 'CPU', config)
        self.request = self.compiled.create_infer_request()

    def _read_metadata(self) -> str:
        if self.path.lower().endswith('.onnx'):  # the ONNX frontend drops metadata_props
            return _onnx_metadata(self.path)
        return _ir_metadata(self.model, self.path)

    def __call__(self, inputs: np.ndarray, outputs: Optional[List[str]] = None
                 ) -> Dict[str, np.ndarray]:
        names = outputs or self.metadata.outputs
        results = self.request.infer({INPUT_NAME: inputs})
        return {name: results[self.compiled.output(name)] for name in names}


def _ir_metadata(model: Any, path: str) -> str:
    if not model.has_rt_info([METADATA_KEY]):
        raise ExportedModelError(f'{path} was not exported by mmxai (no {METADATA_KEY!r} '
                                 'rt_info); export it with tools/export.py')
    return model.get_rt_info([METADATA_KEY]).astype(str)


def _onnx_metadata(path: str) -> str:
    try:
        import onnx
    except ImportError as error:
        raise _missing('onnx', error) from error
    props = {p.key: p.value for p in onnx.load(path, load_external_data=False).metadata_props}
    if METADATA_KEY not in props:
        raise ExportedModelError(f'{path} was not exported by mmxai (no {METADATA_KEY!r} '
                                 'metadata); export it with tools/export.py')
    return props[METADATA_KEY]


def read_metadata(path: str) -> ExportMetadata:
    """The mmxai metadata of an exported model file, without compiling it.

    Raises:
        ExportedModelError: For a missing file or one that mmxai did not export.
    """
    if not osp.isfile(path):
        raise ExportedModelError(f'exported model {path} does not exist')
    if path.lower().endswith('.onnx'):
        return ExportMetadata.from_json(_onnx_metadata(path), path)
    try:
        import openvino as ov
    except ImportError as error:
        raise _missing('openvino', error) from error
    return ExportMetadata.from_json(_ir_metadata(ov.Core().read_model(path), path), path)


def default_algorithm(checkpoint: str) -> str:
    """The algorithm to explain with when none is asked: an exported model's own.

    Returns:
        str: The exported model's algorithm, or ``'classwisesaliencymap'``
        for a PyTorch checkpoint.
    """
    return read_metadata(checkpoint).algorithm if is_exported_model(checkpoint) \
        else 'classwisesaliencymap'


def open_session(path: str, runtime: Optional[str] = None,
                 num_threads: Optional[int] = None) -> RuntimeSession:
    """Open an exported model with a runtime.

    Args:
        path (str): ``.onnx`` (ONNX Runtime or OpenVINO) or ``.xml`` (OpenVINO IR).
        runtime (str, optional): ``'onnxruntime'`` or ``'openvino'``; by
            default ONNX Runtime for ``.onnx`` and OpenVINO for ``.xml``.
        num_threads (int, optional): CPU threads.

    Raises:
        ExportedModelError: For a file that cannot be run as asked.
    """
    runtime = runtime or ('openvino' if str(path).lower().endswith('.xml') else 'onnxruntime')
    if runtime not in RUNTIMES:
        raise ExportedModelError(f'unknown runtime {runtime!r}; choose from: {", ".join(RUNTIMES)}')
    if runtime == 'onnxruntime' and not str(path).lower().endswith('.onnx'):
        raise ExportedModelError(f'ONNX Runtime runs .onnx files, not {path}')
    session = OnnxRuntimeSession if runtime == 'onnxruntime' else OpenVINOSession
    return session(path, num_threads)
