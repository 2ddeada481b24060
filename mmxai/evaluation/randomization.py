"""Cascading model parameter randomisation (Adebayo et al., NeurIPS 2018).

The cascade re-initialises a model's parts from the top (the layers that
make the prediction) down: the head(s), the neck, then the backbone's stages
from the last. Step ``k`` keeps steps ``1..k-1`` random and randomises one
more part, so step ``k``'s model has every part of steps ``1..k`` random.
"""
import copy
from typing import List, Sequence, Union

import torch
from torch import nn

from ..utils.errors import CascadeError

#: Standard deviation of the truncated normal that re-draws parameters no
#: submodule's ``reset_parameters`` covers (a ViT's position embedding, mmcv's
#: ``Scale``): the initialisation transformers use for such tensors.
FALLBACK_STD = 0.02


#: Children that make the prediction, randomised first in this order.
PREDICTION_HEADS = ('bbox_head', 'roi_head', 'mask_head', 'panoptic_head', 'head')


def _has_parameters(module: nn.Module) -> bool:
    return any(True for _ in module.parameters())


def _backbone_stages(backbone: nn.Module, prefix: str) -> List[List[str]]:
    """The backbone's parts from the last: its stages, then the rest (the stem) in one step."""
    stage_names = list(getattr(backbone, 'res_layers', None) or [])  # the ResNet family
    if stage_names:
        rest = [f'{prefix}.{name}' for name, module in backbone.named_children()
                if name not in stage_names and _has_parameters(module)]
        return [[f'{prefix}.{name}'] for name in reversed(stage_names)] + ([rest] if rest else [])
    parts: List[str] = []
    for name, module in backbone.named_children():
        if isinstance(module, nn.ModuleList):  # a list of blocks (ViT layers): one step each
            parts += [f'{prefix}.{name}.{index}' for index, block in enumerate(module)
                      if _has_parameters(block)]
        elif _has_parameters(module):
            parts.append(f'{prefix}.{name}')
    return [[name] for name in reversed(parts)]


def default_cascade(model: nn.Module) -> List[List[str]]:
    """Module names to randomise per step, top layer first.

    The heads that make the prediction first (:data:`PREDICTION_HEADS`: a
    DETR-style detector defines its ``bbox_head`` before its transformer),
    then the model's other parts after the backbone in reverse order of
    definition (MMDetection: ``rpn_head``, then ``neck``; DINO: its
    training-only ``dn_query_generator``, which repeats the step before it,
    then the decoder, encoder and neck; MMPretrain: ``neck``), then the
    backbone's stages from
    the last (ResNets: ``layer4`` ... ``layer1``, then the stem's layers
    together; other backbones: each child from the last, each block of a
    block list on its own). Parts without parameters (a global average
    pooling neck) are left out; so are parameters the backbone holds itself
    (a ViT's position embedding: name ``backbone`` as a step to include them).

    Args:
        model (nn.Module): An MMDetection detector or MMPretrain classifier.

    Returns:
        list[list[str]]: Module names (``model.named_modules()``) per step.
    """
    parts = [name for name, module in reversed(list(model.named_children()))
             if name not in ('backbone', 'data_preprocessor') and _has_parameters(module)]
    heads = [name for name in PREDICTION_HEADS if name in parts]
    steps = [[name] for name in heads + [name for name in parts if name not in heads]]
    backbone = getattr(model, 'backbone', None)
    if isinstance(backbone, nn.Module):
        steps += _backbone_stages(backbone, 'backbone')
    return steps


def step_name(modules: Sequence[str]) -> str:
    """A step's label: its module names joined by ``+``."""
    return '+'.join(modules)


def parse_cascade(steps: Sequence[Union[str, Sequence[str]]]) -> List[List[str]]:
    """Steps given as module names, comma-separated names or lists of names."""
    parsed = []
    for step in steps:
        names = [n.strip() for n in step.split(',')] if isinstance(step, str) else list(step)
        names = [n for n in names if n]
        if not names:
            raise CascadeError(f'cascade step {step!r} names no module')
        parsed.append(names)
    return parsed


def _reinitialise(module: nn.Module) -> int:
    """Re-draw every parameter of ``module``; returns how many values were re-drawn."""
    covered = set()
    for submodule in module.modules():
        reset = getattr(submodule, 'reset_parameters', None)
        if callable(reset):
            reset()  # PyTorch's own initialisation of the layer (norms: running stats too)
            covered.update(id(p) for p in submodule.parameters(recurse=False))
    with torch.no_grad():
        for parameter in module.parameters():
            if id(parameter) not in covered:
                nn.init.trunc_normal_(parameter, std=FALLBACK_STD)
    return sum(p.numel() for p in module.parameters())


def randomize_modules(model: nn.Module, names: Sequence[str], seed: int) -> int:
    """Re-initialise the named submodules of ``model`` in place, reproducibly.

    Each layer with a ``reset_parameters`` method (convolutions, linear and
    normalisation layers: PyTorch's default initialisation; batch norms also
    reset their running statistics) re-initialises itself; parameters no
    such layer owns are drawn from a truncated normal (std
    :data:`FALLBACK_STD`). The global random state is left as it was.

    Args:
        model (nn.Module): The model (a copy: it is changed).
        names (Sequence[str]): Names from ``model.named_modules()``.
        seed (int): Seed of the draw.

    Returns:
        int: Number of parameter values re-drawn.

    Raises:
        CascadeError: If a name is not a module of the model or the module has
            no parameters.
    """
    modules = dict(model.named_modules())
    for name in names:
        if name not in modules:
            top = ', '.join(n for n, _ in model.named_children() if n != 'data_preprocessor')
            raise CascadeError(f'{type(model).__name__} has no module {name!r} to randomise '
                               f'(its parts: {top})')
        if not _has_parameters(modules[name]):
            raise CascadeError(f'cascade step {name!r} has nothing to randomise: '
                               f'{type(modules[name]).__name__} has no parameters')
    devices = sorted({p.device.index or 0 for p in model.parameters() if p.device.type == 'cuda'})
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        return sum(_reinitialise(modules[name]) for name in names)


def cascade_models(model: nn.Module, steps: Sequence[Sequence[str]],
                   seed: int = 0) -> List[nn.Module]:
    """The trained model followed by one progressively randomised copy per step.

    Args:
        model (nn.Module): The trained model (left unchanged).
        steps (Sequence[Sequence[str]]): Module names per step, top layer first.
        seed (int): Step ``k`` (from 0) is drawn with seed ``seed + k``.

    Returns:
        list[nn.Module]: ``[model, copy after step 1, copy after steps 1-2, ...]``,
        in the model's mode (eval for inference).
    """
    models = [model]
    current = copy.deepcopy(model)
    for index, names in enumerate(steps):
        randomize_modules(current, names, seed + index)
        models.append(current if index + 1 == len(steps) else copy.deepcopy(current))
    return models
