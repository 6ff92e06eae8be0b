"""mmseg's visualization hook, with the pseudo-label recipe handed over."""
from mmseg.engine.hooks import SegVisualizationHook
from mmseg.visualization import SegLocalVisualizer

from rca_mm.models.classifiers import CAMClassifier
from rca_mm.registry import HOOKS
from rca_mm.utils.dist_utils import unwrap_model
from rca_mm.visualization import WSSSLocalVisualizer


@HOOKS.register_module()
class WSSSVisualizationHook(SegVisualizationHook):
    """``SegVisualizationHook`` for the stage-1 classifiers.

    It draws as mmseg's hook does (every ``interval`` batches, when
    ``draw``; ``tools/test.py --show/--show-dir`` switch it on). Before a
    test run that draws, it gives ``WSSSLocalVisualizer`` the recipe of the
    test evaluator's ``PseudoLabelMetric`` when the visualizer has none of
    its own, so the pseudo-label panel shows the labels the metric writes.
    The arguments are those of ``SegVisualizationHook``.

    Raises:
        TypeError: before a test run that draws, when the visualizer is not
            a ``WSSSLocalVisualizer`` and the model is a CAM classifier, or
            the visualizer is not an mmseg one at all (e.g. mmpretrain's,
            which would draw nothing); set ``visualizer.type``.
    """

    def before_test(self, runner) -> None:
        if not self.draw:
            return
        visualizer = self._visualizer
        if not isinstance(visualizer, WSSSLocalVisualizer):
            if (isinstance(unwrap_model(runner.model), CAMClassifier)
                    or not isinstance(visualizer, SegLocalVisualizer)):
                raise TypeError('drawing test outputs with this hook needs '
                                "visualizer.type='WSSSLocalVisualizer' (or "
                                "'SegLocalVisualizer' for a segmentor), got "
                                f'{type(visualizer).__name__}')
            return
        if visualizer.recipe is not None:
            return
        for metric in runner.test_evaluator.metrics:
            if getattr(metric, 'recipe', None) is not None:
                visualizer.recipe = metric.recipe
                return
