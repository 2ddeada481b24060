"""Hook that writes the saliency maps an ExplainModel attached to its outputs."""
import os.path as osp
from typing import TYPE_CHECKING, Any, Dict, Optional, Sequence

from mmengine.dist import barrier, get_rank, is_main_process
from mmengine.hooks import Hook

from ...datasets.image_folder import SKIPPED
from ...registry import HOOKS
from ...visualization import ExplainOutput, WriteQueue, remove_temporary_files, summary_line
from ..runner_model import saliency_model

if TYPE_CHECKING:
    from mmengine.runner import Runner


@HOOKS.register_module()
class ExplainHook(Hook):
    """Writes maps, overlays and a ``manifest.json`` through :class:`ExplainOutput`; no math.

    Use it with :class:`PrepareExplainHook`, which makes the model attach the
    maps. ``runner.test()`` writes every image. In training, every
    ``val_interval``-th validation (the first one always) writes the first
    ``val_max_images`` images of the main process into
    ``val_iter_<iteration>/`` and sends their overlays to the visualizer's
    backends (e.g. TensorBoard), which take images from the main process only.

    Args:
        output_dir (str, optional): Output root; default ``<work_dir>/explain``.
        overlay_weight (float): Weight of the map in overlays.
        save_raw (bool): Also write the maps as ``.npy`` (drawn and raw values).
        normalize (str): ``'per_map'`` or ``'absolute'`` (see :class:`SaliencyWriter`).
        log_interval (int): Log progress every this many batches.
        val_interval (int): Explain every this many validations; 0: never.
        val_max_images (int): Images written per validation.
        manifest_meta (dict, optional): Extra manifest fields (e.g. the command).
        run_id (str, optional): Identifies the settings in each image's record,
            so a rerun with the same settings keeps what this run finished.
        write_workers (int): Threads that write files while the next batch is
            inferred (at most twice as many images wait); 0: the loop's thread.
    """

    priority = 'LOW'

    def __init__(self, output_dir: Optional[str] = None, overlay_weight: float = 0.5,
                 save_raw: bool = False, normalize: str = 'per_map', log_interval: int = 50,
                 val_interval: int = 1, val_max_images: int = 4,
                 manifest_meta: Optional[Dict[str, Any]] = None, run_id: Optional[str] = None,
                 write_workers: int = 0) -> None:
        self.output_dir = output_dir
        self.writer = dict(overlay_weight=overlay_weight, save_raw=save_raw, normalize=normalize)
        self.log_interval = log_interval
        self.val_interval = val_interval
        self.val_max_images = val_max_images
        self.manifest_meta = dict(manifest_meta or {})
        self.run_id = run_id
        self.writes = WriteQueue(write_workers)
        #: The folder being written (None between runs and in skipped validations).
        self.output: Optional[ExplainOutput] = None
        #: After ``runner.test()``: counts of ``explained`` (including
        #: ``resumed``) and ``skipped`` images, on every process.
        self.summary: Dict[str, int] = {}
        self._validations = 0

    def _open(self, runner: 'Runner', dataset: Any, folder: str = '') -> ExplainOutput:
        output_dir = osp.join(self.output_dir or osp.join(runner.work_dir, 'explain'), folder)
        return ExplainOutput(output_dir, dataset, saliency_model(runner), self.writer,
                             self.writes, self.run_id)

    def before_test(self, runner: 'Runner') -> None:
        self.output = self._open(runner, runner.test_dataloader.dataset)
        if is_main_process():
            remove_temporary_files(self.output.output_dir)
        barrier()  # no process writes before the leftovers are gone
        for skipped in self.output.skipped_before if is_main_process() else ():
            runner.logger.info(f"skipped {skipped['image']}: {skipped['reason']}")
        runner.logger.info(f'rank {get_rank()}: explaining {len(runner.test_dataloader.sampler)} '
                           f'of {len(runner.test_dataloader.dataset)} images')

    def before_test_iter(self, runner: 'Runner', batch_idx: int, data_batch: Any = None) -> None:
        for skipped in data_batch.pop(SKIPPED, ()) if isinstance(data_batch, dict) else ():
            runner.logger.info(f"skipped {skipped['image']}: {skipped['reason']}")
            self.output.skipped.append(skipped)

    def after_test_iter(self, runner: 'Runner', batch_idx: int,
                        data_batch: Any = None, outputs: Optional[Sequence] = None) -> None:
        for sample in outputs or ():
            self.output.add(sample)
        if self.every_n_inner_iters(batch_idx, self.log_interval) or \
                self.end_of_epoch(runner.test_dataloader, batch_idx):
            runner.logger.info(f'rank {get_rank()}: explained {len(self.output.entries)}/'
                               f'{len(runner.test_dataloader.sampler)} images '
                               f'({self.output.rate():.1f} images/s)')

    def after_test_epoch(self, runner: 'Runner',
                         metrics: Optional[Dict[str, float]] = None) -> None:
        self.summary = self.output.finish(self.manifest_meta)
        runner.logger.info(summary_line(self.output.output_dir, self.summary))
        self.output = None

    def after_run(self, runner: 'Runner') -> None:
        """Finish pending writes and stop the write threads."""
        self.writes.close()

    def before_val_epoch(self, runner: 'Runner') -> None:
        self._validations += 1
        due = self.val_interval > 0 and (self._validations - 1) % self.val_interval == 0
        # Named by iteration: unique for epoch- and iteration-based loops.
        self.output = self._open(runner, runner.val_dataloader.dataset, f'val_iter_{runner.iter}') \
            if due and is_main_process() else None

    def after_val_iter(self, runner: 'Runner', batch_idx: int,
                       data_batch: Any = None, outputs: Optional[Sequence] = None) -> None:
        for sample in outputs if self.output else ():
            if len(self.output.entries) >= self.val_max_images:
                return
            for name, overlay_rgb in self.output.write_now(sample):
                # The step is the iteration, as mmdet's DetVisualizationHook's.
                runner.visualizer.add_image(name, overlay_rgb, step=runner.iter)

