"""Turn a training or test config into an explain-mode config."""
import copy
import hashlib
import inspect
import json
import os
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence, Union

from mmengine.config import Config, ConfigDict

from .. import version
from ..checkpoint import is_local_checkpoint
from ..deploy import is_exported_model
from ..engine.hooks import ExplainHook, PrepareExplainHook
from ..models import model_config
from ..utils import UserInputError
from ..utils.config import innermost_dataset, input_channels, test_pipeline_of

#: Meta keys every pack transform must keep for maps to be placed correctly.
EXPLAIN_META_KEYS = ('img_id', 'sample_idx', 'img_path', 'ori_shape', 'img_shape',
                     'scale_factor', 'flip', 'flip_direction', 'crop_bbox', 'rel_path',
                     'output_stem', 'target_boxes', 'border')


def _is(step: dict, *names: str) -> bool:
    kind = step.get('type', '')
    kind = kind if isinstance(kind, str) else getattr(kind, '__name__', '')
    return any(kind.split('.')[-1].startswith(name) for name in names)


def inference_pipeline(pipeline: Sequence[dict], channels: int = 3) -> List[dict]:
    """The test pipeline without annotation loading, keeping the explain meta keys.

    Args:
        pipeline (list[dict]): The config's test pipeline.
        channels (int): Channels the model takes (:func:`~mmxai.utils.config.input_channels`).
            A pipeline that loads no image (MNIST's reads arrays from its
            dataset) gets a loading step first, in grayscale for 1 channel.

    Raises:
        UserInputError: If the pipeline loads precomputed proposals, which
            images given alone do not have.

    MMCV's ``LoadImageFromFile`` becomes :class:`mmxai.LoadImageChecked` (same
    arguments, same images), which names broken files.
    """
    steps = []
    for step in copy.deepcopy(list(pipeline)):
        if _is(step, 'LoadAnnotations', 'LoadPanopticAnnotations', 'LoadTrackAnnotations'):
            continue
        if _is(step, 'LoadProposals'):
            raise UserInputError('the model reads precomputed proposals (LoadProposals, as '
                                 'Fast R-CNN does), which images alone do not have; explain '
                                 "the config's own test set, or a detector with its own RPN")
        if _is(step, 'Pack'):
            keys = tuple(step.get('meta_keys', ()))
            step['meta_keys'] = keys + tuple(k for k in EXPLAIN_META_KEYS if k not in keys)
        steps.append(step)
    if not steps or not _is(steps[0], 'LoadImage', 'mmxai.LoadImage'):
        steps.insert(0, dict(type='LoadImageFromFile',
                             color_type='grayscale' if channels == 1 else 'color'))
    return _with_checked_loader(steps)


