"""Sanity checks of saliency methods on a config's test set, with their files."""
import os.path as osp
from typing import Any, Dict, Optional, Sequence

import torch
from mmengine.config import Config
from mmengine.runner import Runner

from ..adapters import build_adapter
from ..evaluation import SPEARMAN_THRESHOLD, SanityChecker
from ..explainers import algorithms_for
from ..models import build_model
from ..utils import UnknownAlgorithmError, atomic_write_json
from ..utils.defaults import DEFAULT_SCORE_THR
from ..visualization.sanity_page import sanity_page_layout, write_sanity_page
from .cli import process_batches


def run_sanity_checks(cfg: Config, checkpoint: str, output_dir: str,
                      algorithms: Optional[Sequence[str]] = None,
                      options: Optional[Dict[str, dict]] = None,
                      cascade: Optional[Sequence[str]] = None, seed: int = 0,
                      score_thr: float = DEFAULT_SCORE_THR,
                      spearman_threshold: float = SPEARMAN_THRESHOLD,
                      page_images: int = 4, device: Optional[str] = None,
                      command: Optional[str] = None) -> Dict[str, Any]:
    """Check each algorithm's maps on ``cfg``'s test set and write the results.

    Writes ``output_dir/sanity.json`` (the report of
    :meth:`~mmxai.evaluation.SanityChecker.report`, plus ``command``,
    ``config`` (its file), ``checkpoint``, ``classes`` and ``page``: the
    layout of the cascades of maps, whose tiles are under
    ``output_dir/sanity/``) and
    ``output_dir/sanity.html``. ``write_report(..., sanity=[...])`` shows the
    same in the report viewer.

    Args:
        cfg (Config): The model's config (its ``test_dataloader`` is read).
        checkpoint (str): Checkpoint file or URL (loaded weights-only).
        output_dir (str): Folder of the results.
        algorithms (Sequence[str], optional): Algorithm names; default every
            algorithm the model supports that is not black-box.
        options (dict, optional): Per algorithm, its explainer's options
            (``{'gradcam': {'target_layer': 'backbone.layer3'}}``).
        cascade (Sequence[str], optional): Modules randomised per step, top first.
        seed (int): Seed of the randomisation.
        score_thr (float): Detection: explain classes with a box scoring at least this.
        spearman_threshold (float): Flag a step whose mean Spearman is at least this.
        page_images (int): Images whose cascade of maps the page shows.
        device (str, optional): ``'cpu'`` or ``'cuda'``; default CUDA if available.
        command (str, optional): The command that made the results.

    Returns:
        dict: What ``sanity.json`` holds.
    """
    device = device or ('cuda' if torch.cuda.is_available() else 'cpu')
    model = build_model(cfg, checkpoint, device)
    names = list(algorithms or algorithms_for(build_adapter(model).family, black_box=False))
    options = options or {}
    unknown = sorted(set(options) - set(names))
    if unknown:
        raise UnknownAlgorithmError(f'options for {", ".join(unknown)}, which is not checked '
                                    f'(checked: {", ".join(names)})')
    configs = [dict(algorithm=name, **options[name]) if name in options else name
               for name in names]
    checker = SanityChecker(model, configs, cascade=cascade, seed=seed, score_thr=score_thr,
                            spearman_threshold=spearman_threshold, page_images=page_images)
    process_batches(Runner.build_dataloader(cfg.test_dataloader), checker.process, 'checked')
    report = checker.report()
    classes = model.dataset_meta.get('classes') if model.dataset_meta else None
    layout = sanity_page_layout(output_dir, report, checker.examples, class_names=classes)
    results = dict(command=command, config=getattr(cfg, 'filename', None),
                   checkpoint=checkpoint,
                   classes=None if classes is None else list(classes), **report, page=layout)
    write_sanity_page(output_dir, report, layout, command=command)
    atomic_write_json(osp.join(output_dir, 'sanity.json'), results)
    return results
