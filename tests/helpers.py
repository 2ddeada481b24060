"""Shared helpers: real configs, real models, real data, no downloads."""
import contextlib
import copy
import functools
import http.server
import json
import os
import os.path as osp
import socket
import threading
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

import numpy as np
import torch
from mmengine.config import Config

import mmxai  # noqa: F401  (registers modules)
from mmxai.apis import set_data_root
from mmxai.checkpoint import SAFE_SCHEME_LOADERS, register_safe_loaders
from mmxai.models import build_model as mmxai_build_model

# Tests load Runner checkpoints with MMEngine's load_checkpoint too, as a host
# that called register_safe_loaders() does. Tests of who registers them put
# MMEngine's own loaders back first (mmengine_own_loaders).
register_safe_loaders()

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = osp.join(REPO, 'configs')
DET_DEMO_CONFIG = osp.join(CONFIGS, 'demo', 'atss_tiny_shapes.py')
CLS_DEMO_CONFIG = osp.join(CONFIGS, 'demo', 'resnet_tiny_shapes.py')
MASK_DEMO_CONFIG = osp.join(CONFIGS, 'demo', 'mask_rcnn_tiny_shapes.py')


def load_config(path: str) -> Config:
    """A config from a file of this repo or ``mmdet::``/``mmpretrain::`` path."""
    if '::' in path:
        from mmengine.hub import get_config
        return get_config(path)
    return Config.fromfile(path)


def drop_pretrained(cfg: Any) -> Any:
    """Remove every ``Pretrained`` init_cfg (they would download weights)."""
    if isinstance(cfg, dict):
        init = cfg.get('init_cfg')
        if isinstance(init, dict) and init.get('type') == 'Pretrained':
            cfg['init_cfg'] = None
        for value in cfg.values():
            drop_pretrained(value)
    elif isinstance(cfg, (list, tuple)):
        for value in cfg:
            drop_pretrained(value)
    return cfg


def build_model(cfg: Config, seed: int = 0) -> torch.nn.Module:
    """Build the config's model as the Runner does, with random weights, in eval mode."""
    torch.manual_seed(seed)
    cfg = cfg.copy()
    drop_pretrained(cfg.model)
    model = mmxai_build_model(cfg)
    model.init_weights()
    return model.eval()


def write_initialised_checkpoint(cfg: Config, path: str, seed: int = 0) -> str:
    """Save the config's model as training would start it: its own ``init_weights()``.

    A model's initialisation is part of it (Sparse R-CNN's proposal boxes
    start as the whole image; PyTorch's default init gives boxes of negative
    size). ``Pretrained`` inits are dropped (no downloads). Saved as
    MMEngine's ``CheckpointHook`` saves (``state_dict`` in a dict).

    Returns:
        str: ``path``.
    """
    from mmengine.runner.checkpoint import save_checkpoint, weights_to_cpu
    model = build_model(copy.deepcopy(cfg), seed)
    save_checkpoint(dict(state_dict=weights_to_cpu(model.state_dict())), path)
    return path


