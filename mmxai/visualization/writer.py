"""Writes the files of one explained data sample and describes them."""
import io
import os.path as osp
from typing import Any, Dict, List, Optional, Tuple

import cv2
import numpy as np
import torch
from mmengine.structures import BaseDataElement
from torch import Tensor

from ..datasets.image_io import read_image
from ..evaluation.error_analysis import describe_maps, ground_truth_of
from ..models import maps_on_original_image, peak_region_on_original_image
from ..utils import atomic_write_bytes, safe_filename
from .colormap import colorize, overlay


def _encode_png(image: np.ndarray) -> bytes:
    ok, buffer = cv2.imencode('.png', image)
    if not ok:
        raise RuntimeError('PNG encoding failed')
    return buffer.tobytes()


def predictions_of(sample: BaseDataElement) -> Dict[str, Any]:
    """Predictions of a detection or classification sample as plain lists."""
    if 'pred_instances' in sample:
        instances = sample.pred_instances
        return dict(bboxes=instances.bboxes.tolist(), labels=instances.labels.tolist(),
                    scores=instances.scores.tolist())
    if 'pred_score' in sample:
        return dict(labels=sample.pred_label.tolist(), scores=sample.pred_score.tolist())
    return {}


class SaliencyWriter:
    """Writes saliency maps, overlays and optional raw maps of explained samples.

    For an image at relative path ``sub/cat.jpg`` the files go to
    ``OUTPUT/sub/cat/`` (``OUTPUT/sub/cat_jpg/`` if a ``cat.png`` is there
    too): ``<class index>_<class name>_saliency.png`` (JET, red = high),
    ``..._overlay.png`` and, with ``save_raw``, ``..._saliency.npy`` (float32,
    the [0, 1] map as drawn) and ``..._values.npy`` (float32, the method's own
    values, unnormalised), both at the original resolution; class-agnostic
    maps drop the class prefix. Every file is written atomically.

    Args:
        output_dir (str): Root folder of the output.
        overlay_weight (float): Weight of the map in the overlay, in [0, 1].
        save_raw (bool): Also write the maps as ``.npy``.
        normalize (str): How values become colours: ``'per_map'`` (each map
            stretched to its own min and max) or ``'absolute'`` (the method's
            fixed range, e.g. class probabilities 0..1: a class the model does
            not see stays cold); see :func:`mmxai.geometry.to_original_image`.
    """

    def __init__(self, output_dir: str, overlay_weight: float = 0.5,
                 save_raw: bool = False, normalize: str = 'per_map') -> None:
        if not 0.0 <= overlay_weight <= 1.0:
            raise ValueError(f'overlay weight must be in [0, 1], got {overlay_weight}')
        if normalize not in ('per_map', 'absolute'):
            raise ValueError(f"normalize must be 'per_map' or 'absolute', got {normalize!r}")
        self.output_dir = output_dir
        self.overlay_weight = overlay_weight
        self.save_raw = save_raw
        self.normalize = normalize

    def render(self, sample: BaseDataElement, image_bgr: Optional[np.ndarray] = None,
               saliency: Optional[Tensor] = None) -> Tuple[Tensor, Tensor, Tensor]:
        """Maps at the original resolution, their colour maps and overlays.

        Args:
            sample (BaseDataElement): A sample returned by ``ExplainModel``.
            image_bgr (np.ndarray, optional): The original image; read from
                ``img_path`` (as ``mmxai.LoadImageChecked`` reads it) when not given.
            saliency (Tensor, optional): (T, h, w) maps of the sample to render;
                default its ``saliency_map`` (``box_saliency_map``: per-box maps).

        Returns:
            tuple: (T, H, W) float maps in [0, 1], (T, H, W, 3) uint8 BGR
            colour maps and (T, H, W, 3) uint8 BGR overlays, on the maps' device.
        """
        meta = sample.metainfo
        maps = maps_on_original_image(sample.saliency_map if saliency is None else saliency, meta,
                                 self.normalize)
        if image_bgr is None:
            image_bgr = read_image(meta['img_path'])
        image = torch.from_numpy(np.ascontiguousarray(image_bgr)).to(maps.device)
        colored = colorize(maps)
        return maps, colored, overlay(image, colored, self.overlay_weight)

    def write(self, sample: BaseDataElement, rel_path: str,
              rendered: Optional[Tuple[Tensor, Tensor, Tensor]] = None,
              output_stem: Optional[str] = None) -> Dict[str, Any]:
        """Write the files of one sample.

        Args:
            sample (BaseDataElement): A sample returned by ``ExplainModel``.
            rel_path (str): Image path relative to the input root.
            rendered (tuple, optional): What :meth:`render` returned for it.
            output_stem (str, optional): Folder of its files below the
                output root (see :meth:`prepare`).

        Returns:
            dict: The manifest entry of the image.
        """
        entry, files = self.prepare(sample, rel_path, rendered, output_stem)
        self.commit(files)
        return entry

    def prepare(self, sample: BaseDataElement, rel_path: str,
                rendered: Optional[Tuple[Tensor, Tensor, Tensor]] = None,
                output_stem: Optional[str] = None
                ) -> Tuple[Dict[str, Any], List[Tuple[str, np.ndarray]]]:
        """Render one sample and name its files, without encoding or writing them.

        The device work happens here; :meth:`commit` (encoding, disk) may then
        run in another thread, overlapping with the next batch's inference.

        Args:
            sample (BaseDataElement): A sample returned by ``ExplainModel``.
            rel_path (str): Image path relative to the input root.
            rendered (tuple, optional): What :meth:`render` returned for it.
            output_stem (str, optional): Folder of its files below the output
                root; default the sample's ``output_stem`` meta, else
                ``rel_path`` without its extension.

        Returns:
            tuple: The manifest entry, and (path below the output root, array)
            of every file: ``.png`` arrays are BGR images, ``.npy`` raw maps.
        """
        meta = sample.metainfo
        image_bgr = None
        if rendered is None:
            image_bgr = read_image(meta['img_path'])  # once, for the class and box maps
            rendered = self.render(sample, image_bgr)
        maps, colored, blended = rendered
        folder = output_stem or meta.get('output_stem') or osp.splitext(rel_path)[0]
        explanations: List[Dict[str, Any]] = []
        pending: List[Tuple[str, np.ndarray]] = []
        colored_np, blended_np = colored.cpu().numpy(), blended.cpu().numpy()
        raw_np = values_np = None
        if self.save_raw:
            raw_np = maps.cpu().numpy().astype(np.float32)
            values_np = maps_on_original_image(sample.saliency_map, meta, 'none').cpu().numpy()
        for t, (index, name) in enumerate(zip(sample.explained_classes.tolist(),
                                              meta['explained_class_names'])):
            stem = 'saliency' if index < 0 else f'{index}_{safe_filename(name)}_saliency'
            files = self._name_files(folder, stem, pending, colored_np[t], blended_np[t],
                                     None if raw_np is None else (raw_np[t], values_np[t]))
            explanations.append(dict(class_index=index if index >= 0 else None,
                                     class_name=name if index >= 0 else None, **files))
        entry = dict(image=meta['img_path'], rel_path=rel_path,
                     ori_shape=list(meta['ori_shape'][:2]), algorithm=meta['explain_algorithm'],
                     predictions=predictions_of(sample), explanations=explanations)
        if 'explained_boxes' in meta:
            entry['boxes'] = self._prepare_boxes(sample, folder, pending, image_bgr)
        ground_truth = ground_truth_of(sample)
        if ground_truth is not None:  # annotated test set: what the error analysis reads
            entry['ground_truth'] = ground_truth
            region = peak_region_on_original_image(sample.saliency_map, meta)
            for explanation, numbers in zip(explanations, describe_maps(
                    maps, sample.explained_classes.tolist(), ground_truth, region)):
                explanation.update(numbers)
        return entry, pending

    def _name_files(self, folder: str, stem: str, pending: List[Tuple[str, np.ndarray]],
                    colored: np.ndarray, blended: np.ndarray,
                    raw: Optional[Tuple[np.ndarray, np.ndarray]]) -> Dict[str, str]:
        """Queue one map's files (picture, overlay, raw arrays) and return their names."""
        files = {'saliency_map': osp.join(folder, stem + '.png'),
                 'overlay': osp.join(folder, stem.replace('saliency', 'overlay') + '.png')}
        pending += [(files['saliency_map'], colored), (files['overlay'], blended)]
        if raw is not None:
            files['raw'] = osp.join(folder, stem + '.npy')
            files['values'] = osp.join(folder, stem.replace('saliency', 'values') + '.npy')
            pending += [(files['raw'], raw[0]), (files['values'], raw[1].astype(np.float32))]
        return files

    def _prepare_boxes(self, sample: BaseDataElement, folder: str,
                       pending: List[Tuple[str, np.ndarray]],
                       image_bgr: Optional[np.ndarray] = None) -> List[Dict[str, Any]]:
        """The per-box maps' files (the box drawn on the overlay) and manifest records.

        Box ``k`` of the manifest's ``boxes`` list is written as ``box_<k>_...``.
        """
        meta = sample.metainfo
        records = [dict(record) for record in meta['explained_boxes']]
        box_maps = sample.box_saliency_map
        if not records:
            return records
        maps, colored, blended = (x.cpu().numpy() for x in self.render(sample, image_bgr,
                                                                        box_maps))
        values = maps_on_original_image(box_maps, meta, 'none').cpu().numpy() \
            if self.save_raw else None
        for k, record in enumerate(records):
            x1, y1, x2, y2 = (int(round(v)) for v in record['bbox'])
            picture = np.ascontiguousarray(blended[k])
            cv2.rectangle(picture, (x1, y1), (x2, y2), (255, 255, 255), 2)
            stem = f"box_{k}_{record['label']}_{safe_filename(record['class_name'])}_saliency"
            raw = None if values is None else (maps[k].astype(np.float32), values[k])
            record.update(self._name_files(folder, stem, pending, colored[k], picture, raw))
        return records

    def commit(self, files: List[Tuple[str, np.ndarray]]) -> None:
        """Encode and write, atomically, the files :meth:`prepare` listed."""
        for rel_file, array in files:
            if rel_file.endswith('.npy'):
                buffer = io.BytesIO()
                np.save(buffer, array)
                data = buffer.getvalue()
            else:
                data = _encode_png(array)
            atomic_write_bytes(osp.join(self.output_dir, rel_file), data)
