"""The base of adapters: what an explainer may read from one forward pass of a model.

An adapter registers forward hooks on the wrapped model's modules while the
model predicts, so the feature maps and head outputs that the prediction
computed anyway are kept for the explainers; nothing is run twice.
"""
from contextlib import contextmanager
from typing import Any, Dict, Iterator, List, Optional, Tuple

from mmengine.utils import to_2tuple
from torch import Tensor, nn

from ..geometry import CellGrid, StridedStep, strided_chain_grids
from ..utils.defaults import DEFAULT_SCORE_THR
from ..utils.errors import UnsupportedModelError

#: Activations whose outputs are never negative.
NON_NEGATIVE_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.Sigmoid, nn.Hardsigmoid, nn.Softplus,
                            nn.Softmax)
#: Leaf modules that keep the sign of their input: the layer before them decides.
SIGN_PRESERVING_MODULES = (nn.Identity, nn.Dropout, nn.Dropout2d, nn.Flatten, nn.Upsample,
                           nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d,
                           nn.AdaptiveMaxPool2d)
#: Leaf modules that read their input through a strided window (see :func:`strided_step`).
WINDOW_MODULES = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d, nn.Unfold)


class ModelAdapter:
    """Base of the adapters, one per model family.

    Args:
        model (nn.Module): The MMDetection or MMPretrain model (not wrapped).
    """

    #: ``'detection'`` or ``'classification'``: how the model predicts.
    task: str = ''
    #: Key of :data:`mmxai.explainers.ALGORITHMS` that serves this model.
    family: str = ''
    #: Where a feature cell's value sits in its stride block when the model has
    #: no priors to say it (padded CNNs: ``'start'``; patches: ``'center'``;
    #: see :meth:`mmxai.geometry.CellGrid.of_ratio`).
    cell_anchor: str = 'start'
    #: Whether the cells of the backbone's maps are placed where its strided
    #: layers put them (:func:`mmxai.geometry.strided_chain_grids`, read in
    #: every captured pass) rather than by :attr:`cell_anchor`.
    traces_cell_grids: bool = False
    #: Name, in :meth:`modules_to_capture`, of the module whose output
    #: :meth:`feature_maps` reads.
    feature_source: str = 'features'

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self._captured: Dict[str, Any] = {}
        self._features_non_negative: Optional[bool] = None
        self._strided_modules: Optional[List[nn.Module]] = None

    def modules_to_capture(self) -> Dict[str, nn.Module]:
        """Modules whose forward outputs are kept, by name."""
        raise NotImplementedError

    def inputs_to_capture(self) -> Dict[str, Tuple[nn.Module, int]]:
        """Modules whose forward input at a position is kept, by name."""
        return {'backbone_input': (self.model.backbone, 0)}

    @contextmanager
    def capture(self) -> Iterator[None]:
        """Keep the outputs (and inputs) of the modules to capture during the block."""
        self._captured.clear()
        handles = []
        for name, (module, position) in self.inputs_to_capture().items():
            def keep_input(_module: nn.Module, args: Any, name: str = name,
                           position: int = position) -> None:
                self._captured[name] = args[position]
            handles.append(module.register_forward_pre_hook(keep_input))
        for name, module in self.modules_to_capture().items():
            def keep(_module: nn.Module, _args: Any, output: Any, name: str = name) -> None:
                self._captured[name] = output
            handles.append(module.register_forward_hook(keep))
        steps: List[StridedStep] = []
        if self.traces_cell_grids:
            handles += [module.register_forward_hook(
                lambda module, args, output: steps.append(strided_step(module, args[0], output)))
                for module in self.strided_modules()]
        ran: List[nn.Module] = []
        if self._features_non_negative is None:  # once per adapter: watch the feature layers
            source = self.modules_to_capture()[self.feature_source]
            for leaf in source.modules():
                if next(leaf.children(), None) is None:
                    handles.append(leaf.register_forward_hook(
                        lambda module, _args, _output: ran.append(module)))
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()
        if ran:
            self._features_non_negative = _ends_non_negative(ran)
        if steps and 'backbone_input' in self._captured:
            self._captured['cell_grids'] = strided_chain_grids(steps, self.input_shape)

    def strided_modules(self) -> List[nn.Module]:
        """The backbone's leaf modules that read their input through a strided window."""
        if self._strided_modules is None:
            self._strided_modules = [
                module for module in self.model.backbone.modules()
                if isinstance(module, WINDOW_MODULES) and next(module.children(), None) is None
                and tuple(to_2tuple(module.stride)) != (1, 1)]
        return self._strided_modules

    @property
    def features_non_negative(self) -> bool:
        """Whether the feature maps come out of a non-negative activation.

        A fact about the model, not about the values of a batch: the last leaf
        module that ran inside the feature module (:attr:`feature_source`) in
        the first captured pass, skipping sign-preserving ones (pooling,
        dropout, identity), is a ReLU, ReLU6, Sigmoid-like activation (True)
        or anything else: a convolution, linear layer, LayerNorm, SiLU,
        GELU... (False).
        """
        if self._features_non_negative is None:
            raise RuntimeError(f'{type(self.model).__name__}: no captured forward pass yet; '
                               'explainers must run after a captured predict')
        return self._features_non_negative

    @property
    def input_shape(self) -> Tuple[int, int]:
        """(H, W) of the network input of the last captured pass (padded batch)."""
        return tuple(self.captured('backbone_input').shape[-2:])

    def captured(self, name: str) -> Any:
        """An output kept by the last :meth:`capture`."""
        if name not in self._captured:
            raise RuntimeError(f'{type(self.model).__name__}.{name} did not run during the '
                               'forward pass; explainers must run after a captured predict')
        return self._captured[name]

    def feature_maps(self) -> List[Tensor]:
        """Spatial feature maps (B, C, h, w), one per level."""
        raise NotImplementedError

    def level_grids(self) -> List[CellGrid]:
        """Where the cells of each of :meth:`feature_maps` sit on the network input."""
        return [self._backbone_grid(tuple(f.shape[-2:])) for f in self.feature_maps()]

    def grid_of(self, size: Tuple[int, int]) -> CellGrid:
        """Where the cells of a map of ``size`` sit on the network input.

        A feature level's grid if one has that size, else the backbone's
        resolution of that size (:attr:`traces_cell_grids`) or an even split
        of the input.
        """
        for features, grid in zip(self.feature_maps(), self.level_grids()):
            if tuple(features.shape[-2:]) == tuple(size):
                return grid
        return self._backbone_grid(tuple(size))

    def _backbone_grid(self, size: Tuple[int, int]) -> CellGrid:
        """The traced grid of the backbone's resolution ``size``, else :attr:`cell_anchor`'s."""
        traced = self._captured.get('cell_grids', {}).get(tuple(size))
        if traced is not None:
            return traced
        return CellGrid.of_ratio(self.input_shape, tuple(size), self.cell_anchor)

    @property
    def num_classes(self) -> int:
        """Number of classes the model predicts."""
        raise NotImplementedError

    #: Whether the class scores are a function of :meth:`feature_maps` alone.
    map_decides_scores = True

    def differentiable_scores(self, target_layer: Optional[str] = None,
                              score_thr: float = DEFAULT_SCORE_THR) -> Tuple[List[Tensor], Tensor]:
        """Target-layer activations and (B, K) class scores differentiable in them.

        Call under ``torch.enable_grad()``. With the default layer (None) the
        activations are the captured feature maps and only the part of the
        network after them runs again (the head); a named layer (a module
        name such as ``'backbone.layer3'``) runs the whole network again from
        the captured input.

        Args:
            target_layer (str, optional): Module name; None for the default.
            score_thr (float): Detection: class scores sum the per-position
                probabilities of at least this (the predicted boxes' scores),
                or take the largest if none is.

        Returns:
            tuple: (B, C, h, w) activations per level (requiring grad) and the
            (B, K) scores.
        """
        if target_layer is None:
            activations = [f.detach().requires_grad_() for f in self.feature_maps()]
            return activations, self.scores_after_features(activations, score_thr)
        modules = dict(self.model.named_modules())
        if target_layer not in modules:
            raise UnsupportedModelError(f'{type(self.model).__name__} has no module '
                                        f'{target_layer!r} to take gradients at')
        kept: List[Any] = []
        handle = modules[target_layer].register_forward_hook(
            lambda _module, _args, output: kept.append(output))
        try:
            scores = self.scores_from_input(self.captured('backbone_input').detach(), score_thr)
        finally:
            handle.remove()
        output = kept[-1]
        activations = list(output) if isinstance(output, (tuple, list)) else [output]
        if not all(isinstance(a, Tensor) and a.dim() == 4 for a in activations):
            raise UnsupportedModelError(f'{target_layer!r} does not output (B, C, h, w) maps')
        return activations, scores

    def scores_after_features(self, features: List[Tensor], score_thr: float) -> Tensor:
        """(B, K) differentiable class scores of the network after the feature maps."""
        raise NotImplementedError

    def scores_from_input(self, inputs: Tensor, score_thr: float) -> Tensor:
        """(B, K) differentiable class scores of the whole network on ``inputs``."""
        raise NotImplementedError