def random_images(count: int, height: int, width: int, seed: int = 0) -> List[np.ndarray]:
    """Random uint8 BGR images."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8) for _ in range(count)]


def _batch(images: Sequence[np.ndarray], sample_type: type) -> dict:
    """A test batch of images already at network size (no resize)."""
    inputs, samples = [], []
    for index, image in enumerate(images):
        inputs.append(torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))))
        shape = image.shape[:2]
        samples.append(sample_type(metainfo=dict(
            img_id=index, sample_idx=index, img_path=f'{index}.png', ori_shape=shape,
            img_shape=shape, scale_factor=(1.0, 1.0))))
    return dict(inputs=inputs, data_samples=samples)


def det_batch(images: Sequence[np.ndarray]) -> dict:
    """A detector test batch (``DetDataSample``)."""
    from mmdet.structures import DetDataSample
    return _batch(images, DetDataSample)


def cls_batch(images: Sequence[np.ndarray]) -> dict:
    """A classifier test batch (MMPretrain ``DataSample``)."""
    from mmpretrain.structures import DataSample
    return _batch(images, DataSample)


#: CPU threads of every training run: float reductions are split per thread, so the
#: same seed gives the same weights only at the same thread count.
TRAINING_THREADS = 2


def train(cfg: Config, work_dir: str, data_root: str, max_iters: Optional[int] = None,
          seed: int = 0) -> str:
    """Train with MMEngine's Runner on CPU, deterministically; returns the final checkpoint.

    The same seed on the same machine gives the same weights: MMEngine seeds
    Python, numpy and torch and turns on torch's deterministic algorithms, the
    data loaders run in the main process and the thread count is fixed
    (:data:`TRAINING_THREADS`). Another CPU (another instruction set) may still
    round differently: the suite's quality floors sit below the spread of
    several seeds (``benchmarks/quality_floors.py``).
    """
    from mmengine.runner import Runner
    cfg = drop_pretrained(cfg.copy())
    set_data_root(cfg, data_root)
    cfg.work_dir = work_dir
    if max_iters:
        cfg.train_cfg.max_iters = max_iters
        cfg.train_cfg.val_interval = max_iters
        cfg.default_hooks.checkpoint.interval = max_iters
    cfg.randomness = dict(seed=seed, deterministic=True)
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(TRAINING_THREADS)
    try:
        runner = Runner.from_cfg(cfg)
        runner.train()
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
    return osp.join(work_dir, f'iter_{cfg.train_cfg.max_iters}.pth')


#: Set by ``benchmarks/quality_floors.py`` only: a JSON-lines file where every quality
#: floor of the suite records its metric instead of asserting it, so that one run per
#: training seed measures them all. CI and ``make test`` never set it.
QUALITY_LOG = os.environ.get('MMXAI_QUALITY_LOG')


def _check_bound(name: str, value: float, bound: float, kind: str) -> None:
    holds = {'>=': value >= bound, '>': value > bound, '<': value < bound}[kind]
    if QUALITY_LOG:
        with open(QUALITY_LOG, 'a') as log:
            log.write(json.dumps(dict(name=name, value=float(value), bound=bound,
                                      kind=kind)) + '\n')
        return
    assert holds, f'{name}: {value:.4f} is not {kind} {bound}'


def check_floor(name: str, value: float, floor: float, strict: bool = False) -> None:
    """Assert that a trained model's quality metric ``value`` is at least ``floor``.

    Every floor on a model the suite trains goes through here, named, so that
    ``benchmarks/quality_floors.py`` can measure its spread over training seeds.
    """
    _check_bound(name, value, floor, '>' if strict else '>=')


def check_ceiling(name: str, value: float, ceiling: float) -> None:
    """Assert that ``value`` (e.g. an untrained model's hit rate) is below ``ceiling``."""
    _check_bound(name, value, ceiling, '<')


def write_config(cfg: Config, path: str) -> str:
    """Dump a config to a file (for tools run in a subprocess)."""
    os.makedirs(osp.dirname(path), exist_ok=True)
    cfg.dump(path)
    return path


def relevance_mass(saliency, boxes):
    """Relevance mass (Arras et al.): the map's sum inside the boxes (pixel centres) / its sum."""
    ys, xs = np.mgrid[:saliency.shape[0], :saliency.shape[1]] + 0.5
    inside = np.zeros(saliency.shape, bool)
    for x1, y1, x2, y2 in boxes:
        inside |= (xs >= x1) & (xs <= x2) & (ys >= y1) & (ys <= y2)
    return saliency[inside].sum() / saliency.sum()


def report_data(report_dir: str) -> dict:
    """The object a report's data.js gives the viewer; asserts the script's exact form."""
    with open(osp.join(report_dir, 'data.js'), encoding='utf-8') as file:
        text = file.read()
    prefix, suffix = 'window.MMXAI_REPORT = JSON.parse(', ');\n'
    assert text.startswith(prefix) and text.endswith(suffix)
    return json.loads(json.loads(text[len(prefix):-len(suffix)]))


# ------------------------------------------------------------ checkpoints by URL
class Call:
    """Pickles as ``func(*args)``: nests to chain calls inside one pickle."""

    def __init__(self, func: Callable, *args: Any) -> None:
        self.func, self.args = func, args

    def __call__(self) -> None:  # pickle requires the reduce callable to be callable
        raise AssertionError

    def __reduce__(self) -> tuple:
        return self.func, self.args


def code_running_checkpoint(path: str, marker: str) -> str:
    """A checkpoint whose pickle runs ``touch marker`` when loaded with weights_only=False."""
    torch.save({'meta': {}, 'state_dict': {}, 'message_hub': Call(os.system, f'touch {marker}')},
               path)
    return path


class _QuietHandler(http.server.SimpleHTTPRequestHandler):

    def log_message(self, *args: Any) -> None:
        pass


@contextlib.contextmanager
def serve_folder(folder: str) -> Iterator[str]:
    """Serve ``folder`` over HTTP on 127.0.0.1 (a free port) in a thread; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs=dict(poll_interval=0.05),
                              daemon=True)
    thread.start()
    try:
        yield f'http://127.0.0.1:{server.server_address[1]}'
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def mmengine_own_loaders() -> Dict[str, Callable]:
    """MMEngine's own loader of every scheme, as ``CheckpointLoader._schemes`` holds them
    before :func:`register_safe_loaders` (mmxai's loaders have MMEngine's names)."""
    from mmengine.runner import checkpoint as mmengine_checkpoint
    loaders = {prefix: getattr(mmengine_checkpoint, loader.__name__)
               for prefix, loader in SAFE_SCHEME_LOADERS.items()}
    return dict(sorted(loaders.items(), key=lambda item: item[0], reverse=True))
