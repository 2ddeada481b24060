"""Reading parts of an MMEngine config that several layers need."""
from typing import List

from mmengine.config import Config


def innermost_dataset(dataset: dict) -> dict:
    """The dataset config inside dataset wrappers (``ClassBalancedDataset``, ...)."""
    while 'pipeline' not in dataset and 'dataset' in dataset:
        dataset = dataset.dataset
    return dataset


def test_pipeline_of(cfg: Config) -> List[dict]:
    """The test pipeline of a config (``test_pipeline`` or the test dataset's)."""
    return list(innermost_dataset(cfg.test_dataloader.dataset).get('pipeline')
                or cfg.get('test_pipeline'))


def input_channels(cfg: Config) -> int:
    """Channels the model takes: those of its data preprocessor's ``mean`` (3 without one).

    MNIST's LeNet normalises one channel (``mean=[33.46]``): its images are
    read in grayscale.
    """
    preprocessor = cfg.get('model', {}).get('data_preprocessor') or cfg.get('data_preprocessor')
    mean = (preprocessor or {}).get('mean')
    return len(mean) if isinstance(mean, (list, tuple)) else 3
