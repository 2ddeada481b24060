"""What an exported model needs to be run: stored inside the ONNX / IR file itself."""
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Tuple

#: Key of the JSON metadata in ONNX ``metadata_props`` and OpenVINO ``rt_info``.
METADATA_KEY = 'mmxai'
#: Name of the saliency output of every exported model.
SALIENCY_OUTPUT = 'saliency_map'
#: Name of the network input of every exported model.
INPUT_NAME = 'inputs'
FORMAT_VERSION = 2


@dataclass
class ExportMetadata:
    """How an exported explain-mode model was made and how to read its outputs.

    Args:
        task (str): ``'detection'`` or ``'classification'``.
        family (str): Model family of :data:`mmxai.explainers.ALGORITHMS`.
        algorithm (str): ``--explain-algorithm`` name of the saliency output.
        class_wise (bool): Whether ``saliency_map`` holds one map per class.
        num_classes (int): Classes the model predicts.
        input_shape (tuple): (H, W) of the network input (batch is dynamic).
        cell_grid (tuple): Where the map's cells sit on the network input:
            (stride_y, stride_x, origin_y, origin_x), see
            :class:`mmxai.geometry.CellGrid`.
        value_range (tuple, optional): The method's fixed value range, if any.
        outputs (list[str]): Output names in order, ``saliency_map`` last.
        head_outputs (list[list[str]]): Detection: per item of the head's
            ``forward()`` tuple, its per-level output names.
        class_names (list[str], optional): Class names the model was trained with.
        format_version (int): Version of this metadata layout.
    """

    task: str
    family: str
    algorithm: str
    class_wise: bool
    num_classes: int
    input_shape: Tuple[int, int]
    cell_grid: Tuple[float, float, float, float]
    value_range: Optional[Tuple[float, float]]
    outputs: List[str]
    head_outputs: List[List[str]] = field(default_factory=list)
    class_names: Optional[List[str]] = None
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        """The metadata as one JSON string."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str, source: str = 'model') -> 'ExportMetadata':
        """Parse :meth:`to_json`'s output.

        Raises:
            ValueError: If the text is not mmxai export metadata of a known version.
        """
        data: Dict[str, Any] = json.loads(text)
        if data.get('format_version') != FORMAT_VERSION:
            raise ValueError(f'{source} has mmxai export metadata of version '
                             f'{data.get("format_version")}; this mmxai reads {FORMAT_VERSION}')
        data['input_shape'] = tuple(data['input_shape'])
        data['cell_grid'] = tuple(data['cell_grid'])
        if data['value_range'] is not None:
            data['value_range'] = tuple(data['value_range'])
        return cls(**data)
