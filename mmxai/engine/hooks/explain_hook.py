"""Hook that writes the saliency maps an ExplainModel attached to its outputs."""
import json
import os
import os.path as osp
import time
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence

from mmengine.dist import all_gather_object, barrier, get_rank, is_main_process
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from ...datasets.image_folder import SKIPPED
from ...datasets.image_io import stat_signature
from ...datasets.output_names import ImageOutputNames
from ...models import SaliencyModel
from ...registry import HOOKS
from ...utils import (
    UnsupportedModelError,
    atomic_write_json,
    is_temporary_name,
    record_path,
    safe_filename,
    write_record,
)
from ...visualization import SaliencyWriter, WriteQueue

if TYPE_CHECKING:
    from mmengine.runner import Runner


@HOOKS.register_module()
class ExplainHook(Hook):
    """Writes maps, overlays and a ``manifest.json``; I/O only, no math.

    Use it with :class:`PrepareExplainHook`, which makes the model attach the
    maps. In ``runner.test()`` every image is written and ``manifest.json``
    at the output root lists every input once, its predictions and its
    files; no two images share a relative path or an output folder (see
    :func:`~mmxai.datasets.output_names.output_stems`). In validation
    during training, the main process writes the first ``val_max_images``
    images of its share every ``val_interval`` validations
    (``val_iter_<iteration>/``; the first validation is always written) and
    sends their overlays to the Runner's visualizer backends (e.g.
    TensorBoard) with the iteration as step. Other processes write nothing:
    MMEngine's visualizer takes images from the main process only, so the
    files and the backends hold the same ``val_max_images`` images.

    Args:
        output_dir (str, optional): Output root; default ``<work_dir>/explain``.
        overlay_weight (float): Weight of the map in overlays. Defaults to 0.5.
        save_raw (bool): Also write float32 maps as ``.npy``: the [0, 1] maps as
            drawn and the method's own values.
        normalize (str): ``'per_map'`` or ``'absolute'`` (see
            :class:`mmxai.visualization.SaliencyWriter`).
        log_interval (int): Log progress every this many batches.
        val_interval (int): Explain every this many validation runs; 0 turns
            it off.
        val_max_images (int): Images written per validation.
        manifest_meta (dict, optional): Extra fields for the manifest header
            (for example the command line).
        run_id (str, optional): Identifies the settings, stored in each
            image's record so a rerun can keep what this run finished.
        write_workers (int): Threads that encode and write files while the
            next batch is inferred; 0 writes in the test loop's thread. At
            most ``2 * write_workers`` images wait for writing (bounded memory).
    """

    priority = 'LOW'

    def __init__(self,
                 output_dir: Optional[str] = None,
                 overlay_weight: float = 0.5,
                 save_raw: bool = False,
                 normalize: str = 'per_map',
                 log_interval: int = 50,
                 val_interval: int = 1,
                 val_max_images: int = 4,
                 manifest_meta: Optional[Dict[str, Any]] = None,
                 run_id: Optional[str] = None,
                 write_workers: int = 0) -> None:
        self.output_dir = output_dir
        self.overlay_weight = overlay_weight
        self.save_raw = save_raw
        self.normalize = normalize
        self.log_interval = log_interval
        self.val_interval = val_interval
        self.val_max_images = val_max_images
        self.manifest_meta = dict(manifest_meta or {})
        self.run_id = run_id
        self.write_workers = write_workers
        self.writes = WriteQueue(write_workers)
        #: Each image's relative path and output folder.
        self.names = ImageOutputNames()
        #: After ``runner.test()``: counts of ``explained`` (including
        #: ``resumed``) and ``skipped`` images, on every process.
        self.summary: Dict[str, int] = {}
        self._entries: List[Dict[str, Any]] = []
        self._skipped: List[Dict[str, str]] = []
        self._start = 0.0
        self._done = 0
        self._writer: Optional[SaliencyWriter] = None
        self._validations = 0

    def _begin(self, runner: 'Runner', dataloader: Any, output_dir: str) -> None:
        model = saliency_model(runner)
        if self.normalize == 'absolute' and model.value_range is None:
            raise UnsupportedModelError(
                f'{model.algorithm} maps have no absolute scale (their values depend on '
                'the model and image); use --normalize per_map')
        os.makedirs(output_dir, exist_ok=True)
        self._writer = SaliencyWriter(output_dir, self.overlay_weight, self.save_raw,
                                      self.normalize)
        self.names.use(dataloader.dataset)
        self._entries, self._done, self._start = [], 0, time.perf_counter()

    def before_test(self, runner: 'Runner') -> None:
        output_dir = self.output_dir or osp.join(runner.work_dir, 'explain')
        if is_main_process() and osp.isdir(output_dir):
            remove_temporary_files(output_dir)
        barrier()  # no process writes before the leftovers are gone
        self._begin(runner, runner.test_dataloader, output_dir)
        self._skipped = []
        dataset = runner.test_dataloader.dataset
        finished = len(getattr(dataset, 'finished', ()))
        if finished:
            runner.logger.info(f'resuming: {finished} images were explained into {output_dir} '
                               f'with the same settings; {len(dataset)} left')
        for skipped in getattr(dataset, 'skipped', ()) if is_main_process() else ():
            runner.logger.info(f"skipped {skipped['image']}: {skipped['reason']}")
        runner.logger.info(f'rank {get_rank()}: explaining '
                           f'{len(runner.test_dataloader.sampler)} of {len(dataset)} images')

    def before_test_iter(self, runner: 'Runner', batch_idx: int, data_batch: Any = None) -> None:
        for skipped in data_batch.pop(SKIPPED, ()) if isinstance(data_batch, dict) else ():
            runner.logger.info(f"skipped {skipped['image']}: {skipped['reason']}")
            self._skipped.append(skipped)

    def after_test_iter(self, runner: 'Runner', batch_idx: int,
                        data_batch: Any = None, outputs: Optional[Sequence] = None) -> None:
        for sample in outputs or ():
            output_stem = self.names.output_stem(sample.metainfo)
            entry, files = self._writer.prepare(sample, self.names.relative_path(sample.metainfo),
                                                output_stem=output_stem)
            entry = json.loads(json.dumps(entry))  # as a resumed run reads it back
            self._entries.append(entry)
            self.writes.submit(self._commit, files,
                               record_path(self._writer.output_dir, output_stem), entry)
        self._done += len(outputs or ())
        if self.every_n_inner_iters(batch_idx, self.log_interval) or \
                self.end_of_epoch(runner.test_dataloader, batch_idx):
            total = len(runner.test_dataloader.sampler)
            rate = self._done / max(time.perf_counter() - self._start, 1e-9)
            runner.logger.info(f'rank {get_rank()}: explained {self._done}/{total} images '
                               f'({rate:.1f} images/s)')

    def _commit(self, files: list, record: str, entry: Dict[str, Any]) -> None:
        self._writer.commit(files)
        write_record(record, self.run_id, stat_signature(entry['image']), entry)  # last

    def after_run(self, runner: 'Runner') -> None:
        """Finish pending writes and stop the write threads."""
        self.writes.close()

    def after_test_epoch(self, runner: 'Runner',
                         metrics: Optional[Dict[str, float]] = None) -> None:
        self.writes.drain()
        dataset = runner.test_dataloader.dataset
        finished = list(getattr(dataset, 'finished', ()))
        entries = finished + [entry for part in all_gather_object(self._entries)
                              for entry in part]
        skipped = list(getattr(dataset, 'skipped', ())) + [
            item for part in all_gather_object(self._skipped) for item in part]
        # On an annotated test set DefaultSampler repeats a few images on the last ranks;
        # distinct images never share a rel_path (find_images, ImageOutputNames).
        entries = sorted({entry['rel_path']: entry for entry in entries}.values(),
                         key=lambda entry: entry['rel_path'])
        skipped.sort(key=lambda item: item['image'])
        self.summary = dict(explained=len(entries), resumed=len(finished), skipped=len(skipped))
        if is_main_process():
            model = saliency_model(runner)
            manifest = dict(self.manifest_meta, classes=model.class_names,
                            score_thr=model.score_thr,
                            num_images=len(entries),
                            num_skipped=len(skipped), images=entries, skipped=skipped)
            atomic_write_json(osp.join(self._writer.output_dir, 'manifest.json'), manifest,
                              fsync=True, fsync_folder=True)
            runner.logger.info(
                f'saliency maps of {len(entries)} images in {self._writer.output_dir} '
                f'({len(entries) - len(finished)} explained now, {len(finished)} before); '
                f'{len(skipped)} inputs skipped' + ''.join(
                    f"\n  {item['image']}: {item['reason']}" for item in skipped))

    def before_val_epoch(self, runner: 'Runner') -> None:
        self._writer = None
        self._validations += 1
        if self.val_interval > 0 and (self._validations - 1) % self.val_interval == 0 and \
                is_main_process():
            root = self.output_dir or osp.join(runner.work_dir, 'explain')
            # Named by iteration: unique for epoch- and iteration-based loops.
            self._begin(runner, runner.val_dataloader, osp.join(root, f'val_iter_{runner.iter}'))

    def after_val_iter(self, runner: 'Runner', batch_idx: int,
                       data_batch: Any = None, outputs: Optional[Sequence] = None) -> None:
        if self._writer is None:
            return
        for sample in outputs or ():
            if self._done >= self.val_max_images:
                return
            rendered = self._writer.render(sample)
            entry = self._writer.write(sample, self.names.relative_path(sample.metainfo),
                                       rendered, output_stem=self.names.output_stem(
                                           sample.metainfo))
            self._done += 1
            overlays_rgb = rendered[2].flip(-1).cpu().numpy()
            for overlay_rgb, explanation in zip(overlays_rgb, entry['explanations']):
                # Flat names: the local backend writes `name` as a file name.
                name = safe_filename(f"explain_{osp.splitext(entry['rel_path'])[0]}_"
                                     f"{explanation['class_name'] or entry['algorithm']}")
                # The iteration, as mmdet's DetVisualizationHook: the epoch is 0
                # throughout an iteration-based schedule.
                runner.visualizer.add_image(name, overlay_rgb, step=runner.iter)



def saliency_model(runner: 'Runner') -> SaliencyModel:
    """The runner's explain-mode model; a one-line error when it has none."""
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    if not isinstance(model, SaliencyModel):
        raise UnsupportedModelError(
            f'ExplainHook needs an explain-mode model, not {type(model).__name__}: add '
            "dict(type='mmxai.PrepareExplainHook') to custom_hooks")
    return model


def remove_temporary_files(output_dir: str) -> None:
    """Delete the temporary files a killed run left in its output folder.

    Only names mmxai makes (``.tmp-mmxai-<12 hex digits>-...``) are
    removed; any other file, ``.tmp-`` ones included, is the user's.
    """
    for folder, _, files in os.walk(output_dir):
        for name in files:
            if is_temporary_name(name):
                os.unlink(osp.join(folder, name))
