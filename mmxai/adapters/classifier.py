"""The adapter of MMPretrain image classifiers with a spatial feature map."""
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch.nn.functional as F
from torch import Tensor, nn

from ..utils.errors import UnsupportedModelError
from .base import ModelAdapter


class InnerMap(NamedTuple):
    """Where a backbone computes the spatial map it does not output, and what it does next.

    Attributes:
        source (nn.Module): The module whose output is the last (B, C, h, w)
            map (or TinyViT's (B, h*w, C) tokens of it).
        pools (bool): Whether the backbone averages that map over positions
            next, so that ``finish`` takes (n, C) vectors instead of maps.
        finish (callable): The backbone's own modules after the map (or
            after the average): its final norm, or its classifier; returns
            its last output.
    """

    source: nn.Module
    pools: bool
    finish: Callable[[Tensor], Tensor]


def pooling_stage(backbone: nn.Module) -> Optional[Tuple[nn.Module, nn.Module]]:
    """The last stage and final norm of a backbone that pools before that norm.

    ConvNeXt (v1, v2), EdgeNeXt, HorNet and TinyViT with
    ``gap_before_final_norm`` average their last stage's map and only then
    apply the norm of that output (``norm{i}``): their outputs are (B, C)
    vectors, while the stage itself computes a spatial map.

    Returns:
        tuple, optional: ``(stage, norm)`` of the last output index, or None
        for backbones that do not pool before their final norm.
    """
    if not getattr(backbone, 'gap_before_final_norm', False):
        return None
    stages, indices = getattr(backbone, 'stages', None), getattr(backbone, 'out_indices', None)
    if stages is None or not indices:
        return None
    last = max(index % len(stages) for index in indices)
    norm = getattr(backbone, f'norm{last}', None)
    return None if norm is None else (stages[last], norm)


def layer_norm_with_statistics_of(norm: nn.Module, vectors: Tensor,
                                  wholes: Tensor) -> Optional[Tensor]:
    """A layer norm over the channels of (n, C) vectors, with the mean and variance of their wholes.

    Recipro-CAM scores each position's share of an image's pooled vector. A
    layer norm after the pooling would rescale every share to the spread of
    a whole image's vector, so that each position alone is scored as if it
    were the image: the class probabilities saturate over most of the map.
    With the mean and variance of the image's own pooled vector, the norm is
    the affine map it applied to that image (as a BatchNorm in eval mode is
    one), and the whole vector still gives the model's output.

    Args:
        norm (nn.Module): The norm the model applies after pooling.
        vectors (Tensor): (B * P, C) shares, P consecutive rows per image.
        wholes (Tensor): (B, C) each image's pooled vector.

    Returns:
        Tensor, optional: (B * P, C) normalised shares; None when ``norm`` is
        not a layer norm over the channels (a one-dimensional
        ``normalized_shape`` with ``eps``, ``weight`` and ``bias``).
    """
    shape = getattr(norm, 'normalized_shape', None)
    if shape is None or tuple(shape) != (vectors.shape[-1], ) or not hasattr(norm, 'eps'):
        return None
    mean = wholes.mean(1, keepdim=True)
    variance = (wholes - mean).pow(2).mean(1, keepdim=True)
    shares = vectors.reshape(wholes.shape[0], -1, vectors.shape[-1])
    normalised = ((shares - mean[:, None]) * (variance[:, None] + norm.eps).rsqrt()
                  ).reshape(vectors.shape)
    if getattr(norm, 'weight', None) is not None:
        normalised = normalised * norm.weight
    if getattr(norm, 'bias', None) is not None:
        normalised = normalised + norm.bias
    return normalised


def inner_classifier(backbone: nn.Module) -> Optional[InnerMap]:
    """The last map and classifier of backbones that end in their own classifier.

    VGG with ``num_classes`` flattens its last map into its ``classifier``;
    Inception-v3 averages ``Mixed_7c`` and applies ``dropout`` and ``fc``.
    Their heads (``ClsHead``, ``MultiLabelClsHead``) have no layers.
    """
    from mmpretrain.models.backbones import VGG, InceptionV3
    if isinstance(backbone, VGG) and backbone.num_classes > 0:
        layers = getattr(backbone, backbone.module_name)
        last = layers[backbone.range_sub_modules[-1][1] - 1]
        return InnerMap(last, False, lambda maps: backbone.classifier(maps.flatten(1)))
    if isinstance(backbone, InceptionV3):
        return InnerMap(backbone.Mixed_7c, True, lambda pooled: backbone.fc(
            backbone.dropout(pooled)))
    return None


