"""``sanity.html``: the sanity-check table and the cascade of maps for a few images."""
import html
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence

import cv2
import numpy as np
import torch

from ..datasets.image_io import read_image
from ..geometry import to_original_image
from ..utils import atomic_write_bytes, safe_filename
from .colormap import colorize, overlay

STYLE = '''<style>
body { font-family: sans-serif; margin: 1em; }
table { border-collapse: collapse; margin-bottom: 1.5em; }
td, th { border: 1px solid #ccc; padding: 4px 6px; text-align: center; font-size: 13px; }
td.flag, span.flag { background: #f8d0d0; }
td.pass, span.pass { background: #d4f0d4; }
figure { margin: 0; font-size: 12px; }
figure img { display: block; margin: 0 auto; image-rendering: pixelated; }
code { background: #eee; padding: 2px 4px; }
</style>'''


#: What a cell of the table says (the viewer's sanity view says the same).
TABLE_TEXT = (
    'Each cell: the mean Spearman rank correlation between the maps of the trained model and '
    'of the model with every part up to that step re-initialised (top layer first), for the '
    'classes the trained model predicts; the share of maps whose correlation reaches the '
    'threshold; the mean SSIM (reported, not used for the verdict). Last column: the map of a '
    "class the model does not predict against the predicted class's.")


def _write_png(path: str, image: np.ndarray, tile_size: int) -> None:
    height, width = image.shape[:2]
    scale = tile_size / max(height, width)
    if scale < 1:
        image = cv2.resize(image, (max(1, round(width * scale)), max(1, round(height * scale))),
                           interpolation=cv2.INTER_AREA)
    ok, buffer = cv2.imencode('.png', np.ascontiguousarray(image))
    if not ok:
        raise RuntimeError(f'PNG encoding failed for {path}')
    atomic_write_bytes(path, buffer.tobytes())


def _tiles(example: Dict[str, Any], label: str, image: Optional[torch.Tensor],
           overlay_weight: float) -> np.ndarray:
    """(T, H, W, 3) BGR overlays of the example's maps of ``label`` on the original image."""
    maps = list(example['maps'][label])
    if label in example['other_class_map']:
        maps.append(example['other_class_map'][label])
    colored = colorize(to_original_image(torch.stack(maps).float(), example['metainfo'],
                                         example['input_shape'], example['cell_grids'][label]))
    return (overlay(image, colored, overlay_weight) if image is not None else colored).numpy()


def _cell(values: Optional[Dict[str, Any]]) -> str:
    if not values or values['spearman'] is None:
        return '<td>-</td>'
    state = 'flag' if values['flagged'] else 'pass'
    return (f'<td class="{state}">{values["spearman"]:.2f} · {values["kept"]:.0%} ≥ thr · '
            f'SSIM {values["ssim"]:.2f}{" FLAG" if values["flagged"] else ""}</td>')


def sanity_page_layout(output_dir: str, report: Dict[str, Any],
                       examples: Sequence[Dict[str, Any]],
                       class_names: Optional[Sequence[str]] = None, overlay_weight: float = 0.5,
                       tile_size: int = 160) -> Dict[str, Any]:
    """Write the cascade's tiles under ``output_dir/sanity/`` and describe the page.

    Per algorithm, one row per example image: the image, the trained model's
    map and the map after each cumulative randomisation step (overlays on the
    original image, each normalised to [0, 1] on its own), then the trained
    model's map of a class it does not predict.

    Args:
        output_dir (str): Folder of the page.
        report (dict): :meth:`mmxai.evaluation.SanityChecker.report`.
        examples (Sequence[dict]): :attr:`mmxai.evaluation.SanityChecker.examples`.
        class_names (Sequence[str], optional): Names of the model's classes.
        overlay_weight (float): Weight of the map in the overlays.
        tile_size (int): Longer side of the tiles in pixels.

    Returns:
        dict: ``steps`` (column names of the steps) and ``cascades``: per
        algorithm ``header`` (column names) and ``rows``, each a list of cells
        ``{'file': path relative to output_dir, 'caption': str}`` or
        ``{'text': str}``. It is what ``sanity.html`` and the report viewer show.
    """
    def name(index: Optional[int]) -> str:
        if index is None:
            return '-'
        return class_names[index] if class_names and index < len(class_names) else str(index)

    steps = ['+ ' + '+'.join(s) if i else '+'.join(s) for i, s in enumerate(report['steps'])]
    images = []
    for example in examples:
        path = example['metainfo'].get('img_path')
        images.append(torch.from_numpy(np.ascontiguousarray(read_image(path)))
                      if path and osp.isfile(path) else None)
    image_cells: List[Dict[str, str]] = []
    for index, (example, image) in enumerate(zip(examples, images)):
        if image is None:
            image_cells.append(dict(text=f'image {example["image_index"]}'))
            continue
        image_file = f'sanity/image_{index}.png'
        _write_png(osp.join(output_dir, image_file), image.numpy(), tile_size)
        image_cells.append(dict(file=image_file,
                                caption=osp.basename(example['metainfo']['img_path'])))
    cascades: Dict[str, Any] = {}
    for label, result in report['results'].items():
        folder = safe_filename(label)
        header = ['image', 'trained', *steps]
        if result['random_label'] is not None:
            header.append('other class (trained)')
        rows = []
        for index, example in enumerate(examples):
            tiles = _tiles(example, label, images[index], overlay_weight)
            cls = example['class_index'] if result['class_wise'] else None
            captions = [f'{name(cls)}' if cls is not None else 'class-agnostic']
            captions += [f'Spearman {rho:.2f} · SSIM {s:.2f}' if rho == rho
                         else 'trained map constant: left out'
                         for rho, s in zip(example['spearman'][label], example['ssim'][label])]
            if len(tiles) > len(captions):
                captions.append(f'{name(example["other_class_index"])} (not predicted)')
            cells = [image_cells[index]]
            for column, (tile, caption) in enumerate(zip(tiles, captions)):
                tile_file = f'sanity/{folder}/{index}_{column}.png'
                _write_png(osp.join(output_dir, tile_file), tile, tile_size)
                cells.append(dict(file=tile_file, caption=caption))
            if result['random_label'] is not None and len(tiles) < len(header) - 1:
                cells.append(dict(text='no other class'))
            rows.append(cells)
        cascades[label] = dict(header=header, rows=rows)
    return dict(steps=steps, cascades=cascades)