def explain_config(cfg: Config,
                   checkpoint: str,
                   output_dir: str,
                   inputs: Optional[Sequence[str]] = None,
                   explain: Optional[Dict[str, Any]] = None,
                   write: Optional[Dict[str, Any]] = None,
                   batch_size: Optional[int] = None,
                   resume: bool = True,
                   target_boxes: Optional[str] = None) -> Config:
    """Return a copy of ``cfg`` whose ``runner.test()`` writes saliency maps.

    With ``inputs`` the test set becomes those images (folders searched
    recursively), read with the test pipeline minus annotation loading and no
    evaluator; broken files are reported and skipped, every image is
    explained once even on several processes (no sampler round-up) and,
    with ``resume``, images already explained into ``output_dir`` with the
    same settings are not explained again. Without ``inputs``, the config's
    own test set and evaluator are kept (a broken file is an error there: a
    metric over fewer images would be wrong).

    Example::

        explain_config(cfg, 'iter_400.pth', 'out', inputs=['images/'],
                       explain=dict(explainer='gradcam', target_classes=['circle']),
                       write=dict(save_raw=True))

    Args:
        cfg (Config): A training or test config.
        checkpoint (str): Weights to explain, by path or URL (anything
            MMEngine's ``CheckpointLoader`` takes; the config's
            :class:`~mmxai.engine.hooks.PrepareExplainHook` makes the Runner
            load it weights-only), or a model exported by ``tools/export.py``
            (``.onnx`` / ``.xml``: run with ONNX Runtime / OpenVINO, see
            :func:`use_exported_model`).
        output_dir (str): Output root.
        inputs (Sequence[str], optional): Image folders or files.
        explain (dict, optional): What is explained: settings of
            :class:`~mmxai.engine.hooks.PrepareExplainHook` (``explainer``,
            the algorithm; ``explain_all_classes``, ``target_classes``,
            ``score_thr``, ``box_targets``: ``'predictions'``,
            ``'ground_truth'`` (the config's test set only) or ``'given'``).
        write (dict, optional): How it is written: settings of
            :class:`~mmxai.engine.hooks.ExplainHook` (``overlay_weight``,
            ``save_raw``, ``normalize``, ``manifest_meta``, ``write_workers``).
        batch_size (int, optional): Images per batch.
        resume (bool): In folder mode, keep what an earlier run with the same
            settings finished.
        target_boxes (str, optional): JSON file of boxes per input image (see
            :func:`mmxai.datasets.load_target_boxes`); implies the box target
            ``'given'``.

    Returns:
        Config: The explain-mode config.

    Raises:
        UserInputError: For an unknown setting, or box targets that do not fit
            the inputs.
    """
    prepare = _hook_settings(PrepareExplainHook, explain)
    writing = _hook_settings(ExplainHook, write, set_here=('output_dir', 'run_id'))
    box_targets = list(prepare['box_targets'])
    if target_boxes and 'given' not in box_targets:
        box_targets.append('given')
    prepare['box_targets'] = box_targets
    if 'ground_truth' in box_targets and inputs:
        raise UserInputError('ground-truth boxes come from the config\'s annotated test set; '
                             'leave out --input (for boxes on your own images use '
                             '--target-boxes)')
    if 'given' in box_targets and not (inputs and target_boxes):
        raise UserInputError('--target-boxes needs --input (the images the boxes are on)')
    if box_targets and is_exported_model(checkpoint):
        raise UserInputError('box explanations run in PyTorch only; give the checkpoint, not '
                             f'the exported model {checkpoint}')
    cfg = copy.deepcopy(cfg)
    cfg.load_from = checkpoint
    cfg.resume = False
    imports = cfg.get('custom_imports', ConfigDict(imports=[], allow_failed_imports=False))
    if 'mmxai' not in imports['imports']:
        imports['imports'] = list(imports['imports']) + ['mmxai']
    cfg.custom_imports = imports
    if 'ground_truth' in box_targets:
        _check_boxes_in_original_pixels(test_pipeline_of(cfg))
    # Images given alone (inputs) go through the test pipeline minus annotations.
    pipeline = inference_pipeline(test_pipeline_of(cfg), input_channels(cfg)) if inputs else None
    metainfo = cfg.test_dataloader.dataset.get('metainfo')
    run_id = None
    if inputs and resume:  # what decides the files: not the header nor the threads
        drawing = {key: value for key, value in writing.items()
                   if key in ('overlay_weight', 'save_raw', 'normalize')}
        run_id = explain_run_id(cfg, checkpoint, pipeline, prepare,
                                dict(drawing, target_boxes=file_signature(target_boxes)),
                                classes=(metainfo or {}).get('classes'))
    hooks = [h for h in cfg.get('custom_hooks', []) if not _is(h, 'mmxai.PrepareExplain',
                                                              'mmxai.ExplainHook')]
    cfg.custom_hooks = hooks + [
        dict(type='mmxai.PrepareExplainHook', **prepare),
        dict(type='mmxai.ExplainHook', **writing, output_dir=output_dir, run_id=run_id),
    ]
    if inputs:
        loader = cfg.test_dataloader
        loader.dataset = dict(
            type='mmxai.ImageFolderDataset', inputs=list(inputs), pipeline=pipeline,
            metainfo=metainfo, resume_dir=output_dir if resume else None, run_id=run_id,
            exclude=[output_dir], target_boxes=target_boxes)
        loader.sampler = dict(type='DefaultSampler', shuffle=False, round_up=False)
        loader.collate_fn = dict(type='mmxai.collate_skipping_unreadable',
                                 collate_fn=loader.get('collate_fn', dict(type='pseudo_collate')))
        cfg.test_evaluator = []
        cfg.test_cfg = dict(cfg.get('test_cfg') or {}, type='mmxai.ExplainTestLoop')
    else:
        _use_checked_loader(cfg)
    if batch_size:
        cfg.test_dataloader.batch_size = batch_size
    if is_exported_model(checkpoint):
        use_exported_model(cfg, checkpoint, prepare['explainer'],
                           prepare['explain_all_classes'], prepare['target_classes'],
                           prepare['score_thr'])
    return cfg