def token_grid_module(backbone: nn.Module) -> Optional[Tuple[str, nn.Module]]:
    """Where a backbone whose output is a token sequence shows that sequence's grid.

    MLP-Mixer's final tokens are its patch grid (``patch_embed`` returns the
    grid's size with the tokens); EfficientFormer's last stage flattens a
    (B, C, h, w) map (its ``Flat`` module) into the tokens it outputs.

    Returns:
        tuple, optional: ``('patch_embed', module)`` (its output holds
        ``(tokens, (h, w))``) or ``('flattened', module)`` (its input is the
        map), or None.
    """
    from mmpretrain.models.backbones.efficientformer import Flat
    flats = [m for m in backbone.modules() if isinstance(m, Flat)]
    if flats:
        return 'flattened', flats[-1]
    patch_embed = getattr(backbone, 'patch_embed', None)
    if patch_embed is not None and getattr(backbone, 'patch_resolution', None) is not None:
        return 'patch_embed', patch_embed
    return None


def two_branch_stage(backbone: nn.Module) -> Optional[nn.Module]:
    """The last stage of a backbone with a convolution and a transformer branch.

    Conformer's stages return ``(conv map, tokens)``; it outputs the average
    of the last conv map with the CLS token, and its head scores both. The
    conv map is the spatial map to show, but the class scores are not a
    function of it alone.
    """
    from mmpretrain.models.backbones import Conformer
    if not isinstance(backbone, Conformer):
        return None
    return getattr(backbone, f'conv_trans_{backbone.fin_stage - 1}')


def combined_logits(output: Any) -> Tensor:
    """(n, K) logits of a head's forward output as its ``predict`` combines them.

    ``ConformerHead`` returns the scores of its convolution and transformer
    branches and predicts with their sum; every other head returns a tensor.
    """
    if isinstance(output, (tuple, list)):
        return sum(output)
    return output


