"""What every explain-mode model tells the hooks and the writer: one contract."""
from typing import List, Optional, Tuple

from .saliency_targets import SaliencyTargets


class SaliencyModel:
    """The explain-mode model contract, for PyTorch and exported models alike.

    :class:`~mmxai.models.ExplainModel` and
    :class:`~mmxai.deploy.ExportedExplainModel` implement it: their
    ``test_step`` returns data samples with the maps attached by
    :meth:`SaliencyTargets.attach` (``saliency_map``, ``explained_classes``
    and the ``explain_*`` metainfo), and these properties say what a run's
    manifest and the writer need. Subclasses set :attr:`targets`.
    """

    #: The classes to explain, their names and the score threshold.
    targets: SaliencyTargets

    @property
    def algorithm(self) -> str:
        """Name of the explain algorithm (a key of :data:`mmxai.explainers.ALGORITHMS`)."""
        raise NotImplementedError

    @property
    def value_range(self) -> Optional[Tuple[float, float]]:
        """The maps' fixed value range, or None when their scale depends on model and image."""
        raise NotImplementedError

    @property
    def class_names(self) -> Optional[List[str]]:
        """The model's class names, if known."""
        return self.targets.class_names

    @property
    def score_thr(self) -> float:
        """The run's detection score threshold."""
        return self.targets.score_thr

    def class_name(self, index: int) -> str:
        """Name of a class, or its index as text when names are unknown."""
        return self.targets.class_name(index)
