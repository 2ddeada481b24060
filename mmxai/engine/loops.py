"""The test loop of folder-mode explain runs."""
from typing import Any

import torch
from mmengine.runner import TestLoop

from ..registry import LOOPS


@LOOPS.register_module()
class ExplainTestLoop(TestLoop):
    """MMEngine's ``TestLoop`` that lets a batch be empty.

    When every image of a batch was unreadable (and skipped by
    ``mmxai.collate_skipping_unreadable``), the model is not called and the
    hooks see no outputs; MMEngine's loop would call the model and then fail
    on the empty output list.
    """

    @torch.no_grad()
    def run_iter(self, idx: int, data_batch: Any) -> None:
        """Run one batch, or only the hooks if it holds no image."""
        if isinstance(data_batch, dict) and len(data_batch.get('inputs', ())) == 0:
            self.runner.call_hook('before_test_iter', batch_idx=idx, data_batch=data_batch)
            self.runner.call_hook('after_test_iter', batch_idx=idx, data_batch=data_batch,
                                  outputs=[])
            return
        super().run_iter(idx, data_batch)