class ClassifierAdapter(ModelAdapter):
    """Adapter for MMPretrain ``ImageClassifier`` models (backbone, neck, head).

    The feature map is the backbone's last (B, C, h, w) output (CNNs, Swin),
    its last (B, C, h*w) token output on the tokens' grid where a sequence
    pooling neck follows (MLP-Mixer, EfficientFormer; see
    :func:`token_grid_module`),
    the output of a neck that fuses all of them (HRNet's ``HRFuseScales``),
    or, for backbones that pool before their final norm (see
    :func:`pooling_stage`) or end in their own classifier (see
    :func:`inner_classifier`), the map inside them, read with a forward hook.
    Scores always come from the model's own modules after that map (the
    backbone's pooling and final norm or classifier where it has them, the
    neck, the head's forward), with the head's activation: a softmax for
    single-label heads, a sigmoid for multi-label heads
    (``MultiLabelClsHead`` and subclasses). Its cells sit at the centres of
    the windows the backbone's strided layers read
    (:func:`mmxai.geometry.strided_chain_grids`): pixel ``32 k`` for a
    ResNet, the centre of a 32-pixel block for ConvNeXt, Swin or VGG.
    """

    task = 'classification'
    family = 'classification'
    feature_source = 'backbone'

    traces_cell_grids = True

    def __init__(self, model: nn.Module) -> None:
        super().__init__(model)
        self.final_norm: Optional[nn.Module] = None
        self.inner_map = inner_classifier(model.backbone)
        stage = pooling_stage(model.backbone)
        if stage is not None:
            self.final_norm = stage[1]
            self.inner_map = InnerMap(stage[0], True, self._final_norm_of_pooled)
        if self.inner_map is not None:
            self.feature_source = 'inner_map'
        necks = getattr(model, 'neck', None)
        necks = list(necks) if isinstance(necks, nn.Sequential) else \
            [] if necks is None else [necks]
        from mmpretrain.models.necks import HRFuseScales
        #: A neck that fuses every backbone output into the map to explain (HRNet).
        self.fusing_neck = necks[0] if necks and isinstance(necks[0], HRFuseScales) else None
        #: The neck modules that run after the feature map.
        self.necks_after_map = necks[1:] if self.fusing_neck is not None else necks
        if self.fusing_neck is not None:
            self.feature_source = 'fused'
        #: Where the grid of a (B, C, N) token output shows (see :func:`token_grid_module`).
        self.token_grid = token_grid_module(model.backbone) if self.inner_map is None else None
        #: Conformer's last stage, whose conv map is shown (see :func:`two_branch_stage`).
        self.branch_stage = two_branch_stage(model.backbone)
        if self.branch_stage is not None:
            self.feature_source = 'branch_stage'

    def modules_to_capture(self) -> Dict[str, nn.Module]:
        modules = {'backbone': self.model.backbone}
        if self.inner_map is not None:
            modules['inner_map'] = self.inner_map.source
        if self.fusing_neck is not None:
            modules['fused'] = self.fusing_neck
        if self.token_grid is not None and self.token_grid[0] == 'patch_embed':
            modules['token_grid'] = self.token_grid[1]
        if self.branch_stage is not None:
            modules['branch_stage'] = self.branch_stage
        return modules

    def inputs_to_capture(self) -> Dict[str, Tuple[nn.Module, int]]:
        inputs = super().inputs_to_capture()
        if self.final_norm is not None:
            inputs['final_norm_input'] = (self.final_norm, 0)
        if self.token_grid is not None and self.token_grid[0] == 'flattened':
            inputs['token_grid'] = (self.token_grid[1], 0)
        return inputs

    def _grid_of_tokens(self, tokens: Tensor) -> Optional[Tuple[int, int]]:
        """(h, w) of a (B, C, N) token output with N = h * w, or None."""
        if self.token_grid is None:
            return None
        captured = self.captured('token_grid')
        grid = tuple(captured[1]) if self.token_grid[0] == 'patch_embed' \
            else tuple(captured.shape[-2:])
        return grid if len(grid) == 2 and grid[0] * grid[1] == tokens.shape[-1] else None

    def _final_norm_of_pooled(self, pooled: Tensor) -> Tensor:
        """The backbone's final norm on (n, C) pooled vectors, shaped as the backbone gives them."""
        norm_input = self.captured('final_norm_input')
        return self.final_norm(pooled.reshape(*pooled.shape, *([1] * (norm_input.dim() - 2)))
                               ).flatten(1)

    @property
    def map_decides_scores(self) -> bool:
        """Whether the class scores are a function of the feature map alone.

        Methods that score or differentiate the rest of the model after the
        map (Recipro-CAM, the gradient methods at their default layer) need
        it; Conformer's transformer branch also scores its classes.
        """
        return self.branch_stage is None

    def feature_maps(self) -> List[Tensor]:
        if self.branch_stage is not None:
            return [self.captured('branch_stage')[0]]
        if self.fusing_neck is not None:
            return [self.captured('fused')[-1]]
        if self.inner_map is not None:
            inner = self.captured('inner_map')
            if inner.dim() == 3:  # TinyViT: (B, h*w, C) tokens of the stage's grid
                height, width = self.inner_map.source.resolution
                return [inner.transpose(1, 2).unflatten(2, (height, width))]
            return [inner]
        outputs = self.captured('backbone')
        last = outputs[-1] if isinstance(outputs, (tuple, list)) else outputs
        grid = self._grid_of_tokens(last) if isinstance(last, Tensor) and last.dim() == 3 \
            else None
        if grid is not None and self._sequence_pooling_neck():
            return [last.unflatten(2, grid)]  # MLP-Mixer, EfficientFormer: (B, C, h*w)
        if not (isinstance(last, Tensor) and last.dim() == 4):
            given = f'a {tuple(last.shape)} tensor' if isinstance(last, Tensor) \
                else type(last).__name__
            raise UnsupportedModelError(
                f'{type(self.model.backbone).__name__} outputs {given}, not a (B, C, h, w) '
                'feature map: no spatial map to explain')
        return [last]

    @property
    def multi_label(self) -> bool:
        """Whether the head scores classes independently (sigmoid)."""
        from mmpretrain.models.heads import MultiLabelClsHead
        return isinstance(self.model.head, MultiLabelClsHead)

    @property
    def pools_to_vectors(self) -> bool:
        """Whether the model averages the feature map over positions right after it.

        A plain global average pooling neck, or a backbone that pools before
        its final norm: then a Recipro-CAM mosaic, pooled, is just
        ``F[:, :, i, j] / (h * w)`` and :meth:`scores_from_pooled` scores it.
        """
        if self.inner_map is not None:
            return self.inner_map.pools
        from mmpretrain.models.necks import GlobalAveragePooling
        necks = self.necks_after_map
        return len(necks) == 1 and isinstance(necks[0], GlobalAveragePooling) \
            and isinstance(necks[0].gap, nn.AdaptiveAvgPool2d) or self._sequence_pooling_neck()

    def _sequence_pooling_neck(self) -> bool:
        """Whether the only neck averages the tokens of a backbone whose tokens have a grid.

        That neck is ``GlobalAveragePooling(dim=1)`` (MLP-Mixer, EfficientFormer).
        """
        from mmpretrain.models.necks import GlobalAveragePooling
        necks = self.necks_after_map
        return self.token_grid is not None and len(necks) == 1 \
            and isinstance(necks[0], GlobalAveragePooling) \
            and isinstance(necks[0].gap, nn.AdaptiveAvgPool1d)

    def probabilities(self, logits: Tensor) -> Tensor:
        """Class probabilities of (n, K) logits: softmax, or sigmoid for multi-label heads."""
        return logits.sigmoid() if self.multi_label else F.softmax(logits, dim=1)

    def head_logits(self, features: Sequence[Tensor]) -> Tensor:
        """(n, K) logits of the necks after the map (if any) and head on ``features``."""
        features = tuple(features)
        for neck in self.necks_after_map:
            features = neck(features)
        return combined_logits(self.model.head(tuple(features)))

    def pooled_logits(self, pooled: Tensor, wholes: Optional[Tensor] = None) -> Tensor:
        """(n, K) logits of the model after its average pooling, on (n, C) pooled vectors.

        The backbone's final norm (called on the shape the backbone gives it),
        or the neck's pooling, has already happened or happens here; then the
        head's forward.

        Args:
            pooled (Tensor): (n, C) vectors, or shares of them.
            wholes (Tensor, optional): (B, C) the images' own pooled vectors
                when ``pooled`` holds n / B shares of each: a layer norm
                after the pooling then uses their statistics (see
                :func:`layer_norm_with_statistics_of`).
        """
        if self.final_norm is not None and wholes is not None:
            normalised = layer_norm_with_statistics_of(self.final_norm, pooled, wholes)
            if normalised is not None:
                return self.head_logits((normalised,))
        if self.inner_map is not None:
            return self.head_logits((self.inner_map.finish(pooled),))
        return combined_logits(self.model.head((pooled,)))

    def scores_from_pooled(self, shares: Tensor, wholes: Tensor) -> Tensor:
        """Class probabilities of shares of the images' pooled feature vectors.

        Args:
            shares (Tensor): (B * P, C), P consecutive rows per image.
            wholes (Tensor): (B, C) each image's pooled vector.
        """
        return self.probabilities(self.pooled_logits(shares, wholes))

    def feature_map_logits(self, feature_maps: Tensor) -> Tensor:
        """(n, K) logits of the model after its feature map, on (n, C, h, w) maps."""
        if self.inner_map is not None:
            if self.inner_map.pools:
                return self.pooled_logits(feature_maps.mean((-2, -1)))
            return self.head_logits((self.inner_map.finish(feature_maps),))
        if self._sequence_pooling_neck():  # back to the (n, C, N) tokens the neck takes
            return self.head_logits((feature_maps.flatten(2),))
        return self.head_logits((feature_maps,))

    def scores_from_feature_maps(self, feature_maps: Tensor) -> Tensor:
        """Class probabilities of feature maps run through the rest of the model."""
        return self.probabilities(self.feature_map_logits(feature_maps))

    def scores_after_features(self, features: List[Tensor], score_thr: float) -> Tensor:
        return self.feature_map_logits(features[-1])  # logits, as Grad-CAM differentiates

    def scores_from_input(self, inputs: Tensor, score_thr: float) -> Tensor:
        return combined_logits(self.model(inputs, mode='tensor'))

    def probabilities_of_inputs(self, inputs: Tensor) -> Tensor:
        """(n, K) class probabilities of preprocessed (e.g. masked) inputs."""
        return self.probabilities(self.scores_from_input(inputs, 0.0))

    @property
    def num_classes(self) -> int:
        """Classes the model predicts.

        The head's ``num_classes``; else the backbone's, for backbones that
        end in their own classifier (LeNet, Inception-v3, VGG with
        ``num_classes``) under a plain ``ClsHead`` or ``MultiLabelClsHead``;
        else the outputs of the head's last linear or convolution layer
        (``CSRAClsHead`` keeps its class count only in its layers), or of the
        backbone's under a head without layers (Inception-v3 keeps its count
        only in ``fc``).
        """
        for module in (self.model.head, self.model.backbone):
            classes = getattr(module, 'num_classes', None)
            if isinstance(classes, int) and classes > 0:
                return classes
        for module in (self.model.head, self.model.backbone):
            layers = [m for m in module.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
            if layers:
                break
        if layers:
            last = layers[-1]
            return last.out_features if isinstance(last, nn.Linear) else last.out_channels
        raise UnsupportedModelError(
            f'{type(self.model.head).__name__} after {type(self.model.backbone).__name__} '
            'does not say how many classes it predicts (no num_classes, no layers)')
