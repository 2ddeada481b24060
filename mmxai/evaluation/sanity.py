"""Sanity checks of saliency methods (Adebayo et al., NeurIPS 2018).

- Cascading model parameter randomisation: the maps of the trained model are
  compared with the maps of progressively randomised copies (head first),
  for the same images and the same classes (those the trained model
  predicts). A method whose maps stay alike once the weights that make the
  prediction are random shows the input, not the model: it is flagged.
- Random label: a class-wise method's map for a class the model does not
  predict must differ from its map for the predicted class.

Maps are compared over the image region of the network input (padding
cropped) by Spearman rank correlation at the method's own resolution, which
decides the verdict (mean over the maps), and by SSIM after resizing to a fixed size and per-map
min-max normalisation (as the files are written), which is reported only: two
sparse maps (a blob on an empty background) score a high SSIM wherever their
blobs are.
"""
import math
from collections import defaultdict
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from ..adapters import build_adapter
from ..explainers import DRISE, BaseExplainer, explainer_for
from ..utils.defaults import DEFAULT_SCORE_THR
from .randomization import cascade_models, default_cascade, parse_cascade, step_name
from .similarity import comparable_maps, spearman, ssim

#: A step of the cascade (or the random-label check) is flagged when the mean
#: Spearman rank correlation of its maps with the reference maps (the trained
#: model's; the predicted class's) reaches this. Chosen from measurements
#: (README "Sanity checks", benchmarks/sanity_checks.py): on the demo ResNet
#: and ATSS, methods that follow the model stay <= 0.39 at every step for three
#: seeds (Grad-CAM, Recipro-CAM, ATSS class maps), maps that show the input
#: stay >= 0.94 with the head random and >= 0.45 down to the stem (activation
#: map, EigenCAM, Grad-CAM++ and LayerCAM on the classifier); the issue's
#: ResNet-18 calibration puts Grad-CAM below 0.1, activation map and EigenCAM
#: above 0.7. The mean, not the share of maps above the threshold: with a
#: random head each class's map keeps or inverts the picture by chance (about
#: half of them on the demo ResNet), which says nothing about the method; a
#: method that ignores the model keeps every map. The share (``kept``) and
#: the per-class means are reported beside it.
SPEARMAN_THRESHOLD = 0.5
#: Side of the square maps SSIM compares (Wang et al.'s 11x11 window needs >= 11).
SSIM_SIZE = 64

AlgorithmSpec = Union[str, dict, BaseExplainer]


def algorithm_label(algorithm: AlgorithmSpec) -> str:
    """The name a result is reported under: the algorithm name, config type or explainer name."""
    if isinstance(algorithm, str):
        return algorithm
    if isinstance(algorithm, dict):
        name = algorithm.get('algorithm', algorithm.get('type'))
        return name if isinstance(name, str) else getattr(name, '__name__', str(name))
    return algorithm.algorithm or type(algorithm).__name__