def strided_step(module: nn.Module, inputs: Tensor, output: Any) -> StridedStep:
    """The window of a convolution, pooling or unfold module as it ran on ``inputs``.

    MMCV's ``Conv2dAdaptivePadding`` pads TensorFlow's way inside its forward
    (its ``padding`` attribute stays 0): its padding before the first cell
    is computed here as it computes it.
    """
    from mmcv.cnn.bricks import Conv2dAdaptivePadding
    in_size = tuple(inputs.shape[-2:])
    kernel, stride = tuple(to_2tuple(module.kernel_size)), tuple(to_2tuple(module.stride))
    dilation = tuple(to_2tuple(getattr(module, 'dilation', 1)))
    padding = module.padding
    if isinstance(module, Conv2dAdaptivePadding):
        padding = tuple(max((-(-i // s) - 1) * s + (k - 1) * d + 1 - i, 0) // 2
                        for i, k, s, d in zip(in_size, kernel, stride, dilation))
    padding = (0, 0) if padding == 'valid' else tuple(to_2tuple(padding))
    if isinstance(output, Tensor) and output.dim() == 4:
        out_size = tuple(output.shape[-2:])
    else:  # Unfold: (B, C * k * k, L)
        out_size = tuple((i + 2 * p - d * (k - 1) - 1) // s + 1
                         for i, k, s, p, d in zip(in_size, kernel, stride, padding, dilation))
    return StridedStep(in_size, out_size, kernel, stride, padding, dilation)


def _ends_non_negative(ran: List[nn.Module]) -> bool:
    """Whether the last sign-changing leaf of ``ran`` (call order) is non-negative."""
    for module in reversed(ran):
        if not isinstance(module, SIGN_PRESERVING_MODULES):
            return isinstance(module, NON_NEGATIVE_ACTIVATIONS)
    return False