def _hook_settings(hook: type, given: Optional[Dict[str, Any]],
                   set_here: Sequence[str] = ()) -> Dict[str, Any]:
    """Every setting of an mmxai hook: its defaults, updated with ``given``.

    Raises:
        UserInputError: For a setting the hook does not take (or one
            :func:`explain_config` sets itself).
    """
    parameters = inspect.signature(hook.__init__).parameters
    settings = {name: p.default for name, p in parameters.items()
                if name != 'self' and name not in set_here}
    unknown = sorted(set(given or {}) - set(settings))
    if unknown:
        raise UserInputError(f'{hook.__name__} has no setting {", ".join(unknown)} here; it takes: '
                             f'{", ".join(settings)}')
    return dict(settings, **(given or {}))


#: Pipeline steps that may follow ``LoadAnnotations``: they do not move boxes.
_KEEP_BOXES = ('Pack', 'FilterAnnotations', 'LoadAnnotations')


def _check_boxes_in_original_pixels(pipeline: Sequence[dict]) -> None:
    """Refuse test pipelines whose ground-truth boxes are not in original pixels.

    Annotations must be loaded after every transform that could move them, as
    MMDetection's test pipelines do: after ``LoadAnnotations`` only steps that
    keep boxes where they are (packing, filtering) may follow. An allow-list,
    not a list of known movers: ``RandomResize``, ``Expand``, ``RandomAffine``,
    ``LetterResize`` and every custom transform would otherwise slip through.
    """
    steps = list(pipeline)
    loads = [index for index, step in enumerate(steps) if _is(step, 'LoadAnnotations')]
    if not loads:
        raise UserInputError('--explain-gt needs the annotations: the config\'s test pipeline '
                             'has no LoadAnnotations')
    moving = [step['type'] for step in steps[loads[0] + 1:]
              if not _is(step, *_KEEP_BOXES)]
    if moving:
        raise UserInputError(f'--explain-gt: the test pipeline loads annotations before '
                             f'{moving[0]}, which may move the boxes; load them after every '
                             'transform, just before packing')


def _use_checked_loader(cfg: Config) -> None:
    """Load the config's own test set with :class:`mmxai.LoadImageChecked` too."""
    dataset = innermost_dataset(cfg.test_dataloader.dataset)
    if dataset.get('pipeline'):
        dataset.pipeline = _with_checked_loader(dataset.pipeline)


def _with_checked_loader(steps: List[dict]) -> List[dict]:
    for step in steps:
        if step.get('type') in ('LoadImageFromFile', 'mmcv.LoadImageFromFile'):
            step['type'] = 'mmxai.LoadImageChecked'
    return steps