class SanityChecker:
    """Parameter-randomisation and random-label checks of explainers on a model.

    Feed it the batches of a test dataloader (:meth:`process`), then read
    :meth:`report`. Per batch the data is preprocessed once and every model of
    the cascade (the trained one and one randomised copy per step, built
    once) predicts the whole batch in one pass, each explainer reading that
    pass. Targets are the trained model's predicted classes (classification:
    its predicted label(s); detection: classes with a box scoring at least
    ``score_thr``); randomised models are explained for the same classes.
    Class-agnostic methods are compared once per image. D-RISE, which
    explains boxes, is given the trained model's boxes at every step.

    Args:
        model (nn.Module): The trained detector or classifier (eval mode); it
            is not changed.
        algorithms (Sequence): ``--explain-algorithm`` names, config dicts
            (``dict(algorithm='drise', num_masks=64)``, ``dict(type=...)``) or
            explainer instances.
        cascade (Sequence, optional): Module names randomised per step, top
            layer first (a step may name several modules, as a list or a
            comma-separated string); by default
            :func:`~mmxai.evaluation.randomization.default_cascade`.
        seed (int): Seed of the randomisation and of the random labels.
        score_thr (float): Detection score of the explained classes.
        spearman_threshold (float): See :data:`SPEARMAN_THRESHOLD`.
        ssim_size (int): Side of the maps SSIM compares.
        page_images (int): How many images keep their maps for the HTML page.
    """

    def __init__(self, model: nn.Module, algorithms: Sequence[AlgorithmSpec],
                 cascade: Optional[Sequence[Union[str, Sequence[str]]]] = None, seed: int = 0,
                 score_thr: float = DEFAULT_SCORE_THR,
                 spearman_threshold: float = SPEARMAN_THRESHOLD,
                 ssim_size: int = SSIM_SIZE,
                 page_images: int = 4) -> None:
        self.model = model
        adapter = build_adapter(model)
        self.explainers: Dict[str, BaseExplainer] = {}
        for algorithm in algorithms:
            label, number = algorithm_label(algorithm), 2
            while label in self.explainers:  # the same method with other options
                label, number = f'{algorithm_label(algorithm)}#{number}', number + 1
            self.explainers[label] = explainer_for(algorithm, adapter, score_thr)
        self.steps = parse_cascade(cascade) if cascade is not None else default_cascade(model)
        if not self.steps:
            raise ValueError(f'{type(model).__name__}: the cascade has no step')
        self.models = cascade_models(model, self.steps, seed)
        self.adapters = [adapter] + [build_adapter(m) for m in self.models[1:]]
        modules = dict(model.named_modules())
        self.parameter_counts = [sum(p.numel() for name in names
                                     for p in modules[name].parameters())
                                 for names in self.steps]
        self.seed = seed
        self.score_thr = score_thr
        self.spearman_threshold = spearman_threshold
        self.ssim_size = (ssim_size, ssim_size)
        self.page_images = page_images
        self.generator = torch.Generator().manual_seed(seed)
        self.num_images = 0
        self.examples: List[Dict[str, Any]] = []
        # values[label][step index or 'random_label'][measure] -> list of (n,) tensors
        self.values: Dict[str, Dict[Any, Dict[str, List[Tensor]]]] = defaultdict(
            lambda: defaultdict(lambda: defaultdict(list)))

    # ----------------------------------------------------------------- targets
    def _predicted_classes(self, sample: Any) -> List[int]:
        if 'pred_instances' in sample:
            instances = sample.pred_instances
            return instances.labels[instances.scores >= self.score_thr].unique().tolist()
        return sample.pred_label.reshape(-1).tolist()

    def _targets(self, predicted: list) -> List[Tuple[int, int, Optional[int]]]:
        """(image, predicted class, a class it does not predict or None) per explained class."""
        num_classes = self.adapters[0].num_classes
        targets = []
        for image, sample in enumerate(predicted):
            classes = self._predicted_classes(sample)
            others = [c for c in range(num_classes) if c not in classes]
            draw = float(torch.rand(1, generator=self.generator))  # one draw per image
            other = others[int(draw * len(others))] if others else None
            targets += [(image, cls, other) for cls in classes]
        return targets

    # -------------------------------------------------------------------- maps
    @staticmethod
    def _regions(maps: Tensor, rows: Sequence[Tuple[int, int]], samples: list,
                 input_shape: Tuple[int, int]) -> List[Tensor]:
        """The (image, class) maps of ``rows``, cropped to the cells over the image."""
        height, width = maps.shape[-2:]
        regions = []
        for image, cls in rows:
            img_h, img_w = samples[image].metainfo['img_shape'][:2]
            regions.append(maps[image, cls, :math.ceil(img_h * height / input_shape[0]),
                                :math.ceil(img_w * width / input_shape[1])])
        return regions

    def _compare(self, reference: List[Tensor], other: List[Tensor]) -> Dict[str, Tensor]:
        """Spearman and SSIM of paired maps (batched per map size).

        A constant reference map (the trained model's, or the predicted
        class's) has no picture to keep: its pair is NaN and left out of the
        means. A constant other map against a varying reference has lost the
        picture: Spearman 0 (``constant`` counts these).
        """
        result = {key: torch.zeros(len(reference), dtype=torch.float64)
                  for key in ('spearman', 'ssim', 'constant')}
        groups: Dict[tuple, List[int]] = defaultdict(list)
        for row, (a, b) in enumerate(zip(reference, other)):
            groups[(tuple(a.shape), tuple(b.shape))].append(row)
        for rows in groups.values():
            a = torch.stack([reference[r] for r in rows])
            b = torch.stack([other[r] for r in rows])
            index = torch.tensor(rows)
            constant = [(m.flatten(1).amax(1) == m.flatten(1).amin(1)).cpu() for m in (a, b)]
            rho = spearman(a, b).cpu()
            structural = ssim(comparable_maps(a, self.ssim_size),
                              comparable_maps(b, self.ssim_size)).cpu()
            result['spearman'][index] = torch.where(constant[0], torch.nan,
                                                    torch.where(constant[1], 0.0, rho))
            result['ssim'][index] = torch.where(constant[0], torch.nan, structural)
            result['constant'][index] = (constant[1] & ~constant[0]).double()
        return result

    @staticmethod
    def _random_label_applies(explainer: BaseExplainer) -> bool:
        """Class-wise methods, but those whose map of an undetected class is zero by design.

        D-RISE and mask class maps: a zero map would pass the check, saying nothing.
        """
        return explainer.class_wise and not explainer.maps_detections_only

    def _rows(self, label: str, targets: list) -> List[Tuple[int, int]]:
        if self.explainers[label].class_wise:
            return [(image, cls) for image, cls, _ in targets]
        return [(image, 0) for image in sorted({t[0] for t in targets})]

    # ----------------------------------------------------------------- process
    @torch.no_grad()
    def process(self, data: dict) -> None:
        """Explain one batch of a test dataloader with every model of the cascade."""
        data = self.model.data_preprocessor(data, False)
        inputs, samples = data['inputs'], data['data_samples']
        input_shape = tuple(inputs.shape[-2:])
        maps: Dict[str, List[Tensor]] = {label: [] for label in self.explainers}
        trained: list = []
        targets: list = []
        keep: List[Tensor] = []
        for step, (model, adapter) in enumerate(zip(self.models, self.adapters)):
            with adapter.capture():
                predicted = model(inputs, [s.clone() for s in samples], mode='predict')
            if step == 0:
                trained, targets = predicted, self._targets(predicted)
                if not targets:
                    break
                keep = [torch.tensor(sorted({c for t in targets if t[0] == image
                                             for c in t[1:] if c is not None}), dtype=torch.long)
                        for image in range(len(samples))]
            for label, explainer in self.explainers.items():
                own = trained if isinstance(explainer, DRISE) else predicted
                maps[label].append(explainer(adapter, own, keep).detach().float())
        first_image = self.num_images
        self.num_images += len(samples)
        if not targets:
            return
        comparisons: Dict[str, List[Dict[str, Tensor]]] = {}
        for label, explainer in self.explainers.items():
            rows = self._rows(label, targets)
            trained_maps = self._regions(maps[label][0], rows, samples, input_shape)
            comparisons[label] = []
            classes = torch.tensor([cls for _, cls in rows], dtype=torch.float64)
            for step in range(1, len(self.models)):
                result = self._compare(trained_maps, self._regions(
                    maps[label][step], rows, samples, input_shape))
                comparisons[label].append(result)
                for key, values in dict(result, classes=classes).items():
                    self.values[label][step - 1][key].append(values)
            if self._random_label_applies(explainer):
                pairs = [t for t in targets if t[2] is not None]
                if pairs:
                    result = self._compare(
                        self._regions(maps[label][0], [(i, c) for i, c, _ in pairs], samples,
                                      input_shape),
                        self._regions(maps[label][0], [(i, o) for i, _, o in pairs], samples,
                                      input_shape))
                    classes = torch.tensor([c for _, c, _ in pairs], dtype=torch.float64)
                    for key, values in dict(result, classes=classes).items():
                        self.values[label]['random_label'][key].append(values)
        self._keep_examples(first_image, samples, targets, maps, comparisons, input_shape)

    def _keep_examples(self, first_image: int, samples: list, targets: list,
                       maps: Dict[str, List[Tensor]], comparisons: Dict[str, list],
                       input_shape: Tuple[int, int]) -> None:
        """Keep the maps of the first images' first explained class for the HTML page."""
        for image, cls, other in targets:
            if len(self.examples) >= self.page_images:
                return
            if any(e['image_index'] == first_image + image for e in self.examples):
                continue
            example: Dict[str, Any] = dict(
                image_index=first_image + image, class_index=cls, other_class_index=other,
                metainfo=dict(samples[image].metainfo), input_shape=input_shape,
                cell_grids={}, maps={}, spearman={}, ssim={}, other_class_map={})
            for label, explainer in self.explainers.items():
                rows = self._rows(label, targets)
                row = rows.index((image, cls if explainer.class_wise else 0))
                channel = cls if explainer.class_wise else 0
                example['maps'][label] = [m[image, channel].cpu() for m in maps[label]]
                # Where the trained model's pass put the cells (adapter 0 keeps its capture).
                example['cell_grids'][label] = explainer.map_grid(
                    self.adapters[0], tuple(maps[label][0].shape[-2:]))
                example['spearman'][label] = [float(c['spearman'][row])
                                              for c in comparisons[label]]
                example['ssim'][label] = [float(c['ssim'][row]) for c in comparisons[label]]
                if self._random_label_applies(explainer) and other is not None:
                    example['other_class_map'][label] = maps[label][0][image, other].cpu()
            self.examples.append(example)

    # ----------------------------------------------------------------- results
    def _measure(self, values: Dict[str, List[Tensor]], class_wise: bool) -> Dict[str, Any]:
        empty = torch.zeros(0, dtype=torch.float64)
        rho, structural, constant, classes = (
            torch.cat(values[key]) if values.get(key) else empty
            for key in ('spearman', 'ssim', 'constant', 'classes'))
        valid = ~rho.isnan()
        result: Dict[str, Any] = dict(maps=int(valid.sum()),
                                      constant_reference_maps=int((~valid).sum()),
                                      constant_maps=int(constant.sum()))
        if not valid.any():
            return dict(result, spearman=None, spearman_std=None, kept=None, ssim=None,
                        ssim_std=None, flagged=False)
        rho, structural = rho[valid], structural[valid]
        result.update(spearman=float(rho.mean()), spearman_std=float(rho.std(unbiased=False)),
                      kept=float((rho >= self.spearman_threshold).double().mean()),
                      ssim=float(structural.mean()),
                      ssim_std=float(structural.std(unbiased=False)))
        if class_wise:  # a random head can keep one class's picture and invert another's
            classes = classes[valid]
            result['spearman_per_class'] = {int(c): float(rho[classes == c].mean())
                                            for c in classes.unique()}
        result['flagged'] = result['spearman'] >= self.spearman_threshold
        return result

    def report(self) -> Dict[str, Any]:
        """Per algorithm: the cascade's steps, the random-label check and the verdict.

        Returns:
            dict: ``thresholds``, ``steps`` (module names per step), ``num_images``
            and ``results``: per algorithm ``class_wise``, ``cascade`` (per step:
            ``step``, ``modules``, ``parameters`` re-drawn, ``maps`` compared,
            mean and standard deviation of ``spearman`` and ``ssim``,
            ``kept``: the share of maps with Spearman >= the threshold,
            ``constant_maps`` among the randomised maps (Spearman 0),
            ``constant_reference_maps``: pairs left out because the trained
            model's map is constant, class-wise methods' ``spearman_per_class``
            (by predicted class), ``flagged``),
            ``random_label`` (the same numbers, None for class-agnostic
            methods and methods whose maps need detections: D-RISE, mask class maps),
            ``verdict`` (``'pass'``, ``'flag'`` or ``'no maps'``) and
            ``reasons``.
        """
        results = {}
        for label, explainer in self.explainers.items():
            cascade = []
            for index, names in enumerate(self.steps):
                cascade.append(dict(step=step_name(names), modules=list(names),
                                    parameters=self.parameter_counts[index],
                                    **self._measure(self.values[label][index],
                                                    explainer.class_wise)))
            random_label = self._measure(self.values[label]['random_label'], True) \
                if self._random_label_applies(explainer) else None
            reasons = [f'maps stay alike with {s["step"]} randomised (cumulative): mean '
                       f'Spearman {s["spearman"]:.2f}, {s["kept"]:.0%} of the maps at least '
                       f'{self.spearman_threshold}' for s in cascade if s['flagged']]
            if random_label and random_label['flagged']:
                reasons.append("the map of a class the model does not predict is alike the "
                               f"predicted class's: mean Spearman {random_label['spearman']:.2f}, "
                               f"{random_label['kept']:.0%} of the maps at least "
                               f'{self.spearman_threshold}')
            verdict = 'no maps' if not cascade[0]['maps'] else 'flag' if reasons else 'pass'
            if verdict == 'no maps':
                reasons = ['no map to compare: the trained model predicted no class on these '
                           'images' + (f' (no box scoring at least {self.score_thr})'
                                       if self.adapters[0].task == 'detection' else '')]
            results[label] = dict(class_wise=bool(explainer.class_wise), cascade=cascade,
                                  random_label=random_label, verdict=verdict, reasons=reasons)
        return dict(
            num_images=self.num_images, seed=self.seed, score_thr=self.score_thr,
            steps=[list(names) for names in self.steps],
            thresholds=dict(
                spearman=self.spearman_threshold,
                rule='a step of the cascade (or the random-label check) is flagged when the mean '
                'Spearman correlation of its maps with the reference maps is at least spearman; '
                'an algorithm with a flagged step or check is flagged. kept (the share of maps '
                'at least spearman) and SSIM are reported, not used'),
            comparison=dict(
                spearman='rank correlation (average ranks for ties) of the maps at the '
                'resolution the method computes, over the cells that cover the image; a pair '
                'whose reference map (trained model, predicted class) is constant is left out, '
                'a constant map against a varying reference counts 0',
                ssim=f'Wang et al. 2004 (11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03, '
                f'L 1, valid windows) of the maps resized to {self.ssim_size[0]}x'
                f'{self.ssim_size[1]} and min-max normalised per map',
                randomisation='each layer with reset_parameters() re-initialises itself '
                '(PyTorch default initialisation; batch norms reset their running statistics), '
                'other parameters get a truncated normal (std 0.02); step k uses seed + k'),
            results=results)


