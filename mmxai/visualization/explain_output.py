"""One explain run's output folder: each image's files and record, then ``manifest.json``."""
import json
import os
import os.path as osp
import time
from typing import TYPE_CHECKING, Any, Dict, List, Tuple

import numpy as np
from mmengine.dist import all_gather_object, is_main_process
from mmengine.structures import BaseDataElement

from ..datasets.image_io import stat_signature
from ..datasets.output_names import ImageOutputNames
from ..utils import (
    UnsupportedModelError,
    atomic_write_json,
    is_temporary_name,
    record_path,
    safe_filename,
    write_record,
)
from .write_queue import WriteQueue
from .writer import SaliencyWriter

if TYPE_CHECKING:
    from ..models import SaliencyModel


class ExplainOutput:
    """Writes the images of one explain run into a folder, then its ``manifest.json``.

    Each image's files are written through ``writes`` (on its threads, if
    any) and its record last, so a record means every file of the image is
    complete. No two images share a relative path or an output folder (see
    :class:`~mmxai.datasets.output_names.ImageOutputNames`).

    Args:
        output_dir (str): The folder (created).
        dataset: The dataset being explained (its images name the outputs).
        model (SaliencyModel): The explain-mode model (the manifest's class
            names and score threshold, the maps' value range).
        writer (dict): :class:`SaliencyWriter` settings (``overlay_weight``,
            ``save_raw``, ``normalize``).
        writes (WriteQueue): Runs the writes.
        run_id (str, optional): Identifies the settings, stored in each
            image's record so a rerun can keep what this run finished.
    """

    def __init__(self, output_dir: str, dataset: Any, model: 'SaliencyModel',
                 writer: Dict[str, Any], writes: WriteQueue, run_id: Any = None) -> None:
        if writer.get('normalize') == 'absolute' and model.value_range is None:
            raise UnsupportedModelError(
                f'{model.algorithm} maps have no absolute scale (their values depend on '
                'the model and image); use --normalize per_map')
        self.model = model
        os.makedirs(output_dir, exist_ok=True)
        self.writer = SaliencyWriter(output_dir, **writer)
        self.names = ImageOutputNames()
        self.names.use(dataset)
        self.writes = writes
        self.run_id = run_id
        #: Entries of the images a previous run finished (a resumed run's dataset says).
        self.finished: List[Dict[str, Any]] = list(getattr(dataset, 'finished', ()))
        #: Inputs skipped before the run (``image`` and ``reason``), as the dataset says.
        self.skipped_before: List[Dict[str, str]] = list(getattr(dataset, 'skipped', ()))
        #: Entries of the images written (or queued) by this process.
        self.entries: List[Dict[str, Any]] = []
        #: Inputs this process skipped while running.
        self.skipped: List[Dict[str, str]] = []
        self._start = time.perf_counter()

    @property
    def output_dir(self) -> str:
        """The output folder."""
        return self.writer.output_dir

    def rate(self) -> float:
        """Images written (or queued) per second since the run began."""
        return len(self.entries) / max(time.perf_counter() - self._start, 1e-9)

    def add(self, sample: BaseDataElement) -> None:
        """Queue the files and record of one explained sample."""
        stem = self.names.output_stem(sample.metainfo)
        entry, files = self.writer.prepare(sample, self.names.relative_path(sample.metainfo),
                                           output_stem=stem)
        entry = json.loads(json.dumps(entry))  # as a resumed run reads it back
        self.entries.append(entry)
        self.writes.submit(self._commit, files, record_path(self.output_dir, stem), entry)

    def _commit(self, files: list, record: str, entry: Dict[str, Any]) -> None:
        self.writer.commit(files)
        write_record(record, self.run_id, stat_signature(entry['image']), entry)  # last

    def write_now(self, sample: BaseDataElement) -> List[Tuple[str, np.ndarray]]:
        """Write one sample's files at once (no record), for a visualizer backend.

        Returns:
            list[tuple]: Per map, a flat name (a backend may use it as a file
            name) and the (H, W, 3) RGB overlay.
        """
        rendered = self.writer.render(sample)
        entry = self.writer.write(sample, self.names.relative_path(sample.metainfo), rendered,
                                  output_stem=self.names.output_stem(sample.metainfo))
        self.entries.append(entry)
        stem = osp.splitext(entry['rel_path'])[0]
        return [(safe_filename(f"explain_{stem}_{map_entry['class_name'] or entry['algorithm']}"),
                 overlay_rgb) for overlay_rgb, map_entry in
                zip(rendered[2].flip(-1).cpu().numpy(), entry['explanations'])]

    def finish(self, header: Dict[str, Any]) -> Dict[str, int]:
        """Wait for the writes, gather every process's images and write the manifest.

        Args:
            header (dict): Extra fields for the manifest's header (e.g. the
                command line); the model's class names and score threshold follow.

        Returns:
            dict: Counts of ``explained`` (``resumed`` included), ``resumed``
            and ``skipped`` images, on every process.
        """
        self.writes.drain()
        entries = self.finished + [e for part in all_gather_object(self.entries) for e in part]
        skipped = self.skipped_before + [
            item for part in all_gather_object(self.skipped) for item in part]
        # On an annotated test set DefaultSampler repeats a few images on the last ranks;
        # distinct images never share a rel_path (find_images, ImageOutputNames).
        entries = sorted({entry['rel_path']: entry for entry in entries}.values(),
                         key=lambda entry: entry['rel_path'])
        skipped.sort(key=lambda item: item['image'])
        if is_main_process():
            manifest = dict(header, classes=self.model.class_names,
                            score_thr=self.model.score_thr, num_images=len(entries),
                            num_skipped=len(skipped), images=entries, skipped=skipped)
            atomic_write_json(osp.join(self.output_dir, 'manifest.json'), manifest,
                              fsync=True, fsync_folder=True)
        return dict(explained=len(entries), resumed=len(self.finished), skipped=len(skipped))


def summary_line(output_dir: str, counts: Dict[str, int]) -> str:
    """One line on a finished run: what :meth:`ExplainOutput.finish` counted, and where."""
    return (f"saliency maps of {counts['explained']} images in {output_dir} "
            f"({counts['explained'] - counts['resumed']} explained now, {counts['resumed']} "
            f"before); {counts['skipped']} inputs skipped")


def remove_temporary_files(output_dir: str) -> None:
    """Delete the temporary files a killed run left in its output folder.

    Only names mmxai makes (``.tmp-mmxai-<12 hex digits>-...``) are
    removed; any other file, ``.tmp-`` ones included, is the user's.
    """
    for folder, _, files in os.walk(output_dir):
        for name in files:
            if is_temporary_name(name):
                os.unlink(osp.join(folder, name))
