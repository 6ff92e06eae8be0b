"""The warm-up of Eq. 11: alpha_1 = 0 in the first epoch(s)."""
from mmengine.hooks import Hook

from rca_mm.registry import HOOKS
from rca_mm.utils.dist_utils import unwrap_model


@HOOKS.register_module()
class RSCWarmupHook(Hook):
    """Switches the contrast loss off before ``warmup_epochs``.

    The bank is still written during the warm-up, so the contrast has
    entries to compare against when it starts.

    Args:
        warmup_epochs (int): epochs with alpha_1 = 0. Default: 1 (the
            paper's warm-up; the released code waits two epochs).
    """

    def __init__(self, warmup_epochs: int = 1) -> None:
        self.warmup_epochs = warmup_epochs

    def before_train_epoch(self, runner) -> None:
        unwrap_model(runner.model).head.rsc_active = \
            runner.epoch >= self.warmup_epochs