def format_sanity_table(report: Dict[str, Any]) -> str:
    """A plain-text table of :meth:`SanityChecker.report`, with the verdicts."""
    def number(value: Optional[float]) -> str:
        return f'{value:>9.3f}' if value is not None else f'{"-":>9}'

    width = max([len('random label (other class)')] +
                [len(s['step']) + 2 for r in report['results'].values() for s in r['cascade']])
    header = f'{"algorithm":<22}{"step":<{width + 2}}{"Spearman":>9}{"kept":>9}{"SSIM":>9}' \
             f'{"maps":>7}{"constant":>10}{"left out":>10}  flag'
    lines = [header, '-' * len(header)]
    for label, result in report['results'].items():
        rows = [(('' if i == 0 else '+ ') + s['step'], s) for i, s in enumerate(result['cascade'])]
        if result['random_label'] is not None:
            rows.append(('random label (other class)', result['random_label']))
        for i, (name, values) in enumerate(rows):
            lines.append(f'{label if i == 0 else "":<22}{name:<{width + 2}}'
                         f'{number(values["spearman"])}{number(values["kept"])}'
                         f'{number(values["ssim"])}{values["maps"]:>7}'
                         f'{values["constant_maps"]:>10}{values["constant_reference_maps"]:>10}  '
                         f'{"FLAG" if values["flagged"] else ""}')
        lines.append(f'{"":<22}verdict: {result["verdict"].upper()}')
    thresholds = report['thresholds']
    lines.append(
        f'Spearman, SSIM: means over the maps (trained vs randomised model, same class; steps '
        f'are cumulative, top layer first). kept: share of maps with Spearman >= '
        f'{thresholds["spearman"]}; FLAG when the mean Spearman >= {thresholds["spearman"]}. '
        'constant: '
        'randomised maps that are constant (Spearman 0); left out: pairs whose trained map is '
        'constant.')
    return '\n'.join(lines)