def explain_run_id(cfg: Config, checkpoint: str, pipeline: List[dict], *settings: Any,
                   classes: Optional[Sequence[str]] = None) -> str:
    """A short hash of everything that decides an explain run's output files.

    Args:
        cfg (Config): The config (its ``model`` counts).
        checkpoint (str): Counted by path, size and modification time (so
            are the class names it holds); a URL by itself.
        pipeline (list[dict]): The inference pipeline.
        *settings: Further settings (algorithm, targets, overlay, ...).
        classes (Sequence[str], optional): The config's class names, used
            (in file names and the manifest) when the checkpoint has none.

    Returns:
        str: 16 hex digits; a rerun with the same id may keep earlier results.
        The mmxai version counts too: another version may draw other maps.
    """
    text = json.dumps([version.__version__, cfg.get('model'), pipeline, settings,
                       file_signature(checkpoint),
                       list(classes) if classes is not None else None], sort_keys=True,
                      default=str)
    return hashlib.sha256(text.encode('utf-8')).hexdigest()[:16]


def file_signature(path: Optional[str]) -> Any:
    """A file's absolute path, size and modification time (just the path if it is none).

    A URL (or another ``CheckpointLoader`` scheme) is its own signature.
    """
    if path is None:
        return None
    if not is_local_checkpoint(path):
        return path
    if not osp.isfile(path):
        return osp.abspath(path)
    info = os.stat(path)
    return [osp.abspath(path), info.st_size, info.st_mtime_ns]


def set_data_root(cfg: Config, data_root: str) -> Config:
    """Point a config's dataloaders and COCO evaluators at ``data_root`` (in place).

    For configs (such as ``configs/demo/``) whose datasets take ``data_root``
    and whose evaluators name an ``ann_file`` inside it.

    Returns:
        Config: ``cfg``.
    """
    data_root = data_root.rstrip('/') + '/'
    for split in ('train', 'val', 'test'):
        loader = cfg.get(f'{split}_dataloader')
        if loader is not None:
            loader.dataset.data_root = data_root
        evaluator = cfg.get(f'{split}_evaluator')
        if isinstance(evaluator, dict) and 'ann_file' in evaluator:
            evaluator.ann_file = data_root + evaluator.ann_file.split('/')[-1]
    cfg.data_root = data_root
    return cfg


def use_exported_model(cfg: Config, model_file: str,
                       algorithm: Optional[Union[str, dict]] = None,
                       explain_all_classes: bool = False,
                       target_classes: Optional[Sequence[Union[int, str]]] = None,
                       score_thr: Optional[float] = None,
                       runtime: Optional[str] = None) -> Config:
    """Make ``cfg``'s Runner run ``model_file`` (in place); returns ``cfg``.

    ``cfg.model`` becomes :class:`~mmxai.deploy.ExportedExplainModel` around
    the file (keeping the original model section for the data preprocessor
    and the head's post-processing), nothing is loaded as a checkpoint, and
    :class:`~mmxai.engine.hooks.PrepareExplainHook` is dropped: the exported
    model already explains. :class:`~mmxai.engine.hooks.ExplainHook` writes as usual.

    Args:
        cfg (Config): An explain-mode config (see :func:`mmxai.apis.explain_config`).
        model_file (str): ``.onnx`` or ``.xml`` written by ``tools/export.py``.
        algorithm (str | dict, optional): Must be the exported one (None: that one).
        explain_all_classes (bool): Explain every class.
        target_classes (Sequence[int | str], optional): Classes to explain.
        score_thr (float, optional): Detection score above which a class is
            explained (None: 0.3).
        runtime (str, optional): ``'onnxruntime'`` or ``'openvino'``.
    """
    model_cfg = model_config(cfg)
    metainfo = cfg.test_dataloader.dataset.get('metainfo') or {}
    cfg.model = dict(type='mmxai.ExportedExplainModel', model_file=model_file,
                     model_cfg=model_cfg, explainer=algorithm,
                     explain_all_classes=explain_all_classes, target_classes=target_classes,
                     score_thr=score_thr, class_names=metainfo.get('classes'), runtime=runtime)
    cfg.pop('data_preprocessor', None)  # the Runner would pass it to the wrapper too
    cfg.load_from = None
    cfg.custom_hooks = [hook for hook in cfg.get('custom_hooks', [])
                        if 'PrepareExplainHook' not in str(hook.get('type', ''))]
    return cfg