def _figure(cell: Dict[str, str], alt: str) -> str:
    if 'file' not in cell:
        return f'<td>{html.escape(cell["text"])}</td>'
    return (f'<td><figure><img src="{html.escape(cell["file"])}" alt="{html.escape(alt)}">'
            f'<figcaption>{html.escape(cell["caption"])}</figcaption></figure></td>')


def write_sanity_page(output_dir: str, report: Dict[str, Any], layout: Dict[str, Any],
                      command: Optional[str] = None) -> str:
    """Write ``output_dir/sanity.html``: the sanity-check table and the cascades of maps.

    The page holds the report's table (mean Spearman / SSIM per step and
    verdicts) and, per algorithm, the cascade of maps of
    :func:`sanity_page_layout`. Every link is relative: the folder opens from
    disk, anywhere. The report viewer shows the same
    (:func:`mmxai.visualization.write_report`'s ``sanity``).

    Args:
        output_dir (str): Folder of the page.
        report (dict): :meth:`mmxai.evaluation.SanityChecker.report`.
        layout (dict): :func:`sanity_page_layout` of the report.
        command (str, optional): The command that made the page.

    Returns:
        str: Path of ``sanity.html``.
    """
    results = report['results']
    steps = layout['steps']
    parts: List[str] = [
        '<!DOCTYPE html><html><head><meta charset="utf-8"><title>mmxai sanity checks</title>'
        f'{STYLE}</head><body><h1>Can I trust this map? Sanity checks</h1>']
    if command:
        parts.append(f'<p>Made by <code>{html.escape(command)}</code></p>')
    parts.append(f'<p>{report["num_images"]} images. {html.escape(TABLE_TEXT)} '
                 f'{html.escape(report["thresholds"]["rule"])} '
                 f'(spearman {report["thresholds"]["spearman"]}).</p>')
    parts.append('<table id="sanity-table"><tr><th>algorithm</th><th>verdict</th>' +
                 ''.join(f'<th>{html.escape(s)}</th>' for s in steps) +
                 '<th>random label</th></tr>')
    for label, result in results.items():
        parts.append(f'<tr data-algorithm="{html.escape(label)}"><th><a href="#'
                     f'{html.escape(safe_filename(label))}">{html.escape(label)}</a></th>'
                     f'<td class="{result["verdict"].replace(" ", "-")}">{result["verdict"]}</td>' +
                     ''.join(_cell(s) for s in result['cascade']) +
                     _cell(result['random_label']) + '</tr>')
    parts.append('</table>')
    for label, result in results.items():
        cascade = layout['cascades'][label]
        parts.append(f'<h2 id="{html.escape(safe_filename(label))}">{html.escape(label)}: '
                     f'<span class="{result["verdict"].replace(" ", "-")}">{result["verdict"]}'
                     '</span></h2>')
        parts += [f'<p>{html.escape(reason)}</p>' for reason in result['reasons']]
        header = cascade['header']
        parts.append('<table class="cascade"><tr>' +
                     ''.join(f'<th>{html.escape(h)}</th>' for h in header) + '</tr>')
        for cells in cascade['rows']:
            parts.append('<tr>' + ''.join(
                _figure(cell, f'{label} {column}') for cell, column in zip(cells, header)) +
                '</tr>')
        parts.append('</table>')
    parts.append('</body></html>')
    path = osp.join(output_dir, 'sanity.html')
    atomic_write_bytes(path, '\n'.join(parts).encode('utf-8'))
    return path
